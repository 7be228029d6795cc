"""The order lifecycle table (``gridcore.lifecycle.TRANSITIONS``) and how the kernel uses it.

A venue may say anything at any time, so every venue trigger has an entry in every status: a
fact must never crash the loop. A core trigger the table does not allow is a bug in the caller
and raises :class:`~gridcore.ContractError` with a message that says what to do. A timeout
never proves a rejection; a fill after a cancel still happened.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from gridcore import (
    Cancel,
    CancelOrder,
    CancelRejected,
    CommandFailed,
    CommandTimedOut,
    ContractError,
    Event,
    Notify,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    OrderStatus,
    OrderStatusReported,
    PositionSide,
    ReportedStatus,
    RequestFills,
    RequestOrderStatus,
    Side,
    Source,
    Started,
    TimeInForce,
    step,
)
from gridcore.lifecycle import (
    CORE_TRIGGERS,
    TERMINAL,
    TRANSITIONS,
    Effect,
    Order,
    Trigger,
    transition,
)
from gridcore.numbers import ZERO
from tests.unit.helpers import (
    EPOCH,
    VENUE,
    fill,
    intend,
    of_type,
    only,
    scripted_state,
    submit,
    synced,
)

VENUE_TRIGGERS = sorted(set(Trigger) - CORE_TRIGGERS, key=lambda t: t.name)
T0 = EPOCH + 2_000


def order_in(status: OrderStatus, *, filled: str = "0") -> Order:
    return Order(
        cloid="c1",
        venue=VENUE,
        symbol="BTC-PERP",
        side=Side.BUY,
        position_side=PositionSide.BOTH,
        qty=Decimal("0.01"),
        price=Decimal("49000"),
        tif=TimeInForce.GTC,
        reduce_only=False,
        status=status,
        created_ts=0,
        updated_ts=0,
        filled_qty=Decimal(filled),
    )


# --- the table as data ------------------------------------------------------------------------


def test_every_status_has_a_row() -> None:
    assert set(TRANSITIONS) == set(OrderStatus)


@pytest.mark.parametrize("status", list(OrderStatus), ids=lambda s: s.name)
def test_every_venue_trigger_is_defined_in_every_status(status: OrderStatus) -> None:
    """A venue message in a surprising status is a fact to record, never a crash of the loop."""
    missing = [t.name for t in VENUE_TRIGGERS if t not in TRANSITIONS[status]]
    assert missing == []
    for trigger in VENUE_TRIGGERS:
        target, effect = transition(order_in(status), trigger)
        assert isinstance(target, OrderStatus)
        assert isinstance(effect, Effect)


UNDEFINED_CORE = [
    (status, trigger)
    for status in OrderStatus
    for trigger in sorted(CORE_TRIGGERS, key=lambda t: t.name)
    if trigger not in TRANSITIONS[status]
]


def test_some_core_triggers_are_contract_errors() -> None:
    """Guards the next test against passing vacuously."""
    assert (OrderStatus.FILLED, Trigger.CANCEL_SENT) in UNDEFINED_CORE
    # Command results are facts and defined everywhere; only the kernel's own cancel of a
    # finished order, and its modify of an order that does not rest, are broken contracts.
    assert {trigger for _, trigger in UNDEFINED_CORE} == {Trigger.CANCEL_SENT, Trigger.MODIFY_SENT}


@pytest.mark.parametrize(
    ("status", "trigger"), UNDEFINED_CORE, ids=lambda x: getattr(x, "name", str(x))
)
def test_core_trigger_not_in_table_raises_a_helpful_contract_error(
    status: OrderStatus, trigger: Trigger
) -> None:
    """House style: a broken contract raises, and the message says what, where and what to
    do instead."""
    with pytest.raises(ContractError) as raised:
        transition(order_in(status), trigger)
    message = str(raised.value)
    assert "c1" in message
    assert trigger.name in message
    assert status.name in message
    assert "allowed core triggers" in message
    allowed = [t.name for t in TRANSITIONS[status] if t in CORE_TRIGGERS]
    for name in allowed:
        assert name in message


@pytest.mark.parametrize("status", list(OrderStatus), ids=lambda s: s.name)
def test_a_timeout_never_makes_an_order_rejected(status: OrderStatus) -> None:
    """The design rule: a timeout never proves rejection; only the venue's answer may reject."""
    row = TRANSITIONS[status]
    if Trigger.PLACE_UNCERTAIN in row and status is not OrderStatus.REJECTED:
        assert row[Trigger.PLACE_UNCERTAIN][0] is not OrderStatus.REJECTED


