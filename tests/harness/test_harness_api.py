"""The harness's own contract: strategies, reprs, argument checks, failure reports, profiles."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import run_state_machine_as_test

import gridcore
from gridcore import State, step
from gridcore.instruments import Instrument, PositionMode
from gridcore.invariants import STATE_INVARIANTS, check_state
from gridcore.sim import FaultPlan
from gridcore.sim.funding import VenueFaults
from gridcore.testing import (
    CATALOGUE,
    QUICK_PROFILE,
    THOROUGH_PROFILE,
    InvariantViolations,
    MarketPath,
    Reducer,
    Scenario,
    StepRecord,
    Violation,
    assert_no_violations,
    check_step,
    invariant_named,
    make_state_machine,
    simulate,
    state_invariant,
)
from gridcore.testing import strategies as gst

from . import broken
from .bots import EPOCH, grid_bot, grid_config
from .search import INSTRUMENT, SEARCH, scenarios

NAMESPACE: dict[str, Any] = {
    "Decimal": Decimal,
    "FaultPlan": FaultPlan,
    "Instrument": Instrument,
    "MarketPath": MarketPath,
    "PositionMode": PositionMode,
    "Scenario": Scenario,
    **{name: getattr(gridcore, name) for name in gridcore.__all__},
}


# --- strategies --------------------------------------------------------------------------------


@given(scenario=gst.scenarios(market=gst.market_paths(instrument=gst.instruments())))
def test_a_drawn_scenario_prints_as_the_program_that_builds_it(scenario: Scenario) -> None:
    assert eval(repr(scenario), NAMESPACE) == scenario


@given(path=gst.market_paths(instrument=gst.instruments(), min_ticks=1, max_ticks=50))
def test_a_market_path_is_a_value(path: MarketPath) -> None:
    quotes = list(path)
    assert quotes == list(path)  # the same quotes every time it is iterated
    assert len(quotes) == path.ticks
    assert all(q.bid < q.ask and path.instrument.is_on_tick(q.bid) for q in quotes)


def test_fault_plans_shrink_to_a_perfect_venue() -> None:
    smallest = find(gst.fault_plans(), lambda plan: True)
    assert not smallest.active


@given(plan=gst.fault_plans(kinds=frozenset({"drop"})))
def test_fault_plans_switch_on_only_the_kinds_asked_for(plan: FaultPlan) -> None:
    assert attrs.evolve(plan, drop_ppm=0).active is False


@given(
    plan=gst.fault_plans(
        kinds=frozenset({"ack_delay", "drop"}), min_ppm=50_000, min_ack_delay_ms=2_000
    )
)
def test_fault_plans_with_a_least_rate_switch_on_every_kind_asked_for(plan: FaultPlan) -> None:
    assert plan.ack_delay_ppm >= 50_000 and plan.drop_ppm >= 50_000
    assert plan.ack_delay_ms >= 2_000
    assert plan.duplicate_ppm == plan.rest_error_ppm == plan.disconnect_ppm == 0


@given(refusals=gst.venue_refusals(max_ppm=0, max_order=3))
def test_venue_refusals_name_the_venues_first_orders(refusals: VenueFaults) -> None:
    assert refusals.reject_ppm == refusals.partial_ppm == refusals.late_reject_ppm == 0
    assert list(refusals.refuse_orders) == sorted(set(refusals.refuse_orders))
    assert all(1 <= n <= 3 for n in refusals.refuse_orders)


@given(
    config=gst.core_configs(instrument=gst.instruments(), risk=gst.risk_configs()),
    data=st.data(),
)
def test_drawn_configs_make_working_bots(config: gridcore.CoreConfig, data: st.DataObject) -> None:
    grid = data.draw(gst.grid_configs(instrument=st.just(config.instruments[0])))
    state = gridcore.initial_state(config, gridcore.NeutralGrid(config=grid), epoch=EPOCH)
    state, commands = step(state, gridcore.Started(ts=EPOCH))
    assert any(isinstance(c, gridcore.RequestPositions) for c in commands)


@pytest.mark.parametrize(
    "build",
    [
        lambda: gst.market_paths(instrument=gst.instruments(), min_ticks=10, max_ticks=5),
        lambda: gst.market_paths(instrument=gst.instruments(), min_ticks=-1),
        lambda: gst.fault_plans(kinds=frozenset({"meteor"})),
        lambda: gst.fault_plans(max_ppm=2_000_000),
        lambda: gst.fault_plans(min_ppm=300_000, max_ppm=200_000),
        lambda: gst.fault_plans(min_ack_delay_ms=-1),
        lambda: gst.venue_refusals(max_order=-1),
        lambda: gst.instruments(venue="sim"),  # type: ignore[arg-type]
        lambda: gst.scenarios(market=MarketPath(instrument=INSTRUMENT)),  # type: ignore[arg-type]
        lambda: gst.event_streams(instrument=gst.instruments(), min_size=3, max_size=2),
        lambda: gst.kernel_cloids(max_seq=0),
    ],
)
def test_strategies_refuse_bad_arguments_when_built(build: Any) -> None:
    with pytest.raises(InvalidArgument):
        build()


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(events=gst.event_streams(instrument=st.just(INSTRUMENT), max_size=80))
def test_no_venue_chatter_crashes_the_kernel_or_breaks_its_books(
    events: list[gridcore.Event],
) -> None:
    """A fact never crashes the loop, and the kernel's own bookkeeping invariants hold after
    every step, whatever the venue says in whatever order (about the grid's real orders:
    the stream draws the cloids the kernel gives them)."""
    kernel = [
        invariant_named(name)
        for name in (
            "reservations_match_live_orders",
            "no_live_order_without_remainder",
            "unresolved_orders_tracked",
            "sync_attempts_bounded",
            "fills_applied_once",
            "filled_only_when_done",
            "rejected_cancel_requests_status",
            "unresolved_orders_have_status_requests",
            "close_within_position",
            "no_order_on_stale_report",
            "aggressive_orders_within_slippage_cap",
        )
    ]
    state: State[Any] = grid_bot()
    for event in events:
        after, commands = step(state, event)
        record = StepRecord(before=state, event=event, after=after, commands=tuple(commands))
        assert check_step(record, kernel) == []
        state = after


# --- simulate and its reports -------------------------------------------------------------------


def test_simulate_refuses_a_bot_that_does_not_trade_the_market() -> None:
    other = attrs.evolve(INSTRUMENT, symbol="ETH-PERP")
    with pytest.raises(ValueError, match="ETH-PERP"):
        simulate(grid_bot(), Scenario(market=MarketPath(instrument=other, ticks=10)))


def test_simulate_refuses_a_bot_from_the_future() -> None:
    market = MarketPath(instrument=INSTRUMENT, ticks=10, start_ts=EPOCH - 1)
    with pytest.raises(ValueError, match="fresh bot"):
        simulate(grid_bot(), Scenario(market=market))


def test_a_failure_report_prints_each_event_as_pasteable_python() -> None:
    market = MarketPath(instrument=INSTRUMENT, seed=3, ticks=300, volatility=Decimal("0.001"))
    trace = simulate(grid_bot(), Scenario(market=market), reducer=broken.no_fill_dedup)
    with pytest.raises(InvariantViolations) as failure:
        assert_no_violations(trace)
    message = str(failure.value)
    assert "fills_applied_once" in message
    printed = [line.split("event: ", 1)[1] for line in message.splitlines() if "event: " in line]
    with_events = [v for v in failure.value.violations if v.event is not None]
    assert printed
    assert eval(printed[0], NAMESPACE) == with_events[0].event


def test_a_clean_trace_passes_silently() -> None:
    market = MarketPath(instrument=INSTRUMENT, seed=3, ticks=200)
    assert_no_violations(simulate(grid_bot(), Scenario(market=market)))


def test_a_user_invariant_is_checked_like_the_catalogue_s() -> None:
    def never_fills(state: State[Any]) -> list[Violation]:
        """The bot never trades."""
        n = state.ledger.fill_count
        return [Violation(invariant="never_fills", ts=state.now, detail=f"{n} fills")] if n else []

    market = MarketPath(instrument=INSTRUMENT, seed=3, ticks=600, volatility=Decimal("0.001"))
    scenario = Scenario(market=market)
    trace = simulate(grid_bot(), scenario, invariants=(*CATALOGUE, state_invariant(never_fills)))
    assert trace.summary.fills > 0
    assert {v.invariant for v in trace.violations} == {"never_fills"}
    assert state_invariant(never_fills).claim == "The bot never trades."
    assert simulate(grid_bot(), scenario, invariants=()).violations == ()


def test_a_runaway_bot_is_stopped_and_reported() -> None:
    market = MarketPath(instrument=INSTRUMENT, seed=3, ticks=50)
    with pytest.raises(InvariantViolations, match="bot_quiesces"):
        simulate(grid_bot(), Scenario(market=market, latency_ms=0), reducer=broken.resync_loop)


def test_simulate_asks_the_working_predicate_of_the_settled_state() -> None:
    """``working=``: the predicate sees the final state (settled: its last quote is fresh) and
    a reason is reported as ``bot_keeps_working``; ``None`` reports nothing."""
    market = MarketPath(instrument=INSTRUMENT, seed=3, ticks=100)
    seen: list[State[Any]] = []

    def idle(state: State[Any]) -> str | None:
        seen.append(state)
        return "does nothing"

    trace = simulate(grid_bot(), Scenario(market=market), working=idle)
    assert [(v.invariant, v.detail) for v in trace.violations] == [
        ("bot_keeps_working", "does nothing")
    ]
    assert seen == [trace.state]
    assert simulate(grid_bot(), Scenario(market=market), working=lambda s: None).violations == ()


# --- the catalogue -----------------------------------------------------------------------------


def test_every_invariant_is_named_once_and_says_what_it_prevents() -> None:
    names = [inv.name for inv in CATALOGUE]
    assert len(names) == len(set(names))
    catalogue = (Path(__file__).resolve().parents[2] / "docs" / "failures.md").read_text()
    for inv in CATALOGUE:
        assert inv.failures, inv.name
        for failure in inv.failures.split(", "):
            assert f"| `{failure}` |" in catalogue, (inv.name, failure)
        assert inv.claim and inv.claim != inv.name
    with pytest.raises(KeyError, match="fills_applied_once"):
        invariant_named("no_such_invariant")


def test_the_backtest_runner_checks_every_state_invariant() -> None:
    state_names = {f.__name__ for f in STATE_INVARIANTS}
    assert state_names == {inv.name for inv in CATALOGUE if inv.state_check is not None}
    assert check_state(grid_bot()) == []


# --- the state machine and the profiles ---------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{"max_move_ticks": -1}, {"tick_interval_ms": 0}, {"start_price": Decimal(0)}],
)
def test_the_machine_factory_refuses_bad_arguments(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        make_state_machine(initial_state=grid_bot(), **options)


def test_a_machine_failure_prints_a_program() -> None:
    machine = make_state_machine(initial_state=grid_bot(), reducer=broken.no_fill_dedup)
    with pytest.raises(AssertionError) as failure:
        run_state_machine_as_test(machine, settings=SEARCH)  # type: ignore[no-untyped-call,unused-ignore]
    notes = "\n".join(getattr(failure.value, "__notes__", []))
    assert "state = BotMachine()" in notes
    assert "fills_applied_once" in str(failure.value)


def _traded(reducer: Reducer, *, moves: list[int], answers_first: bool, refuse: bool | None) -> str:
    """Run a short machine program by hand; the violations it ends with ('' when none)."""
    machine: Any = make_state_machine(initial_state=grid_bot(), reducer=reducer)()
    machine.start(liquidity=[None], funding_interval_ms=10_000, opening=[0], answers_first=False)
    if refuse is not None:
        machine.refuse(rejected=refuse)
    machine.trade(moves=moves, answers_first=answers_first)
    try:
        machine.teardown()
    except AssertionError as failure:
        return str(failure)
    return ""


def test_while_trading_a_refused_cancel_may_reach_the_bot_before_its_fill() -> None:
    """Failure `leaked-cancel`: a gap fills the grid's orders and the bot, recentering, cancels
    some of them; the venue refuses those cancels. When its answers overtake the stream, the
    refusal arrives while the bot still holds the order open: a bot that shrugs it off is caught
    in the very step. In arrival order it sees the fill first and never shows the bug."""
    forgetful = broken.ignore_rejected_cancel
    caught = _traded(forgetful, moves=[-300], answers_first=True, refuse=None)
    assert "rejected_cancel_requests_status" in caught
    assert "order is filled" in caught
    assert _traded(forgetful, moves=[-300], answers_first=False, refuse=None) == ""
    assert _traded(step, moves=[-300], answers_first=True, refuse=None) == ""


@pytest.mark.parametrize("rejected", [True, False])
def test_refuse_fails_the_bots_next_new_order_in_the_middle_of_trading(rejected: bool) -> None:
    """Failure `unreleased-funds`: the order the bot places when its first buy fills is refused
    by the venue (or fails before it) although the network is otherwise working; a bot that
    keeps its reservation is caught at once, the real one is not."""
    kept = _traded(
        broken.keep_reservation_on_rejection, moves=[-80], answers_first=False, refuse=rejected
    )
    assert "reservations_match_live_orders" in kept
    assert ("OrderRejected(" if rejected else "CommandFailed(") in kept
    assert _traded(step, moves=[-80], answers_first=False, refuse=rejected) == ""


def _outage(reducer: Reducer, *, outage: tuple[int, int]) -> str:
    """A quiet grid (no periodic reconciliation) trades through a fall of 30 ticks a quote
    with the feed down over part of the stretch; the violations it ends with ('' when none)."""
    quiet = grid_bot(grid_config(reconcile_ms=0))
    machine: Any = make_state_machine(initial_state=quiet, reducer=reducer)()
    machine.start(liquidity=[None], funding_interval_ms=10_000, opening=[0], answers_first=False)
    machine.trade(moves=[-30] * 6, answers_first=False, outage=outage)
    try:
        machine.teardown()
    except AssertionError as failure:
        return str(failure)
    return ""


@pytest.mark.parametrize("outage", [(1, 3), (1, 60)])
def test_a_trade_outage_fills_orders_while_the_feed_is_down(outage: tuple[int, int]) -> None:
    """Failure `missed-fills-on-reconnect`: the feed goes down in the middle of a stretch of
    trading, the grid's bids fill unheard, and the feed comes back within the stretch (or, when
    the outage outlasts it, at the settle). A bot that marks the feed up without asking for
    what it missed disagrees with the venue right after the reconnect; the real one agrees."""
    missed = _outage(broken.no_reconcile_on_reconnect, outage=outage)
    assert "ledger_matches_venue" in missed
    assert "right after the reconnect's reconciliation" in missed
    assert _outage(step, outage=outage) == ""


def test_the_profiles_are_registered() -> None:
    quick = settings.get_profile(QUICK_PROFILE)
    thorough = settings.get_profile(THOROUGH_PROFILE)
    assert quick.max_examples < thorough.max_examples
    assert quick.deadline is None and thorough.deadline is None


def test_the_proof_scenarios_draw_lively_markets() -> None:
    drawn = find(scenarios(), lambda s: s.market.volatility >= Decimal("0.0005"))
    assert drawn.market.instrument == INSTRUMENT
