"""Commands: intents the shell carries out, in the imperative.

Every command has a ``command_id`` the core derived from its own state. For order and request
commands the shell guarantees exactly one terminal result event carrying that id: the venue's
answer (``OrderAccepted``, ``PositionsReported``, ...), ``CommandFailed`` or ``CommandTimedOut``.
``StartTimer`` ends in ``TimerFired`` unless canceled; ``Notify`` and ``Halt`` are done when the
shell has carried them out and produce no event.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from gridcore._enum import CoreEnum
from gridcore.instruments import PositionSide, Side, TimeInForce

__all__ = [
    "Batch",
    "CancelOrder",
    "CancelTimer",
    "Command",
    "Halt",
    "Level",
    "ModifyOrder",
    "Notify",
    "OrderCommand",
    "PlaceOrder",
    "RequestBalances",
    "RequestCommand",
    "RequestFills",
    "RequestFunding",
    "RequestOpenOrders",
    "RequestOrderStatus",
    "RequestPositions",
    "StartTimer",
]


class Level(CoreEnum):
    """How loudly a notice should be said."""

    INFO = "info"  # worth a line in the log
    WARNING = "warning"  # something was refused or repaired
    ALERT = "alert"  # a person should look now


@attrs.frozen(kw_only=True)
class PlaceOrder:
    """Place a limit order named ``cloid``; ``qty`` in base units, ``price`` in quote."""

    command_id: int
    venue: str
    symbol: str
    cloid: str
    side: Side
    position_side: PositionSide
    qty: Decimal
    price: Decimal
    tif: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False


@attrs.frozen(kw_only=True)
class CancelOrder:
    """Cancel the order named ``cloid`` (``venue_order_id`` when the core knows it)."""

    command_id: int
    venue: str
    symbol: str
    cloid: str
    venue_order_id: str | None = None


@attrs.frozen(kw_only=True)
class ModifyOrder:
    """Amend a resting order's price and quantity."""

    command_id: int
    venue: str
    symbol: str
    cloid: str
    venue_order_id: str | None
    price: Decimal
    qty: Decimal


OrderCommand = PlaceOrder | CancelOrder | ModifyOrder


@attrs.frozen(kw_only=True)
class Batch:
    """Several order commands for one venue, to be sent together where the venue allows.

    The batch itself has no result event: each inner command gets its own.
    """

    command_id: int
    venue: str
    commands: tuple[OrderCommand, ...]


@attrs.frozen(kw_only=True)
class RequestPositions:
    """Ask the venue for every position; answered by ``PositionsReported``."""

    command_id: int
    venue: str


@attrs.frozen(kw_only=True)
class RequestBalances:
    """Ask the venue for the account value; answered by ``BalanceReported``."""

    command_id: int
    venue: str


@attrs.frozen(kw_only=True)
class RequestOpenOrders:
    """Ask the venue for every resting order; answered by ``OpenOrdersReported``."""

    command_id: int
    venue: str


@attrs.frozen(kw_only=True)
class RequestFills:
    """Ask the venue for every fill at or after ``since`` (ms); answered by ``FillsReported``."""

    command_id: int
    venue: str
    since: int


@attrs.frozen(kw_only=True)
class RequestOrderStatus:
    """Ask the venue for one order's status; answered by ``OrderStatusReported``."""

    command_id: int
    venue: str
    symbol: str
    cloid: str
    venue_order_id: str | None = None


@attrs.frozen(kw_only=True)
class RequestFunding:
    """Ask the venue for every funding payment booked at or after ``since`` (ms), on ``symbol``
    or on every instrument when it is ``None``; answered by ``FundingReported``. A venue that
    keeps no funding history answers ``CommandFailed(not_applied=True)`` (the core then stops
    asking it until the next start)."""

    command_id: int
    venue: str
    since: int
    symbol: str | None = None


RequestCommand = (
    RequestPositions
    | RequestBalances
    | RequestOpenOrders
    | RequestFills
    | RequestOrderStatus
    | RequestFunding
)


@attrs.frozen(kw_only=True)
class StartTimer:
    """Fire ``TimerFired(timer_id)`` at ``fire_at`` (ms), then every ``every_ms`` after that
    when it is set, until canceled; starting an id again replaces it."""

    command_id: int
    timer_id: str
    fire_at: int
    every_ms: int | None = None


@attrs.frozen(kw_only=True)
class CancelTimer:
    """Forget the timer ``timer_id`` if it has not fired."""

    command_id: int
    timer_id: str


@attrs.frozen(kw_only=True)
class Notify:
    """Say something to the operator; ``code`` is a stable machine-readable tag."""

    command_id: int
    level: Level
    code: str
    message: str


@attrs.frozen(kw_only=True)
class Halt:
    """The core stopped trading; the shell should stop feeds that only serve trading."""

    command_id: int
    reason: str


Command = (
    PlaceOrder
    | CancelOrder
    | ModifyOrder
    | Batch
    | RequestPositions
    | RequestBalances
    | RequestOpenOrders
    | RequestFills
    | RequestOrderStatus
    | RequestFunding
    | StartTimer
    | CancelTimer
    | Notify
    | Halt
)
"""The closed union of everything the core can ask for."""
