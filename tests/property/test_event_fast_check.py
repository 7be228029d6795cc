"""Every event class's fast check (its rules as one condition of plain comparisons) accepts
exactly the values its rules accept one by one, and a constructor refuses with the message of
the first rule that fails: for valid values, values at and beyond every bound, NaNs,
infinities, wrong types and arbitrary numbers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridcore.errors import InvalidEvent
from gridcore.events import (
    FIELD_RULES,
    MAX_MAGNITUDE,
    MIN_POSITIVE,
    TS_MAX,
    TS_MIN,
    Fill,
    FundingPaid,
    OpenOrder,
    PositionReport,
    QuoteTicked,
    ReportedStatus,
    _validate,
    fast_check,
)
from gridcore.halts import HaltCause
from gridcore.instruments import PositionSide, Side, Source

D = Decimal
EPOCH = 1_700_000_000_000


class _Str(str):
    pass


class _Int(int):
    pass


class _Dec(Decimal):
    pass


_FILL = Fill(
    ts=EPOCH,
    venue="v",
    symbol="X",
    fill_id="f",
    cloid=None,
    venue_order_id="o",
    side=Side.BUY,
    position_side=PositionSide.BOTH,
    price=D("100.5"),
    qty=D("0.1"),
    fee=D("-0.01"),
)
_ORDER = OpenOrder(
    cloid="c",
    venue_order_id="o",
    symbol="X",
    side=Side.SELL,
    position_side=PositionSide.SHORT,
    price=D(7),
    qty=D(2),
    filled_qty=D(1),
)
_POSITION = PositionReport(symbol="X", position_side=PositionSide.LONG, qty=D(-3), entry_price=D(0))
_PAYMENT = FundingPaid(
    ts=EPOCH,
    venue="v",
    symbol="X",
    position_side=PositionSide.BOTH,
    amount=D("0.5"),
    payment_id="p",
)

#: Values at, inside and beyond every bound and type the rules name.
CANDIDATES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    TS_MIN - 1,
    TS_MIN,
    EPOCH,
    TS_MAX - 1,
    TS_MAX,
    2**63 - 1,
    2**63,
    _Int(EPOCH),
    1.5,
    float("nan"),
    "",
    "x",
    _Str("x"),
    b"x",
    D(0),
    D("-0"),
    D("0E-30"),
    D(1),
    D("-1"),
    D("50000.10"),
    MIN_POSITIVE,
    MIN_POSITIVE / 10,
    -MIN_POSITIVE,
    MAX_MAGNITUDE,
    MAX_MAGNITUDE + MIN_POSITIVE,
    -MAX_MAGNITUDE,
    -MAX_MAGNITUDE - 1,
    D("NaN"),
    D("-NaN"),
    D("sNaN"),
    D("Infinity"),
    D("-Infinity"),
    _Dec(1),
    *Side,
    *PositionSide,
    *Source,
    *ReportedStatus,
    *HaltCause,
    _FILL,
    _ORDER,
    _POSITION,
    _PAYMENT,
    (),
    (_FILL,),
    (_FILL, _FILL),
    (_ORDER, _ORDER),
    (_POSITION,),
    (_PAYMENT,),
    (_FILL, _ORDER),
    (_ORDER, None),
    [_FILL],
]

arbitrary = st.one_of(
    st.sampled_from(CANDIDATES),
    st.integers(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
)


def _passes(cls: type, name: str, value: Any) -> bool:
    rule = dict(FIELD_RULES[cls])[name]
    try:
        rule(_ORDER, name, value)
    except InvalidEvent:
        return False
    return True


def _unchecked(cls: type, values: dict[str, Any]) -> Any:
    obj: Any = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(obj, name, value)
    return obj


def _good(cls: type, name: str) -> list[Any]:
    return [c for c in CANDIDATES if _passes(cls, name, c)]


def field_values(cls: type) -> st.SearchStrategy[dict[str, Any]]:
    """A value for every field of ``cls``: ones its rule accepts, then none, one or a few of
    them replaced by anything (so that valid instances, and instances with one bad field, are
    common)."""
    names = [name for name, _rule in FIELD_RULES[cls]]
    valid = st.fixed_dictionaries({n: st.sampled_from(_good(cls, n)) for n in names})

    @st.composite
    def values(draw: st.DrawFn) -> dict[str, Any]:
        out = draw(valid)
        for name in draw(st.lists(st.sampled_from(names), max_size=3)):
            out[name] = draw(arbitrary)
        return out

    return values()


FIELD_VALUES = {cls: field_values(cls) for cls in FIELD_RULES}


def _rules_say(obj: Any) -> str | None:
    """``None`` when every rule passes, else the message of the first that fails."""
    try:
        _validate(obj)
    except InvalidEvent as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("cls", list(FIELD_RULES), ids=lambda c: c.__name__)
def test_fast_check_agrees_on_every_candidate_in_every_field(cls: type) -> None:
    check = fast_check(cls)
    valid = {name: _good(cls, name)[0] for name, _rule in FIELD_RULES[cls]}
    for name in valid:
        for value in CANDIDATES:
            obj = _unchecked(cls, {**valid, name: value})
            assert check(obj) == (_rules_say(obj) is None), (name, value)


@pytest.mark.parametrize("cls", list(FIELD_RULES), ids=lambda c: c.__name__)
@given(data=st.data())
def test_fast_check_accepts_exactly_what_the_rules_accept(cls: type, data: st.DataObject) -> None:
    values = data.draw(FIELD_VALUES[cls])
    obj = _unchecked(cls, values)
    assert fast_check(cls)(obj) == (_rules_say(obj) is None)


@pytest.mark.parametrize("cls", list(FIELD_RULES), ids=lambda c: c.__name__)
@given(data=st.data())
def test_constructor_refuses_with_the_first_failing_rules_message(
    cls: type, data: st.DataObject
) -> None:
    values = data.draw(FIELD_VALUES[cls])
    said = _rules_say(_unchecked(cls, values))
    kwargs = {f.alias or f.name: values[f.name] for f in attrs.fields(cls)}
    try:
        cls(**kwargs)
    except InvalidEvent as exc:
        # A rule's message, or (valid fields) a class's own rule across fields: bid <= ask,
        # an open order's filled quantity below its quantity.
        assert said is None or str(exc) == said
        if said is None:  # bid above ask; an open order's filled quantity not below its qty
            assert cls in (OpenOrder, QuoteTicked)
    else:
        assert said is None


@pytest.mark.parametrize("field", ["venue", "symbol"])
@pytest.mark.parametrize("bad", ["", None, 7])
def test_a_quote_without_a_venue_or_symbol_is_refused_naming_the_field(
    field: str, bad: object
) -> None:
    # A quote's own plain check covers every rule, not only its time and prices.
    fields: dict[str, Any] = {
        "ts": 1_700_000_000_000,
        "venue": "sim",
        "symbol": "BTC-PERP",
        "bid": Decimal("100"),
        "ask": Decimal("101"),
    }
    fields[field] = bad
    with pytest.raises(InvalidEvent, match=rf"QuoteTicked\.{field} = "):
        QuoteTicked(**fields)
    with pytest.raises(InvalidEvent, match=rf"QuoteTicked\.{field} = "):
        QuoteTicked.of(**fields)
