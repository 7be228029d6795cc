"""Funding reconciliation in the kernel: payments lost on the stream are recovered from the
venue's funding history, overlaps are booked once, a venue without history is coped with, and
a payment off the expected amount is reported (failures `lost-funding-payment`,
`double-counted-funding`, `funding-drift`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore import (
    Command,
    CommandFailed,
    CommandTimedOut,
    Event,
    FeedDisconnected,
    FeedReconnected,
    FundingPaid,
    FundingRateUpdated,
    FundingReported,
    Notify,
    PositionSide,
    RequestFunding,
    RequestOpenOrders,
    Started,
    State,
    step,
)
from gridcore.shells.codec import decode_command, decode_event, encode_command, encode_event
from gridcore.sim import SimConfig, SimExchange
from tests.unit.helpers import (
    EPOCH,
    SYMBOL,
    VENUE,
    Scripted,
    answer_sync,
    deliver,
    feed,
    instrument,
    kernel_config,
    of_type,
    only,
    quote,
    run_with_exchange,
    scripted_state,
    submit,
)

INTERVAL = 60_000
T0 = EPOCH + 1_000


def _payment(n: int, amount: str, *, ts: int | None = None, venue: str = VENUE) -> FundingPaid:
    return FundingPaid(
        ts=ts if ts is not None else EPOCH + n * INTERVAL,
        venue=venue,
        symbol=SYMBOL,
        position_side=PositionSide.BOTH,
        amount=Decimal(amount),
        payment_id=f"{n}:{SYMBOL}:both",
    )


def _report(payments: list[FundingPaid], *, ts: int, cid: int | None = None) -> FundingReported:
    return FundingReported(ts=ts, venue=VENUE, since=0, payments=tuple(payments), command_id=cid)


def _synced() -> tuple[State[Scripted], list[Command]]:
    """A synced scripted bot and the commands of its ``Started`` step (the funding request
    among them, left unanswered)."""
    state, started = step(scripted_state(), Started(ts=T0))
    state, _ = step(state, quote(T0))
    state, _ = feed(state, answer_sync(started, ts=T0))
    assert state.can_trade(VENUE)
    return state, started


def _booked(state: State[Any]) -> Decimal:
    return state.ledger.position(VENUE, SYMBOL).funding


def _codes(commands: list[Any]) -> list[str]:
    return [c.code for c in of_type(commands, Notify)]


# --- with the simulated venue ------------------------------------------------------------------


def _long_on_venue() -> tuple[State[Scripted], SimExchange]:
    """A synced bot holding 0.01 long on a venue paying funding every minute."""
    exchange = SimExchange(
        SimConfig(
            venue=VENUE,
            instruments=(instrument(),),
            funding_interval_ms=INTERVAL,
            funding_rate=Decimal("0.0001"),
        ),
        start_ts=EPOCH,
    )
    state = scripted_state(kernel_config())
    tick = quote(T0)
    exchange.on_tick(tick)
    state, started = step(state, Started(ts=T0))
    # Nothing seen yet: since the bot was created (minus the overlap).
    assert only(started, RequestFunding).since == EPOCH - kernel_config().fill_overlap_ms
    state, _ = step(state, tick)
    state, _ = run_with_exchange(state, exchange, started, now=T0)
    assert state.can_trade(VENUE)
    state, commands, place = submit(state, ts=T0 + 10, price="50001")  # crosses: fills now
    assert place is not None
    state, _ = run_with_exchange(state, exchange, commands, now=T0 + 10)
    assert state.ledger.position(VENUE, SYMBOL).qty == Decimal("0.01")
    return state, exchange


def _market(
    state: State[Scripted], exchange: SimExchange, *, until: int, lose_funding: bool
) -> State[Scripted]:
    """Quotes every 10 s until ``until``; the venue's stream messages are delivered after each
    quote, its funding payments lost when ``lose_funding``."""
    ts = T0 + 10_000
    while ts <= until:
        tick = quote(ts)
        events = exchange.on_tick(tick)
        kept: list[Event] = [e for e in events if not (lose_funding and isinstance(e, FundingPaid))]
        state, _ = deliver(state, exchange, [tick, *kept], now=ts)
        ts += 10_000
    return state


def test_a_payment_lost_while_disconnected_is_recovered_on_reconnect() -> None:
    state, exchange = _long_on_venue()
    state, _ = step(state, FeedDisconnected(ts=T0 + 5_000, venue=VENUE, reason="test"))
    state = _market(state, exchange, until=T0 + 3 * INTERVAL, lose_funding=True)
    paid = exchange.funding_paid
    assert paid != 0 and len(exchange.funding_history) == 3
    assert _booked(state) == 0  # every payment was lost on the stream
    now = T0 + 3 * INTERVAL + 1
    state, commands = deliver(state, exchange, [FeedReconnected(ts=now, venue=VENUE)], now=now)
    assert len(of_type(commands, RequestFunding)) == 1
    assert _booked(state) == paid
    status = state.venues[VENUE].funding
    assert (status.paid, status.recovered) == (3, 3)
    assert "funding_recovered" in _codes(commands)
    # The next round asks only from the last payment seen on (minus the overlap), and books
    # nothing twice.
    state, commands = deliver(state, exchange, [Started(ts=now + 1)], now=now + 1)
    request = only(commands, RequestFunding)
    assert request.since == exchange.funding_history[-1].ts - kernel_config().fill_overlap_ms
    assert _booked(state) == paid
    assert state.venues[VENUE].funding.paid == 3


def test_payments_on_the_stream_are_checked_against_rate_position_and_mark() -> None:
    state, exchange = _long_on_venue()
    state = _market(state, exchange, until=T0 + 2 * INTERVAL, lose_funding=False)
    status = state.venues[VENUE].funding
    assert _booked(state) == exchange.funding_paid != 0
    assert status.paid == 2 and status.checked_payments == 2
    assert (status.drifts, status.drift_amount) == (0, Decimal(0))


def test_a_payment_off_the_expected_amount_is_reported_never_absorbed() -> None:
    state, exchange = _long_on_venue()
    state = _market(state, exchange, until=T0 + INTERVAL - 10_000, lose_funding=False)
    ts = EPOCH + INTERVAL
    state, _ = step(state, quote(ts))
    rate = FundingRateUpdated(
        ts=ts, venue=VENUE, symbol=SYMBOL, rate=Decimal("0.0001"), next_funding_ts=ts + INTERVAL
    )
    state, _ = step(state, rate)
    expected = -Decimal("0.01") * quote(ts).mid * Decimal("0.0001")
    wrong = _payment(101, str(expected * 3), ts=ts)
    before = _booked(state)
    state, commands = step(state, wrong)
    assert "funding_drift" in _codes(commands)
    status = state.venues[VENUE].funding
    assert (status.drifts, status.drift_amount) == (1, expected * 2)
    assert _booked(state) - before == expected * 3  # booked as the venue reports it
    # Within the tolerance: no drift.
    state, _ = step(state, rate)
    close = _payment(102, str(expected * Decimal("1.005")), ts=ts + 1)
    state, commands = step(state, close)
    assert "funding_drift" not in _codes(commands)
    assert state.venues[VENUE].funding.drifts == 1


def test_a_payment_the_core_cannot_price_is_booked_without_a_claim() -> None:
    state, _ = _synced()
    # No rate seen: nothing to compare with.
    state, commands = step(state, _payment(1, "-5", ts=T0 + 1))
    status = state.venues[VENUE].funding
    assert "funding_drift" not in _codes(commands)
    assert (status.paid, status.checked_payments, _booked(state)) == (1, 0, Decimal(-5))


# --- overlaps and duplicates -------------------------------------------------------------------


def test_an_overlapping_report_and_the_stream_book_each_payment_once() -> None:
    state, started = _synced()
    cid = only(started, RequestFunding).command_id
    one, two = _payment(1, "-1.5"), _payment(2, "0.25")
    state, _ = feed(state, [one, _report([one, two], ts=T0 + 2, cid=cid), two])
    state, _ = feed(state, [_report([one, two], ts=T0 + 3), one])
    status = state.venues[VENUE].funding
    assert _booked(state) == Decimal("-1.25")
    assert (status.paid, status.recovered) == (2, 1)
    assert status.checked == T0  # the answered request was sent at the sync


def test_two_venues_numbering_payments_alike_are_both_booked() -> None:
    base = kernel_config()
    config = attrs.evolve(base, instruments=(instrument(), instrument(venue="other")))
    state = scripted_state(config)
    state, _ = feed(state, [_payment(1, "-1"), _payment(1, "-2", venue="other")])
    assert state.ledger.position(VENUE, SYMBOL).funding == Decimal(-1)
    assert state.ledger.position("other", SYMBOL).funding == Decimal(-2)


def test_a_report_never_books_another_venues_payments() -> None:
    state, _ = _synced()
    stray = _payment(1, "-3", venue="elsewhere")
    state, commands = step(state, _report([stray, _payment(2, "1")], ts=T0 + 5))
    assert "foreign_funding" in _codes(commands)
    assert _booked(state) == Decimal(1)


@settings(max_examples=60, deadline=None)
@given(
    amounts=st.lists(
        st.decimals(min_value=-50, max_value=50, places=4, allow_nan=False), min_size=1, max_size=8
    ),
    lost=st.lists(st.booleans(), min_size=8, max_size=8),
    reports=st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8)), max_size=4),
)
def test_any_losses_and_overlaps_end_with_every_payment_booked_once(
    amounts: list[Decimal], lost: list[bool], reports: list[tuple[int, int]]
) -> None:
    """The stream loses any payments; reports of any overlapping windows come in between; a
    last report covers everything: each payment is booked exactly once."""
    state, _ = _synced()
    payments = [_payment(n + 1, str(a)) for n, a in enumerate(amounts)]
    events: list[Event] = []
    for n, p in enumerate(payments):
        if not lost[n]:
            events.append(p)
        for lo, hi in reports:
            if hi == n:
                events.append(_report(payments[min(lo, n) : n + 1], ts=p.ts))
    events.append(_report(payments, ts=payments[-1].ts + 1))
    state, _ = feed(state, events)
    assert _booked(state) == sum(amounts, Decimal(0))
    assert state.venues[VENUE].funding.paid == len(payments)


# --- a venue without funding history -----------------------------------------------------------


def test_a_venue_refusing_the_request_is_not_asked_again_until_the_next_start() -> None:
    state, started = _synced()
    request = only(started, RequestFunding)
    state, commands = step(
        state,
        CommandFailed(
            ts=T0 + 1,
            command_id=request.command_id,
            reason="cannot carry out RequestFunding",
            not_applied=True,
        ),
    )
    assert "funding_history_unavailable" in _codes(commands)
    assert state.risk.error_streak == 0  # a capability, not an error
    assert state.can_trade(VENUE)
    state, _ = step(state, FeedDisconnected(ts=T0 + 2, venue=VENUE))
    state, commands = step(state, FeedReconnected(ts=T0 + 3, venue=VENUE))
    assert of_type(commands, RequestFunding) == []
    state, commands = step(state, Started(ts=T0 + 4))
    assert len(of_type(commands, RequestFunding)) == 1


def test_a_funding_request_with_an_unknown_outcome_is_asked_again_with_the_next_cause() -> None:
    state, started = _synced()
    request = only(started, RequestFunding)
    state, commands = step(state, CommandTimedOut(ts=T0 + 1, command_id=request.command_id))
    assert state.risk.error_streak == 1
    assert "funding_history_unavailable" not in _codes(commands)
    state, _ = step(state, FeedDisconnected(ts=T0 + 2, venue=VENUE))
    state, commands = step(state, FeedReconnected(ts=T0 + 3, venue=VENUE))
    assert len(of_type(commands, RequestFunding)) == 1


def test_a_funding_request_out_at_a_restart_is_asked_again() -> None:
    state, started = _synced()
    assert len(of_type(started, RequestFunding)) == 1  # never answered: the bot died
    state, commands = step(state, Started(ts=T0 + 10))
    request = only(commands, RequestFunding)
    assert request.command_id != only(started, RequestFunding).command_id
    assert set(state.inflight) >= {request.command_id}


def test_one_funding_request_out_per_venue() -> None:
    state, started = _synced()
    assert len(of_type(started, RequestFunding)) == 1
    state, _ = step(state, FeedDisconnected(ts=T0 + 2, venue=VENUE))
    state, commands = step(state, FeedReconnected(ts=T0 + 3, venue=VENUE))
    assert of_type(commands, RequestFunding) == []  # the first is still out


def test_the_request_and_its_answer_round_trip_through_the_journal_codec() -> None:
    request = RequestFunding(command_id=7, venue=VENUE, since=EPOCH, symbol=SYMBOL)
    assert decode_command(*encode_command(request)) == request
    report = _report([_payment(1, "-0.5"), _payment(2, "1")], ts=T0, cid=7)
    assert decode_event(*encode_event(report)) == report


def test_the_fake_venue_answers_from_its_funding_history() -> None:
    _, exchange = _long_on_venue()
    for n in range(1, 4):
        exchange.on_tick(quote(EPOCH + n * INTERVAL))
    assert len(exchange.funding_history) == 3
    since = exchange.funding_history[1].ts
    (answer,) = exchange.handle(RequestFunding(command_id=1, venue=VENUE, since=since), since)
    assert isinstance(answer, FundingReported)
    assert answer.payments == tuple(exchange.funding_history[1:])
    (none,) = exchange.handle(
        RequestFunding(command_id=2, venue=VENUE, since=0, symbol="OTHER"), since
    )
    assert isinstance(none, FundingReported) and none.payments == ()


# --- cadence -------------------------------------------------------------------------------------


@settings(max_examples=12, deadline=None)
@given(
    period_min=st.sampled_from([0, 1, 5, 30, 60]),
    hours=st.integers(min_value=1, max_value=3),
)
def test_periodic_rounds_ask_for_funding_once_a_funding_period(period_min: int, hours: int) -> None:
    # Venues pay funding at most hourly: a round a minute that asked for funding every time
    # would cost an event a minute and find nothing more (failure `idle-time-cost`). Starts and
    # reconnects always ask; a periodic round asks once `funding_reconcile_ms` has passed since
    # the last answered request was sent (never when it is 0).
    period = period_min * 60_000
    config = kernel_config(reconcile_ms=60_000, funding_reconcile_ms=period)
    exchange = SimExchange(SimConfig(venue=VENUE, instruments=(instrument(),)), start_ts=EPOCH)
    state = scripted_state(config)
    state, started = step(state, Started(ts=T0))
    assert len(of_type(started, RequestFunding)) == 1
    state, _ = step(state, quote(T0))
    state, _ = run_with_exchange(state, exchange, started, now=T0)
    asked: list[int] = []
    rounds = 0
    ts = T0
    end = T0 + hours * 3_600_000
    while ts < end:
        ts += 10_000
        tick = quote(ts)
        state, commands = deliver(state, exchange, [tick, *exchange.on_tick(tick)], now=ts)
        rounds += len(of_type(commands, RequestOpenOrders))
        asked.extend(ts for _ in of_type(commands, RequestFunding))
    assert rounds >= hours * 59  # the rounds ran, a minute apart
    if not period:
        assert asked == []
    else:
        # One ask a period: none sooner, none much later (a round a minute, a quote every 10 s).
        gaps = [b - a for a, b in zip([T0, *asked], [*asked, end], strict=True)]
        assert all(period <= gap < period + 70_000 for gap in gaps[:-1]), gaps
        assert gaps[-1] < period + 70_000, gaps
