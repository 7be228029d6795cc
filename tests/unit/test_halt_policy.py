"""A halt reduces risk, it never adds it.

A halt cancels only the orders that could add exposure and refuses only those: reduce-only and
hedge-mode closes pass (so a rollback or a flatten is never blocked by the halt it follows), and
an order offsetting a held position (the second leg of a hedged entry) keeps working. A venue
that reconciles still takes closing orders. Each halt has a cause, and the kernel's table
(:data:`gridcore.halts.POLICIES`) says what a restart and an operator resume do with it.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore import (
    CancelOrder,
    CancelRejected,
    CommandFailed,
    CoreConfig,
    FeedDisconnected,
    FeedReconnected,
    Fill,
    FlattenRequested,
    HaltRequested,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderPartiallyFilled,
    OrderStatusReported,
    PlaceOrder,
    PositionSide,
    QuoteTicked,
    ReportedStatus,
    RequestFills,
    ResumeRequested,
    RiskConfig,
    Side,
    Started,
    State,
    Submit,
    TimeInForce,
    TimerFired,
    step,
)
from gridcore.core import MAINTENANCE_TIMER
from gridcore.events import BalanceReported, OpenOrder, OpenOrdersReported
from gridcore.halts import POLICIES, HaltCause, cause_of_reason
from gridcore.lifecycle import OrderStatus
from gridcore.risk import RiskState
from gridcore.shells import codec
from gridcore.sync import SyncPhase
from tests.unit.helpers import (
    EPOCH,
    SYMBOL,
    VENUE,
    Scripted,
    answer_sync,
    feed,
    fill,
    instrument,
    intend,
    kernel_config,
    of_type,
    quote,
    scripted_state,
    submit,
    synced,
)

D = Decimal
SYNC_TS = EPOCH + 1_000
T0 = EPOCH + 2_000
A, B = "venue-a", "venue-b"


def refusals(commands: list[Any]) -> list[str]:
    return [n.code for n in commands if getattr(n, "code", "").startswith("refused:")]


# --- a hedged entry across two venues -------------------------------------------------------------


def two_venues() -> State[Scripted]:
    """A scripted bot trading BTC-PERP (base BTC) on two venues, synced with 10,000 on each."""
    config = CoreConfig(
        instruments=(instrument(venue=A), instrument(venue=B)),
        risk=RiskConfig(max_position=None, max_order_notional=None, max_drawdown=None),
        reconcile_ms=0,
    )
    state, started = step(scripted_state(config), Started(ts=SYNC_TS))
    for venue in (A, B):
        state, _ = step(state, tick(venue, SYNC_TS))
    state, _ = feed(state, answer_sync(started, ts=SYNC_TS))
    assert state.can_trade(A) and state.can_trade(B)
    return state


def tick(venue: str, ts: int) -> QuoteTicked:
    return QuoteTicked(ts=ts, venue=venue, symbol=SYMBOL, bid=D("49999.9"), ask=D("50000.1"))


def order(venue: str, side: Side, qty: str, price: str, **extra: Any) -> Submit:
    return Submit(venue=venue, symbol=SYMBOL, side=side, qty=D(qty), price=D(price), **extra)


def place_one(
    state: State[Scripted], intent: Submit, ts: int
) -> tuple[State[Scripted], PlaceOrder | None, list[Any]]:
    state, commands = intend(state, [intent], ts=ts)
    places = of_type(commands, PlaceOrder)
    return state, (places[0] if places else None), commands


def between_legs() -> tuple[State[Scripted], PlaceOrder, PlaceOrder, PlaceOrder]:
    """Leg 1 (buy 0.01 on A) filled, leg 2 (sell 0.01 on B) resting, and a grid-style buy
    on B (new exposure) resting too."""
    state = two_venues()
    state, leg1, _ = place_one(state, order(A, Side.BUY, "0.01", "50010", tif=TimeInForce.IOC), T0)
    assert leg1 is not None
    state, _ = step(
        state,
        OrderFilled(
            ts=T0,
            fill=venue_fill(A, "f1", Side.BUY, "0.01", "50000.1", cloid=leg1.cloid, ts=T0),
        ),
    )
    assert state.ledger.position(A, SYMBOL).qty == D("0.01")
    state, leg2, _ = place_one(state, order(B, Side.SELL, "0.01", "50100"), T0 + 1)
    state, adding, _ = place_one(state, order(B, Side.BUY, "0.002", "48000"), T0 + 2)
    assert leg2 is not None and adding is not None
    for p in (leg2, adding):
        state, _ = step(
            state, OrderAccepted(ts=T0 + 3, venue=B, cloid=p.cloid, venue_order_id=p.cloid)
        )
    return state, leg1, leg2, adding


def venue_fill(venue: str, *args: Any, **kwargs: Any) -> Fill:
    """:func:`tests.unit.helpers.fill` on ``venue``."""
    return attrs.evolve(fill(*args, **kwargs), venue=venue)


def test_a_halt_between_the_legs_of_a_hedged_entry_keeps_the_hedge_and_accepts_the_rollback() -> (
    None
):
    state, _leg1, leg2, adding = between_legs()
    state, commands = step(state, HaltRequested(ts=T0 + 10, reason="manual check"))
    assert state.risk.halted and state.risk.halt_cause is HaltCause.OPERATOR
    # Only the order that adds exposure is canceled; the hedge leg keeps working.
    assert [c.cloid for c in of_type(commands, CancelOrder)] == [adding.cloid]
    assert state.orders[leg2.cloid].is_live
    # New exposure is refused while halted ...
    state, refused, commands = place_one(state, order(B, Side.BUY, "0.001", "48001"), T0 + 11)
    assert refused is None and refusals(commands) == ["refused:halted"]
    # ... but when the hedge leg fails, the rollback of leg 1 (reduce-only) passes the gate,
    # even while leg 1's venue is reconciling after a reconnect.
    state, _ = step(state, OrderCanceled(ts=T0 + 12, venue=B, cloid=leg2.cloid, reason="expired"))
    state, _ = step(state, FeedReconnected(ts=T0 + 12, venue=A))
    state, _ = step(state, attrs.evolve(quote(T0 + 12), venue=A))  # the stream's first quote
    assert state.venues[A].phase is SyncPhase.SYNCING
    rollback_intent = order(A, Side.SELL, "0.01", "49990", tif=TimeInForce.IOC, reduce_only=True)
    state, rollback, commands = place_one(state, rollback_intent, T0 + 13)
    assert rollback is not None, refusals(commands)
    assert (rollback.venue, rollback.side, rollback.qty, rollback.reduce_only) == (
        A,
        Side.SELL,
        D("0.01"),
        True,
    )
    assert state.orders[rollback.cloid].reserved == 0  # a close holds no margin


def test_a_halt_cancels_an_offsetting_order_only_up_to_the_position_it_offsets() -> None:
    """An order larger than the holding it points against would go through zero into new
    exposure: it is canceled like any other."""
    state = two_venues()
    state, _ = step(
        state,
        OrderPartiallyFilled(ts=T0, fill=venue_fill(A, "f1", Side.BUY, "0.01", "50000", ts=T0)),
    )
    state, big, _ = place_one(state, order(B, Side.SELL, "0.02", "50100"), T0 + 1)
    assert big is not None
    state, commands = step(state, HaltRequested(ts=T0 + 2))
    assert [c.cloid for c in of_type(commands, CancelOrder)] == [big.cloid]


def test_a_halt_keeps_reduce_only_and_hedge_mode_closing_orders() -> None:
    state, _ = synced(scripted_state(kernel_config(risk=RiskConfig(max_drawdown=None))))
    for f in (
        fill("l", Side.BUY, "0.005", "50000", ts=T0, position_side=PositionSide.LONG),
        fill("b", Side.BUY, "0.002", "50000", ts=T0),
    ):
        state, _ = step(state, OrderPartiallyFilled(ts=T0, fill=f))
    state, _, close_long = submit(
        state,
        ts=T0 + 1,
        side=Side.SELL,
        qty="0.005",
        price="50100",
        position_side=PositionSide.LONG,
    )
    state, _, reduce = submit(
        state, ts=T0 + 2, side=Side.SELL, qty="0.002", price="50200", reduce_only=True
    )
    state, _, opening = submit(
        state,
        ts=T0 + 3,
        side=Side.SELL,
        qty="0.003",
        price="50300",
        position_side=PositionSide.SHORT,
    )
    assert close_long is not None and reduce is not None and opening is not None
    state, commands = step(state, HaltRequested(ts=T0 + 4))
    assert [c.cloid for c in of_type(commands, CancelOrder)] == [opening.cloid]


def test_a_reconciling_venue_accepts_a_reduce_only_close_and_refuses_new_exposure() -> None:
    state, _ = synced(scripted_state())
    state, _ = step(
        state, OrderPartiallyFilled(ts=T0, fill=fill("m", Side.BUY, "0.004", "50000", ts=T0))
    )
    state, _ = step(state, FeedReconnected(ts=T0 + 1, venue=VENUE))
    assert state.venues[VENUE].phase is SyncPhase.SYNCING
    state, _ = step(state, quote(T0 + 1))
    state, commands, opening = submit(state, ts=T0 + 2, qty="0.001", price="49000")
    assert opening is None and refusals(commands) == ["refused:not_ready"]
    state, commands, close = submit(
        state, ts=T0 + 3, side=Side.SELL, qty="0.004", price="49990", reduce_only=True
    )
    assert close is not None, refusals(commands)
    # Disconnected, nothing goes out, not even a close.
    state, _ = step(state, FeedDisconnected(ts=T0 + 4, venue=VENUE, reason="socket closed"))
    state, commands, blocked = submit(
        state, ts=T0 + 5, side=Side.SELL, qty="0.001", price="49990", reduce_only=True
    )
    assert blocked is None and refusals(commands) == ["refused:not_ready"]


def test_a_close_while_halted_is_still_held_to_the_slippage_cap_and_order_notional() -> None:
    state, _ = synced(
        scripted_state(kernel_config(risk=RiskConfig(max_order_notional=D(300), max_drawdown=None)))
    )
    state, _ = step(
        state, OrderPartiallyFilled(ts=T0, fill=fill("m", Side.BUY, "0.01", "50000", ts=T0))
    )
    state, _ = step(state, HaltRequested(ts=T0 + 1))
    _, commands, far = submit(
        state, ts=T0 + 2, side=Side.SELL, qty="0.005", price="40000", reduce_only=True
    )
    assert far is None and refusals(commands) == ["refused:price_band"]
    _, commands, big = submit(
        state, ts=T0 + 3, side=Side.SELL, qty="0.01", price="49990", reduce_only=True
    )
    assert big is None and refusals(commands) == ["refused:max_order_notional"]


@settings(max_examples=40, deadline=None)
@given(
    held=st.tuples(st.integers(-20, 20), st.integers(-20, 20)),
    plan=st.lists(
        st.tuples(
            st.sampled_from([A, B]),
            st.sampled_from([Side.BUY, Side.SELL]),
            st.integers(1, 15),
            st.booleans(),
        ),
        max_size=8,
    ),
)
def test_after_a_halt_only_closing_or_offsetting_orders_are_left_and_never_beyond_the_holding(
    held: tuple[int, int], plan: list[tuple[str, Side, int, bool]]
) -> None:
    lot = D("0.001")
    state = two_venues()
    for venue, lots in zip((A, B), held, strict=True):
        if lots:
            side = Side.BUY if lots > 0 else Side.SELL
            f = venue_fill(venue, f"h-{venue}", side, str(abs(lots) * lot), "50000", ts=T0)
            state, _ = step(state, OrderPartiallyFilled(ts=T0, fill=f))
    placed: dict[str, Submit] = {}
    for n, (venue, side, lots, reduce_only) in enumerate(plan):
        price = "49000" if side is Side.BUY else "51000"
        intent = order(venue, side, str(lots * lot), price, reduce_only=reduce_only)
        state, place, _ = place_one(state, intent, T0 + 1 + n)
        if place is not None:
            placed[place.cloid] = intent
    state, commands = step(state, HaltRequested(ts=T0 + 100))
    canceled = {c.cloid for c in of_type(commands, CancelOrder)}
    holding = state.ledger.position(A, SYMBOL).qty + state.ledger.position(B, SYMBOL).qty
    offset = D(0)
    for cloid, intent in placed.items():
        if cloid in canceled:
            assert not intent.reduce_only  # a closing order is never canceled by a halt
        elif not intent.reduce_only:
            offset += intent.qty if intent.side is Side.BUY else -intent.qty
    # What is left adding nothing on its own key only brings the net holding towards zero.
    assert offset == 0 or (holding * offset < 0 and abs(offset) <= abs(holding))


# --- causes, restart and resume ------------------------------------------------------------------


def _bot(**risk: Any) -> State[Scripted]:
    limits: dict[str, Any] = {"max_position": None, "max_order_notional": None}
    limits.update(risk)
    state, _ = synced(scripted_state(kernel_config(risk=RiskConfig(**limits))))
    return state


def _operator() -> State[Scripted]:
    return step(_bot(), HaltRequested(ts=T0, reason="look at it"))[0]


def _exit_cancel() -> State[Scripted]:
    return step(_bot(), HaltRequested(ts=T0, reason="shutdown", cause=HaltCause.EXIT_CANCEL))[0]


def _flatten() -> State[Scripted]:
    return step(_bot(), FlattenRequested(ts=T0))[0]


def _drawdown() -> State[Scripted]:
    state = _bot(max_drawdown=D(50))
    state, _ = step(
        state, OrderPartiallyFilled(ts=T0, fill=fill("m", Side.BUY, "0.01", "50000", ts=T0))
    )
    # The mid falls 6,000 under the entry: 0.01 BTC lose 60, checked on the maintenance timer.
    state, _ = step(state, quote(T0 + 1, "43999.9", "44000.1"))
    return step(state, TimerFired(ts=T0 + 2, timer_id=MAINTENANCE_TIMER))[0]


def _error_streak() -> State[Scripted]:
    state = _bot(max_error_streak=2)
    for n in range(2):
        state, _, place = submit(state, ts=T0 + n, qty="0.001", price="48000")
        assert place is not None
        state, _ = step(
            state,
            CommandFailed(ts=T0 + n, command_id=place.command_id, reason="500", not_applied=True),
        )
    return state


def _poison() -> State[Scripted]:
    return step(
        _bot(), OrderPartiallyFilled(ts=T0, fill=fill("x", Side.BUY, "0.001", "5000000", ts=T0))
    )[0]


def _margin() -> State[Scripted]:
    state, _, place = submit(_bot(), ts=T0, qty="0.01", price="48000")
    assert place is not None
    return step(
        state,
        BalanceReported(ts=T0 + 1, venue=VENUE, asset="USD", equity=D(1), available=D(1)),
    )[0]


def _unreconciled() -> State[Scripted]:
    state = scripted_state(kernel_config(max_sync_attempts=0))
    state, started = step(state, Started(ts=SYNC_TS))
    request = of_type(started, RequestFills)[0]
    return step(state, CommandFailed(ts=SYNC_TS, command_id=request.command_id, reason="503"))[0]


HALTS: dict[HaltCause, Callable[[], State[Scripted]]] = {
    HaltCause.OPERATOR: _operator,
    HaltCause.EXIT_CANCEL: _exit_cancel,
    HaltCause.FLATTEN: _flatten,
    HaltCause.DRAWDOWN: _drawdown,
    HaltCause.ERROR_STREAK: _error_streak,
    HaltCause.POISON: _poison,
    HaltCause.UNRECONCILED: _unreconciled,
    HaltCause.MARGIN: _margin,
}


def test_every_cause_has_a_policy_and_a_way_to_happen() -> None:
    assert set(POLICIES) == set(HaltCause) == set(HALTS)


@pytest.mark.parametrize("cause", list(HaltCause), ids=lambda c: c.value)
def test_each_cause_is_recorded_and_decides_the_restart(cause: HaltCause) -> None:
    state = HALTS[cause]()
    assert state.risk.halted
    assert state.risk.halt_cause is cause
    assert state.risk.resumes_on_restart is (cause is HaltCause.EXIT_CANCEL)
    # The cause survives the journal's snapshot codec.
    back = codec.decode_value(codec.encode_value(state.risk))
    assert back == state.risk and back.halt_cause is cause


@pytest.mark.parametrize("cause", list(HaltCause), ids=lambda c: c.value)
def test_an_operator_resume_lifts_each_cause_and_rearms_only_a_drawdown(cause: HaltCause) -> None:
    state = HALTS[cause]()
    peak = state.risk.peak_pnl
    state, _ = step(state, ResumeRequested(ts=T0 + 20_000))
    assert not state.risk.halted and state.risk.halt_cause is None
    assert state.risk.error_streak == 0
    assert all(vs.phase is SyncPhase.SYNCING for vs in state.venues.values())
    if cause is HaltCause.DRAWDOWN:
        assert state.risk.peak_pnl == state.net_pnl() < peak
    else:
        assert state.risk.peak_pnl == peak


def test_a_stricter_halt_after_a_halt_for_exit_makes_the_restart_stay_halted() -> None:
    state = _exit_cancel()
    assert state.risk.resumes_on_restart
    state, _ = step(state, HaltRequested(ts=T0 + 1, reason="margin call", cause=HaltCause.MARGIN))
    assert state.risk.halt_cause is HaltCause.MARGIN
    assert not state.risk.resumes_on_restart
    # A later, laxer cause does not weaken it.
    state, _ = step(state, HaltRequested(ts=T0 + 2, reason="exit", cause=HaltCause.EXIT_CANCEL))
    assert state.risk.halt_cause is HaltCause.MARGIN


# --- journals written before causes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "cause"),
    [
        ("operator: cancel-on-exit at shutdown", HaltCause.EXIT_CANCEL),
        ("operator", HaltCause.OPERATOR),
        ("manual check", HaltCause.OPERATOR),
        ("flatten requested", HaltCause.FLATTEN),
        ("drawdown 60.00 USD reached max_drawdown 50.00 USD", HaltCause.DRAWDOWN),
        ("8 errors in a row (last: order rejected: x)", HaltCause.ERROR_STREAK),
        ("implausible fill f1 @ 5000000 (reference 50000)", HaltCause.POISON),
        ("sim could not be reconciled: fills request failed 4 times", HaltCause.UNRECONCILED),
        ("sim: positions differ from the ledger by X after 3 re-checks", HaltCause.UNRECONCILED),
        ("sim equity 1 is below the 48 reserved by open orders", HaltCause.MARGIN),
    ],
)
def test_an_old_snapshot_with_only_a_reason_loads_with_its_cause(
    reason: str, cause: HaltCause
) -> None:
    assert cause_of_reason(reason) is cause
    new = RiskState(halted=True, halt_reason=reason, halt_cause=cause)
    raw = msgspec.msgpack.decode(codec.encode_value(new))
    # The tagged form of an attrs instance is ["O", name, {field: value}]: drop the new field.
    assert raw[0] == "O" and "halt_cause" in raw[2]
    del raw[2]["halt_cause"]
    old = codec.decode_value(msgspec.msgpack.encode(raw))
    assert old.halt_cause is cause
    assert old.resumes_on_restart is (cause is HaltCause.EXIT_CANCEL)


def test_an_old_halt_request_event_without_a_cause_still_loads_and_halts_for_its_reason() -> None:
    new = HaltRequested(ts=T0, reason="operator: cancel-on-exit at shutdown")
    kind, payload = codec.encode_event(new)
    raw = msgspec.msgpack.decode(payload)
    raw.pop("cause", None)
    old = codec.decode_event(kind, msgspec.msgpack.encode(raw))
    assert old == new and old.cause is None
    state, _ = step(_bot(), old)
    assert state.risk.halt_cause is HaltCause.EXIT_CANCEL and state.risk.resumes_on_restart


def test_a_halt_request_with_a_cause_round_trips_through_the_journal_codec() -> None:
    event = HaltRequested(ts=T0, reason="shutdown", cause=HaltCause.EXIT_CANCEL)
    assert codec.decode_event(*codec.encode_event(event)) == event


def test_a_halt_to_cancel_at_exit_cancels_every_order_closes_included() -> None:
    """Nobody watches the orders after a shutdown: that halt alone cancels them all."""
    state = _bot()
    state, _ = step(
        state, OrderPartiallyFilled(ts=T0, fill=fill("m", Side.BUY, "0.004", "50000", ts=T0))
    )
    state, _, close = submit(
        state, ts=T0 + 1, side=Side.SELL, qty="0.004", price="50100", reduce_only=True
    )
    state, _, opening = submit(state, ts=T0 + 2, qty="0.001", price="48000")
    assert close is not None and opening is not None
    state, commands = step(
        state, HaltRequested(ts=T0 + 3, reason="shutdown", cause=HaltCause.EXIT_CANCEL)
    )
    assert {c.cloid for c in of_type(commands, CancelOrder)} == {close.cloid, opening.cloid}


def test_a_breaker_tripping_after_a_halt_for_exit_keeps_the_next_start_halted() -> None:
    """Halted to cancel orders at exit, then the error streak trips: a restart must not lift
    that."""
    state = _bot(max_error_streak=2)
    state, _, place = submit(state, ts=T0, qty="0.001", price="48000")
    assert place is not None
    state, _ = step(state, HaltRequested(ts=T0 + 1, reason="exit", cause=HaltCause.EXIT_CANCEL))
    for n in range(2):
        state, _ = step(state, CommandFailed(ts=T0 + 2 + n, command_id=10_000 + n, reason="500"))
    assert state.risk.halt_cause is HaltCause.ERROR_STREAK
    assert not state.risk.resumes_on_restart


# --- a halt outlives a cancel that raced its order ------------------------------------------------


@pytest.mark.parametrize(
    "halt",
    [
        HaltRequested(ts=T0 + 1, reason="manual check"),
        HaltRequested(ts=T0 + 1, reason="cancel-on-exit", cause=HaltCause.EXIT_CANCEL),
    ],
)
@pytest.mark.parametrize("learned_by", ["ack", "status", "open_orders"])
def test_an_order_found_resting_after_its_halt_cancel_was_refused_is_canceled_again(
    halt: HaltRequested, learned_by: str
) -> None:
    """The halt cancels an order whose placement is still on its way; the cancel reaches the
    venue first ("never placed") and is refused, then the order rests. When the core learns it
    rests (its late acknowledgement, a status answer, or the open-orders report of a
    reconciliation), the halt still holds: the order is canceled again, never left to add
    exposure while trading is halted."""
    state, _ = synced(scripted_state())
    state, _, place = submit(state, ts=T0, side=Side.BUY, qty="0.01", price="49000")
    assert place is not None
    state, commands = step(state, halt)
    assert [c.cloid for c in of_type(commands, CancelOrder)] == [place.cloid]
    state, commands = step(
        state,
        CancelRejected(
            ts=T0 + 2, venue=VENUE, cloid=place.cloid, reason="never placed, or already gone"
        ),
    )
    report: Any
    if learned_by == "ack":  # the acknowledgement after the refusal proves the order rests
        report = OrderAccepted(ts=T0 + 3, venue=VENUE, cloid=place.cloid, venue_order_id="v1")
    elif learned_by == "status":  # the ack was lost; the status answer tells
        report = OrderStatusReported(
            ts=T0 + 4,
            venue=VENUE,
            cloid=place.cloid,
            status=ReportedStatus.OPEN,
            venue_order_id="v1",
        )
    else:
        report = OpenOrdersReported(
            ts=T0 + 4,
            venue=VENUE,
            orders=(
                OpenOrder(
                    cloid=place.cloid,
                    venue_order_id="v1",
                    symbol=SYMBOL,
                    side=Side.BUY,
                    position_side=PositionSide.BOTH,
                    price=D("49000"),
                    qty=D("0.01"),
                    filled_qty=D(0),
                ),
            ),
        )
    state, commands = step(state, report)
    assert [c.cloid for c in of_type(commands, CancelOrder)] == [place.cloid]
    assert state.orders[place.cloid].status is OrderStatus.PENDING_CANCEL
