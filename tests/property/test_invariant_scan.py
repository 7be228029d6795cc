"""The invariant scan derived step by step from the last one reports exactly what a scan of the
registry alone reports: the same violations, with the same text, for registries whose orders are
replaced, appended and removed at random, with reservations of any sign, size and exponent (some
too many digits to add without rounding, where the order of the additions matters)."""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore.config import load_config
from gridcore.core import State
from gridcore.instruments import Side
from gridcore.invariants import (
    STATE_INVARIANTS,
    STATE_READS,
    Violation,
    _lacks_sagas,
    _reserved_by_venue,
    _Scan,
    check_state,
)
from gridcore.lifecycle import Order, OrderStatus
from gridcore.numbers import CTX
from gridcore.sim import backtest
from tests.property.helpers import reserved_amounts


@cache
def _base() -> State[Any]:
    return backtest(load_config(), ticks=1_500).state


def _full(state: State[Any]) -> list[Violation]:
    return [v for invariant in STATE_INVARIANTS for v in invariant(state)]


_RESERVED = reserved_amounts(max_exponent=5)

_OP = st.tuples(
    st.sampled_from(["replace", "replace", "append", "remove", "same"]),
    st.integers(min_value=0, max_value=10_000),
    st.sampled_from(list(OrderStatus)),
    _RESERVED,
    st.sampled_from(["sim", "other"]),
    st.booleans(),  # the order's price moves (a grid level moved)
)


def _apply(orders: dict[str, Order], op: tuple[Any, ...], n: int) -> dict[str, Order]:
    kind, pick, status, reserved, venue, moved = op
    out = dict(orders)
    cloids = list(out)
    if kind == "same" or not cloids:
        return out
    cloid = cloids[pick % len(cloids)]
    order = out[cloid]
    if kind == "remove":
        del out[cloid]
        return out
    price = CTX.add(order.price, Decimal(1)) if moved else order.price
    changed = attrs.evolve(order, status=status, reserved=reserved, venue=venue, price=price)
    if kind == "append":
        changed = attrs.evolve(changed, cloid=f"{cloid}-{n}")
    out[changed.cloid] = changed
    return out


def _with(state: State[Any], orders: dict[str, Order], reserved: dict[str, Decimal]) -> State[Any]:
    risk = attrs.evolve(state.books.risk, reserved=reserved)
    return attrs.evolve(state, books=attrs.evolve(state.books, orders=orders, risk=risk))


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(_OP, min_size=1, max_size=25),
    off=st.lists(st.sampled_from([None, Decimal(1), Decimal("-0.00000001")]), min_size=25),
)
def test_derived_scan_reports_what_a_fresh_scan_reports(
    ops: list[tuple[Any, ...]], off: list[Decimal | None]
) -> None:
    state = _base()
    orders = dict(state.books.orders)
    assert check_state(state) == _full(state)
    for n, op in enumerate(ops):
        orders = _apply(orders, op, n)
        live = _Scan.full(orders).live
        # What the kernel would hold (a fresh sum), or that off by a little (a leak).
        reserved = dict(_reserved_by_venue(live))
        delta = off[n]
        if delta is not None and reserved:
            venue = next(iter(reserved))
            reserved[venue] = CTX.add(reserved[venue], delta)
        now = _with(state, orders, reserved)
        assert check_state(now) == check_state(now, full=True) == _full(now)


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(_OP, min_size=1, max_size=25))
def test_carried_reservations_are_the_sums_of_a_walk(ops: list[tuple[Any, ...]]) -> None:
    """The per-venue sums a derived scan carries are exactly those of a walk of the live orders
    in registry order: the same values, written alike, under the same venues."""
    state = _base()
    orders = dict(state.books.orders)
    scan = _Scan.full(orders)
    for n, op in enumerate(ops):
        before = orders
        orders = _apply(orders, op, n)
        derived = scan.derive(before, orders)
        scan = _Scan.full(orders) if derived is None else derived
        assert list(scan.live) == [c for c, o in orders.items() if o.is_live]
        fresh = _reserved_by_venue(scan.live)
        assert list(scan.reserved.items()) == list(fresh.items())
        assert [str(v) for v in scan.reserved.values()] == [str(v) for v in fresh.values()]


