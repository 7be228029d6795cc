"""Hostile events: every event class, with the field values a broken or malicious venue sends.

:func:`hostile_events` draws an event of any class of the vocabulary whose fields come from
pools of hostile values: zero, negative, NaN, infinities, 1e30 and 1e-30, huge integers,
timestamps in seconds, microseconds or far in the future, unknown cloids, symbols and venues,
reused fill and command ids, next to ordinary values so that the hostile ones meet live orders.

Construction may refuse the values (:class:`~gridcore.errors.InvalidEvent`): the shell's job is
then to report the raw message as :class:`~gridcore.events.MessageMalformed`, and the strategy
does exactly that, so every draw is an event ``step`` may be handed.
"""

from __future__ import annotations

import enum
import typing
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import attrs
from hypothesis import strategies as st

from gridcore import (
    Event,
    Fill,
    FundingPaid,
    MessageMalformed,
    OpenOrder,
    PositionReport,
    QuoteTicked,
)
from gridcore.core import MAINTENANCE_TIMER
from gridcore.errors import InvalidEvent
from gridcore.events import FIELD_RULES, MAX_MAGNITUDE, MIN_POSITIVE, TS_MAX, TS_MIN
from gridcore.instruments import Source
from tests.unit.helpers import SYMBOL, VENUE

__all__ = ["HOSTILE_DECIMALS", "hostile_events", "shell_builds", "valid_instances"]

#: Numbers a venue should never send, and a few it may.
HOSTILE_DECIMALS: tuple[Decimal, ...] = (
    Decimal(0),
    Decimal("-0"),
    Decimal(-1),
    Decimal("-0.001"),
    Decimal("NaN"),
    Decimal("sNaN"),
    Decimal("Infinity"),
    Decimal("-Infinity"),
    Decimal("1e30"),
    Decimal("1e-30"),
    Decimal("1e18"),
    Decimal("1e-18"),
    Decimal("-1e18"),
    Decimal("0.001"),
    Decimal("0.1"),
    Decimal(1),
    Decimal(50_000),
    Decimal("49999.9"),
    Decimal("50000.1"),
    Decimal("5e10"),
    Decimal("5e-2"),
    Decimal("123456789.123456789123456789"),
)

_TIMERS = (MAINTENANCE_TIMER, "other", "")


def _mostly(
    typical: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    # Three to one: an event with one hostile field among ordinary ones meets live orders.
    return st.one_of(typical, typical, typical, hostile)


def _decimals(typical: st.SearchStrategy[Decimal]) -> st.SearchStrategy[Decimal]:
    return _mostly(typical, st.sampled_from(HOSTILE_DECIMALS))


def _prices() -> st.SearchStrategy[Decimal]:
    return _decimals(
        st.integers(min_value=450_000, max_value=550_000).map(lambda n: n / Decimal(10))
    )


def _sizes() -> st.SearchStrategy[Decimal]:
    return _decimals(st.integers(min_value=1, max_value=50).map(lambda n: n / Decimal(1000)))


def _ints(*, near: int, spread: int) -> st.SearchStrategy[int]:
    return _mostly(
        st.integers(min_value=near, max_value=near + spread),
        st.sampled_from([-1, 0, 1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63)]),
    )