def test_place_timeout_of_a_new_order_is_in_doubt_and_asks_for_status() -> None:
    target, effect = transition(order_in(OrderStatus.PENDING_NEW), Trigger.PLACE_UNCERTAIN)
    assert target is OrderStatus.IN_DOUBT
    assert effect is not Effect.NONE


def test_filled_is_final_whatever_the_venue_says_next() -> None:
    """A late ack, cancel or report never resurrects a filled order (its fills happened)."""
    for trigger in VENUE_TRIGGERS:
        assert TRANSITIONS[OrderStatus.FILLED][trigger][0] is OrderStatus.FILLED


def test_a_fill_after_a_cancel_is_never_dropped_by_the_table() -> None:
    assert TRANSITIONS[OrderStatus.CANCELED][Trigger.FILL_COMPLETE][0] is OrderStatus.FILLED
    assert TRANSITIONS[OrderStatus.CANCELED][Trigger.FILL_PARTIAL][0] in TERMINAL


def test_open_target_with_fills_becomes_partially_filled() -> None:
    target, _ = transition(order_in(OrderStatus.PENDING_NEW, filled="0.004"), Trigger.ACCEPTED)
    assert target is OrderStatus.PARTIALLY_FILLED
    target, _ = transition(order_in(OrderStatus.PENDING_NEW), Trigger.ACCEPTED)
    assert target is OrderStatus.OPEN


# --- the kernel applying the table ------------------------------------------------------------


def test_place_timeout_makes_the_order_in_doubt_and_requests_its_status() -> None:
    """A ``CommandTimedOut`` for a PlaceOrder: the order may rest at the venue, so it is kept
    (IN_DOUBT, margin still reserved) and its status is asked for, never assumed rejected."""
    state, _ = synced(scripted_state())
    state, _, place = submit(state, ts=T0)
    assert place is not None
    reserved = state.risk.reserved[VENUE]
    state, commands = step(state, CommandTimedOut(ts=T0 + 5_000, command_id=place.command_id))
    order = state.orders[place.cloid]
    assert order.status is OrderStatus.IN_DOUBT
    assert state.risk.reserved[VENUE] == reserved
    request = only(commands, RequestOrderStatus)
    assert request.cloid == place.cloid
    assert order.status_requested
    # The venue's answer decides.
    state, _ = step(
        state,
        OrderStatusReported(
            ts=T0 + 6_000,
            venue=VENUE,
            cloid=place.cloid,
            status=ReportedStatus.OPEN,
            venue_order_id="7",
            command_id=request.command_id,
        ),
    )
    assert state.orders[place.cloid].status is OrderStatus.OPEN
    assert state.orders[place.cloid].venue_order_id == "7"


def test_a_partial_fill_leaves_an_order_in_doubt_until_its_status_answers() -> None:
    """Failure `fill-revives-missing-order`: a partial fill proves the order reached the venue,
    not that its rest still rests there. The order stays in doubt (margin reserved, the fill
    booked) and the status already asked for decides; the fill asks for nothing more."""
    state, _ = synced(scripted_state())
    state, _, place = submit(state, ts=T0, qty="0.01", price="49000")
    assert place is not None
    state, commands = step(state, CommandTimedOut(ts=T0 + 5_000, command_id=place.command_id))
    request = only(commands, RequestOrderStatus)
    early = fill("f1", Side.BUY, "0.004", "49000", ts=T0 + 1, cloid=place.cloid)
    state, commands = step(state, OrderPartiallyFilled(ts=T0 + 5_001, fill=early))
    order = state.orders[place.cloid]
    assert order.status is OrderStatus.IN_DOUBT
    assert order.is_live and order.status_requested
    assert order.filled_qty == Decimal("0.004")
    assert state.ledger.position(VENUE, "BTC-PERP").qty == Decimal("0.004")
    assert of_type(commands, RequestOrderStatus) == []
    state, _ = step(
        state,
        OrderStatusReported(
            ts=T0 + 6_000,
            venue=VENUE,
            cloid=place.cloid,
            status=ReportedStatus.CANCELED,
            venue_order_id="7",
            filled_qty=Decimal("0.004"),
            command_id=request.command_id,
        ),
    )
    assert state.orders[place.cloid].status is OrderStatus.CANCELED
    assert state.risk.reserved[VENUE] == ZERO


