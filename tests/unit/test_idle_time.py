"""Cost follows the data (failure `idle-time-cost`): time with no data costs nothing, and the
balance-freshness rule holds without a heartbeat (failure `stale-balance`).

Counts only, never timings: a gap of a year costs a bounded number of reducer events, and an
order never passes the gate on a balance older than ``max_balance_age_ms``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore import (
    BalanceReported,
    FundingPaid,
    FundingRateUpdated,
    PlaceOrder,
    QuoteTicked,
    RequestBalances,
    RequestOpenOrders,
    RiskConfig,
    Started,
    StartTimer,
    TimerFired,
    step,
)
from gridcore.config import load_config
from gridcore.core import CLOCK_TIMER, MAINTENANCE_TIMER
from gridcore.sim import make_bot, make_exchange, run_backtest
from tests.unit.helpers import (
    ASK,
    BID,
    EPOCH,
    SYMBOL,
    VENUE,
    kernel_config,
    of_type,
    quote,
    scripted_state,
    submit,
    synced,
)

D = Decimal
YEAR_MS = 365 * 24 * 3_600_000
SYNC_TS = EPOCH + 1_000


def _path(times: list[int]) -> list[QuoteTicked]:
    config = load_config()
    return [
        QuoteTicked(
            ts=t,
            venue=config.venue.name,
            symbol=config.instrument.symbol,
            bid=D("50000"),
            ask=D("50000.1"),
        )
        for t in times
    ]


def _events(times: list[int]) -> tuple[int, int]:
    """Reducer events of a backtest over quotes at ``times``: all, and those that are not the
    venue's funding statements (data of their own: one per funding interval)."""
    config = load_config()
    start = times[0]
    trace = run_backtest(
        make_bot(config, epoch=start),
        make_exchange(config, start_ts=start),
        _path(times),
        record_events=True,
    )
    assert trace.summary.invariant_violations == 0, trace.violations
    assert trace.events is not None
    funding = sum(1 for e in trace.events if isinstance(e, FundingPaid | FundingRateUpdated))
    return trace.summary.events, trace.summary.events - funding


def test_a_year_with_no_data_costs_a_bounded_number_of_events() -> None:
    """Two quotes a year apart cost about as much as two quotes a minute apart, apart from the
    venue's funding statements (three a day): nothing fires through the empty year (a 5 s
    heartbeat would be 6.3 million events)."""
    t0 = 1_700_000_000_000
    _, near = _events([t0, t0 + 60_000])
    total, far = _events([t0, t0 + YEAR_MS])
    assert far <= near + 40
    assert total <= far + 2 * 3 * 366


def test_ten_years_of_monthly_quotes_cost_events_per_quote_not_per_second() -> None:
    t0 = 1_700_000_000_000
    times = [t0 + k * 30 * 24 * 3_600_000 for k in range(120)]
    _, events = _events(times)
    assert events <= 40 * len(times)


def test_a_gap_longer_than_the_clock_lead_moves_the_clock_before_the_quote() -> None:
    """The backtest shell fires the clock timer across a gap, so the quote after it is believed
    at its own time instead of being applied as of an old clock."""
    t0 = 1_700_000_000_000
    config = load_config()
    trace = run_backtest(
        make_bot(config, epoch=t0),
        make_exchange(config, start_ts=t0),
        _path([t0, t0 + YEAR_MS]),
        record_events=True,
    )
    assert trace.events is not None
    clocks = [e for e in trace.events if isinstance(e, TimerFired) and e.timer_id == CLOCK_TIMER]
    assert [e.ts for e in clocks] == [t0 + YEAR_MS]
    assert all(n.code != "clock_ahead" for n in trace.notices)
    assert trace.state.quotes[(config.venue.name, config.instrument.symbol)].ts == t0 + YEAR_MS


def test_with_no_data_and_nothing_owed_the_maintenance_timer_is_disarmed() -> None:
    """The timer is armed while a reconciliation round is owed since the last data; the round
    runs, nothing new arrives, and it is disarmed until a quote arrives again."""
    state, _ = synced(scripted_state(kernel_config(reconcile_ms=60_000)))
    armed = state.books.maintenance_timer
    assert armed is not None  # the sync quote came after (or with) the round
    state, commands = step(state, TimerFired(ts=armed, timer_id=MAINTENANCE_TIMER))
    assert len(of_type(commands, RequestOpenOrders)) == 1  # the round owed
    assert state.books.maintenance_timer is None and state.books.wake_at == 0
    assert [c for c in of_type(commands, StartTimer) if c.timer_id == MAINTENANCE_TIMER] == []
    # A quote takes the slow path once, and arms it again for the round it now owes.
    state, commands = step(state, quote(armed + 1))
    rearmed = [c for c in of_type(commands, StartTimer) if c.timer_id == MAINTENANCE_TIMER]
    assert len(rearmed) == 1 and rearmed[0].every_ms is None
    assert state.books.wake_at == state.books.maintenance_due


def test_a_quote_bringing_housekeeping_while_reconciling_leaves_the_wake_up_time_unset() -> None:
    """While the venue reconciles no round is owed and the timer stays disarmed: the quote that
    brings housekeeping (on the fast path, which shows the heartbeat the next due time as the
    wake-up time) ends with the wake-up time at 0, as the general path ends, so that every
    tick keeps arming the timer as soon as a round is owed."""
    from gridcore.kernel import general_step

    state = scripted_state(kernel_config(reconcile_ms=60_000))
    state, _ = step(state, Started(ts=EPOCH))
    state, _ = step(state, quote(EPOCH + 1))  # the venue is still reconciling
    assert state.books.maintenance_timer is None and state.books.wake_at == 0
    due = quote(state.books.maintenance_due)
    got = step(state, due)
    assert got == general_step(state, due)
    assert got[0].books.wake_at == 0 and got[0].books.maintenance_due > due.ts


