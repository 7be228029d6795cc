"""The canonical form (``codec.canonical``: snapshot bytes, and what a replay compares) is the
plain recursive definition, byte for byte: its per-type dispatch and generated per-class walks
are only faster. The reference below is that definition, written out once more."""

from __future__ import annotations

import enum
import types
from decimal import Decimal
from typing import Any

import attrs
import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore.config import load_config
from gridcore.core import step
from gridcore.events import Fill
from gridcore.instruments import PositionSide, Side
from gridcore.shells import codec
from gridcore.sim import backtest, make_bot

_encode = msgspec.msgpack.Encoder().encode
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1


def _reference(value: Any) -> Any:
    tp = type(value)
    if tp is str or tp is bool or value is None or tp is float or tp is bytes:
        return value
    if tp is int:
        return value if _INT_MIN <= value <= _INT_MAX else ["I", str(value)]
    if tp is Decimal:
        return ["D", str(value)]
    if tp is frozenset or tp is set:
        items = sorted(map(_reference, value), key=_encode)
        return ["f" if tp is frozenset else "s", *items]
    if tp is tuple:
        return ["t", *map(_reference, value)]
    if tp is list:
        return ["l", *map(_reference, value)]
    if tp is dict or tp is types.MappingProxyType:
        out: list[Any] = ["m"]
        for k, v in value.items():
            out.append(_reference(k))
            out.append(_reference(v))
        return out
    name = {cls: name for name, cls in codec.registered().items()}[tp]
    if isinstance(value, enum.Enum):
        return ["E", name, value.name]
    fields = [f.name for f in attrs.fields(tp) if f.init]
    return ["O", name, {field: _reference(getattr(value, field)) for field in fields}]


def reference_canonical(value: Any) -> bytes:
    return _encode(_reference(value))


def test_every_state_of_a_faulty_backtest_is_canonical_as_defined() -> None:
    config = load_config()
    trace = backtest(config, ticks=1_500, faults=None, record_events=True, seed=7)
    assert trace.events is not None
    state = make_bot(config, epoch=config.market.start_ts)
    checked = 0
    for i, event in enumerate(trace.events):
        state, _ = step(state, event)
        if i % 97 == 0 or event is trace.events[-1]:
            assert codec.canonical(state) == reference_canonical(state)
            checked += 1
    assert checked > 5
    assert state.books.orders, "the states compared hold orders"


_leaves = (
    st.text(max_size=8)
    | st.booleans()
    | st.none()
    | st.floats(allow_nan=False)
    | st.binary(max_size=4)
    | st.integers(min_value=-(1 << 70), max_value=1 << 70)
    | st.decimals(allow_nan=False, allow_infinity=False, places=3)
    | st.sampled_from([Decimal("1.0"), Decimal("1.00"), Decimal("-0"), Decimal("0")])
    | st.sampled_from([*Side, *PositionSide])
)
_hashable = st.recursive(
    _leaves.filter(lambda v: v == v),
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=4),
    max_leaves=12,
)
_values = st.recursive(
    _hashable,
    lambda inner: (
        st.lists(inner, max_size=4).map(tuple)
        | st.lists(inner, max_size=4)
        | st.dictionaries(_hashable, inner, max_size=4)
        | st.dictionaries(_hashable, inner, max_size=3).map(types.MappingProxyType)
        | st.frozensets(_hashable, max_size=4)
        | st.sets(_hashable, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(_values)
def test_nested_values_are_canonical_as_defined(value: Any) -> None:
    assert codec.canonical(value) == reference_canonical(value)


def test_equal_decimals_of_different_exponents_stay_different() -> None:
    assert codec.canonical((Decimal("1.0"),)) != codec.canonical((Decimal("1.00"),))


# --- remembered forms: a frozen value whose fields are all atoms is encoded once per object ---


def _fill(price: Decimal, qty: Decimal, n: int) -> Fill:
    return Fill(
        ts=1_700_000_000_000 + n,
        venue="sim",
        symbol="BTC-PERP",
        fill_id=f"f{n}",
        cloid=None,
        venue_order_id=None,
        side=Side.BUY,
        position_side=PositionSide.BOTH,
        price=price,
        qty=qty,
        fee=Decimal("0"),
    )


_prices = st.sampled_from([Decimal("1.0"), Decimal("1.00"), Decimal("2"), Decimal("2.000")])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(_prices, _prices), min_size=1, max_size=5),
    st.lists(st.tuples(st.integers(0, 4), st.booleans()), min_size=1, max_size=30),
)
def test_remembered_forms_are_the_forms_of_the_same_objects(
    made: list[tuple[Decimal, Decimal]], picks: list[tuple[int, bool]]
) -> None:
    # Equal values of different representations (1.0 and 1.00: == but not the same bytes)
    # live side by side, are encoded again and again, and are replaced by evolved copies.
    fills = [_fill(price, qty, n) for n, (price, qty) in enumerate(made)]
    for i, evolve in picks:
        k = i % len(fills)
        if evolve:
            fills[k] = attrs.evolve(fills[k], qty=fills[(k + 1) % len(fills)].price)
        value = (fills[k], tuple(fills))
        assert codec.canonical(value) == reference_canonical(value)


def test_a_remembered_form_is_never_given_to_a_newer_object_at_the_same_address() -> None:
    # Dropped objects free their address for the next one: identity, not the id, is matched.
    seen: set[int] = set()
    for n in range(300):
        fill = _fill(Decimal(n + 1) / 8, Decimal("1.0") if n % 2 else Decimal("1.00"), n)
        seen.add(id(fill))
        assert codec.canonical(fill) == reference_canonical(fill)
        del fill
    assert len(seen) < 300, "addresses were reused, so the test exercised reuse"
