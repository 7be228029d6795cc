"""Construction-time rules of the value types (instruments, plausibility limits, event fields,
validators): each refuses a bad value with an error that names the field and what is accepted,
and accepts the values on the edge of its range."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridcore import validators
from gridcore.errors import ConfigError, ContractError, InvalidEvent
from gridcore.events import (
    TS_MAX,
    TS_MIN,
    CommandFailed,
    Fill,
    FillsReported,
    HaltRequested,
    MessageMalformed,
    OpenOrdersReported,
    OrderFilled,
    PositionsReported,
)
from gridcore.instruments import Instrument, PositionSide, Side, Source
from gridcore.plausibility import Plausibility, fill_implausible, quote_jumped

D = Decimal


# --- instruments ------------------------------------------------------------------------------


@pytest.mark.parametrize("side", list(Side))
def test_a_side_and_its_opposite_have_opposite_signs(side: Side) -> None:
    assert side.opposite is not side
    assert side.opposite.opposite is side
    assert side.sign == -side.opposite.sign
    assert side.sign == (1 if side is Side.BUY else -1)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("tick_size", D(0), "tick_size must be > 0, got 0"),
        ("lot_size", D(0), "lot_size must be > 0, got 0"),
        ("lot_size", D("-0.001"), "lot_size must be > 0, got -0.001"),
        ("min_notional", D("-1"), "min_notional must be >= 0, got -1"),
    ],
)
def test_an_instrument_with_a_bad_filter_is_refused_naming_it(
    field: str, value: Decimal, message: str
) -> None:
    fields: dict[str, Any] = {
        "venue": "sim",
        "symbol": "BTC-PERP",
        "tick_size": D("0.1"),
        "lot_size": D("0.001"),
    }
    fields[field] = value
    with pytest.raises(ValueError, match=f"^instrument BTC-PERP: {message}$"):
        Instrument(**fields)


# --- plausibility limits ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"max_clock_lead_ms": 0}, "plausibility.max_clock_lead_ms"),
        ({"max_clock_lead_ms": 1.5}, "plausibility.max_clock_lead_ms"),
        ({"max_quote_jump": D(1)}, "plausibility.max_quote_jump"),
        ({"max_quote_jump": D("Infinity")}, "plausibility.max_quote_jump"),
        ({"max_quote_jump": 10}, "plausibility.max_quote_jump"),
        ({"max_fill_deviation": D("0.5")}, "plausibility.max_fill_deviation"),
        ({"quote_confirmations": 0}, "plausibility.quote_confirmations"),
        ({"quote_confirmations": True}, "plausibility.quote_confirmations"),
    ],
)
def test_plausibility_limits_that_cannot_work_fail_naming_the_field(
    fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Plausibility(**fields)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: must be")


def test_the_smallest_working_plausibility_limits_load() -> None:
    limits = Plausibility(
        max_clock_lead_ms=1,
        max_quote_jump=D("1.0001"),
        quote_confirmations=1,
        max_fill_deviation=D("1.0001"),
    )
    assert limits.quote_confirmations == 1


prices = st.decimals(min_value=D("0.01"), max_value=D(10**6), places=2)
factors = st.decimals(min_value=D("1.01"), max_value=D(100), places=2)


@given(price=prices, reference=prices, factor=factors)
def test_a_fill_is_implausible_exactly_when_it_lies_beyond_the_factor_either_way(
    price: Decimal, reference: Decimal, factor: Decimal
) -> None:
    beyond = price > reference * factor or price * factor < reference
    assert fill_implausible(price, reference, factor) is beyond
    assert fill_implausible(price, None, factor) is False
    assert fill_implausible(price, D(0), factor) is False


@given(bid=prices, spread=prices, last_bid=prices, last_spread=prices, factor=factors)
def test_a_quote_jumped_exactly_when_it_left_the_last_one_by_more_than_the_factor(
    bid: Decimal, spread: Decimal, last_bid: Decimal, last_spread: Decimal, factor: Decimal
) -> None:
    ask, last_ask = bid + spread, last_bid + last_spread
    jumped = quote_jumped(last_bid, last_ask, bid, ask, factor)
    assert jumped is (bid > last_ask * factor or ask * factor < last_bid)
    # The same quote never jumped from itself.
    assert quote_jumped(bid, ask, bid, ask, factor) is False


# --- event fields -----------------------------------------------------------------------------


_BASES: dict[type, dict[str, Any]] = {
    FillsReported: {"ts": TS_MIN, "venue": "sim", "since": 0, "fills": ()},
    HaltRequested: {"ts": TS_MIN},
    CommandFailed: {"ts": TS_MIN, "command_id": 1, "reason": "x"},
    Fill: {
        "ts": TS_MIN,
        "venue": "sim",
        "symbol": "BTC-PERP",
        "fill_id": "f1",
        "cloid": None,
        "venue_order_id": None,
        "side": Side.BUY,
        "position_side": PositionSide.BOTH,
        "price": D(100),
        "qty": D(1),
        "fee": D(0),
    },
    MessageMalformed: {"ts": TS_MIN, "venue": "sim", "detail": ""},
    OrderFilled: {"ts": TS_MIN, "fill": None},
    OpenOrdersReported: {"ts": TS_MIN, "venue": "sim", "orders": ()},
    PositionsReported: {"ts": TS_MIN, "venue": "sim", "positions": ()},
}


def _fill() -> Fill:
    return Fill(**_BASES[Fill])


@pytest.mark.parametrize(
    ("cls", "named", "bad", "rule"),
    [
        (FillsReported, "since", -1, "need integer milliseconds in [0, "),
        (FillsReported, "since", TS_MAX, "need integer milliseconds in [0, "),
        (FillsReported, "since", 1.0, "need integer milliseconds in [0, "),
        (HaltRequested, "reason", None, "need a string"),
        (CommandFailed, "not_applied", 1, "need True or False"),
        (Fill, "is_maker", "yes", "need True or False"),
        (Fill, "side", "buy", "need a Side"),
        (MessageMalformed, "source", "rest", "need a Source"),
        (OrderFilled, "fill", {"price": "1"}, "need a Fill"),
        (OpenOrdersReported, "orders", [], "need a tuple of OpenOrder"),
        (PositionsReported, "positions", (_fill(),), "need a tuple of PositionReport"),
    ],
)
def test_an_event_field_of_the_wrong_kind_is_refused_naming_class_and_field(
    cls: type, named: str, bad: object, rule: str
) -> None:
    with pytest.raises(InvalidEvent) as caught:
        cls(**(_BASES[cls] | {named: bad}))
    message = str(caught.value)
    assert message.startswith(f"{cls.__name__}.{named} = {bad!r}: ")
    assert rule in message
    assert message.endswith("a shell reports such a venue message as MessageMalformed")
    assert isinstance(caught.value, ContractError) and isinstance(caught.value, ValueError)


@given(since=st.integers(min_value=0, max_value=TS_MAX - 1))
def test_fills_since_any_time_from_the_epoch_are_accepted(since: int) -> None:
    report = FillsReported(ts=TS_MIN, venue="sim", since=since, fills=(_fill(),))
    assert report.since == since
    assert report.source is Source.REST


# --- validators -------------------------------------------------------------------------------


@given(value=st.integers(min_value=-(10**6), max_value=10**6))
def test_non_negative_accepts_zero_and_up_and_names_what_it_refuses(value: int) -> None:
    if value >= 0:
        assert validators.non_negative(value) == value
        assert validators.non_negative(D(value)) == value
    else:
        with pytest.raises(ValueError, match=f"^must be >= 0, got {value}$"):
            validators.non_negative(value)
