"""Events: facts that already happened, in the past tense.

Every event carries ``ts``, integer milliseconds since the Unix epoch, stamped by whoever saw it
happen (the venue when it says, the shell otherwise). Events that come from a venue name it and
say where they came from (:class:`~gridcore.instruments.Source`). Events that answer a command
carry that command's ``command_id``; the same kind of event pushed by a stream carries ``None``.

``Event`` is a closed union: the reducer matches on it and mypy proves every case is handled.

Validation at construction
--------------------------
Every event and every part of one checks its fields when it is built, against the rules of
:data:`FIELD_RULES` (one table, below the classes), and raises
:class:`~gridcore.errors.InvalidEvent` (a :class:`~gridcore.errors.ContractError`) naming the
class, the field, the value and what is accepted:

* times are integer milliseconds in ``[TS_MIN, TS_MAX)`` (2000-01-01 to 2100-01-01 UTC), so a
  time in seconds or in microseconds is refused instead of freezing or rewinding the core's
  clock;
* prices and order quantities are finite, positive Decimals in ``[MIN_POSITIVE, MAX_MAGNITUDE]``;
  filled quantities and entry prices are the same or zero; signed amounts (fees, funding,
  balances, rates, reported position sizes) are finite with ``|x| <= MAX_MAGNITUDE``;
* command ids are non-negative integers; identifiers are non-empty strings.

A shell that builds an event from venue data catches the error and reports the raw message as
:class:`MessageMalformed`; ``step`` therefore only ever sees values that are valid one by one.
Values valid one by one but absurd in context (a fill 1e6 times the last mid) are the reducer's
business: see ``gridcore.core`` (plausibility rules).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import attrs

from gridcore._enum import CoreEnum
from gridcore.errors import InvalidEvent
from gridcore.halts import HaltCause
from gridcore.instruments import PositionSide, Side, Source
from gridcore.numbers import CTX

__all__ = [
    "FIELD_RULES",
    "MAX_MAGNITUDE",
    "MIN_POSITIVE",
    "TS_MAX",
    "TS_MIN",
    "BalanceReported",
    "CancelRejected",
    "CommandFailed",
    "CommandTimedOut",
    "Event",
    "FeedDisconnected",
    "FeedReconnected",
    "Fill",
    "FillsReported",
    "FlattenRequested",
    "FundingPaid",
    "FundingRateUpdated",
    "FundingReported",
    "HaltRequested",
    "MessageMalformed",
    "ModifyRejected",
    "OpenOrder",
    "OpenOrdersReported",
    "OrderAccepted",
    "OrderCanceled",
    "OrderFilled",
    "OrderModified",
    "OrderPartiallyFilled",
    "OrderRejected",
    "OrderStatusReported",
    "PositionReport",
    "PositionsReported",
    "QuoteTicked",
    "ReportedStatus",
    "ResumeRequested",
    "Started",
    "TimerFired",
]


_TWO = Decimal(2)

#: The earliest event time accepted: 2000-01-01T00:00:00Z in ms.
TS_MIN = 946_684_800_000
#: The first event time refused: 2100-01-01T00:00:00Z in ms. A time in microseconds (1.7e15)
#: or nanoseconds lies far beyond it, a time in seconds (1.7e9) far before ``TS_MIN``.
TS_MAX = 4_102_444_800_000
#: The largest magnitude of any price, quantity or amount an event may carry (1e18).
MAX_MAGNITUDE = Decimal("1e18")
#: The smallest positive price or quantity an event may carry (1e-18).
MIN_POSITIVE = Decimal("1e-18")
_MAX_ID = 2**63


#: Each rule's plain-comparison form, next to the rule: a condition on the value ``{v}`` that
#: holds exactly when the rule passes, and the names it uses beyond this module's (see "the
#: fast check" below FIELD_RULES). A Decimal's ``is_finite`` is implied by the bounds: an
#: infinity fails them, a NaN fails them or raises ``ArithmeticError`` (which the fast check
#: counts as a failure).
_FAST: dict[object, tuple[str, dict[str, object]]] = {}


def _refuse(owner: object, name: str, value: object, rule: str) -> InvalidEvent:
    return InvalidEvent(
        f"{type(owner).__name__}.{name} = {value!r}: {rule}; a shell reports such a venue "
        f"message as MessageMalformed"
    )


def _ts(owner: object, name: str, v: object) -> None:
    if type(v) is not int or not TS_MIN <= v < TS_MAX:
        raise _refuse(
            owner, name, v, f"need integer milliseconds in [{TS_MIN}, {TS_MAX}) (2000..2100 UTC)"
        )


_FAST[_ts] = ("type({v}) is int and TS_MIN <= {v} < TS_MAX", {})


def _since(owner: object, name: str, v: object) -> None:
    if type(v) is not int or not 0 <= v < TS_MAX:
        raise _refuse(owner, name, v, f"need integer milliseconds in [0, {TS_MAX})")


_FAST[_since] = ("type({v}) is int and 0 <= {v} < TS_MAX", {})


def _positive(owner: object, name: str, v: object) -> None:
    if type(v) is not Decimal or not v.is_finite() or not MIN_POSITIVE <= v <= MAX_MAGNITUDE:
        raise _refuse(owner, name, v, f"need a finite Decimal in [{MIN_POSITIVE}, {MAX_MAGNITUDE}]")


_FAST[_positive] = ("type({v}) is Decimal and MIN_POSITIVE <= {v} <= MAX_MAGNITUDE", {})


def _non_negative(owner: object, name: str, v: object) -> None:
    if (
        type(v) is not Decimal
        or not v.is_finite()
        or not (v == 0 or MIN_POSITIVE <= v <= MAX_MAGNITUDE)
    ):
        raise _refuse(
            owner, name, v, f"need 0 or a finite Decimal in [{MIN_POSITIVE}, {MAX_MAGNITUDE}]"
        )


_FAST[_non_negative] = (
    "type({v}) is Decimal and ({v} == 0 or MIN_POSITIVE <= {v} <= MAX_MAGNITUDE)",
    {},
)


def _signed(owner: object, name: str, v: object) -> None:
    if type(v) is not Decimal or not v.is_finite() or not -MAX_MAGNITUDE <= v <= MAX_MAGNITUDE:
        raise _refuse(owner, name, v, f"need a finite Decimal with |x| <= {MAX_MAGNITUDE}")


_FAST[_signed] = ("type({v}) is Decimal and -MAX_MAGNITUDE <= {v} <= MAX_MAGNITUDE", {})


def _command_id(owner: object, name: str, v: object) -> None:
    if type(v) is not int or not 0 <= v < _MAX_ID:
        raise _refuse(owner, name, v, "need an integer in [0, 2**63)")


_FAST[_command_id] = ("type({v}) is int and 0 <= {v} < _MAX_ID", {})


def _optional_command_id(owner: object, name: str, v: object) -> None:
    if v is not None:
        _command_id(owner, name, v)


_FAST[_optional_command_id] = ("{v} is None or (type({v}) is int and 0 <= {v} < _MAX_ID)", {})


def _name(owner: object, name: str, v: object) -> None:
    if type(v) is not str or not v:
        raise _refuse(owner, name, v, "need a non-empty string")


_FAST[_name] = ("type({v}) is str and {v} != ''", {})


def _optional_name(owner: object, name: str, v: object) -> None:
    if v is not None:
        _name(owner, name, v)


_FAST[_optional_name] = ("{v} is None or (type({v}) is str and {v} != '')", {})


def _text(owner: object, name: str, v: object) -> None:
    if type(v) is not str:
        raise _refuse(owner, name, v, "need a string")


_FAST[_text] = ("type({v}) is str", {})


def _flag(owner: object, name: str, v: object) -> None:
    if type(v) is not bool:
        raise _refuse(owner, name, v, "need True or False")


_FAST[_flag] = ("type({v}) is bool", {})


_Rule = Callable[[object, str, object], None]


def _member(kind: type[enum.Enum]) -> _Rule:
    def check(owner: object, name: str, v: object) -> None:
        if type(v) is not kind:
            raise _refuse(owner, name, v, f"need a {kind.__name__}")

    _FAST[check] = (f"type({{v}}) is _{kind.__name__}", {f"_{kind.__name__}": kind})
    return check


def _member_of(kind: type) -> _Rule:
    def check(owner: object, name: str, v: object) -> None:
        if type(v) is not kind:
            raise _refuse(owner, name, v, f"need a {kind.__name__}")

    _FAST[check] = (f"type({{v}}) is _{kind.__name__}", {f"_{kind.__name__}": kind})
    return check


def _tuple_of(kind: type) -> _Rule:
    def check(owner: object, name: str, v: object) -> None:
        if type(v) is not tuple or any(type(item) is not kind for item in v):
            raise _refuse(owner, name, v, f"need a tuple of {kind.__name__}")

    # The set of the items' types is within {kind}: an empty tuple passes, as it does above.
    only = f"_only_{kind.__name__}"
    _FAST[check] = (
        f"type({{v}}) is tuple and set(map(type, {{v}})) <= {only}",
        {only: frozenset({kind})},
    )
    return check


def _optional_cause(owner: object, name: str, v: object) -> None:
    if v is not None and type(v) is not HaltCause:
        raise _refuse(owner, name, v, "need a HaltCause or None")


_FAST[_optional_cause] = ("{v} is None or type({v}) is HaltCause", {})


def _validate(self: object) -> None:
    """Every rule of ``self``'s class, one by one: the first that fails raises, naming its
    field. Classes run their fast check (below ``FIELD_RULES``) first and come here only when
    it fails."""
    for name, rule in FIELD_RULES[type(self)]:
        rule(self, name, getattr(self, name))


class ReportedStatus(CoreEnum):
    """An order's status as a venue reports it on request."""

    OPEN = "open"  # resting, possibly partially filled
    FILLED = "filled"  # done, fully filled
    CANCELED = "canceled"  # done, canceled (possibly after partial fills)
    REJECTED = "rejected"  # never rested
    NOT_FOUND = "not_found"  # the venue has no order with that id


