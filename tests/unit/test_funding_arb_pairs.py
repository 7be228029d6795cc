"""Several symbol pairs in the funding-rate arbitrage: the ``[[funding_arb.pairs]]``
configuration, funding rates per symbol, pairs deciding on their own books while entries take
turns on the venues' shared balances, and per-pair figures.

The runs use the real kernel and the two simulated venues of :mod:`gridcore.sim.funding`, every
step judged by the kind's invariants."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore import ConfigError, State
from gridcore.config import BotConfig, load_config
from gridcore.core import initial_state
from gridcore.events import Event, FundingRateUpdated
from gridcore.shells.codec import decode_value, encode_value
from gridcore.shells.simpair import pair_fingerprint
from gridcore.sim.funding import (
    RatePath,
    RatesError,
    RatesKey,
    funding_backtest,
    pair_instruments,
    parse_rates_csv,
)
from gridcore.strategies.funding_arb import FundingArb, FundingArbConfig, PairConfig
from tests.unit.test_funding_arb import NO_VENUE_FAULTS, Judge, run, strategy_of, toml

PAIRS = Path(__file__).resolve().parents[2] / "examples" / "funding_arb_pairs.toml"
ZERO = Decimal(0)

SECOND = """
[[funding_arb.pairs]]
symbol_a = "BTC-USD"
symbol_b = "BTC"
tick_size_a = "0.1"
lot_size_a = "0.0001"
tick_size_b = "1"
lot_size_b = "0.001"
sim_start_price = "60000"
"""


def with_pair(extra: str = SECOND, **settings: Any) -> str:
    """The one-pair example (ETH) with ``settings`` and a further pair appended."""
    return toml(**{**NO_VENUE_FAULTS, **settings}) + extra


# --- configuration ------------------------------------------------------------------------------


def test_a_one_pair_configuration_is_one_pair() -> None:
    cfg = load_config(toml())
    s = cfg.settings
    assert isinstance(s, FundingArbConfig) and s.pairs == ()
    arb = cfg.make_strategy()
    assert isinstance(arb, FundingArb)
    assert [b.name for b in arb.books] == ["ETH-USD/ETH"]
    assert len(pair_instruments(cfg)) == 1


def test_the_pairs_example_describes_each_venues_instrument() -> None:
    cfg = load_config(PAIRS.read_text(encoding="utf-8"))
    s = cfg.settings
    assert isinstance(s, FundingArbConfig)
    assert s.pair_symbols() == (
        ("BTC-USD", "BTC", Decimal("2000")),
        ("ETH-USD", "ETH", Decimal("1500")),
    )
    (btc_a, btc_b), (eth_a, eth_b) = pair_instruments(cfg)
    assert (btc_a.venue, btc_a.symbol, btc_b.venue, btc_b.symbol) == ("a", "BTC-USD", "b", "BTC")
    assert (eth_a.tick_size, eth_a.lot_size, eth_b.tick_size, eth_b.lot_size) == (
        Decimal("0.01"),
        Decimal("0.001"),
        Decimal("0.1"),
        Decimal("0.01"),
    )
    # Left out: the first pair's value on that venue.
    assert (eth_a.taker_fee, eth_b.taker_fee) == (btc_a.taker_fee, btc_b.taker_fee)
    assert {i.settlement for i in (btc_a, btc_b, eth_a, eth_b)} == {"USD"}


def _pair(**fields: str) -> str:
    lines = {
        "symbol_a": '"BTC-USD"',
        "symbol_b": '"BTC"',
        "tick_size_a": '"0.1"',
        "lot_size_a": '"0.0001"',
        "tick_size_b": '"1"',
        "lot_size_b": '"0.001"',
    }
    lines.update(fields)
    body = "\n".join(f"{k} = {v}" for k, v in lines.items() if v != "-")
    return f"\n[[funding_arb.pairs]]\n{body}\n"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        # The first pair's symbol again: one position, two pairs.
        (_pair(symbol_a='"ETH-USD"'), "funding_arb.pairs[1].symbol_a"),
        (_pair(symbol_b='"ETH"'), "funding_arb.pairs[1].symbol_b"),
        (_pair() + _pair(symbol_b='"XBT"'), "funding_arb.pairs[2].symbol_a"),
        # A symbol the venue has no instrument for.
        (_pair(symbol_b="-"), "funding_arb.pairs[1].symbol_b"),
        (_pair(tick_size_b="-"), "funding_arb.pairs[1].tick_size_b"),
        (_pair(lot_size_a="-"), "funding_arb.pairs[1].lot_size_a"),
        (_pair(settlement_b='"USDC"'), "funding_arb.pairs[1].settlement_b"),
        (_pair(settlement_a='"EUR"'), "funding_arb.pairs[1].settlement_a"),
        (_pair(lot_size_b='"0.00015"'), "funding_arb.pairs[1].lot_size_b"),
        (_pair(tick_size_a='"-1"'), "funding_arb.pairs[1].tick_size_a"),
        (_pair(taker_fee_b='"0.5"'), "funding_arb.pairs[1].taker_fee_b"),
        (_pair(sim_rate_a='"2"'), "funding_arb.pairs[1].sim_rate_a"),
        (_pair(notional='"9000"'), "funding_arb.pairs[1].notional"),
        (_pair(notional='"5"'), "funding_arb.pairs[1].notional"),
        (_pair(venue='"c"'), "funding_arb.pairs[1].venue"),
        (_pair(tick_size_a="0.1"), "funding_arb.pairs[1].tick_size_a"),
    ],
)
def test_a_bad_pair_fails_at_load_naming_the_field(extra: str, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(with_pair(extra))
    assert info.value.field == field, str(info.value)


def test_pairs_must_be_a_list_of_tables() -> None:
    text = toml().replace("[funding_arb]\n", "[funding_arb]\npairs = 3\n", 1)
    with pytest.raises(ConfigError) as info:
        load_config(text)
    assert info.value.field == "funding_arb.pairs"


def test_pairs_built_in_python_are_checked_alike() -> None:
    good = PairConfig(
        symbol_a="XBT-USD",
        symbol_b="XBT",
        tick_size_a=Decimal("0.1"),
        lot_size_a=Decimal("0.001"),
        tick_size_b=Decimal(1),
        lot_size_b=Decimal("0.001"),
    )
    assert FundingArbConfig(pairs=(good,)).pairs == (good,)
    with pytest.raises(ConfigError) as info:
        FundingArbConfig(pairs=(good, good))
    assert info.value.field == "funding_arb.pairs[2].symbol_a"


# --- funding rates per symbol -------------------------------------------------------------------


def test_the_rates_csv_takes_a_symbol_column_and_still_reads_the_old_format() -> None:
    new = parse_rates_csv(
        "timestamp,venue,symbol,rate\n2,a,BTC-USD,0.0002\n1,a,BTC-USD,0.0001\n1,b,ETH,-0.0003\n"
    )
    assert new == {
        ("a", "BTC-USD"): [(1, Decimal("0.0001")), (2, Decimal("0.0002"))],
        ("b", "ETH"): [(1, Decimal("-0.0003"))],
    }
    old = parse_rates_csv("timestamp,venue,rate\n1,a,0.0001\n")
    assert old == {"a": [(1, Decimal("0.0001"))]}
    example = PAIRS.parent / "funding_rates_pairs.csv"
    recorded = parse_rates_csv(example.read_text(encoding="utf-8"))
    assert {k for k in recorded if isinstance(k, tuple)} == {
        ("a", "BTC-USD"),
        ("b", "BTC"),
        ("a", "ETH-USD"),
        ("b", "ETH"),
    }
    with pytest.raises(RatesError, match="line 2: want 4 cells"):
        parse_rates_csv("timestamp,venue,symbol,rate\n1,a,0.0001\n")
    with pytest.raises(RatesError, match="the symbol is empty"):
        parse_rates_csv("timestamp,venue,symbol,rate\n1,a,,0.0001\n")
    with pytest.raises(RatesError, match="timestamp,venue,symbol,rate"):
        parse_rates_csv("ts,venue,rate\n")


class Watch(Judge):
    """The kind's invariants after every step, and besides: the most entries running at once
    (across pairs), whether two pairs ever held positions at once, and the rates published."""

    def __init__(self) -> None:
        super().__init__()
        self.most_entries = 0
        self.both_held = False
        self.rates: dict[tuple[str, str], set[Decimal]] = {}

    def __call__(self, state: State[Any], event: Event) -> tuple[State[Any], list[Any]]:
        new, commands = super().__call__(state, event)
        if isinstance(event, FundingRateUpdated):
            self.rates.setdefault((event.venue, event.symbol), set()).add(event.rate)
        arb = new.strategy
        if isinstance(arb, FundingArb) and new.strategy is not state.strategy:
            running = [s for s in arb.sagas.values() if not s.terminal and s.data.kind == "entry"]
            self.most_entries = max(self.most_entries, len(running))
            self.both_held = self.both_held or all(b.long is not None for b in arb.books)
        return new, commands


def farm(**settings: Any) -> BotConfig:
    return load_config(with_pair(mode="farm", farm_hold_ms=600_000, cooldown_ms=0, **settings))


def test_each_symbol_pays_its_own_rate_and_each_pair_decides_on_its_own_rates() -> None:
    cfg = farm()
    rates: dict[RatesKey, RatePath] = {
        ("a", "ETH-USD"): [(0, Decimal("0.0001"))],
        ("b", "ETH"): [(0, Decimal("0.0004"))],
        ("a", "BTC-USD"): [(0, Decimal("-0.0002"))],
        ("b", "BTC"): [(0, Decimal("0.0003"))],
    }
    watch = Watch()
    trace = funding_backtest(cfg, ticks=4_000, seed=1, rates=rates, reducer=watch)
    assert trace.violations == () and watch.violations == []
    for key, path in rates.items():
        assert isinstance(key, tuple)
        assert watch.rates[key] == {path[0][1]}, key
    arb = strategy_of(trace)
    eth, btc = arb.books
    assert (eth.rate_a, eth.rate_b) == (Decimal("0.0001"), Decimal("0.0004"))
    assert (btc.rate_a, btc.rate_b) == (Decimal("-0.0002"), Decimal("0.0003"))
    # The kernel prices every payment (rate x position x mark): a payment at another symbol's
    # rate would be off the expected. Venue b pays hourly (venue a every 8 h: not in this run).
    f = trace.state.venues["b"].funding
    assert f.paid > 0 and f.checked_payments == f.paid and f.drifts == 0, f


def test_pairs_hold_at_once_but_their_entries_take_turns_on_the_shared_balance() -> None:
    cfg = farm()
    trace, judge = run(cfg, ticks=4_000, seed=2)
    arb = strategy_of(trace)
    assert trace.violations == () and judge.violations == []
    assert all(b.stats.hedged >= 1 for b in arb.books), [b.stats for b in arb.books]
    # Each pair's positions offset each other on the two venues.
    for book in arb.books:
        a = trace.state.ledger.position("a", book.symbol_a).qty
        b = trace.state.ledger.position("b", book.symbol_b).qty
        assert a == -b, (book.name, a, b)


def test_entries_never_run_at_once_and_two_pairs_are_held_together() -> None:
    cfg = farm()
    watch = Watch()
    trace = funding_backtest(cfg, ticks=4_000, seed=3, reducer=watch)
    assert trace.violations == () and watch.violations == []
    assert watch.most_entries == 1
    assert watch.both_held


def test_per_pair_figures_add_up_to_the_totals_without_mixing_currencies() -> None:
    cfg = farm()
    trace, _ = run(cfg, ticks=4_000, seed=1)
    arb = strategy_of(trace)
    view = trace.state
    pairs = arb.pair_figures(view)
    assert [p["pair"] for p in pairs] == ["ETH-USD/ETH", "BTC-USD/BTC"]
    total = arb.stats
    assert sum(p["entries"] for p in pairs) == total.entries >= 2
    assert sum(p["naked_total_ms"] for p in pairs) == total.naked_total_ms
    assert max(p["naked_max_ms"] for p in pairs) == total.naked_max_ms
    net = sum((Decimal(p["net_pnl"]["USD"]) for p in pairs), ZERO)
    assert net == view.pnl_by_currency()["USD"]
    funding_a = sum((Decimal(p["funding"]["a"]) for p in pairs), ZERO)
    assert funding_a == total.funding_a
    rows = dict(arb.summary_figures(view))
    assert rows["pairs"] == "2"
    assert "ETH-USD/ETH net PnL USD" in rows and "BTC-USD/BTC rollbacks" in rows
    assert "net PnL" not in rows  # totals are per settlement currency: "net PnL USD"


def test_a_stuck_pair_stops_only_itself() -> None:
    """A pair whose saga ended STUCK opens nothing more; the other pairs go on."""
    cfg = farm()
    real = cfg.make_strategy()
    assert isinstance(real, FundingArb)
    stuck = real._book(0, attrs.evolve(real.books[0], stopped=True))
    core = attrs.evolve(
        cfg.make_core_config(),
        instruments=tuple(i for pair in pair_instruments(cfg) for i in pair),
    )
    state = initial_state(core, stuck, epoch=cfg.market.start_ts)
    trace, judge = run(cfg, ticks=2_000, seed=1, state=state)
    arb = strategy_of(trace)
    assert trace.violations == () and judge.violations == []
    assert arb.books[0].stats.entries == 0
    assert arb.books[1].stats.hedged >= 1


_symbol = st.text(alphabet="ABCDEFXYZ-", min_size=1, max_size=6)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=10**13),
            st.sampled_from(["a", "b"]),
            _symbol,
            st.decimals(min_value=Decimal("-0.01"), max_value=Decimal("0.01"), places=8),
        ),
        max_size=30,
    )
)
def test_rates_csv_rows_come_back_per_venue_and_symbol_sorted_by_time(
    rows: list[tuple[int, str, str, Decimal]],
) -> None:
    text = "timestamp,venue,symbol,rate\n" + "".join(f"{t},{v},{s},{r}\n" for t, v, s, r in rows)
    parsed = parse_rates_csv(text)
    want: dict[RatesKey, list[tuple[int, Decimal]]] = {}
    for t, v, s, r in rows:
        want.setdefault((v, s), []).append((t, r))
    assert parsed == {k: sorted(v) for k, v in want.items()}


def test_a_one_pair_paper_venue_keeps_its_fingerprint_and_pairs_change_it() -> None:
    """Venue files of a one-pair configuration written before pairs existed still resume
    (their fingerprint has no ``pairs``); adding a pair makes the files another venue's."""
    one = load_config(toml())
    two = load_config(with_pair())
    for which in (0, 1):
        assert "pairs" not in pair_fingerprint(one, which)
        assert "BTC-USD" in pair_fingerprint(two, which)


