"""The grid's rebuild after a fill, in its fast forms, agrees with the plain definitions: the
walk over its levels (a list built in one loop, and kept for the lattice walked last) and its
reshaped copy (built without ``attrs.evolve``)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore import NeutralGrid, Side
from gridcore.grid import GridConfig
from gridcore.numbers import CTX, ZERO
from gridcore.strategies.grid import Lattice
from tests.unit.helpers import SYMBOL, VENUE

ONE = Decimal(1)


def _walk_reference(
    lattice: Lattice, pivot: int, position: Decimal, max_inventory: Decimal | None
) -> Iterator[tuple[int, Side, Decimal, Decimal]]:
    """The walk as documented: buys below the pivot nearest first until a non-positive price
    or the inventory limit, then sells above it likewise; levels of size zero are skipped."""
    n = lattice.levels
    cum = ZERO
    for i in range(pivot - 1, -n - 1, -1):
        price, qty = lattice.buy_prices[i + n], lattice.sizes[i + n]
        if price <= 0:
            break
        if qty <= 0:
            continue
        cum = CTX.add(cum, qty)
        if max_inventory is not None and CTX.add(position, cum) > max_inventory:
            break
        yield i, Side.BUY, price, qty
    cum = ZERO
    for i in range(pivot + 1, n + 1):
        price, qty = lattice.sell_prices[i + n], lattice.sizes[i + n]
        if qty <= 0:
            continue
        cum = CTX.add(cum, qty)
        if max_inventory is not None and CTX.subtract(position, cum) < -max_inventory:
            break
        yield i, Side.SELL, price, qty


@st.composite
def lattices(draw: st.DrawFn) -> Lattice:
    n = draw(st.integers(min_value=1, max_value=8))
    step = draw(st.integers(min_value=1, max_value=50))
    center = draw(st.integers(min_value=-5, max_value=10 * step * n))
    buys = tuple(Decimal(center + i * step) for i in range(-n, n + 1))
    sells = tuple(Decimal(center + i * step + draw(st.integers(0, 1))) for i in range(-n, n + 1))
    sizes = tuple(
        Decimal(draw(st.integers(min_value=-1, max_value=5))) / 1000 for _ in range(2 * n + 1)
    )
    return Lattice(levels=n, buy_prices=buys, sell_prices=sells, sizes=sizes)


@given(
    lattice=lattices(),
    data=st.data(),
    position=st.integers(min_value=-30, max_value=30).map(lambda k: Decimal(k) / 1000),
    max_inventory=st.one_of(
        st.none(), st.integers(min_value=0, max_value=30).map(lambda k: Decimal(k) / 1000)
    ),
)
def test_the_lattice_walk_equals_its_definition(
    lattice: Lattice,
    data: st.DataObject,
    position: Decimal,
    max_inventory: Decimal | None,
) -> None:
    n = lattice.levels
    pivot = data.draw(st.integers(min_value=-n - 1, max_value=n + 1))
    expected = list(_walk_reference(lattice, pivot, position, max_inventory))
    assert list(lattice._walk(pivot, position, max_inventory)) == expected
    assert lattice.shape(pivot=pivot, position=position, max_inventory=max_inventory) == (
        pivot,
        len(expected),
    )


@settings(max_examples=200)
@given(
    first=lattices(),
    second=lattices(),
    calls=st.lists(
        st.tuples(
            st.booleans(),  # which lattice
            # Few pivots, positions and limits, so that the same arguments come back.
            st.integers(min_value=-2, max_value=2),  # pivot
            st.integers(min_value=-12, max_value=12),  # position, in thousandths
            st.integers(min_value=0, max_value=3),  # extra zeros written after it
            st.one_of(st.none(), st.sampled_from([0, 4, 8, 12])),  # max_inventory
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_kept_walks_equal_fresh_walks(
    first: Lattice, second: Lattice, calls: list[tuple[bool, int, int, int, int | None]]
) -> None:
    """Walks asked again and again, of two lattices in turn, with positions that come back
    written differently (``0.02``, ``0.0200``): each kept walk is the walk its definition
    gives for the arguments of this call."""
    for which, pivot, thousandths, zeros, limit in calls:
        lattice = first if which else second
        pivot = max(-lattice.levels - 1, min(lattice.levels + 1, pivot))
        position = (Decimal(thousandths) / 1000).quantize(Decimal(1).scaleb(-3 - zeros))
        max_inventory = None if limit is None else Decimal(limit) / 1000
        expected = list(_walk_reference(lattice, pivot, position, max_inventory))
        assert list(lattice._walk(pivot, position, max_inventory)) == expected


def _pivot_reference(lattice: Lattice, delta: Decimal) -> int:
    """The pivot as documented: one level per fully filled level on the side the position
    grew, counting outward until a level of no size or one not fully filled."""
    if not delta:
        return 0
    direction = -1 if delta > 0 else 1
    n, cum, k = lattice.levels, ZERO, 0
    for j in range(1, n + 1):
        size = lattice.sizes[n + direction * j]
        if size <= 0:
            break
        cum = CTX.add(cum, size)
        if cum > abs(delta):
            break
        k = j
    return direction * k


@settings(max_examples=200)
@given(
    first=lattices(),
    second=lattices(),
    calls=st.lists(
        st.tuples(
            st.booleans(),  # which lattice
            st.integers(min_value=-12, max_value=12),  # delta, in thousandths
            st.integers(min_value=0, max_value=3),  # extra zeros written after it
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_pivots_and_kept_walks_equal_their_definitions(
    first: Lattice, second: Lattice, calls: list[tuple[bool, int, int]]
) -> None:
    """Pivots and walks asked again and again, of two lattices in turn, with deltas that come
    back written differently: each pivot is the one its definition gives, and each kept walk at
    it the walk its definition gives."""
    for which, thousandths, zeros in calls:
        lattice = first if which else second
        delta = (Decimal(thousandths) / 1000).quantize(Decimal(1).scaleb(-3 - zeros))
        pivot = lattice.pivot(delta)
        assert pivot == _pivot_reference(lattice, delta)
        expected = list(_walk_reference(lattice, pivot, delta, None))
        assert list(lattice._walk(pivot, delta, None)) == expected


def test_a_reshaped_grid_equals_evolve_in_every_field() -> None:
    config = GridConfig(venue=VENUE, symbol=SYMBOL, levels=3, order_qty=Decimal("0.01"))
    lattice = Lattice(levels=0, buy_prices=(Decimal(1),), sell_prices=(Decimal(2),), sizes=(ONE,))
    # Every field away from its default, so that a field the fast copy forgot shows.
    grid = NeutralGrid(
        config=config,
        center=Decimal(100),
        step=Decimal(2),
        base_position=Decimal("0.5"),
        lower=Decimal(90),
        upper=Decimal(110),
        recenters=7,
        dirty=True,
        lattice=lattice,
        shape=(3, 4),
    )
    for field in attrs.fields(NeutralGrid):
        assert getattr(grid, field.name) != field.default, field.name
    for dirty, shape in ((False, (1, 2)), (True, (3, 4)), (True, (-1, 0))):
        fast = grid._reshaped(dirty, shape)
        assert type(fast) is NeutralGrid
        assert fast == attrs.evolve(grid, dirty=dirty, shape=shape)