@attrs.frozen(kw_only=True)
class Fill:
    """One execution, as the venue numbers it.

    ``fill_id`` is the venue's unique id for this execution (the dedup key). ``qty`` is in base
    units and always positive; ``side`` gives the direction. ``fee`` is in quote currency,
    positive when paid, negative for a rebate. ``cloid`` is ``None`` for fills of orders the core
    did not name (manual trades, liquidations).
    """

    ts: int
    venue: str
    symbol: str
    fill_id: str
    cloid: str | None
    venue_order_id: str | None
    side: Side
    position_side: PositionSide
    price: Decimal
    qty: Decimal
    fee: Decimal
    is_maker: bool = True

    __attrs_post_init__ = _validate


@attrs.frozen(kw_only=True)
class OpenOrder:
    """One resting order in an open-orders report."""

    cloid: str | None
    venue_order_id: str
    symbol: str
    side: Side
    position_side: PositionSide
    price: Decimal
    qty: Decimal
    filled_qty: Decimal

    def __attrs_post_init__(self) -> None:
        _check_open_order(self)
        if self.filled_qty >= self.qty:
            raise _refuse(
                self,
                "filled_qty",
                self.filled_qty,
                f"a resting order has filled less than its qty {self.qty}",
            )


@attrs.frozen(kw_only=True)
class PositionReport:
    """One position in a positions report; ``qty`` is signed (short < 0)."""

    symbol: str
    position_side: PositionSide
    qty: Decimal
    entry_price: Decimal

    __attrs_post_init__ = _validate