def test_failed_place_with_unknown_outcome_is_in_doubt_too() -> None:
    """``CommandFailed`` without ``not_applied`` is a timeout in disguise."""
    state, _ = synced(scripted_state())
    state, _, place = submit(state, ts=T0)
    assert place is not None
    state, commands = step(
        state, CommandFailed(ts=T0 + 10, command_id=place.command_id, reason="502")
    )
    assert state.orders[place.cloid].status is OrderStatus.IN_DOUBT
    assert only(commands, RequestOrderStatus).cloid == place.cloid


def test_in_doubt_order_the_venue_never_saw_is_rejected_and_releases_its_margin() -> None:
    state, _ = synced(scripted_state())
    state, _, place = submit(state, ts=T0)
    assert place is not None
    state, commands = step(state, CommandTimedOut(ts=T0 + 5_000, command_id=place.command_id))
    request = only(commands, RequestOrderStatus)
    state, _ = step(
        state,
        OrderStatusReported(
            ts=T0 + 6_000,
            venue=VENUE,
            cloid=place.cloid,
            status=ReportedStatus.NOT_FOUND,
            command_id=request.command_id,
        ),
    )
    assert state.orders[place.cloid].status is OrderStatus.REJECTED
    assert state.risk.reserved[VENUE] == ZERO


def test_place_certainly_not_applied_is_rejected_at_once() -> None:
    state, _ = synced(scripted_state())
    state, _, place = submit(state, ts=T0)
    assert place is not None
    state, commands = step(
        state,
        CommandFailed(ts=T0 + 10, command_id=place.command_id, reason="400", not_applied=True),
    )
    assert state.orders[place.cloid].status is OrderStatus.REJECTED
    assert of_type(commands, RequestOrderStatus) == []
    assert state.risk.reserved[VENUE] == ZERO


def test_a_fill_after_a_cancel_is_applied_to_the_ledger() -> None:
    """The cancel ack and a fill cross on the wire: the fill happened, the position has it."""
    state, _ = synced(scripted_state())
    state, _, place = submit(state, ts=T0, qty="0.01", price="49000")
    assert place is not None
    state, _ = step(
        state,
        OrderAccepted(
            ts=T0 + 1,
            venue=VENUE,
            cloid=place.cloid,
            venue_order_id="1",
            command_id=place.command_id,
        ),
    )
    state, commands = intend(state, [Cancel(cloid=place.cloid)], ts=T0 + 2)
    cancel = only(commands, CancelOrder)
    state, _ = step(
        state,
        OrderCanceled(
            ts=T0 + 3,
            venue=VENUE,
            cloid=place.cloid,
            venue_order_id="1",
            command_id=cancel.command_id,
        ),
    )
    assert state.orders[place.cloid].status is OrderStatus.CANCELED
    late = fill("f1", Side.BUY, "0.004", "49000", ts=T0 + 1, cloid=place.cloid, venue_order_id="1")
    state, _ = step(state, OrderPartiallyFilled(ts=T0 + 4, fill=late))
    assert state.ledger.position(VENUE, "BTC-PERP").qty == Decimal("0.004")
    assert state.orders[place.cloid].filled_qty == Decimal("0.004")
    assert state.orders[place.cloid].status is OrderStatus.CANCELED
    last = fill("f2", Side.BUY, "0.006", "49000", ts=T0 + 2, cloid=place.cloid, venue_order_id="1")
    state, _ = step(state, OrderFilled(ts=T0 + 5, fill=last))
    assert state.ledger.position(VENUE, "BTC-PERP").qty == Decimal("0.010")
    assert state.orders[place.cloid].status is OrderStatus.FILLED


