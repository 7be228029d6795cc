"""The hedge grid under venue faults in fast markets, step by step.

Each test is the minimal form of a run the harness found when it drew every fault kind in
markets that move past the reprice threshold (``DRIFTING`` in
``tests/harness/test_hedge_grid.py``): a take-profit enlarged while its old size filled
(failure `modify-answer-overtaken`, whichever way the fill reached the core), and an entry whose
fill was lost and whose repricing the venue refused because it had filled.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from gridcore import (
    CancelOrder,
    Command,
    FillsReported,
    ModifyOrder,
    ModifyRejected,
    OpenOrder,
    OpenOrdersReported,
    OrderModified,
    OrderStatus,
    OrderStatusReported,
    PlaceOrder,
    ReportedStatus,
    RequestFills,
    RequestOrderStatus,
    State,
    step,
)
from gridcore.strategies import hedge_grid as hg

from .helpers import VENUE, fill, of_type, only, quote
from .test_hedge_grid import (
    LONG,
    T0,
    accept,
    filled,
    placed,
    places,
    position,
    started,
    strategy,
    with_long,
)


def _enlarged() -> tuple[State[Any], PlaceOrder, ModifyOrder]:
    """The LONG side holds 0.002 with its take-profit resting; level 1 fills (0.002 more) and
    the take-profit is enlarged to 0.004 with one modify, still unanswered."""
    state, orders = with_long()
    state, commands = step(state, filled(orders["long1"], "0.002", "49749.9", T0 + 40))
    modify = only(commands, ModifyOrder)
    assert (modify.cloid, modify.qty) == (orders["tp"].cloid, Decimal("0.004"))
    assert position(state, LONG) == Decimal("0.004")
    return state, orders["tp"], modify


def _answered(state: State[Any], modify: ModifyOrder, ts: int) -> tuple[State[Any], list[Command]]:
    return step(
        state,
        OrderModified(
            ts=ts,
            venue=VENUE,
            cloid=modify.cloid,
            price=modify.price if modify.price is not None else Decimal(0),
            qty=modify.qty if modify.qty is not None else Decimal(0),
            command_id=modify.command_id,
        ),
    )


def test_a_take_profit_filled_to_its_old_size_while_the_venue_says_it_rests_stays_live() -> None:
    """The venue applied the increase and filled the old size of the take-profit; its stream
    (a partial fill: something still rests) overtook the modify's answer. The take-profit is
    the enlarged one, half filled and still live: the cycle goes on, no second take-profit is
    placed, and none closes more than the side holds."""
    state, tp, modify = _enlarged()
    cycle = strategy(state).cycle
    state, commands = step(state, filled(tp, "0.002", str(modify.price), T0 + 50, complete=False))
    order = state.orders[tp.cloid]
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert (order.qty, order.remaining, order.modify_to) == (
        Decimal("0.004"),
        Decimal("0.002"),
        None,
    )
    assert position(state, LONG) == Decimal("0.002")
    assert strategy(state).cycle == cycle
    assert not [p for p in places(commands) if p.reduce_only]
    assert hg.hedge_grid_take_profit_within_position(state) == []
    state, _ = _answered(state, modify, T0 + 60)  # the late answer changes nothing
    assert state.orders[tp.cloid].status is OrderStatus.PARTIALLY_FILLED
    state, _ = step(state, filled(tp, "0.002", str(modify.price), T0 + 70, fid="rest"))
    assert state.orders[tp.cloid].status is OrderStatus.FILLED
    assert position(state, LONG) == 0
    assert strategy(state).cycle == cycle + 1


def _filled_by_a_report(state: State[Any], tp: PlaceOrder, price: Decimal) -> State[Any]:
    """The take-profit's stream fill was lost; a fills report brings its old size."""
    f = fill(
        "tp-old-size",
        tp.side,
        "0.002",
        price,
        ts=T0 + 50,
        cloid=tp.cloid,
        position_side=tp.position_side,
    )
    state, _ = step(state, FillsReported(ts=T0 + 55, venue=VENUE, since=T0, fills=(f,)))
    # A report says nothing of what rests: the order is done at its known size (filled is final).
    assert state.orders[tp.cloid].status is OrderStatus.FILLED
    return state


def test_an_increase_answered_after_the_old_size_filled_cancels_the_rest_at_the_venue() -> None:
    """The modify's answer says the take-profit is 0.004 at the venue while the core booked
    0.002 of it filled and done: the 0.002 still resting there is canceled at once, never left
    to close a position the side may no longer hold."""
    state, tp, modify = _enlarged()
    assert modify.price is not None
    state = _filled_by_a_report(state, tp, modify.price)
    state, commands = _answered(state, modify, T0 + 60)
    assert [c.cloid for c in of_type(commands, CancelOrder)] == [tp.cloid]
    assert state.orders[tp.cloid].status is OrderStatus.FILLED


def test_an_open_orders_report_listing_an_order_held_filled_cancels_it_at_the_venue() -> None:
    """The modify's answer was lost; the next open-orders report lists the take-profit resting
    with 0.002 of 0.004 filled while the core holds it filled: reconciliation cancels what rests
    (the venue is the truth about what rests; filled stays final)."""
    state, tp, modify = _enlarged()
    assert modify.price is not None
    state = _filled_by_a_report(state, tp, modify.price)
    listed = OpenOrder(
        cloid=tp.cloid,
        venue_order_id=f"v-{tp.cloid}",
        symbol=tp.symbol,
        side=tp.side,
        position_side=tp.position_side,
        price=modify.price,
        qty=Decimal("0.004"),
        filled_qty=Decimal("0.002"),
    )
    state, commands = step(state, OpenOrdersReported(ts=T0 + 70, venue=VENUE, orders=(listed,)))
    assert [c.cloid for c in of_type(commands, CancelOrder)] == [tp.cloid]
    assert state.orders[tp.cloid].status is OrderStatus.FILLED
    # A report taken before the order ended is stale, not news: nothing is sent.
    old = OpenOrdersReported(ts=T0 + 50, venue=VENUE, orders=(listed,))
    assert not of_type(step(state, old)[1], CancelOrder)


def test_a_repricing_refused_because_the_entry_filled_asks_for_its_status() -> None:
    """The entry's fill was lost; the market moved past the threshold and the venue refused
    the repricing: the order has filled. The core asks for the entry's status instead of
    believing it rests, and the answer ends it (and fetches the missing fill)."""
    state, commands = started()
    long0 = placed(commands, LONG, reduce_only=False)
    state, _ = accept(state, long0, T0 + 5)
    state, commands = step(state, quote(T0 + 10, "52999.9", "53000.1"))  # +6 %
    reprice = [m for m in of_type(commands, ModifyOrder) if m.cloid == long0.cloid]
    assert len(reprice) == 1
    state, commands = step(
        state,
        ModifyRejected(
            ts=T0 + 20,
            venue=VENUE,
            cloid=long0.cloid,
            reason="order is filled",
            command_id=reprice[0].command_id,
        ),
    )
    asked = only(commands, RequestOrderStatus)
    assert asked.cloid == long0.cloid
    state, commands = step(
        state,
        OrderStatusReported(
            ts=T0 + 30,
            venue=VENUE,
            cloid=long0.cloid,
            status=ReportedStatus.FILLED,
            filled_qty=long0.qty,
            command_id=asked.command_id,
        ),
    )
    assert not state.orders[long0.cloid].is_live
    assert of_type(commands, RequestFills)
