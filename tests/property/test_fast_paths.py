"""Fast paths agree with their reference: the synthetic market's inlined generator and its
quotes built without per-quote validation are exactly the quotes the public vocabulary builds."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore.events import QuoteTicked
from gridcore.instruments import Instrument
from gridcore.numbers import CTX, Rounding
from gridcore.sim.market import synthetic_path
from gridcore.sim.rng import SplitMix64


def _reference(
    *,
    instrument: Instrument,
    seed: int,
    ticks: int,
    start_price: Decimal,
    volatility: Decimal,
    spread_ticks: int,
    start_ts: int,
    interval_ms: int,
) -> Iterator[QuoteTicked]:
    """The walk as documented, with SplitMix64.next() and QuoteTicked's own constructor."""
    unit = 1 << 16
    den = 1_000_000 * unit * 1000
    rng = SplitMix64(seed)
    tick = instrument.tick_size
    price = int(CTX.divide(instrument.round_price(start_price, Rounding.NEAREST), tick))
    vol_ppm = int(CTX.multiply(volatility, Decimal(1_000_000)))
    ts = start_ts
    for _ in range(ticks):
        yield QuoteTicked(
            ts=ts,
            venue=instrument.venue,
            symbol=instrument.symbol,
            bid=CTX.multiply(Decimal(price), tick),
            ask=CTX.multiply(Decimal(price + spread_ticks), tick),
        )
        r = rng.next()
        z = (r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48) - 2 * unit
        price = max(1, price + (price * vol_ppm * z * 1732 + den // 2) // den)
        ts += interval_ms


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**64 - 1),
    ticks=st.integers(min_value=0, max_value=300),
    price=st.decimals(min_value=Decimal("0.5"), max_value=Decimal(100_000), places=1),
    volatility=st.sampled_from(
        [Decimal(0), Decimal("0.000002"), Decimal("0.0002"), Decimal("0.01")]
    ),
    spread=st.integers(min_value=1, max_value=5),
    tick=st.sampled_from([Decimal("0.1"), Decimal("0.01"), Decimal("0.5")]),
)
def test_the_synthetic_path_equals_its_reference(
    seed: int, ticks: int, price: Decimal, volatility: Decimal, spread: int, tick: Decimal
) -> None:
    inst = Instrument(venue="sim", symbol="X", tick_size=tick, lot_size=Decimal("0.001"))
    args = {
        "instrument": inst,
        "seed": seed,
        "ticks": ticks,
        "start_price": price,
        "volatility": volatility,
        "spread_ticks": spread,
        "start_ts": 1_700_000_000_000,
        "interval_ms": 250,
    }
    fast = list(synthetic_path(**args))  # type: ignore[arg-type]
    slow = list(_reference(**args))  # type: ignore[arg-type]
    assert fast == slow
    for q in fast:  # the same values and types, and each would pass QuoteTicked's validation
        rebuilt = QuoteTicked(ts=q.ts, venue=q.venue, symbol=q.symbol, bid=q.bid, ask=q.ask)
        assert rebuilt == q and hash(rebuilt) == hash(q)
        assert type(q.bid) is Decimal and type(q.ts) is int


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    faults=st.sampled_from(["none", "chaos", "disconnects"]),
    config=st.sampled_from(["", "examples/hedge_grid.toml", "examples/funding_arb.toml"]),
)
def test_the_housekeeping_fast_path_equals_the_general_path(
    seed: int, faults: str, config: str
) -> None:
    """Every step of runs with and without faults ends in the state and the commands that the
    general path (``general_step``: every quote through the working copy) gives from the same
    state."""
    from pathlib import Path

    from gridcore.config import load_config
    from gridcore.core import State
    from gridcore.kernel import general_step, step
    from gridcore.sim import backtest, profile

    due = 0

    def compared(state: State[Any], event: Any) -> Any:
        nonlocal due
        got = step(state, event)
        if type(event) is QuoteTicked:
            books = state.books
            if books.maintenance_due and event.ts >= max(books.maintenance_due, books.wake_at):
                due += 1
            assert got == general_step(state, event)
        return got

    root = Path(__file__).resolve().parents[2]
    cfg = load_config((root / config).read_text(), source=config) if config else load_config()
    trace = backtest(cfg, seed=seed, ticks=3_000, faults=profile(faults), reducer=compared)
    assert due > 100  # quotes that brought housekeeping, fast path or not
    assert trace.summary.invariant_violations == 0 or faults != "none"