# --- session and operator -------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Started:
    """The shell started (or restarted) the bot: the core reconciles with every venue."""

    ts: int

    __attrs_post_init__ = _validate


@attrs.frozen(kw_only=True)
class HaltRequested:
    """An operator (or the shell, for ``cause``) asked the bot to stop trading; the orders that
    could add exposure are canceled. ``cause`` is ``None`` in journals written before halt
    causes existed: the kernel then derives it from ``reason``."""

    ts: int
    reason: str = "operator"
    cause: HaltCause | None = None

    __attrs_post_init__ = _validate


@attrs.frozen(kw_only=True)
class ResumeRequested:
    """An operator asked a halted bot to trade again."""

    ts: int

    __attrs_post_init__ = _validate


@attrs.frozen(kw_only=True)
class FlattenRequested:
    """An operator asked the bot to cancel everything, close every position and halt."""

    ts: int

    __attrs_post_init__ = _validate


@attrs.frozen(kw_only=True)
class TimerFired:
    """A timer started by a :class:`~gridcore.commands.StartTimer` command fired."""

    ts: int
    timer_id: str

    __attrs_post_init__ = _validate


# --- market data ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class QuoteTicked:
    """Top of book changed: best bid and best ask (``0 < bid <= ask``, checked when built)."""

    ts: int
    venue: str
    symbol: str
    bid: Decimal
    ask: Decimal

    def __attrs_post_init__(self) -> None:
        # The hot path (one per tick): plain comparisons only. Validated here, where a shell
        # builds it from a venue message, so that a bad quote becomes a MessageMalformed in the
        # shell instead of a division by zero or a poisoned mid in the core.
        bid, ask, ts = self.bid, self.ask, self.ts
        if not _quote_ok(ts, self.venue, self.symbol, bid, ask):
            _validate(self)  # names the field that is wrong
            raise InvalidEvent(
                f"QuoteTicked {self.venue}/{self.symbol} at {ts}: need bid <= ask, got bid "
                f"{bid}, ask {ask}; a shell reports such a venue message as MessageMalformed"
            )

    @classmethod
    def of(cls, ts: int, venue: str, symbol: str, bid: Decimal, ask: Decimal) -> QuoteTicked:
        """``QuoteTicked(ts=ts, venue=venue, symbol=symbol, bid=bid, ask=ask)``, positional and
        about twice as fast: the same checks, without the keyword handling of the generated
        ``__init__``. For loaders that build a quote per line of a file; a quote that fails
        the checks raises exactly what the constructor raises."""
        if not _quote_ok(ts, venue, symbol, bid, ask):
            return cls(ts=ts, venue=venue, symbol=symbol, bid=bid, ask=ask)
        quote: QuoteTicked = _NEW(cls)
        _SET_QTS(quote, ts)
        _SET_QVENUE(quote, venue)
        _SET_QSYMBOL(quote, symbol)
        _SET_QBID(quote, bid)
        _SET_QASK(quote, ask)
        return quote

    @property
    def mid(self) -> Decimal:
        """``(bid + ask) / 2`` in gridcore's decimal context."""
        return CTX.divide(CTX.add(self.bid, self.ask), _TWO)