def test_venue_fill_for_a_rejected_order_is_applied_and_the_order_tracked_again() -> None:
    """The venue is the truth: an order believed rejected that fills is tracked again."""
    state, _ = synced(scripted_state())
    state, _, place = submit(state, ts=T0)
    assert place is not None
    state, _ = step(
        state,
        OrderRejected(
            ts=T0 + 1, venue=VENUE, cloid=place.cloid, reason="busy", command_id=place.command_id
        ),
    )
    assert state.orders[place.cloid].status is OrderStatus.REJECTED
    state, commands = step(
        state,
        OrderFilled(
            ts=T0 + 2, fill=fill("f1", Side.BUY, "0.01", "49000", ts=T0 + 2, cloid=place.cloid)
        ),
    )
    assert state.orders[place.cloid].status is OrderStatus.FILLED
    assert state.ledger.position(VENUE, "BTC-PERP").qty == Decimal("0.01")
    assert any(c.code == "order_anomaly" for c in of_type(commands, Notify))


def test_venue_says_filled_with_fills_missing_requests_the_fills() -> None:
    """Failure `missed-fills-on-reconnect`: the venue's "filled" wins, and the fills we lack are fetched."""
    state, _ = synced(scripted_state())
    state, _, place = submit(state, ts=T0, qty="0.01")
    assert place is not None
    state, commands = step(
        state,
        OrderFilled(
            ts=T0 + 2, fill=fill("f2", Side.BUY, "0.006", "49000", ts=T0 + 2, cloid=place.cloid)
        ),
    )
    assert state.orders[place.cloid].status is OrderStatus.FILLED
    assert state.orders[place.cloid].filled_qty == Decimal("0.006")
    assert len(of_type(commands, RequestFills)) == 1


@pytest.mark.parametrize("outcome", ["timeout", "failed", "restart"])
def test_a_cancel_with_unknown_outcome_for_an_order_found_resting_again_never_crashes(
    outcome: str,
) -> None:
    """A venue may say anything at any time: here the cancel's rejection came on the stream
    (no command id), the status answer put the order back to OPEN, and only then did the
    cancel command itself time out (or fail, or the bot restart with it in flight). The kernel
    must not ask the table for CANCEL_UNCERTAIN in OPEN (a ContractError that stops the bot);
    the order stays tracked as live."""
    state, _ = synced(scripted_state())
    state, _, place = submit(state, ts=T0)
    assert place is not None
    state, _ = step(
        state,
        OrderAccepted(
            ts=T0 + 1,
            venue=VENUE,
            cloid=place.cloid,
            venue_order_id="1",
            command_id=place.command_id,
        ),
    )
    state, commands = intend(state, [Cancel(cloid=place.cloid)], ts=T0 + 2)
    cancel = only(commands, CancelOrder)
    state, commands = step(
        state,
        CancelRejected(
            ts=T0 + 3, venue=VENUE, cloid=place.cloid, reason="busy", source=Source.STREAM
        ),
    )
    request = only(commands, RequestOrderStatus)
    state, _ = step(
        state,
        OrderStatusReported(
            ts=T0 + 4,
            venue=VENUE,
            cloid=place.cloid,
            status=ReportedStatus.OPEN,
            command_id=request.command_id,
        ),
    )
    assert state.orders[place.cloid].status is OrderStatus.OPEN
    assert cancel.command_id in state.inflight
    event: Event
    if outcome == "timeout":
        event = CommandTimedOut(ts=T0 + 5_000, command_id=cancel.command_id)
    elif outcome == "failed":
        event = CommandFailed(ts=T0 + 5_000, command_id=cancel.command_id, reason="502")
    else:
        event = Started(ts=T0 + 5_000)
    state, _ = step(state, event)
    assert state.orders[place.cloid].is_live
    assert cancel.command_id not in state.inflight