def _times(start_ts: int) -> st.SearchStrategy[int]:
    near = st.integers(min_value=start_ts, max_value=start_ts + 120_000)
    return _mostly(
        near,
        st.one_of(
            near.map(lambda t: t * 1000),  # microseconds
            near.map(lambda t: t // 1000),  # seconds
            st.sampled_from(
                [TS_MIN, TS_MAX - 1, TS_MAX, 0, -1, start_ts + 10**11, start_ts - 10**9]
            ),
        ),
    )


@attrs.frozen
class _InvalidPart:
    """A fill, open order or position a venue message carried that does not validate."""

    why: str


def _has_invalid_part(value: Any) -> bool:
    if isinstance(value, tuple):
        return any(isinstance(v, _InvalidPart) for v in value)
    return isinstance(value, _InvalidPart)


def shell_builds(cls: type[Any], fields: dict[str, Any], *, ts: int) -> Any:
    """What a shell hands the core for a venue message with ``fields``: the event, or a
    :class:`MessageMalformed` carrying the raw text, stamped ``ts`` by the shell's clock, when
    the event (or a part of it) refuses them."""
    try:
        if any(_has_invalid_part(v) for v in fields.values()):
            raise InvalidEvent("a part of the message does not validate")
        return cls(**fields)
    except InvalidEvent as exc:
        return MessageMalformed(
            ts=ts, venue=VENUE, detail=f"{exc} (raw: {fields!r})"[:500], source=Source.STREAM
        )


def hostile_events(
    *, cloids: Sequence[str], start_ts: int, max_command_id: int = 60
) -> st.SearchStrategy[Event]:
    """Any event of the vocabulary with hostile field values, as a shell would deliver it.

    ``cloids`` are orders the core knows (drawn beside unknown ones); ``start_ts`` anchors the
    ordinary timestamps; command ids are drawn from ``0..max_command_id`` and hostile integers.
    """
    names = _mostly(
        st.sampled_from(list(cloids) or ["unknown"]),
        st.sampled_from(["unknown", "0x" + "f" * 32, ""]),
    )
    venues = _mostly(st.just(VENUE), st.sampled_from(["other", ""]))
    symbols = _mostly(st.just(SYMBOL), st.sampled_from(["ETH-PERP", ""]))
    fill_ids = _mostly(st.sampled_from(["a", "b", "c", "d", "e"]), st.just(""))
    voids = _mostly(st.sampled_from(["1", "2", "77"]), st.just(""))
    times = _times(start_ts)
    command_ids = _ints(near=0, spread=max_command_id)

    def value_for(cls: type[Any], name: str, tp: Any) -> st.SearchStrategy[Any]:
        optional = type(None) in typing.get_args(tp)
        value: st.SearchStrategy[Any]
        if name in ("ts", "next_funding_ts"):
            value = times
        elif name == "since":
            value = st.one_of(times, st.just(0))
        elif name == "venue":
            value = venues
        elif name == "symbol":
            value = symbols
        elif name == "cloid":
            value = names
        elif name in ("price", "bid", "ask", "entry_price"):
            value = _prices()
        elif name in ("qty", "filled_qty"):
            value = _sizes()
            if cls is PositionReport:
                value = st.one_of(value, value.map(lambda d: d.copy_negate()))
        elif name in ("fee", "amount", "rate", "equity", "available"):
            value = _decimals(st.integers(min_value=-(10**6), max_value=10**7).map(Decimal))
        elif name == "fill":
            value = build(Fill)
        elif name == "fills":
            value = st.lists(build(Fill), max_size=3).map(tuple)
        elif name == "orders":
            value = st.lists(build(OpenOrder), max_size=3).map(tuple)
        elif name == "positions":
            value = st.lists(build(PositionReport), max_size=3).map(tuple)
        elif name == "payments":
            value = st.lists(build(FundingPaid, as_part=True), max_size=3).map(tuple)
        elif name == "command_id":
            value = command_ids
        elif name == "timer_id":
            value = st.sampled_from(_TIMERS)
        elif name in ("fill_id", "payment_id"):
            value = fill_ids
        elif name == "venue_order_id":
            value = voids
        elif name in ("reason", "detail", "asset"):
            value = st.sampled_from(["", "x", "boom" * 50])
        else:
            value = st.from_type(tp)
        if optional:
            value = st.one_of(st.none(), value)
        return value

    def build(cls: type[Any], *, as_part: bool = False) -> st.SearchStrategy[Any]:
        hints = typing.get_type_hints(cls)
        fields = {
            f.name: value_for(cls, f.name, hints[f.name]) for f in attrs.fields(cls) if f.init
        }
        if as_part or cls in (Fill, OpenOrder, PositionReport):
            # A part of an event: an invalid part makes the whole message malformed.
            def part(kw: dict[str, Any]) -> Any:
                try:
                    return cls(**kw)
                except InvalidEvent as exc:
                    return _InvalidPart(str(exc))

            return st.fixed_dictionaries(fields).map(part)
        return st.fixed_dictionaries(fields).map(lambda kw: shell_builds(cls, kw, ts=start_ts))

    return st.sampled_from(typing.get_args(Event)).flatmap(build)


# --- valid events: everything construction accepts, odd values included ------------------------

_VALID_DECIMALS: dict[str, st.SearchStrategy[Decimal]] = {
    "_positive": st.decimals(
        min_value=MIN_POSITIVE, max_value=MAX_MAGNITUDE, allow_nan=False, allow_infinity=False
    ),
    "_non_negative": st.one_of(
        st.just(Decimal(0)),
        st.decimals(
            min_value=MIN_POSITIVE, max_value=MAX_MAGNITUDE, allow_nan=False, allow_infinity=False
        ),
    ),
    "_signed": st.decimals(
        min_value=-MAX_MAGNITUDE, max_value=MAX_MAGNITUDE, allow_nan=False, allow_infinity=False
    ),
}


def _valid_field(cls: type[Any], name: str, rule: Any, tp: Any) -> st.SearchStrategy[Any]:
    kind = getattr(rule, "__name__", "")
    if kind == "_ts":
        return st.integers(min_value=TS_MIN, max_value=TS_MAX - 1)
    if kind == "_since":
        return st.integers(min_value=0, max_value=TS_MAX - 1)
    if kind == "_command_id":
        return st.integers(min_value=0, max_value=2**63 - 1)
    if kind == "_optional_command_id":
        return st.none() | st.integers(min_value=0, max_value=2**63 - 1)
    if kind in _VALID_DECIMALS:
        return _VALID_DECIMALS[kind]
    if kind == "_name":
        return st.text(min_size=1, max_size=12)
    if kind == "_optional_name":
        return st.none() | st.text(min_size=1, max_size=12)
    if kind == "_text":
        return st.text(max_size=12)
    if kind == "_flag":
        return st.booleans()
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is tuple:
        return st.lists(valid_instances(args[0]), max_size=3).map(tuple)
    target = args[0] if args else tp
    if isinstance(target, type) and issubclass(target, enum.Enum):
        return st.sampled_from(list(target))
    return valid_instances(target)


def valid_instances(cls: type[Any]) -> st.SearchStrategy[Any]:
    """Any instance of an event class (or event part) that construction accepts: every field
    drawn across its whole valid range (:data:`gridcore.events.FIELD_RULES`)."""
    hints = typing.get_type_hints(cls)
    fields = {name: _valid_field(cls, name, rule, hints[name]) for name, rule in FIELD_RULES[cls]}
    if cls is QuoteTicked:
        return st.fixed_dictionaries(fields).map(
            lambda kw: cls(
                **{**kw, "bid": min(kw["bid"], kw["ask"]), "ask": max(kw["bid"], kw["ask"])}
            )
        )
    if cls is OpenOrder:
        return st.fixed_dictionaries(fields).map(
            lambda kw: cls(
                **{
                    **kw,
                    "filled_qty": kw["filled_qty"] if kw["filled_qty"] < kw["qty"] else Decimal(0),
                }
            )
        )
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))