_NEW = object.__new__
_SET_QTS, _SET_QVENUE, _SET_QSYMBOL, _SET_QBID, _SET_QASK = (
    getattr(QuoteTicked, f.name).__set__ for f in attrs.fields(QuoteTicked)
)


@attrs.frozen(kw_only=True)
class FundingRateUpdated:
    """The venue published a funding rate (a fraction per interval) for an instrument."""

    ts: int
    venue: str
    symbol: str
    rate: Decimal
    next_funding_ts: int

    __attrs_post_init__ = _validate


@attrs.frozen(kw_only=True)
class FundingPaid:
    """A funding payment was booked; ``amount`` is in quote, positive when received."""

    ts: int
    venue: str
    symbol: str
    position_side: PositionSide
    amount: Decimal
    payment_id: str

    __attrs_post_init__ = _validate


# --- feed health ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class FeedDisconnected:
    """A venue's stream went down: nothing it would have said can be trusted as complete."""

    ts: int
    venue: str
    reason: str = ""

    __attrs_post_init__ = _validate


@attrs.frozen(kw_only=True)
class FeedReconnected:
    """A venue's stream is back: the core reconciles (fills since the last seen, orders, positions)."""

    ts: int
    venue: str

    __attrs_post_init__ = _validate


@attrs.frozen(kw_only=True)
class MessageMalformed:
    """A venue message could not be parsed; the shell kept the loop alive and says so here."""

    ts: int
    venue: str
    detail: str
    source: Source = Source.STREAM

    __attrs_post_init__ = _validate


# --- order lifecycle ------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class OrderAccepted:
    """The venue accepted (rests) the order named ``cloid``."""

    ts: int
    venue: str
    cloid: str
    venue_order_id: str
    source: Source = Source.STREAM
    command_id: int | None = None

    __attrs_post_init__ = _validate


@attrs.frozen(kw_only=True)
class OrderRejected:
    """The venue refused the order named ``cloid``; it never rested."""

    ts: int
    venue: str
    cloid: str
    reason: str
    source: Source = Source.STREAM
    command_id: int | None = None

    __attrs_post_init__ = _validate


@attrs.frozen(kw_only=True)
class OrderPartiallyFilled:
    """The venue reports a fill that leaves the order resting."""

    ts: int
    fill: Fill
    source: Source = Source.STREAM

    __attrs_post_init__ = _validate


@attrs.frozen(kw_only=True)
class OrderFilled:
    """The venue reports a fill after which it considers the order done."""

    ts: int
    fill: Fill
    source: Source = Source.STREAM

    __attrs_post_init__ = _validate


@attrs.frozen(kw_only=True)
class OrderCanceled:
    """The order is canceled at the venue (by request, IOC expiry, or the venue itself)."""

    ts: int
    venue: str
    cloid: str
    venue_order_id: str | None = None
    reason: str = ""
    source: Source = Source.STREAM
    command_id: int | None = None

    __attrs_post_init__ = _validate


