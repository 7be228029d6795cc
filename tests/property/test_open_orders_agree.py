"""An open-orders report that agrees with the core skips the generic move: the skip must be
taken only where the move would have changed nothing."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore.errors import ContractError
from gridcore.instruments import PositionSide, Side, TimeInForce
from gridcore.kernel import _orders, _sync
from gridcore.kernel._tx import Tx
from gridcore.lifecycle import Order, OrderStatus, Trigger
from tests.unit.helpers import EPOCH, scripted_state

_VENUE_IDS = st.sampled_from([None, "v1", "v2"])


@st.composite
def _orders_drawn(draw: st.DrawFn) -> Order:
    qty = Decimal("0.01")
    return Order(
        cloid="c1",
        venue="sim",
        symbol="BTC-PERP",
        side=draw(st.sampled_from(list(Side))),
        position_side=PositionSide.BOTH,
        qty=qty,
        price=Decimal("50000"),
        tif=TimeInForce.GTC,
        reduce_only=False,
        status=draw(st.sampled_from(list(OrderStatus))),
        created_ts=EPOCH,
        updated_ts=EPOCH,
        filled_qty=draw(st.sampled_from([Decimal(0), Decimal("0.004"), qty])),
        venue_order_id=draw(_VENUE_IDS),
        reserved=draw(st.sampled_from([Decimal(0), Decimal("5")])),
    )


@settings(max_examples=300, deadline=None)
@given(order=_orders_drawn(), listed_as=_VENUE_IDS)
def test_an_agreeing_report_is_one_the_move_leaves_alone(
    order: Order, listed_as: str | None
) -> None:
    tx = Tx(scripted_state(), EPOCH + 1000)
    tx.put_order(order)
    orders, commands, risk, inflight = tx.orders, list(tx.commands), tx.risk, tx.inflight
    try:
        agrees = _sync.report_agrees(order, listed_as)
    except ContractError:
        agrees = None  # the table refuses the trigger: the move must refuse it too
    try:
        after = _orders.move(tx, order, Trigger.REPORT_OPEN, venue_order_id=listed_as)
    except ContractError:
        assert agrees is None
        return
    assert agrees is not None
    unchanged = after is order and tx.orders == orders and not tx.changes
    untouched = tx.commands == commands and tx.risk is risk and tx.inflight == inflight
    assert agrees == (unchanged and untouched)
