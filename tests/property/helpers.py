"""Hypothesis strategies shared by the property tests of the pure core.

Strategies are keyword-only functions returning ``SearchStrategy[T]`` (the house style of
``xarray.testing.strategies``). Money and sizes are generated as exact decimals on the
instrument's tick and lot grids, the way a venue reports them.
"""

from __future__ import annotations

import enum
import itertools
import types
import typing
from decimal import Decimal
from typing import Any

import attrs
from hypothesis import strategies as st

from gridcore import Fill, PositionSide, Side
from tests.unit.helpers import EPOCH, SYMBOL, VENUE

__all__ = [
    "fills",
    "instances_of",
    "lots",
    "money",
    "prices",
    "split",
    "venue_events",
]


def lots(
    *, min_lots: int = 1, max_lots: int = 5_000, lot: Decimal = Decimal("0.001")
) -> st.SearchStrategy[Decimal]:
    """A positive base quantity, a whole number of lots."""
    return st.integers(min_value=min_lots, max_value=max_lots).map(lambda n: Decimal(n) * lot)


def prices(
    *, min_ticks: int = 1, max_ticks: int = 2_000_000, tick: Decimal = Decimal("0.1")
) -> st.SearchStrategy[Decimal]:
    """A positive price, a whole number of ticks."""
    return st.integers(min_value=min_ticks, max_value=max_ticks).map(lambda n: Decimal(n) * tick)


def money(*, max_cents: int = 10_000_000) -> st.SearchStrategy[Decimal]:
    """An amount in quote with cent precision, either sign (fees may be rebates)."""
    return st.integers(min_value=-max_cents, max_value=max_cents).map(
        lambda n: Decimal(n) / Decimal(100)
    )


def reserved_amounts(*, max_exponent: int) -> st.SearchStrategy[Decimal]:
    """Reservations as the invariant scan may meet them: zero, plain amounts (a few negative, as
    a broken bot's would be), and long coefficients that round when added (up to 42 digits,
    exponents from -45 to ``max_exponent``)."""
    return st.one_of(
        st.just(Decimal(0)),
        st.decimals(min_value=-5, max_value=10_000, places=8, allow_nan=False),
        st.builds(
            lambda digits, exp, sign: Decimal((sign, tuple(int(d) for d in digits), exp)),
            st.text("0123456789", min_size=1, max_size=42),
            st.integers(min_value=-45, max_value=max_exponent),
            st.integers(min_value=0, max_value=1),
        ),
    )


def fills(
    *,
    min_size: int = 1,
    max_size: int = 12,
    sides: st.SearchStrategy[Side] | None = None,
    position_sides: st.SearchStrategy[PositionSide] | None = None,
    min_gap_ms: int = 0,
) -> st.SearchStrategy[list[Fill]]:
    """Distinct fills (unique ids, increasing timestamps) on BTC-PERP, with no order named;
    ``sides`` defaults to either side, ``position_sides`` to ``BOTH`` (one-way mode);
    consecutive fills are ``min_gap_ms`` or more apart (0 allows fills in the same ms)."""
    side_st = st.sampled_from(Side) if sides is None else sides
    position_side_st = st.just(PositionSide.BOTH) if position_sides is None else position_sides

    @st.composite
    def build(draw: st.DrawFn) -> list[Fill]:
        n = draw(st.integers(min_value=min_size, max_value=max_size))
        out: list[Fill] = []
        ts = EPOCH
        for i in range(n):
            ts += draw(st.integers(min_value=min_gap_ms, max_value=5_000))
            out.append(
                Fill(
                    ts=ts,
                    venue=VENUE,
                    symbol=SYMBOL,
                    fill_id=f"f{i}",
                    cloid=None,
                    venue_order_id=None,
                    side=draw(side_st),
                    position_side=draw(position_side_st),
                    price=draw(prices(min_ticks=100_000, max_ticks=1_000_000)),
                    qty=draw(lots(max_lots=2_000)),
                    fee=draw(money(max_cents=10_000)),
                )
            )
        return out

    return build()


def split(total: int, *, max_parts: int = 8) -> st.SearchStrategy[list[int]]:
    """Positive integers summing exactly to ``total`` (a split of a quantity in lots)."""

    @st.composite
    def build(draw: st.DrawFn) -> list[int]:
        parts = draw(st.integers(min_value=1, max_value=min(max_parts, total)))
        cuts = sorted(
            draw(
                st.lists(
                    st.integers(min_value=1, max_value=total - 1),
                    min_size=parts - 1,
                    max_size=parts - 1,
                    unique=True,
                )
            )
            if total > 1
            else []
        )
        bounds = [0, *cuts, total]
        return [b - a for a, b in itertools.pairwise(bounds)]

    return build()