@attrs.frozen(kw_only=True)
class CancelRejected:
    """The venue refused a cancel (already filled, unknown order, ...)."""

    ts: int
    venue: str
    cloid: str
    reason: str
    source: Source = Source.REST
    command_id: int | None = None

    __attrs_post_init__ = _validate


@attrs.frozen(kw_only=True)
class OrderModified:
    """The venue amended the order's price and/or quantity (``qty`` is the new total size).

    ``venue_order_id`` is the id the venue gives the amended order when it re-ids it (some
    venues do); the order keeps its cloid either way."""

    ts: int
    venue: str
    cloid: str
    price: Decimal
    qty: Decimal
    source: Source = Source.REST
    command_id: int | None = None
    venue_order_id: str | None = None

    __attrs_post_init__ = _validate


@attrs.frozen(kw_only=True)
class ModifyRejected:
    """The venue refused a modify; the order rests as it was."""

    ts: int
    venue: str
    cloid: str
    reason: str
    source: Source = Source.REST
    command_id: int | None = None

    __attrs_post_init__ = _validate


# --- reports --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class OrderStatusReported:
    """The venue's answer to a status request for one order."""

    ts: int
    venue: str
    cloid: str
    status: ReportedStatus
    venue_order_id: str | None = None
    filled_qty: Decimal = Decimal(0)
    source: Source = Source.REST
    command_id: int | None = None

    __attrs_post_init__ = _validate


@attrs.frozen(kw_only=True)
class OpenOrdersReported:
    """Every order resting at the venue when the report was taken."""

    ts: int
    venue: str
    orders: tuple[OpenOrder, ...]
    source: Source = Source.REST
    command_id: int | None = None

    __attrs_post_init__ = _validate


@attrs.frozen(kw_only=True)
class PositionsReported:
    """Every non-zero position at the venue (instruments absent from it are flat)."""

    ts: int
    venue: str
    positions: tuple[PositionReport, ...]
    source: Source = Source.REST
    command_id: int | None = None

    __attrs_post_init__ = _validate


@attrs.frozen(kw_only=True)
class BalanceReported:
    """Account value at the venue, in quote: ``equity`` (total) and ``available`` (free)."""

    ts: int
    venue: str
    asset: str
    equity: Decimal
    available: Decimal
    source: Source = Source.REST
    command_id: int | None = None

    __attrs_post_init__ = _validate


@attrs.frozen(kw_only=True)
class FillsReported:
    """Fills at the venue since ``since`` (ms), as answered by a fills request."""

    ts: int
    venue: str
    since: int
    fills: tuple[Fill, ...]
    source: Source = Source.REST
    command_id: int | None = None

    __attrs_post_init__ = _validate


@attrs.frozen(kw_only=True)
class FundingReported:
    """Funding payments booked at the venue since ``since`` (ms), as answered by a funding
    request (the venue's funding-history endpoint). Each payment is a :class:`FundingPaid` of
    this venue; its ``payment_id`` is the dedup key, so a payment also seen on the stream is
    booked once."""

    ts: int
    venue: str
    since: int
    payments: tuple[FundingPaid, ...]
    source: Source = Source.REST
    command_id: int | None = None

    __attrs_post_init__ = _validate


# --- command results ------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CommandFailed:
    """A command did not complete. ``not_applied`` is True only when the shell knows the venue
    never acted on it (refused before sending, or an explicit error reply); otherwise the outcome
    is unknown and the core treats it like a timeout."""

    ts: int
    command_id: int
    reason: str
    not_applied: bool = False

    __attrs_post_init__ = _validate


@attrs.frozen(kw_only=True)
class CommandTimedOut:
    """A command got no answer in time; its outcome at the venue is unknown."""

    ts: int
    command_id: int

    __attrs_post_init__ = _validate


Event = (
    Started
    | HaltRequested
    | ResumeRequested
    | FlattenRequested
    | TimerFired
    | QuoteTicked
    | FundingRateUpdated
    | FundingPaid
    | FeedDisconnected
    | FeedReconnected
    | MessageMalformed
    | OrderAccepted
    | OrderRejected
    | OrderPartiallyFilled
    | OrderFilled
    | OrderCanceled
    | CancelRejected
    | OrderModified
    | ModifyRejected
    | OrderStatusReported
    | OpenOrdersReported
    | PositionsReported
    | BalanceReported
    | FillsReported
    | FundingReported
    | CommandFailed
    | CommandTimedOut
)
"""The closed union of everything the core can be told."""


