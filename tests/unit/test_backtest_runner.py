"""The backtest is a deterministic fold; under every fault profile it ends with no invariant
violation and with the ledger equal to the exchange model's own account (issue 3, items 2 and 5).
"""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import Any

import attrs
import pytest

from gridcore.config import load_config
from gridcore.core import CoreConfig, initial_state
from gridcore.grid import NeutralGrid
from gridcore.instruments import Instrument
from gridcore.invariants import check_against_venue
from gridcore.numbers import CTX
from gridcore.sim import (
    PROFILES,
    SimConfig,
    SimExchange,
    backtest,
    make_exchange,
    make_path,
    run_backtest,
    synthetic_path,
)
from gridcore.sim.faults import FaultPlan
from gridcore.sync import SyncPhase
from tests.unit.helpers import EPOCH

TICKS = 6_000


def test_same_seed_same_summary_and_a_different_seed_differs() -> None:
    cfg = load_config()
    a = backtest(cfg, seed=3, ticks=TICKS, faults=PROFILES["chaos"])
    b = backtest(cfg, seed=3, ticks=TICKS, faults=PROFILES["chaos"])
    c = backtest(cfg, seed=4, ticks=TICKS, faults=PROFILES["chaos"])
    assert a.summary == b.summary
    assert [n.message for n in a.notices] == [n.message for n in b.notices]
    assert a.summary != c.summary


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_fault_profile_ends_clean_and_the_ledger_equals_the_venue(name: str) -> None:
    trace = backtest(load_config(), seed=11, ticks=TICKS, faults=PROFILES[name])
    assert trace.violations == (), trace.violations[:3]
    assert trace.summary.invariant_violations == 0
    assert trace.summary.fills > 0
    assert check_against_venue(trace.state, trace.exchange) == []
    ex = trace.exchange
    totals = trace.state.ledger.totals()
    # In gridcore's 40-digit context (Python's default context has 28 digits).
    expected = CTX.add(
        CTX.subtract(CTX.add(Decimal(10_000), totals.realized), totals.fees), totals.funding
    )
    assert ex.cash == expected
    for (symbol, side), pos in ex.positions.items():
        # To the last digit: size, entry, exact cost basis, realized PnL, fees and funding.
        assert trace.state.ledger.position("sim", symbol, side) == pos
    assert trace.state.inflight == {}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_summary_money_is_exact_and_carries_only_the_decimals_its_inputs_justify(
    name: str,
) -> None:
    """Lot 0.001, tick 0.1, fee rates of 4 decimals, funding on a mid of 2 decimals: a fill's
    value has 4 decimals, a fee 8, realized PnL at most 8 (4 more for the average entry's
    rounding), funding 9. Net PnL is exactly its parts: no 1e-24 rounding left anywhere."""
    s = backtest(load_config(), seed=11, ticks=TICKS, faults=PROFILES[name]).summary

    def places(value: Decimal) -> int:
        exponent = value.normalize(CTX).as_tuple().exponent
        assert isinstance(exponent, int)
        return max(0, -exponent)

    assert places(s.volume) <= 4
    assert places(s.fees) <= 8
    assert places(s.realized_pnl) <= 8
    assert places(s.unrealized_pnl) <= 9
    assert places(s.funding) <= 9
    assert places(s.net_pnl) <= 9
    assert places(s.max_drawdown) <= 9
    parts = CTX.add(CTX.subtract(s.realized_pnl, s.fees), CTX.add(s.funding, s.unrealized_pnl))
    assert s.net_pnl == parts


def test_faults_really_happen() -> None:
    plan = FaultPlan(name="storm", disconnect_ppm=5_000, disconnect_ms=5_000, duplicate_ppm=500_000)
    trace = backtest(load_config(), seed=5, ticks=TICKS, faults=plan)
    codes = [n.code for n in trace.notices]
    assert codes.count("feed_down") > 3
    assert trace.summary.syncs > 3
    assert trace.violations == ()


def test_faults_change_nothing_the_ledger_ends_with() -> None:
    """Failure `missed-fills-on-reconnect`, `double-counted-fill`: lost and duplicated messages, then reconnects, end in the same account
    as a perfect run on the same market when the bot's decisions did not diverge."""
    cfg = load_config()
    clean = backtest(cfg, seed=2, ticks=TICKS)
    lossy = backtest(cfg, seed=2, ticks=TICKS, faults=PROFILES["lossy"])
    assert check_against_venue(lossy.state, lossy.exchange) == []
    assert lossy.summary.fills == clean.summary.fills
    assert lossy.state.ledger.totals() == clean.state.ledger.totals()


