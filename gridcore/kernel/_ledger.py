"""Ledger application: how a fill reaches the books (funding payments:
:mod:`gridcore.kernel._funding`).

Rules
-----
* A fill from a venue that is not configured is ignored with a notice; one stamped more than
  ``max_clock_lead_ms`` ahead of the core's clock is booked as of the clock (its time feeds the
  dedup watermark and "fills since" requests).
* A fill seen before (same venue fill id, or at/under the dedup watermark) changes nothing
  (failure `double-counted-fill`; the dedup policy is in :mod:`gridcore.ledger`).
* A fill more than ``max_fill_deviation`` from its reference (the last mid, else the order's
  price) is not booked: the core halts (cause ``poison``) and asks the venue for fills and
  positions, so reconciliation settles the position from the venue's report.
  :func:`fill_refusal` answers the same question for the invariant catalogue.
* A booked fill moves its order by exact remaining quantity (failure `partial-fill-threshold`):
  ``FILL_COMPLETE`` when nothing remains or the venue says done, else ``FILL_PARTIAL``; an
  overfill is applied as reported with an alert; a "done" with fills missing asks for them
  (failure `missed-fills-on-reconnect`); a fill for an order the core does not track is booked
  and reported as ``unknown_fill``.
* After every booked fill the drawdown breaker is checked
  (:func:`gridcore.kernel._risk.check_drawdown`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from gridcore.commands import Level
from gridcore.events import Fill
from gridcore.halts import HaltCause
from gridcore.kernel import _orders, _plausible, _requests, _risk
from gridcore.kernel._model import State, replace
from gridcore.kernel._tx import Tx
from gridcore.lifecycle import Trigger
from gridcore.numbers import CTX
from gridcore.plausibility import fill_implausible


def fill_refusal(state: State[Any], fill: Fill) -> str | None:
    """Why ``step`` would refuse to book ``fill`` in ``state`` (:mod:`gridcore.plausibility`),
    or ``None`` when it would book it (unless it is a duplicate)."""
    config = state.config
    if fill.venue not in config.venues:
        return f"venue {fill.venue!r} is not configured"
    quote = state.quotes.get((fill.venue, fill.symbol))
    if quote is not None:
        reference: Decimal | None = quote.mid
    else:
        cloid = fill.cloid if fill.cloid in state.orders else None
        if cloid is None and fill.venue_order_id is not None:
            cloid = state.venue_oids.get((fill.venue, fill.venue_order_id))
        order = state.orders.get(cloid) if cloid is not None else None
        reference = order.price if order is not None else None
    factor = config.plausibility.max_fill_deviation
    if fill_implausible(fill.price, reference, factor):
        return f"price {fill.price} is more than {factor}x from {reference}"
    return None


def apply_fill(
    tx: Tx[Any], fill: Fill, venue_says_done: bool, *, venue_says_open: bool = False
) -> None:
    # Keep in step with fill_refusal, which the invariant catalogue asks.
    """Book one fill (stream or report) and move its order; see the module's rules."""
    if not _plausible.known_venue(tx, fill.venue, f"fill {fill.fill_id}"):
        return
    rules = tx.config.plausibility
    if fill.ts - tx.now > rules.max_clock_lead_ms:
        # The fill's time feeds "fills since" requests and the dedup watermark: a far-future
        # one would make every later fill look already seen. Book it as of the clock.
        tx.notify(
            Level.WARNING,
            "clock_ahead",
            f"fill {fill.fill_id} stamped {fill.ts} is ahead of the core's clock {tx.now}; "
            f"booked as of the clock",
        )
        fill = replace(fill, ts=tx.now)
    if tx.ledger.has_seen(fill):
        return  # applied already: a replayed or duplicated fill changes nothing (`double-counted-fill`)
    order = tx.find(fill.venue, fill.cloid, fill.venue_order_id)
    quote = tx.quotes.get((fill.venue, fill.symbol))
    reference = quote.mid if quote is not None else order.price if order is not None else None
    if fill_implausible(fill.price, reference, rules.max_fill_deviation):
        # Booking it would poison average entry, PnL and the drawdown check: stop trading,
        # say so, and let reconciliation settle the position with the venue's report.
        tx.notify(
            Level.ALERT,
            "implausible_fill",
            f"fill {fill.fill_id} ({fill.side.value} {fill.qty} {fill.venue}/{fill.symbol} @ "
            f"{fill.price}) is more than {rules.max_fill_deviation}x from {reference}; not "
            f"booked",
        )
        _risk.halt(
            tx,
            HaltCause.POISON,
            f"implausible fill {fill.fill_id} @ {fill.price} (reference {reference})",
        )
        _requests.request_once(tx, "fills", fill.venue)
        _requests.request_once(tx, "positions", fill.venue)
        return
    ledger = tx.ledger.apply_fill(fill)
    assert ledger is not None  # has_seen said it is new
    tx.ledger = ledger
    if order is None:
        tx.notify(
            Level.WARNING,
            "unknown_fill",
            f"fill {fill.fill_id} ({fill.side.value} {fill.qty} {fill.symbol} @ {fill.price}) "
            f"for an order the core does not track; applied to the ledger",
        )
        _risk.check_drawdown(tx)
        return
    filled = CTX.add(order.filled_qty, fill.qty)
    if order.modify_to is not None and (
        order.qty < filled <= order.modify_to[1]
        or (venue_says_open and order.qty == filled < order.modify_to[1])
    ):
        # A fill beyond the order's size while an increase is out, or one that reaches the old
        # size while the venue says the order still rests: the venue applied the modify before
        # its answer arrived (its stream overtook its REST reply). Only the new size explains
        # the fill; without this the order would be called done while its remainder rests at
        # the venue (failure `modify-answer-overtaken`).
        _orders.modify_applied(tx, order, *order.modify_to)
        order = tx.orders[order.cloid]
    complete = filled >= order.qty
    if filled > order.qty:
        tx.notify(
            Level.ALERT,
            "overfill",
            f"order {order.cloid} filled {filled} of {order.qty}; applied as reported",
        )
    trigger = Trigger.FILL_COMPLETE if complete or venue_says_done else Trigger.FILL_PARTIAL
    vo = order.venue_order_id or fill.venue_order_id
    _orders.move(tx, order, trigger, fill=fill, filled_qty=filled, venue_order_id=vo)
    if venue_says_done and not complete:
        # The venue says done but fills are missing here: fetch them (`missed-fills-on-reconnect`).
        _requests.request_once(tx, "fills", order.venue)
    _risk.check_drawdown(tx)