_TS = ("ts", _ts)
_VENUE = ("venue", _name)
_SYMBOL = ("symbol", _name)
_CLOID = ("cloid", _name)
_SOURCE = ("source", _member(Source))
_CID = ("command_id", _optional_command_id)

#: Every event class (and event part) to the rules its fields must satisfy when built: one
#: ``(field, check)`` pair per field. A check raises :class:`~gridcore.errors.InvalidEvent`.
FIELD_RULES: Mapping[type, tuple[tuple[str, _Rule], ...]] = {
    Fill: (
        _TS,
        _VENUE,
        _SYMBOL,
        ("fill_id", _name),
        ("cloid", _optional_name),
        ("venue_order_id", _optional_name),
        ("side", _member(Side)),
        ("position_side", _member(PositionSide)),
        ("price", _positive),
        ("qty", _positive),
        ("fee", _signed),
        ("is_maker", _flag),
    ),
    OpenOrder: (
        ("cloid", _optional_name),
        ("venue_order_id", _name),
        _SYMBOL,
        ("side", _member(Side)),
        ("position_side", _member(PositionSide)),
        ("price", _positive),
        ("qty", _positive),
        ("filled_qty", _non_negative),
    ),
    PositionReport: (
        _SYMBOL,
        ("position_side", _member(PositionSide)),
        ("qty", _signed),
        ("entry_price", _non_negative),
    ),
    Started: (_TS,),
    HaltRequested: (_TS, ("reason", _text), ("cause", _optional_cause)),
    ResumeRequested: (_TS,),
    FlattenRequested: (_TS,),
    TimerFired: (_TS, ("timer_id", _name)),
    QuoteTicked: (_TS, _VENUE, _SYMBOL, ("bid", _positive), ("ask", _positive)),
    FundingRateUpdated: (
        _TS,
        _VENUE,
        _SYMBOL,
        ("rate", _signed),
        ("next_funding_ts", _ts),
    ),
    FundingPaid: (
        _TS,
        _VENUE,
        _SYMBOL,
        ("position_side", _member(PositionSide)),
        ("amount", _signed),
        ("payment_id", _name),
    ),
    FeedDisconnected: (_TS, _VENUE, ("reason", _text)),
    FeedReconnected: (_TS, _VENUE),
    MessageMalformed: (_TS, _VENUE, ("detail", _text), _SOURCE),
    OrderAccepted: (_TS, _VENUE, _CLOID, ("venue_order_id", _name), _SOURCE, _CID),
    OrderRejected: (_TS, _VENUE, _CLOID, ("reason", _text), _SOURCE, _CID),
    OrderPartiallyFilled: (_TS, ("fill", _member_of(Fill)), _SOURCE),
    OrderFilled: (_TS, ("fill", _member_of(Fill)), _SOURCE),
    OrderCanceled: (
        _TS,
        _VENUE,
        _CLOID,
        ("venue_order_id", _optional_name),
        ("reason", _text),
        _SOURCE,
        _CID,
    ),
    CancelRejected: (_TS, _VENUE, _CLOID, ("reason", _text), _SOURCE, _CID),
    OrderModified: (
        _TS,
        _VENUE,
        _CLOID,
        ("price", _positive),
        ("qty", _positive),
        _SOURCE,
        _CID,
        ("venue_order_id", _optional_name),
    ),
    ModifyRejected: (_TS, _VENUE, _CLOID, ("reason", _text), _SOURCE, _CID),
    OrderStatusReported: (
        _TS,
        _VENUE,
        _CLOID,
        ("status", _member(ReportedStatus)),
        ("venue_order_id", _optional_name),
        ("filled_qty", _non_negative),
        _SOURCE,
        _CID,
    ),
    OpenOrdersReported: (_TS, _VENUE, ("orders", _tuple_of(OpenOrder)), _SOURCE, _CID),
    PositionsReported: (_TS, _VENUE, ("positions", _tuple_of(PositionReport)), _SOURCE, _CID),
    BalanceReported: (
        _TS,
        _VENUE,
        ("asset", _text),
        ("equity", _signed),
        ("available", _signed),
        _SOURCE,
        _CID,
    ),
    FillsReported: (
        _TS,
        _VENUE,
        ("since", _since),
        ("fills", _tuple_of(Fill)),
        _SOURCE,
        _CID,
    ),
    FundingReported: (
        _TS,
        _VENUE,
        ("since", _since),
        ("payments", _tuple_of(FundingPaid)),
        _SOURCE,
        _CID,
    ),
    CommandFailed: (_TS, ("command_id", _command_id), ("reason", _text), ("not_applied", _flag)),
    CommandTimedOut: (_TS, ("command_id", _command_id)),
}