def _two_venue_bot() -> tuple[CoreConfig, tuple[SimExchange, SimExchange]]:
    a = Instrument(
        venue="a", symbol="BTC-PERP", tick_size=Decimal("0.1"), lot_size=Decimal("0.001")
    )
    b = Instrument(
        venue="b", symbol="BTC-PERP", tick_size=Decimal("0.1"), lot_size=Decimal("0.001")
    )
    config = CoreConfig(instruments=(a, b))
    venues = (
        SimExchange(SimConfig(venue="a", instruments=(a,)), start_ts=EPOCH),
        SimExchange(SimConfig(venue="b", instruments=(b,)), start_ts=EPOCH),
    )
    return config, venues


def test_several_venues_are_routed_by_name() -> None:
    config, venues = _two_venue_bot()
    grid = NeutralGrid(config=attrs.evolve(load_config().grid, venue="a"))
    state = initial_state(config, grid, epoch=0)
    a_path = list(synthetic_path(instrument=config.instruments[0], ticks=2_000, start_ts=EPOCH))
    b_path = list(
        synthetic_path(instrument=config.instruments[1], ticks=2_000, start_ts=EPOCH, seed=9)
    )
    path = sorted(a_path + b_path, key=lambda q: (q.ts, q.venue))
    trace = run_backtest(state, venues, path)
    assert trace.violations == ()
    assert set(trace.exchanges) == {"a", "b"}
    assert all(v.phase is SyncPhase.SYNCED for v in trace.state.venues.values())
    assert trace.exchanges["a"].fills and not trace.exchanges["b"].fills
    assert trace.state.quotes[("b", "BTC-PERP")].ts == b_path[-1].ts


def test_a_command_for_an_unknown_venue_fails_cleanly() -> None:
    cfg = load_config()
    exchange = make_exchange(cfg, start_ts=EPOCH)
    other = attrs.evolve(
        cfg,
        venue=attrs.evolve(cfg.venue, name="elsewhere"),
        grid=attrs.evolve(cfg.grid, venue="elsewhere"),
    )
    from gridcore.sim import make_bot, make_path

    state = make_bot(other, epoch=0)
    trace = run_backtest(state, exchange, [], settle_ms=1)
    assert trace.violations == ()
    path = [attrs.evolve(q, venue="elsewhere") for q in make_path(cfg, ticks=50)]
    trace = run_backtest(make_bot(other, epoch=path[0].ts), exchange, path)
    # Every sync request failed (no such venue), was re-sent a bounded number of times, and the
    # bot halted rather than trading on an unreconciled state.
    assert trace.state.risk.halted
    assert "could not be reconciled" in trace.state.risk.halt_reason
    assert trace.state.inflight == {}


def test_duplicate_venue_names_are_refused() -> None:
    config, venues = _two_venue_bot()
    state = initial_state(config, NeutralGrid(config=load_config().grid), epoch=0)
    with pytest.raises(ValueError, match="share a name"):
        run_backtest(state, [venues[0], venues[0]], [])


def test_without_step_checks_the_state_is_checked_once_and_the_run_is_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The module (``gridcore.sim.backtest`` the attribute is the function of that name).
    runner = sys.modules["gridcore.sim.backtest"]
    calls: list[int] = []
    real = runner.check_state

    def counted(state: Any) -> Any:
        calls.append(state.now)
        return real(state)

    monkeypatch.setattr(runner, "check_state", counted)
    cfg = load_config()
    checked = backtest(cfg, seed=3, ticks=TICKS, faults=PROFILES["chaos"])
    per_step = len(calls)
    calls.clear()
    unchecked = backtest(cfg, seed=3, ticks=TICKS, faults=PROFILES["chaos"], check_every_step=False)
    assert per_step > 100  # after every step that moved the books, and at the end
    assert calls == [unchecked.state.now]  # the final state only
    assert unchecked.summary == checked.summary
    assert unchecked.state == checked.state


def test_a_calm_settle_quotes_every_symbol_at_its_last_prices_and_a_silent_one_none() -> None:
    cfg = load_config()
    from gridcore.sim import make_bot

    path = list(make_path(cfg, seed=5, ticks=300))
    start, last = path[0].ts, path[-1]

    def settled(every_ms: int) -> list[Any]:
        trace = run_backtest(
            make_bot(cfg, epoch=start),
            make_exchange(cfg, start_ts=start),
            path,
            settle_ms=10_000,
            settle_quotes_ms=every_ms,
            record_events=True,
        )
        assert trace.violations == ()
        assert trace.events is not None
        return [e for e in trace.events if type(e).__name__ == "QuoteTicked" and e.ts > last.ts]

    assert settled(0) == []
    calm = settled(1_000)
    assert [q.ts for q in calm] == [last.ts + k * 1_000 for k in range(1, 11)]
    assert {(q.venue, q.symbol, q.bid, q.ask) for q in calm} == {
        (last.venue, last.symbol, last.bid, last.ask)
    }
    with pytest.raises(ValueError, match="settle_quotes_ms"):
        settled(-1)