def test_a_leak_and_a_crossed_level_are_found_after_a_clean_check() -> None:
    """After a clean check, a part of the state replaced (the reservations, the registry) is
    judged again: a leak and a crossed grid level are found, with the text judging everything
    gives."""
    state = _base()
    assert check_state(state) == []
    # Each part replaced by an equal copy (a new object): the invariants reading it are judged
    # again; break one and it is found, with the same text as judging everything.
    books = state.books
    risk = books.risk
    venue = next(iter(risk.reserved))
    leaked = _with(state, dict(books.orders), {**risk.reserved, venue: risk.reserved[venue] + 1})
    assert [v.invariant for v in check_state(leaked)] == ["reservations_match_live_orders"]
    assert check_state(leaked) == _full(leaked)
    for check, reads in STATE_READS.items():
        assert all(part is not None for part in reads(state)), check.__name__
    buy = next(o for o in books.orders.values() if o.is_live and o.side is Side.BUY)
    sell = min(
        (o for o in books.orders.values() if o.is_live and o.side is Side.SELL),
        key=lambda o: o.price,
    )
    crossed = {**books.orders, buy.cloid: attrs.evolve(buy, price=sell.price)}
    found = check_state(_with(state, crossed, dict(risk.reserved)))
    assert found == _full(_with(state, crossed, dict(risk.reserved)))
    assert "grid_levels_never_cross" in {v.invariant for v in found}


def test_sums_that_round_are_summed_again_in_registry_order() -> None:
    """Sums too long for the context round, and differently in another order: three live
    orders reserving -1E+39, -1E+39 and 1.5 sum to -2E+39 (rounded); replacing the first by one
    reserving 1E+39 + 1, taking the old off and adding the new would give 3, where a walk gives
    2.5. The scan sums as a walk does, and a total of 3 is reported as the leak it is."""
    state = _base()
    live = [o for o in state.books.orders.values() if o.is_live][:3]
    assert len(live) == 3
    values = [Decimal("-1E+39"), Decimal("-1E+39"), Decimal("1.5")]
    keep = {c: o for c, o in state.books.orders.items() if not o.is_live}
    orders = {
        **keep,
        **{o.cloid: attrs.evolve(o, reserved=r) for o, r in zip(live, values, strict=True)},
    }
    venue = live[0].venue
    before = _with(state, orders, {venue: CTX.add(CTX.add(values[0], values[1]), values[2])})
    assert check_state(before) == _full(before)
    first = orders[live[0].cloid]
    after = {**orders, first.cloid: attrs.evolve(first, reserved=Decimal(10**39 + 1))}
    scan = _Scan.full(orders).derive(orders, after)
    assert scan is not None
    assert scan.reserved == {venue: Decimal("2.5")} == _reserved_by_venue(scan.live)
    leaked = _with(state, after, {venue: Decimal(3)})
    found = check_state(leaked)
    assert found == check_state(leaked, full=True) == _full(leaked)
    assert [v.detail for v in found] == [f"{venue}: reserved 3 but live orders hold 2.5"]


def test_only_a_strategy_that_can_hold_no_sagas_skips_the_saga_check() -> None:
    """check_state skips :func:`sagas_reach_terminal` for a strategy class whose instances
    cannot have a ``sagas`` attribute at all (the grid); any way of having one is judged."""

    @attrs.frozen
    class Field:
        sagas: Any = ()

    class ClassAttribute:
        __slots__ = ()
        sagas: Any = ()

    class Plain:  # an instance dict may gain one
        pass

    class Lookup:
        __slots__ = ()

        def __getattr__(self, name: str) -> Any:
            return ()

    class Lookup2:
        __slots__ = ()

        def __getattribute__(self, name: str) -> Any:
            return ()

    @attrs.frozen
    class Bare:
        x: int = 0

    assert _lacks_sagas(type(_base().strategy)) and _lacks_sagas(Bare)
    for cls in (Field, ClassAttribute, Plain, Lookup, Lookup2):
        assert not _lacks_sagas(cls), cls.__name__