_PRICES = st.decimals(min_value=Decimal("0.1"), max_value=Decimal(100_000), places=2)
_AMOUNTS = st.decimals(min_value=Decimal(-10_000), max_value=Decimal(10_000), places=4)


@settings(max_examples=60, deadline=None)
@given(
    positions=st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),  # venue
            st.sampled_from(["X", "Y"]),  # symbol
            st.decimals(min_value=Decimal(-5), max_value=Decimal(5), places=3),  # qty
            _PRICES,  # entry
            _AMOUNTS,  # realized
            _AMOUNTS,  # fees
            _AMOUNTS,  # funding
        ),
        max_size=4,
    ),
    quotes=st.dictionaries(
        st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["X", "Y"])),
        st.tuples(_PRICES, st.integers(min_value=0, max_value=5)),
    ),
)
def test_the_single_currency_pnl_equals_the_plain_definition(
    positions: list[tuple[str, str, Decimal, Decimal, Decimal, Decimal, Decimal]],
    quotes: dict[tuple[str, str], tuple[Decimal, int]],
) -> None:
    """``pnl_by_currency`` for one settlement currency (the housekeeping drawdown measure,
    inlined, with what it keeps of the last ledger) gives the very values (digits and exponent) of the plain definition: per
    position ``net`` plus ``unrealized`` at the quote's ``mid``, added in ledger order."""
    from gridcore.config import load_config
    from gridcore.instruments import PositionSide
    from gridcore.kernel import replace
    from gridcore.ledger import Ledger, Position
    from gridcore.sim import make_bot

    ledger = Ledger(
        positions={
            (venue, symbol, PositionSide.BOTH): Position(
                qty=qty,
                avg_entry=entry,
                cost=CTX.multiply(qty, entry),
                realized=realized,
                fees=fees,
                funding=funding,
            )
            for venue, symbol, qty, entry, realized, fees, funding in positions
        }
    )
    books = {
        key: QuoteTicked(
            ts=1_700_000_000_000,
            venue=key[0],
            symbol=key[1],
            bid=bid,
            ask=CTX.add(bid, Decimal(spread)),
        )
        for key, (bid, spread) in quotes.items()
    }
    bot = make_bot(load_config(), epoch=1_700_000_000_000)
    assert len(bot.config.currencies) == 1
    # The same ledger at two sets of quotes (housekeeping between fills), then another ledger.
    moved = {key: replace(q, bid=q.ask, ask=CTX.add(q.ask, Decimal(1))) for key, q in books.items()}
    other = Ledger(positions=dict(reversed(list(ledger.positions.items()))))
    for led, quotes_now in ((ledger, books), (ledger, moved), (other, moved), (ledger, books)):
        state = replace(bot, quotes=quotes_now, books=replace(bot.books, ledger=led))
        total = Decimal(0)
        for (venue, symbol, _side), pos in led.positions.items():
            total = CTX.add(total, pos.net)
            q = quotes_now.get((venue, symbol))
            if pos.qty and q is not None:
                total = CTX.add(total, pos.unrealized(q.mid))
        got = state.pnl_by_currency()
        assert list(got) == list(bot.config.currencies)
        (value,) = got.values()
        assert str(value) == str(total) and value == total


_QUOTE_PRICES = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(10**9), places=4)


@settings(max_examples=200, deadline=None)
@given(
    last=st.tuples(_QUOTE_PRICES, _QUOTE_PRICES),
    now=st.tuples(_QUOTE_PRICES, _QUOTE_PRICES),
    factor=st.decimals(min_value=Decimal("1.0001"), max_value=Decimal(1000), places=4),
)
def test_the_quote_jump_test_equals_the_plain_definition(
    last: tuple[Decimal, Decimal], now: tuple[Decimal, Decimal], factor: Decimal
) -> None:
    """The hot path's jump test (one product) answers what the plain one does (a quote that
    left the last spread and ``quote_jumped``), for any two valid quotes and factor > 1."""
    from gridcore.plausibility import left_and_jumped, quote_jumped

    a = QuoteTicked(ts=1_700_000_000_000, venue="v", symbol="X", bid=min(last), ask=max(last))
    b = QuoteTicked(ts=1_700_000_000_001, venue="v", symbol="X", bid=min(now), ask=max(now))
    plain = (b.bid > a.ask or b.ask < a.bid) and quote_jumped(a.bid, a.ask, b.bid, b.ask, factor)
    assert left_and_jumped(a, b, factor) is plain


