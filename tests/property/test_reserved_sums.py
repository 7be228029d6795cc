"""The invariant scan's per-venue sums of the live orders' reservations
(``_reserved_by_venue``) are those of a plain walk in registry order: one venue's sum is folded
in C, and these properties hold it to the walk on drawn reservations of any sign, size and
exponent (some too long to add without rounding, where the order of the additions changes the
result), on one venue and on several."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore.instruments import PositionSide, Side, TimeInForce
from gridcore.invariants import _reserved_by_venue
from gridcore.lifecycle import Order, OrderStatus
from gridcore.numbers import CTX, ZERO
from tests.property.helpers import reserved_amounts

_RESERVED = reserved_amounts(max_exponent=45)


def _order(n: int, venue: str, reserved: Decimal) -> Order:
    return Order(
        cloid=f"c{n}",
        venue=venue,
        symbol="BTC-PERP",
        side=Side.BUY,
        position_side=PositionSide.BOTH,
        qty=Decimal(1),
        price=Decimal(100),
        tif=TimeInForce.GTC,
        reduce_only=False,
        status=OrderStatus.OPEN,
        created_ts=0,
        updated_ts=0,
        reserved=reserved,
    )


def _walk(live: dict[str, Order]) -> dict[str, Decimal]:
    """The reference: each venue's reservations added one by one, in registry order."""
    sums: dict[str, Decimal] = {}
    for order in live.values():
        sums[order.venue] = CTX.add(sums.get(order.venue, ZERO), order.reserved)
    return sums


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["sim", "sim", "other", "third"]), _RESERVED), max_size=30
    ),
    one_venue=st.booleans(),
)
def test_sums_are_those_of_a_walk_in_registry_order(
    rows: list[tuple[str, Decimal]], one_venue: bool
) -> None:
    live = {
        f"c{n}": _order(n, "sim" if one_venue else venue, reserved)
        for n, (venue, reserved) in enumerate(rows)
    }
    got = _reserved_by_venue(live)
    want = _walk(live)
    assert list(got.items()) == list(want.items())
    assert [str(v) for v in got.values()] == [str(v) for v in want.values()]


def test_the_order_of_the_additions_is_kept_on_one_venue() -> None:
    """1.5, -1E+39, 1E+39 and 0.25 added in this order give 1.75 (every partial sum fits the
    context); added the other way round 0.25 + 1E+39 rounds the 0.25 away and the sum is 1.5:
    only registry order is right."""
    values = [Decimal("1.5"), Decimal("-1E+39"), Decimal("1E+39"), Decimal("0.25")]
    live = {f"c{n}": _order(n, "sim", r) for n, r in enumerate(values)}
    assert _walk(live) == {"sim": Decimal("1.75")}
    assert _reserved_by_venue(live) == _walk(live)
