"""Order-state properties through the kernel: arrival order never changes the outcome.

failure `stream-before-ack`: a stream update arrived before the REST ack that carried the order id, and the bot
lost track of the order. Here the core names the order (cloid) before the command leaves, so
the ack, stream updates and fills can come in any order, any number of times, and the order
ends in the same status with the same filled quantity, the ledger holds the same position and
the margin reservation is released exactly once.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gridcore import (
    CommandFailed,
    Event,
    FillsReported,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    OrderStatus,
    PlaceOrder,
    Side,
    State,
    step,
)
from gridcore.numbers import ZERO
from tests.property.helpers import split
from tests.unit.helpers import (
    EPOCH,
    SYMBOL,
    VENUE,
    Scripted,
    feed,
    fill,
    reservation_problems,
    scripted_state,
    submit,
    synced,
)

T0 = EPOCH + 2_000
LOT = Decimal("0.001")


def placed(qty: str = "0.010", side: Side = Side.BUY) -> tuple[State[Scripted], PlaceOrder]:
    state, _ = synced(scripted_state())
    state, _, place = submit(state, ts=T0, side=side, qty=qty, price="49000")
    assert place is not None
    return state, place


def ack(place: PlaceOrder, ts: int) -> OrderAccepted:
    return OrderAccepted(
        ts=ts, venue=VENUE, cloid=place.cloid, venue_order_id="v1", command_id=place.command_id
    )


@given(data=st.data(), first_lots=st.integers(min_value=1, max_value=9))
def test_any_order_of_ack_stream_update_and_fill_gives_the_same_state(
    data: st.DataObject, first_lots: int
) -> None:
    """The design rule "any ordering of ack, update and fill gives the same state" (failure `stream-before-ack`),
    with each message delivered one to three times."""
    state, place = placed("0.010")
    partial = fill(
        "f1",
        Side.BUY,
        Decimal(first_lots) * LOT,
        "49000",
        ts=T0 + 1,
        cloid=place.cloid,
        venue_order_id="v1",
        fee="0.01",
    )
    final = fill(
        "f2",
        Side.BUY,
        Decimal(10 - first_lots) * LOT,
        "49000",
        ts=T0 + 2,
        cloid=place.cloid,
        venue_order_id="v1",
        fee="0.02",
    )
    messages: list[Event] = [
        ack(place, T0 + 3),
        OrderPartiallyFilled(ts=T0 + 1, fill=partial),
        OrderFilled(ts=T0 + 2, fill=final),
    ]
    copies = [m for m in messages for _ in range(data.draw(st.integers(1, 3)))]
    delivered = data.draw(st.permutations(copies))
    end, _ = feed(state, delivered)
    order = end.orders[place.cloid]
    assert order.status is OrderStatus.FILLED
    assert order.filled_qty == Decimal("0.010")
    assert order.venue_order_id == "v1"
    assert order.reserved == ZERO
    position = end.ledger.position(VENUE, SYMBOL)
    assert position.qty == Decimal("0.010")
    assert position.fees == Decimal("0.03")
    assert position.avg_entry == Decimal(49000)
    assert end.risk.reserved[VENUE] == ZERO
    assert place.command_id not in end.inflight
    assert end.ledger.fill_count == 2
    assert reservation_problems(end) == []


@given(data=st.data(), total_lots=st.integers(min_value=1, max_value=40))
def test_any_order_of_partial_fills_and_ack_completes_exactly_at_zero_remaining(
    data: st.DataObject, total_lots: int
) -> None:
    """Failure `partial-fill-threshold`: the order is live while anything remains and FILLED when the exact sum of
    its fills reaches its size, whether the last piece is announced as partial or final and in
    whatever order the pieces and the ack come."""
    qty = Decimal(total_lots) * LOT
    state, place = placed(str(qty))
    parts = data.draw(split(total_lots))
    pieces = [
        fill(f"p{i}", Side.BUY, Decimal(n) * LOT, "49000", ts=T0 + 1 + i, cloid=place.cloid)
        for i, n in enumerate(parts)
    ]
    messages: list[Event] = [OrderPartiallyFilled(ts=p.ts, fill=p) for p in pieces]
    if data.draw(st.booleans()):
        messages[-1] = OrderFilled(ts=pieces[-1].ts, fill=pieces[-1])
    messages.append(ack(place, T0 + 100))
    delivered = data.draw(st.permutations(messages))
    filled = ZERO
    said_done = False
    for message in delivered:
        state, _ = step(state, message)
        if isinstance(message, OrderPartiallyFilled | OrderFilled):
            filled += message.fill.qty
        said_done = said_done or isinstance(message, OrderFilled)
        order = state.orders[place.cloid]
        assert order.filled_qty == filled
        if filled == qty or said_done:
            # Done when nothing remains, or when the venue says so (the missing fills are
            # then fetched and still applied as they come).
            assert order.status is OrderStatus.FILLED
            assert order.reserved == ZERO
        else:
            assert order.is_live
            assert order.remaining == qty - filled
        assert not any(o.is_live and o.remaining == 0 for o in state.orders.values())
    assert state.orders[place.cloid].status is OrderStatus.FILLED
    assert state.ledger.position(VENUE, SYMBOL).qty == qty


@given(data=st.data())
def test_every_terminal_path_releases_the_reservation_exactly(data: st.DataObject) -> None:
    """Failure `unreleased-funds` (funds gone after a failed trade): whatever ends the order — fill,
    cancel, reject, failed command — its margin returns, and the reserved total always equals
    what live orders hold."""
    state, _ = synced(scripted_state())
    places: list[PlaceOrder] = []
    for i in range(data.draw(st.integers(min_value=1, max_value=4))):
        state, _, place = submit(state, ts=T0 + i, qty="0.005", price=str(48000 + i))
        assert place is not None
        places.append(place)
    assert state.risk.reserved[VENUE] > 0
    ends: list[Any] = []
    for n, place in enumerate(places):
        how = data.draw(st.sampled_from(["fill", "cancel", "reject", "failed", "report"]))
        ts = T0 + 100 + n
        if how == "fill":
            ends.append(
                OrderFilled(
                    ts=ts,
                    fill=fill(f"f{n}", Side.BUY, "0.005", place.price, ts=ts, cloid=place.cloid),
                )
            )
        elif how == "cancel":
            ends.append(OrderCanceled(ts=ts, venue=VENUE, cloid=place.cloid))
        elif how == "reject":
            ends.append(
                OrderRejected(
                    ts=ts, venue=VENUE, cloid=place.cloid, reason="no", command_id=place.command_id
                )
            )
        elif how == "failed":
            ends.append(
                CommandFailed(ts=ts, command_id=place.command_id, reason="400", not_applied=True)
            )
        else:
            ends.append(
                FillsReported(
                    ts=ts,
                    venue=VENUE,
                    since=EPOCH,
                    fills=(
                        fill(f"r{n}", Side.BUY, "0.005", place.price, ts=ts, cloid=place.cloid),
                    ),
                )
            )
    for event in data.draw(st.permutations(ends)):
        state, _ = step(state, event)
        assert reservation_problems(state) == []
    assert all(not state.orders[p.cloid].is_live for p in places)
    assert state.risk.reserved[VENUE] == ZERO