@settings(max_examples=4, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    scale=st.sampled_from([Decimal("0.05"), Decimal("0.5"), Decimal("1.0001"), Decimal(20)]),
)
def test_the_tick_fast_path_equals_the_general_path(seed: int, scale: Decimal) -> None:
    """Every quote between housekeepings (the hot path), and the same quote scaled so that it
    may have jumped, ends in the state and commands that the general path gives
    (``general_step``: every quote through the working copy)."""
    from gridcore.config import load_config
    from gridcore.core import State
    from gridcore.kernel import general_step, step
    from gridcore.sim import backtest, profile

    compared = 0

    def reducer(state: State[Any], event: Any) -> Any:
        nonlocal compared
        got = step(state, event)
        if (
            type(event) is QuoteTicked
            and event.ts < state.books.wake_at
            and event.ts - state.now <= state.config.clock_lead_ms
        ):
            compared += 1
            assert got == general_step(state, event)
            bid, ask = CTX.multiply(event.bid, scale), CTX.multiply(event.ask, scale)
            moved = QuoteTicked(
                ts=event.ts, venue=event.venue, symbol=event.symbol, bid=bid, ask=ask
            )
            assert step(state, moved) == general_step(state, moved)
        return got

    backtest(load_config(), seed=seed, ticks=1_500, faults=profile("chaos"), reducer=reducer)
    assert compared > 500


def _views(stepper: Any, state: Any, event: Any) -> tuple[Any, list[tuple[str, Any]]]:
    """What ``stepper`` returns for ``event`` and what it shows the strategy meanwhile: every
    view handed to its ``on_tick`` and ``on_timer``, in order (recorded by wrapping its class's
    methods for the length of the step)."""
    cls = type(state.strategy)
    seen: list[tuple[str, Any]] = []
    originals = {name: cls.__dict__.get(name) for name in ("on_tick", "on_timer")}

    def recording(name: str) -> Any:
        method = getattr(cls, name)

        def record(self: Any, view: Any, arg: Any) -> Any:
            seen.append((name, view))
            return method(self, view, arg)

        return record

    try:
        for name in originals:
            setattr(cls, name, recording(name))
        got = stepper(state, event)
    finally:
        for name, original in originals.items():
            if original is None:
                delattr(cls, name)
            else:
                setattr(cls, name, original)
    return got, seen


@settings(max_examples=4, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    config=st.sampled_from(["", "examples/hedge_grid.toml", "examples/funding_arb.toml"]),
)
def test_the_housekeeping_fast_path_shows_the_strategy_what_the_general_path_does(
    seed: int, config: str
) -> None:
    """Every quote that brings housekeeping shows the strategy's ``on_tick`` and heartbeat the
    views the general path (``general_step``) shows, the wake-up time in them included: the
    same views when the fast path takes the quote, and the general path's after what the fast
    path looked at before it gave the quote up (it starts again from the same state)."""
    from pathlib import Path

    from gridcore.config import load_config
    from gridcore.core import State
    from gridcore.kernel import general_step, step
    from gridcore.sim import backtest, profile

    compared = 0

    def reducer(state: State[Any], event: Any) -> Any:
        nonlocal compared
        books = state.books
        if (
            type(event) is QuoteTicked
            and books.maintenance_due
            and event.ts >= max(books.maintenance_due, books.wake_at)
        ):
            got, fast = _views(step, state, event)
            general = _views(general_step, state, event)[1]
            assert fast[len(fast) - len(general) :] == general
            if len(fast) == len(general) and any(name == "on_timer" for name, _ in fast):
                compared += 1
            return got
        return step(state, event)

    root = Path(__file__).resolve().parents[2]
    cfg = load_config((root / config).read_text(), source=config) if config else load_config()
    backtest(cfg, seed=seed, ticks=2_000, faults=profile("none"), reducer=reducer)
    assert compared > 50