@settings(max_examples=60, deadline=None)
@given(age=st.integers(min_value=0, max_value=2 * 300_000), gap=st.integers(0, 3))
def test_no_order_passes_on_a_balance_older_than_its_limit(age: int, gap: int) -> None:
    """Property: whatever time passed and however it passed (quotes, clock moves, housekeeping),
    an order is placed only if the last balance report is at most ``max_balance_age_ms`` old at
    the order's time; a refused one asks for a fresh balance."""
    limit = 300_000
    state, _ = synced(scripted_state(kernel_config(risk=RiskConfig(leverage=D(10)))))
    at = SYNC_TS + age
    # Time passes in ``gap`` steps of quotes (each within the clock lead), then the order.
    for k in range(1, gap + 1):
        state, _ = step(state, quote(SYNC_TS + age * k // (gap + 1)))
    state, _ = step(state, TimerFired(ts=at, timer_id=CLOCK_TIMER))
    state, _ = step(state, QuoteTicked(ts=at, venue=VENUE, symbol=SYMBOL, bid=BID, ask=ASK))
    balance = state.risk.balances[VENUE]
    _, commands, place = submit(state, ts=at)
    if place is not None:
        assert at - balance.ts <= limit
    if at - balance.ts > limit:
        assert place is None
        assert of_type(commands, PlaceOrder) == []


def test_the_report_that_answers_a_stale_refusal_tells_the_strategy_ready() -> None:
    """An order refused for a stale balance is decided again on the fresh report (``on_ready``),
    not left to a heartbeat; a report older than the refusal does not count."""
    state, _ = synced(scripted_state(kernel_config(risk=RiskConfig(leverage=D(10)))))
    late = SYNC_TS + 400_000
    state, woke = step(state, TimerFired(ts=late, timer_id=CLOCK_TIMER))
    state, _ = step(state, quote(late))
    state, commands, place = submit(state, ts=late)
    assert place is None
    asked = of_type([*woke, *commands], RequestBalances)
    assert len(asked) == 1
    assert VENUE in state.books.balance_waits
    readies = state.strategy.readies
    old = BalanceReported(
        ts=late - 1,
        venue=VENUE,
        asset="USD",
        equity=D("10000"),
        available=D("10000"),
        command_id=None,
    )
    state, _ = step(state, old)
    assert state.strategy.readies == readies and VENUE in state.books.balance_waits
    fresh = BalanceReported(
        ts=late + 100,
        venue=VENUE,
        asset="USD",
        equity=D("10000"),
        available=D("10000"),
        command_id=asked[0].command_id,
    )
    state, _ = step(state, fresh)
    assert state.strategy.readies == (*readies, VENUE)
    assert VENUE not in state.books.balance_waits
    _, _, place = submit(state, ts=late + 100)
    assert place is not None


def test_a_status_answer_failing_in_a_housekeeping_step_is_asked_again_at_the_next_round() -> None:
    """Housekeeping runs before the step's event. When that event is the failure of an order's
    status request, the order waits with nothing asked until the next round, which asks again:
    the invariant `unresolved_orders_have_status_requests` flags only an order that was already
    waiting with nothing asked when housekeeping ran."""
    from gridcore import CommandFailed, CommandTimedOut, OrderStatus, RequestOrderStatus
    from gridcore.invariants import StepRecord, check_step, invariant_named

    named = [invariant_named("unresolved_orders_have_status_requests")]

    def check(record: StepRecord) -> list[Any]:
        return check_step(record, named)

    state, _ = synced(scripted_state())
    t = state.now + 10
    state, _, place = submit(state, ts=t)
    assert place is not None
    state, commands = step(state, CommandTimedOut(ts=t + 1, command_id=place.command_id))
    request = next(c for c in commands if isinstance(c, RequestOrderStatus))
    due = state.books.maintenance_due
    assert due > t + 1
    failed = CommandFailed(ts=due, command_id=request.command_id, reason="502")
    after, commands = step(state, failed)
    record = StepRecord(before=state, event=failed, after=after, commands=tuple(commands))
    order = after.orders[place.cloid]
    assert after.books.maintenance_due > due  # housekeeping ran in this step, before the event
    assert order.status is OrderStatus.IN_DOUBT and not order.status_requested
    assert check(record) == []
    # The next round asks again; an order waiting with nothing asked would be flagged there.
    nxt = after.books.maintenance_due
    tick = QuoteTicked(ts=nxt, venue=VENUE, symbol=SYMBOL, bid=BID, ask=ASK)
    final, commands = step(after, tick)
    assert [c.cloid for c in of_type(commands, RequestOrderStatus)] == [place.cloid]
    assert check(StepRecord(before=after, event=tick, after=final, commands=tuple(commands))) == []
    forgotten = attrs.evolve(
        final,
        books=attrs.evolve(
            final.books,
            orders={
                **final.books.orders,
                place.cloid: attrs.evolve(final.orders[place.cloid], status_requested=False),
            },
        ),
    )
    record = StepRecord(before=after, event=tick, after=forgotten, commands=())
    assert [v.invariant for v in check(record)] == ["unresolved_orders_have_status_requests"]
