"""The risk gate's exposure walk (run over the whole registry on every order placed) counts
exactly what its definition says: live orders of the key and side that add to it, and the
missing fills of orders the venue called filled."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore.exposure import closes_exposure, signed
from gridcore.instruments import Instrument, PositionSide, Side, TimeInForce
from gridcore.ledger import Ledger
from gridcore.lifecycle import Order, OrderStatus
from gridcore.numbers import CTX
from gridcore.risk import position_exposure

INSTRUMENT = Instrument(
    venue="sim", symbol="BTC-PERP", tick_size=Decimal("0.1"), lot_size=Decimal("0.001")
)


@st.composite
def orders(draw: st.DrawFn) -> Order:
    qty = draw(st.integers(min_value=1, max_value=50)) * INSTRUMENT.lot_size
    filled = draw(st.integers(min_value=0, max_value=60)) * INSTRUMENT.lot_size
    return Order(
        cloid=f"g:{draw(st.integers(0, 10**6))}",
        venue=draw(st.sampled_from(["sim", "sim", "sim", "other"])),
        symbol=draw(st.sampled_from(["BTC-PERP", "BTC-PERP", "BTC-PERP", "ETH-PERP"])),
        side=draw(st.sampled_from(Side)),
        position_side=draw(st.sampled_from(PositionSide)),
        qty=qty,
        price=Decimal("50000.1"),
        tif=TimeInForce.GTC,
        reduce_only=draw(st.sampled_from([False, False, False, True])),
        status=draw(st.sampled_from(OrderStatus)),
        created_ts=1,
        updated_ts=1,
        filled_qty=filled,
    )


def _reference(
    registry: list[Order], position_side: PositionSide, side: Side, start: Decimal
) -> Decimal:
    total = start
    if closes_exposure(side, position_side, False):
        return total
    for o in registry:
        counted = o.is_live or (o.status is OrderStatus.FILLED and o.filled_qty < o.qty)
        if (
            counted
            and o.side is side
            and o.position_side is position_side
            and o.symbol == INSTRUMENT.symbol
            and o.venue == INSTRUMENT.venue
            and not o.reduce_only
        ):
            total = CTX.add(total, signed(side, o.remaining))
    return total


@settings(max_examples=300)
@given(
    registry=st.lists(orders(), min_size=5, max_size=30),
    position_side=st.sampled_from(PositionSide),
    side=st.sampled_from(Side),
)
def test_exposure_walk_counts_what_its_definition_says(
    registry: list[Order], position_side: PositionSide, side: Side
) -> None:
    ledger = Ledger()
    start = ledger.position(INSTRUMENT.venue, INSTRUMENT.symbol, position_side).qty
    got = position_exposure(registry, ledger, INSTRUMENT, position_side, side)
    assert got == _reference(registry, position_side, side, start)