_FINITE = st.builds(
    lambda digits, exponent: Decimal(digits).scaleb(exponent),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.integers(min_value=-12, max_value=6),
)


def _for_type(tp: Any) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_for_type(a) for a in typing.get_args(tp)))
    if origin is tuple:
        item, _ellipsis = typing.get_args(tp)
        return st.lists(_for_type(item), max_size=3).map(tuple)
    if tp is type(None):
        return st.none()
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(min_value=-(2**63), max_value=2**63)
    if tp is str:
        return st.text(max_size=12)
    if tp is Decimal:
        return _FINITE
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(tp)
    if isinstance(tp, type) and attrs.has(tp):
        return instances_of(tp)
    raise AssertionError(f"no strategy for {tp!r}: extend tests/property/helpers.py")


def instances_of(cls: type[Any]) -> st.SearchStrategy[Any]:
    """Any instance of an attrs event or command class, every field (defaults included) drawn
    from its annotated type."""
    from gridcore.events import FIELD_RULES
    from tests.property.hostile import valid_instances

    if cls in FIELD_RULES:
        return valid_instances(cls)  # events validate their fields when built
    hints = typing.get_type_hints(cls)
    fields = {f.name: _for_type(hints[f.name]) for f in attrs.fields(cls) if f.init}
    if cls.__name__ == "QuoteTicked":
        # A quote validates 0 < bid <= ask when built; draw only quotes that can exist.
        positive = _FINITE.map(abs).filter(lambda d: d > 0)
        fields["bid"] = positive
        fields["ask"] = _FINITE.map(abs)
        return st.fixed_dictionaries(fields).map(
            lambda kw: cls(**{**kw, "ask": kw["bid"] + kw["ask"]})
        )
    return st.fixed_dictionaries(fields).map(lambda kwargs: cls(**kwargs))


def venue_events(*, cloids: list[str], start_ts: int) -> st.SearchStrategy[Any]:
    """Any event of the vocabulary, on the simulated venue's BTC-PERP, about the given orders
    (or others), with sane numbers: positive on-tick prices, on-lot sizes, small command ids.
    These are the facts a venue (or the shell) may report at any time, in any order."""
    from gridcore import Event, OpenOrder, PositionReport
    from gridcore.core import MAINTENANCE_TIMER

    def build(cls: type[Any]) -> st.SearchStrategy[Any]:
        hints = typing.get_type_hints(cls)
        fields: dict[str, st.SearchStrategy[Any]] = {}
        for f in attrs.fields(cls):
            name, tp = f.name, hints[f.name]
            optional = type(None) in typing.get_args(tp)
            if name == "venue":
                value: st.SearchStrategy[Any] = st.just(VENUE)
            elif name == "symbol":
                value = st.just(SYMBOL)
            elif name in ("ts", "next_funding_ts", "since"):
                value = st.integers(min_value=start_ts, max_value=start_ts + 100_000)
            elif name == "cloid":
                value = st.sampled_from([*cloids, "unknown", *([None] if optional else [])])
            elif name in ("price", "bid", "entry_price"):
                value = prices(min_ticks=400_000, max_ticks=600_000)
            elif name == "ask":
                value = prices(min_ticks=600_001, max_ticks=600_010)
            elif name == "filled_qty" and cls is OpenOrder:
                value = st.just(Decimal(0))
            elif name in ("qty", "filled_qty"):
                value = lots(max_lots=50)
            elif name in ("fee", "amount", "equity", "available", "rate"):
                value = money(max_cents=10**7).map(abs)
            elif name == "fill":
                value = build(Fill)
            elif name == "fills":
                value = st.lists(build(Fill), max_size=3).map(tuple)
            elif name == "orders":
                value = st.lists(build(OpenOrder), max_size=3).map(tuple)
            elif name == "positions":
                value = st.lists(build(PositionReport), max_size=2).map(tuple)
            elif name == "command_id":
                ids = st.integers(min_value=1, max_value=40)
                value = st.one_of(st.none(), ids) if optional else ids
            elif name == "timer_id":
                value = st.sampled_from([MAINTENANCE_TIMER, "other"])
            elif name in ("fill_id", "payment_id"):
                value = st.sampled_from(["a", "b", "c", "d"])
            elif name == "venue_order_id":
                value = st.sampled_from(["1", "2", "77", *([None] if optional else [])])
            else:
                value = _for_type(tp)
            fields[name] = value
        return st.fixed_dictionaries(fields).map(lambda kwargs: cls(**kwargs))

    return st.sampled_from(typing.get_args(Event)).flatmap(build)