# --- journals written before pairs --------------------------------------------------------------


def test_a_state_stored_before_pairs_resumes_as_the_first_pairs_book() -> None:
    """A journal written before several pairs holds the one pair's fields (rates, position,
    timers, figures) on the strategy itself: the codec reads it into the first pair's book, so
    a bot with both legs open resumes after an upgrade instead of refusing its journal."""
    arb = load_config(with_pair()).make_strategy()
    assert isinstance(arb, FundingArb)
    held = attrs.evolve(
        arb.books[0],
        rate_a=Decimal("0.0001"),
        rate_b=Decimal("-0.0002"),
        long="a",
        opened_at=1_700_000_123_000,
        last_end=1_700_000_000_000,
        stats=attrs.evolve(arb.books[0].stats, entries=3, hedged=2, rollbacks=1),
    )
    now = attrs.evolve(arb, seq=4, books=(held, *arb.books[1:]))
    tagged = msgspec.msgpack.decode(encode_value(now))
    assert tagged[0] == "O" and tagged[1].endswith("FundingArb")
    fields = tagged[2]
    book = fields.pop("books")[1][2]  # ["t", ["O", "PairBook", {...}], ...]: the first book
    for name in FundingArb._PAIR_FIELDS:
        fields[name] = book[name]
    old = msgspec.msgpack.encode(tagged)

    assert decode_value(old) == now
    assert decode_value(encode_value(now)) == now
