"""Events: facts that already happened, in the past tense.

Every event carries ``ts``, integer milliseconds since the Unix epoch, stamped by whoever saw it
happen (the venue when it says, the shell otherwise). Events that come from a venue name it and
say where they came from (:class:`~gridcore.instruments.Source`). Events that answer a command
carry that command's ``command_id``; the same kind of event pushed by a stream carries ``None``.

``Event`` is a closed union: the reducer matches on it and mypy proves every case is handled.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from gridcore._enum import CoreEnum
from gridcore.instruments import PositionSide, Side, Source
from gridcore.numbers import CTX

__all__ = [
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
    "HaltRequested",
    "MessageMalformed",
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


@attrs.frozen(kw_only=True)
class PositionReport:
    """One position in a positions report; ``qty`` is signed (short < 0)."""

    symbol: str
    position_side: PositionSide
    qty: Decimal
    entry_price: Decimal


# --- session and operator -------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Started:
    """The shell started (or restarted) the bot: the core reconciles with every venue."""

    ts: int


@attrs.frozen(kw_only=True)
class HaltRequested:
    """An operator asked the bot to stop trading (open orders are canceled)."""

    ts: int
    reason: str = "operator"


@attrs.frozen(kw_only=True)
class ResumeRequested:
    """An operator asked a halted bot to trade again."""

    ts: int


@attrs.frozen(kw_only=True)
class FlattenRequested:
    """An operator asked the bot to cancel everything, close every position and halt."""

    ts: int


@attrs.frozen(kw_only=True)
class TimerFired:
    """A timer started by a :class:`~gridcore.commands.StartTimer` command fired."""

    ts: int
    timer_id: str


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
        # Validated here, where a shell builds it from a venue message, so that a bad quote
        # becomes a MessageMalformed in the shell instead of a division by zero in the core.
        if not (0 < self.bid <= self.ask):
            raise ValueError(
                f"quote {self.venue}/{self.symbol} at {self.ts}: need 0 < bid <= ask, "
                f"got bid {self.bid}, ask {self.ask}"
            )

    @property
    def mid(self) -> Decimal:
        """``(bid + ask) / 2`` in gridcore's decimal context."""
        return CTX.divide(CTX.add(self.bid, self.ask), _TWO)


@attrs.frozen(kw_only=True)
class FundingRateUpdated:
    """The venue published a funding rate (a fraction per interval) for an instrument."""

    ts: int
    venue: str
    symbol: str
    rate: Decimal
    next_funding_ts: int


@attrs.frozen(kw_only=True)
class FundingPaid:
    """A funding payment was booked; ``amount`` is in quote, positive when received."""

    ts: int
    venue: str
    symbol: str
    position_side: PositionSide
    amount: Decimal
    payment_id: str


# --- feed health ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class FeedDisconnected:
    """A venue's stream went down: nothing it would have said can be trusted as complete."""

    ts: int
    venue: str
    reason: str = ""


@attrs.frozen(kw_only=True)
class FeedReconnected:
    """A venue's stream is back: the core reconciles (fills since the last seen, orders, positions)."""

    ts: int
    venue: str


@attrs.frozen(kw_only=True)
class MessageMalformed:
    """A venue message could not be parsed; the shell kept the loop alive and says so here."""

    ts: int
    venue: str
    detail: str
    source: Source = Source.STREAM


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


@attrs.frozen(kw_only=True)
class OrderRejected:
    """The venue refused the order named ``cloid``; it never rested."""

    ts: int
    venue: str
    cloid: str
    reason: str
    source: Source = Source.STREAM
    command_id: int | None = None


@attrs.frozen(kw_only=True)
class OrderPartiallyFilled:
    """The venue reports a fill that leaves the order resting."""

    ts: int
    fill: Fill
    source: Source = Source.STREAM


@attrs.frozen(kw_only=True)
class OrderFilled:
    """The venue reports a fill after which it considers the order done."""

    ts: int
    fill: Fill
    source: Source = Source.STREAM


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


@attrs.frozen(kw_only=True)
class CancelRejected:
    """The venue refused a cancel (already filled, unknown order, ...)."""

    ts: int
    venue: str
    cloid: str
    reason: str
    source: Source = Source.REST
    command_id: int | None = None


@attrs.frozen(kw_only=True)
class OrderModified:
    """The venue amended the order's price and/or quantity."""

    ts: int
    venue: str
    cloid: str
    price: Decimal
    qty: Decimal
    source: Source = Source.REST
    command_id: int | None = None


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


@attrs.frozen(kw_only=True)
class OpenOrdersReported:
    """Every order resting at the venue when the report was taken."""

    ts: int
    venue: str
    orders: tuple[OpenOrder, ...]
    source: Source = Source.REST
    command_id: int | None = None


@attrs.frozen(kw_only=True)
class PositionsReported:
    """Every non-zero position at the venue (instruments absent from it are flat)."""

    ts: int
    venue: str
    positions: tuple[PositionReport, ...]
    source: Source = Source.REST
    command_id: int | None = None


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


@attrs.frozen(kw_only=True)
class FillsReported:
    """Fills at the venue since ``since`` (ms), as answered by a fills request."""

    ts: int
    venue: str
    since: int
    fills: tuple[Fill, ...]
    source: Source = Source.REST
    command_id: int | None = None


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


@attrs.frozen(kw_only=True)
class CommandTimedOut:
    """A command got no answer in time; its outcome at the venue is unknown."""

    ts: int
    command_id: int


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
    | OrderStatusReported
    | OpenOrdersReported
    | PositionsReported
    | BalanceReported
    | FillsReported
    | CommandFailed
    | CommandTimedOut
)
"""The closed union of everything the core can be told."""