# --- the fast check --------------------------------------------------------------------------
# Checking a value rule by rule costs a Python call per field; most events are valid. So each
# class runs one generated function that tests all its fields with the plain comparisons of
# _FAST (the same rules, as conditions) and, only when that fails, runs _validate, which
# names the field with the message the rule gives. The classes whose __attrs_post_init__ is
# _validate get that function in its place. tests/property/test_event_fast_check.py holds each
# class's condition equal to its rules, for valid and invalid values.


def _fast_condition(cls: type) -> tuple[str, str, dict[str, object]]:
    """``(loads, condition, names)``: the statement reading every field of ``self`` into a
    local ``_0``, ``_1``, ..., the condition on them that holds exactly when every rule of
    ``cls`` passes, and the names it uses beyond this module's."""
    fields: list[str] = []
    parts: list[str] = []
    scope: dict[str, object] = {}
    for i, (name, rule) in enumerate(FIELD_RULES[cls]):
        text, names = _FAST[rule]
        fields.append(f"self.{name}")
        parts.append(f"({text.replace('{v}', f'_{i}')})")
        scope.update(names)
    local = "".join(f"_{i}, " for i in range(len(fields)))
    return f"{local}= {', '.join(fields)},", " and ".join(parts), scope


def _generated(cls: type, body: str) -> Any:
    loads, condition, scope = _fast_condition(cls)
    namespace: dict[str, Any] = {**globals(), **scope}
    exec(body.replace("LOADS", loads).replace("CONDITION", condition), namespace)
    return namespace["generated"]


def fast_check(cls: type) -> Callable[[object], bool]:
    """Whether every rule of ``FIELD_RULES[cls]`` passes for an instance, in one function (a
    NaN that makes a comparison raise counts as failing). For tests and tools: the classes
    validate with the same condition."""
    check: Callable[[object], bool] = _generated(
        cls,
        "def generated(self):\n"
        "    LOADS\n"
        "    try:\n"
        "        return CONDITION\n"
        "    except ArithmeticError:\n"
        "        return False\n",
    )
    return check


def _checked(cls: type) -> Callable[[object], None]:
    """The fast check of ``cls``, falling back to :func:`_validate` for the message."""
    check: Callable[[object], None] = _generated(
        cls,
        "def generated(self):\n"
        "    LOADS\n"
        "    try:\n"
        "        if CONDITION:\n"
        "            return\n"
        "    except ArithmeticError:\n"
        "        pass\n"
        "    _validate(self)\n",
    )
    check.__qualname__ = f"{cls.__name__}.__attrs_post_init__"
    return check


for _cls in FIELD_RULES:
    if _cls.__dict__.get("__attrs_post_init__") is _validate:
        setattr(_cls, "__attrs_post_init__", _checked(_cls))  # noqa: B010 (typed as any class)
_check_open_order = _checked(OpenOrder)


def _quote_ok(ts: object, venue: object, symbol: object, bid: object, ask: object) -> bool:
    """A quote's fields pass their rules (``FIELD_RULES[QuoteTicked]``) and ``bid <= ask``: one
    call per tick, on the values before the quote is built (``QuoteTicked.of``).

    Written out rather than generated from the rules, because with ``bid <= ask`` known the
    price rules need three comparisons, not five: ``MIN_POSITIVE <= bid <= ask <= MAX_MAGNITUDE``
    says all that ``MIN_POSITIVE <= bid <= MAX_MAGNITUDE``, the same for the ask, and ``bid <=
    ask`` say. A NaN makes a comparison raise, which counts as failing, as in the rules.
    tests/property/test_quote_check.py holds it equal to the rules on drawn values."""
    try:
        return (
            type(ts) is int
            and TS_MIN <= ts < TS_MAX
            and type(venue) is str
            and venue != ""
            and type(symbol) is str
            and symbol != ""
            and type(bid) is Decimal
            and type(ask) is Decimal
            and MIN_POSITIVE <= bid <= ask <= MAX_MAGNITUDE
        )
    except ArithmeticError:
        return False


assert [name for name, _rule in FIELD_RULES[QuoteTicked]] == ["ts", "venue", "symbol", "bid", "ask"]


# --- builders for hot loops ------------------------------------------------------------------
# A fill and an acknowledgement built as QuoteTicked.of builds a quote (the simulated exchange
# builds one per execution): the rules of FIELD_RULES checked with plain comparisons, and only a
# value that fails them goes through the checked constructor, which raises what it always raised.
# tests/property/test_sim_exchange_fast.py holds each builder equal to the checked constructor.


