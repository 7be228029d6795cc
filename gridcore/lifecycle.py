"""Order lifecycle: every rule of how an order's status moves, in one table.

Theory of operation
-------------------
The core names every order with a client order id (cloid) before the command that places it
leaves the core, so every venue message about it, in whatever order it arrives (stream update
before the REST ack, fill before the accept, cancel ack after a fill), can be matched and applied.

An order's status moves only through :data:`TRANSITIONS`, a ``status -> trigger -> (status,
effect)`` table. Triggers come from the venue (``ACCEPTED``, ``FILL_PARTIAL``, ``REPORT_OPEN``,
...) or from the core itself (``CANCEL_SENT``, ``PLACE_UNCERTAIN``, ...). Every venue trigger has
an entry in every status, because a venue may say anything at any time and a fact must never
crash the loop: surprising combinations carry the ``ANOMALY`` effect (a notice and a status
request, the venue's answer decides). A core trigger missing from the table is a bug in the caller
and raises :class:`~gridcore.errors.ContractError`.

Two rules complete the table:

* Fills are classified by exact remaining quantity: a fill that leaves zero remaining is
  ``FILL_COMPLETE``, any other ``FILL_PARTIAL``, whatever the venue's wording, except that a venue
  saying "filled" is itself ``FILL_COMPLETE``. No threshold (failure `partial-fill-threshold`).
* A target of ``OPEN`` for an order with a filled quantity becomes ``PARTIALLY_FILLED``.

A modify is a trigger pair of its own: the kernel sends ``MODIFY_SENT`` (only while the order
rests, one at a time; the order keeps its status and remembers the asked ``(price, qty)`` in
``modify_to``), and the venue answers ``MODIFIED`` (the new values are applied, the cloid stays,
whatever venue order id the venue gives the amended order) or ``MODIFY_REJECTED`` (nothing
changes). A modify whose outcome is unknown is not guessed at: the kernel cancels the order.

Command results (``PLACE_UNCERTAIN``, ``PLACE_FAILED``, ``CANCEL_UNCERTAIN``) are facts too and
are defined in every status; only ``CANCEL_SENT`` and ``MODIFY_SENT``, which the kernel itself
decides, can be a contract error (canceling an order that is already done, modifying one that
does not rest).

A timeout never proves a rejection (``PLACE_UNCERTAIN`` leads to ``IN_DOUBT`` and a status
request); a rejected cancel never leaves an order forgotten (``CANCEL_FAILED`` and a status
request, failure `leaked-cancel`); a fill after a cancel is applied.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from decimal import Decimal

import attrs

from gridcore._enum import CoreEnum
from gridcore.errors import ContractError
from gridcore.instruments import PositionSide, Side, TimeInForce

__all__ = [
    "CORE_TRIGGERS",
    "TERMINAL",
    "TRANSITIONS",
    "Effect",
    "Order",
    "OrderStatus",
    "Trigger",
    "transition",
]


class OrderStatus(CoreEnum):
    """Where an order stands, as far as the core knows."""

    PENDING_NEW = "pending_new"  # command sent, no answer yet
    OPEN = "open"  # resting, nothing filled
    PARTIALLY_FILLED = "partially_filled"  # resting, some filled
    PENDING_CANCEL = "pending_cancel"  # cancel sent, no answer yet
    CANCEL_FAILED = "cancel_failed"  # cancel refused or lost; status requested
    FILLED = "filled"  # done: fully filled
    CANCELED = "canceled"  # done: canceled, possibly after partial fills
    REJECTED = "rejected"  # done: never rested
    IN_DOUBT = "in_doubt"  # outcome unknown (timeout); status requested

    @property
    def is_terminal(self) -> bool:
        """True for FILLED, CANCELED and REJECTED."""
        return self is _FILLED or self is _CANCELED or self is _REJECTED

    @property
    def is_live(self) -> bool:
        """True when the order may rest at the venue (every non-terminal status)."""
        return not (self is _FILLED or self is _CANCELED or self is _REJECTED)


TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED})
_FILLED, _CANCELED, _REJECTED = OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED


class Trigger(CoreEnum):
    """What happened to an order."""

    # from the venue
    ACCEPTED = "accepted"  # ack: the order rests
    REJECTED = "rejected"  # the venue refused the order
    FILL_PARTIAL = "fill_partial"  # a fill leaving a remainder
    FILL_COMPLETE = "fill_complete"  # a fill leaving nothing, or the venue says "filled"
    CANCELED = "canceled"  # the venue canceled the order
    CANCEL_REJECTED = "cancel_rejected"  # the venue refused our cancel
    REPORT_OPEN = "report_open"  # status/open-orders report: resting
    REPORT_FILLED = "report_filled"  # status report: filled
    REPORT_CANCELED = "report_canceled"  # status report: canceled
    REPORT_REJECTED = "report_rejected"  # status report: rejected
    REPORT_NOT_FOUND = "report_not_found"  # status report: the venue has no such order
    MISSING_FROM_OPEN = "missing_from_open"  # absent from an open-orders report
    # from the core
    CANCEL_SENT = "cancel_sent"  # the core emitted a cancel
    PLACE_UNCERTAIN = "place_uncertain"  # the place command timed out or failed, outcome unknown
    PLACE_FAILED = "place_failed"  # the place command failed and certainly did nothing
    CANCEL_UNCERTAIN = "cancel_uncertain"  # the cancel command timed out or failed
    MODIFY_SENT = "modify_sent"  # the core emitted a modify
    # from the venue, about a modify
    MODIFIED = "modified"  # the venue amended price and/or size as asked
    MODIFY_REJECTED = "modify_rejected"  # the venue refused the modify (or certainly did not act)


CORE_TRIGGERS = frozenset(
    {
        Trigger.CANCEL_SENT,
        Trigger.PLACE_UNCERTAIN,
        Trigger.PLACE_FAILED,
        Trigger.CANCEL_UNCERTAIN,
        Trigger.MODIFY_SENT,
    }
)


class Effect(CoreEnum):
    """What the core does besides changing the status."""

    NONE = "none"  # nothing
    STATUS = "status"  # request the order's status from the venue
    ANOMALY = "anomaly"  # say so (warning) and request the order's status


_S = OrderStatus
_T = Trigger
_N, _Q, _A = Effect.NONE, Effect.STATUS, Effect.ANOMALY

#: The order lifecycle. Anything not in it is a contract error.
TRANSITIONS: Mapping[OrderStatus, Mapping[Trigger, tuple[OrderStatus, Effect]]] = {
    _S.PENDING_NEW: {
        _T.ACCEPTED: (_S.OPEN, _N),
        _T.REJECTED: (_S.REJECTED, _N),
        _T.FILL_PARTIAL: (_S.OPEN, _N),  # stream fill before the ack (failure `stream-before-ack`)
        _T.FILL_COMPLETE: (_S.FILLED, _N),
        _T.CANCELED: (_S.CANCELED, _N),
        _T.CANCEL_REJECTED: (_S.PENDING_NEW, _N),
        _T.REPORT_OPEN: (_S.OPEN, _N),
        _T.REPORT_FILLED: (_S.FILLED, _N),
        _T.REPORT_CANCELED: (_S.CANCELED, _N),
        _T.REPORT_REJECTED: (_S.REJECTED, _N),
        _T.REPORT_NOT_FOUND: (_S.PENDING_NEW, _N),  # the place may still be on its way
        _T.MISSING_FROM_OPEN: (_S.PENDING_NEW, _N),
        _T.CANCEL_SENT: (_S.PENDING_CANCEL, _N),
        _T.PLACE_UNCERTAIN: (_S.IN_DOUBT, _Q),  # a timeout never proves rejection
        _T.PLACE_FAILED: (_S.REJECTED, _N),
        _T.CANCEL_UNCERTAIN: (_S.PENDING_NEW, _Q),
        _T.MODIFIED: (_S.OPEN, _N),  # the venue amends only what rests
        _T.MODIFY_REJECTED: (_S.PENDING_NEW, _N),
    },
    _S.OPEN: {
        _T.ACCEPTED: (_S.OPEN, _N),
        _T.REJECTED: (_S.OPEN, _A),
        _T.FILL_PARTIAL: (_S.OPEN, _N),
        _T.FILL_COMPLETE: (_S.FILLED, _N),
        _T.CANCELED: (_S.CANCELED, _N),
        _T.CANCEL_REJECTED: (_S.OPEN, _N),
        _T.REPORT_OPEN: (_S.OPEN, _N),
        _T.REPORT_FILLED: (_S.FILLED, _N),
        _T.REPORT_CANCELED: (_S.CANCELED, _N),
        _T.REPORT_REJECTED: (_S.REJECTED, _A),
        _T.REPORT_NOT_FOUND: (_S.CANCELED, _A),
        _T.MISSING_FROM_OPEN: (_S.IN_DOUBT, _Q),
        _T.CANCEL_SENT: (_S.PENDING_CANCEL, _N),
        _T.PLACE_UNCERTAIN: (_S.OPEN, _N),  # the ack arrived first; the timeout is moot
        _T.PLACE_FAILED: (_S.OPEN, _A),
        # A cancel whose outcome is unknown, for an order since found resting: ask again.
        _T.CANCEL_UNCERTAIN: (_S.OPEN, _Q),
        _T.MODIFY_SENT: (_S.OPEN, _N),  # one modify at a time: the kernel checks first
        _T.MODIFIED: (_S.OPEN, _N),
        _T.MODIFY_REJECTED: (_S.OPEN, _N),
    },
    _S.PARTIALLY_FILLED: {
        _T.ACCEPTED: (_S.OPEN, _N),
        _T.REJECTED: (_S.OPEN, _A),
        _T.FILL_PARTIAL: (_S.OPEN, _N),
        _T.FILL_COMPLETE: (_S.FILLED, _N),
        _T.CANCELED: (_S.CANCELED, _N),
        _T.CANCEL_REJECTED: (_S.OPEN, _N),
        _T.REPORT_OPEN: (_S.OPEN, _N),
        _T.REPORT_FILLED: (_S.FILLED, _N),
        _T.REPORT_CANCELED: (_S.CANCELED, _N),
        _T.REPORT_REJECTED: (_S.REJECTED, _A),
        _T.REPORT_NOT_FOUND: (_S.CANCELED, _A),
        _T.MISSING_FROM_OPEN: (_S.IN_DOUBT, _Q),
        _T.CANCEL_SENT: (_S.PENDING_CANCEL, _N),
        _T.PLACE_UNCERTAIN: (_S.OPEN, _N),
        _T.PLACE_FAILED: (_S.OPEN, _A),
        _T.CANCEL_UNCERTAIN: (_S.OPEN, _Q),
        _T.MODIFY_SENT: (_S.OPEN, _N),
        _T.MODIFIED: (_S.OPEN, _N),
        _T.MODIFY_REJECTED: (_S.OPEN, _N),
    },
    _S.PENDING_CANCEL: {
        _T.ACCEPTED: (_S.PENDING_CANCEL, _N),
        _T.REJECTED: (_S.REJECTED, _N),
        _T.FILL_PARTIAL: (_S.PENDING_CANCEL, _N),
        _T.FILL_COMPLETE: (_S.FILLED, _N),
        _T.CANCELED: (_S.CANCELED, _N),
        _T.CANCEL_REJECTED: (_S.CANCEL_FAILED, _Q),  # failure `leaked-cancel`
        _T.REPORT_OPEN: (_S.PENDING_CANCEL, _N),  # report taken before the cancel landed
        _T.REPORT_FILLED: (_S.FILLED, _N),
        _T.REPORT_CANCELED: (_S.CANCELED, _N),
        _T.REPORT_REJECTED: (_S.REJECTED, _N),
        _T.REPORT_NOT_FOUND: (_S.CANCELED, _N),  # canceled while in doubt: it never existed
        _T.MISSING_FROM_OPEN: (_S.IN_DOUBT, _Q),
        _T.CANCEL_SENT: (_S.PENDING_CANCEL, _N),
        _T.PLACE_UNCERTAIN: (_S.PENDING_CANCEL, _Q),
        _T.PLACE_FAILED: (_S.REJECTED, _N),
        _T.CANCEL_UNCERTAIN: (_S.CANCEL_FAILED, _Q),
        _T.MODIFIED: (_S.PENDING_CANCEL, _N),  # the modify landed before the cancel
        _T.MODIFY_REJECTED: (_S.PENDING_CANCEL, _N),
    },
    _S.CANCEL_FAILED: {
        _T.ACCEPTED: (_S.CANCEL_FAILED, _N),
        _T.REJECTED: (_S.REJECTED, _N),
        _T.FILL_PARTIAL: (_S.CANCEL_FAILED, _N),
        _T.FILL_COMPLETE: (_S.FILLED, _N),
        _T.CANCELED: (_S.CANCELED, _N),
        _T.CANCEL_REJECTED: (_S.CANCEL_FAILED, _N),
        _T.REPORT_OPEN: (_S.OPEN, _N),  # still resting: the strategy may cancel again
        _T.REPORT_FILLED: (_S.FILLED, _N),
        _T.REPORT_CANCELED: (_S.CANCELED, _N),
        _T.REPORT_REJECTED: (_S.REJECTED, _N),
        _T.REPORT_NOT_FOUND: (_S.CANCELED, _A),
        _T.MISSING_FROM_OPEN: (_S.IN_DOUBT, _Q),
        _T.CANCEL_SENT: (_S.PENDING_CANCEL, _N),
        _T.PLACE_UNCERTAIN: (_S.CANCEL_FAILED, _N),
        _T.PLACE_FAILED: (_S.REJECTED, _N),
        _T.CANCEL_UNCERTAIN: (_S.CANCEL_FAILED, _N),
        _T.MODIFIED: (_S.CANCEL_FAILED, _N),
        _T.MODIFY_REJECTED: (_S.CANCEL_FAILED, _N),
    },
    _S.IN_DOUBT: {
        _T.ACCEPTED: (_S.OPEN, _N),
        _T.REJECTED: (_S.REJECTED, _N),
        # A partial fill proves the order reached the venue, not that its rest is still there
        # (a fills report may bring a fill from before the open-orders report that missed it):
        # it stays in doubt until the status already requested answers (failure
        # `fill-revives-missing-order`).
        _T.FILL_PARTIAL: (_S.IN_DOUBT, _N),
        _T.FILL_COMPLETE: (_S.FILLED, _N),
        _T.CANCELED: (_S.CANCELED, _N),
        _T.CANCEL_REJECTED: (_S.IN_DOUBT, _N),
        _T.REPORT_OPEN: (_S.OPEN, _N),
        _T.REPORT_FILLED: (_S.FILLED, _N),
        _T.REPORT_CANCELED: (_S.CANCELED, _N),
        _T.REPORT_REJECTED: (_S.REJECTED, _N),
        # The shell answers a status request only after the place request's own deadline, so a
        # venue that does not know the cloid then never received it.
        _T.REPORT_NOT_FOUND: (_S.REJECTED, _N),
        _T.MISSING_FROM_OPEN: (_S.IN_DOUBT, _N),
        _T.CANCEL_SENT: (_S.PENDING_CANCEL, _N),
        _T.PLACE_UNCERTAIN: (_S.IN_DOUBT, _N),
        _T.PLACE_FAILED: (_S.REJECTED, _N),
        _T.CANCEL_UNCERTAIN: (_S.IN_DOUBT, _Q),
        _T.MODIFIED: (_S.OPEN, _N),  # amended, so it rests
        _T.MODIFY_REJECTED: (_S.IN_DOUBT, _N),
    },
    _S.FILLED: {
        _T.ACCEPTED: (_S.FILLED, _N),
        _T.REJECTED: (_S.FILLED, _A),
        _T.FILL_PARTIAL: (_S.FILLED, _N),
        _T.FILL_COMPLETE: (_S.FILLED, _N),
        _T.CANCELED: (_S.FILLED, _N),
        _T.CANCEL_REJECTED: (_S.FILLED, _N),  # the cancel raced the last fill
        _T.REPORT_OPEN: (_S.FILLED, _N),  # a report older than the fill
        _T.REPORT_FILLED: (_S.FILLED, _N),
        _T.REPORT_CANCELED: (_S.FILLED, _N),
        _T.REPORT_REJECTED: (_S.FILLED, _A),
        _T.REPORT_NOT_FOUND: (_S.FILLED, _N),
        _T.MISSING_FROM_OPEN: (_S.FILLED, _N),
        _T.PLACE_UNCERTAIN: (_S.FILLED, _N),
        _T.PLACE_FAILED: (_S.FILLED, _A),
        _T.CANCEL_UNCERTAIN: (_S.FILLED, _N),
        _T.MODIFIED: (_S.FILLED, _N),  # the amendment's ack arrived after the last fill
        _T.MODIFY_REJECTED: (_S.FILLED, _N),  # the modify raced the last fill
    },
    _S.CANCELED: {
        _T.ACCEPTED: (_S.CANCELED, _N),
        _T.REJECTED: (_S.CANCELED, _N),
        _T.FILL_PARTIAL: (_S.CANCELED, _N),  # a fill after the cancel is applied
        _T.FILL_COMPLETE: (_S.FILLED, _N),
        _T.CANCELED: (_S.CANCELED, _N),
        _T.CANCEL_REJECTED: (_S.CANCELED, _N),
        # Reports older than the cancel are dropped before they get here (see the kernel), so
        # a venue saying "resting" is news: track the order again and say so.
        _T.REPORT_OPEN: (_S.OPEN, _A),
        _T.REPORT_FILLED: (_S.FILLED, _N),
        _T.REPORT_CANCELED: (_S.CANCELED, _N),
        _T.REPORT_REJECTED: (_S.CANCELED, _N),
        _T.REPORT_NOT_FOUND: (_S.CANCELED, _N),
        _T.MISSING_FROM_OPEN: (_S.CANCELED, _N),
        _T.PLACE_UNCERTAIN: (_S.CANCELED, _N),
        _T.PLACE_FAILED: (_S.CANCELED, _N),
        _T.CANCEL_UNCERTAIN: (_S.CANCELED, _N),
        _T.MODIFIED: (_S.CANCELED, _N),  # the amendment's ack arrived after the cancel
        _T.MODIFY_REJECTED: (_S.CANCELED, _N),
    },
    _S.REJECTED: {
        # The venue is the truth: an order we believed rejected that turns out to rest is
        # tracked again (and said out loud).
        _T.ACCEPTED: (_S.OPEN, _A),
        _T.REJECTED: (_S.REJECTED, _N),
        _T.FILL_PARTIAL: (_S.OPEN, _A),
        _T.FILL_COMPLETE: (_S.FILLED, _A),
        _T.CANCELED: (_S.CANCELED, _N),
        _T.CANCEL_REJECTED: (_S.REJECTED, _N),
        _T.REPORT_OPEN: (_S.OPEN, _A),
        _T.REPORT_FILLED: (_S.FILLED, _A),
        _T.REPORT_CANCELED: (_S.CANCELED, _N),
        _T.REPORT_REJECTED: (_S.REJECTED, _N),
        _T.REPORT_NOT_FOUND: (_S.REJECTED, _N),
        _T.MISSING_FROM_OPEN: (_S.REJECTED, _N),
        _T.PLACE_UNCERTAIN: (_S.REJECTED, _N),
        _T.PLACE_FAILED: (_S.REJECTED, _N),
        _T.CANCEL_UNCERTAIN: (_S.REJECTED, _N),
        _T.MODIFIED: (_S.OPEN, _A),
        _T.MODIFY_REJECTED: (_S.REJECTED, _N),
    },
}


@attrs.frozen(kw_only=True)
class Order:
    """One order the core named, and everything it knows about it.

    ``qty`` and ``filled_qty`` are base units; ``remaining`` is their exact difference.
    ``reserved`` is the margin (quote) the risk gate holds for it while it is live.
    ``status_requested`` is True while a status request for it is outstanding. ``seq`` is the
    core's id counter when the order was named (orders named after a report was asked for are
    not judged by that report). ``ref`` is the strategy's own name for the order (any hashable
    it passed with the submit; ``None`` when it passed none). ``modify_to`` is the ``(price,
    qty)`` of the modify out for it, if any, and ``modify_reserved`` the part of ``reserved`` its
    size increase added (given back if the venue refuses it).
    """

    cloid: str
    venue: str
    symbol: str
    side: Side
    position_side: PositionSide
    qty: Decimal
    price: Decimal
    tif: TimeInForce
    reduce_only: bool
    status: OrderStatus
    created_ts: int
    updated_ts: int
    tag: str = ""
    filled_qty: Decimal = Decimal(0)
    venue_order_id: str | None = None
    reserved: Decimal = Decimal(0)
    status_requested: bool = False
    seq: int = 0
    ref: Hashable = None
    modify_to: tuple[Decimal, Decimal] | None = None
    modify_reserved: Decimal = Decimal(0)

    @property
    def remaining(self) -> Decimal:
        """Base quantity still to fill (never negative)."""
        rest = self.qty - self.filled_qty
        return rest if rest > 0 else Decimal(0)

    @property
    def is_live(self) -> bool:
        """True while the order may rest at the venue."""
        s = self.status
        return not (s is _FILLED or s is _CANCELED or s is _REJECTED)


def transition(
    order: Order, trigger: Trigger, *, filled_qty: Decimal | None = None
) -> tuple[OrderStatus, Effect]:
    """Look up where ``trigger`` takes ``order``; the OPEN/PARTIALLY_FILLED rule applied (to
    ``filled_qty`` when given: the quantity the trigger itself brings the order to).

    Raises :class:`ContractError` for a core trigger the table does not allow.
    """
    row = TRANSITIONS[order.status]
    entry = row.get(trigger)
    if entry is None:
        raise ContractError(
            f"order {order.cloid}: {trigger.name} is not allowed in status {order.status.name}; "
            f"allowed core triggers here: "
            f"{sorted(t.name for t in row if t in CORE_TRIGGERS) or 'none (terminal)'}. "
            f"Check the order's status before acting on it."
        )
    target, effect = entry
    filled = order.filled_qty if filled_qty is None else filled_qty
    if target is OrderStatus.OPEN and filled > 0:
        target = OrderStatus.PARTIALLY_FILLED
    return target, effect