def _setters(cls: type, names: tuple[str, ...]) -> tuple[Any, ...]:
    fields = attrs.fields(cls)
    if tuple(f.name for f in fields) != names:  # the builders below name every field
        raise TypeError(f"{cls.__name__} has fields {[f.name for f in fields]}, not {names}")
    return tuple(getattr(cls, name).__set__ for name in names)


_FILL_SET = _setters(
    Fill,
    (
        "ts",
        "venue",
        "symbol",
        "fill_id",
        "cloid",
        "venue_order_id",
        "side",
        "position_side",
        "price",
        "qty",
        "fee",
        "is_maker",
    ),
)
_FILLED_SET = _setters(OrderFilled, ("ts", "fill", "source"))
_PARTIAL_SET = _setters(OrderPartiallyFilled, ("ts", "fill", "source"))
_ACCEPTED_SET = _setters(
    OrderAccepted, ("ts", "venue", "cloid", "venue_order_id", "source", "command_id")
)


def _name_ok(name: object) -> bool:
    return type(name) is str and name != ""


def fill_of(
    ts: int,
    venue: str,
    symbol: str,
    fill_id: str,
    cloid: str,
    venue_order_id: str,
    side: Side,
    position_side: PositionSide,
    price: Decimal,
    qty: Decimal,
    fee: Decimal,
    is_maker: bool,
) -> Fill:
    """``Fill(...)``, its rules checked with plain comparisons."""
    try:
        ok = (
            type(ts) is int
            and TS_MIN <= ts < TS_MAX
            and _name_ok(venue)
            and _name_ok(symbol)
            and _name_ok(fill_id)
            and _name_ok(cloid)
            and _name_ok(venue_order_id)
            and type(side) is Side
            and type(position_side) is PositionSide
            and type(price) is Decimal
            and type(qty) is Decimal
            and type(fee) is Decimal
            and type(is_maker) is bool
            and MIN_POSITIVE <= price <= MAX_MAGNITUDE
            and MIN_POSITIVE <= qty <= MAX_MAGNITUDE
            and -MAX_MAGNITUDE <= fee <= MAX_MAGNITUDE
        )
    except ArithmeticError:  # NaN: the constructor says what is wrong
        ok = False
    if not ok:
        return Fill(
            ts=ts,
            venue=venue,
            symbol=symbol,
            fill_id=fill_id,
            cloid=cloid,
            venue_order_id=venue_order_id,
            side=side,
            position_side=position_side,
            price=price,
            qty=qty,
            fee=fee,
            is_maker=is_maker,
        )
    fill: Fill = _NEW(Fill)
    values = (ts, venue, symbol, fill_id, cloid, venue_order_id, side, position_side)
    for put, value in zip(_FILL_SET, (*values, price, qty, fee, is_maker), strict=True):
        put(fill, value)
    return fill


def stream_fill_event(cls: type[OrderFilled | OrderPartiallyFilled], ts: int, fill: Fill) -> Event:
    """``cls(ts=ts, fill=fill, source=Source.STREAM)`` of a fill built at ``ts`` (so checked)."""
    event: OrderFilled | OrderPartiallyFilled = _NEW(cls)
    set_ts, set_fill, set_source = _FILLED_SET if cls is OrderFilled else _PARTIAL_SET
    set_ts(event, ts)
    set_fill(event, fill)
    set_source(event, Source.STREAM)
    return event


def accepted_of(ts: int, venue: str, cloid: str, oid: str, command_id: int | None) -> OrderAccepted:
    """``OrderAccepted(..., source=Source.REST, ...)``, its rules checked with plain comparisons."""
    if not (
        type(ts) is int
        and TS_MIN <= ts < TS_MAX
        and _name_ok(venue)
        and _name_ok(cloid)
        and _name_ok(oid)
        and (command_id is None or (type(command_id) is int and 0 <= command_id < _MAX_ID))
    ):
        return OrderAccepted(
            ts=ts,
            venue=venue,
            cloid=cloid,
            venue_order_id=oid,
            source=Source.REST,
            command_id=command_id,
        )
    event: OrderAccepted = _NEW(OrderAccepted)
    for put, value in zip(
        _ACCEPTED_SET, (ts, venue, cloid, oid, Source.REST, command_id), strict=True
    ):
        put(event, value)
    return event
