"""Orders: how the kernel names, sends, moves and forgets an order.

Rules
-----
* **Naming.** A ``Submit`` that passes the risk gate (:mod:`gridcore.kernel._risk`) becomes an
  order named in the same step: its cloid is ``0x`` + the session prefix
  (:func:`~gridcore.kernel._model.cloid_prefix`) + the id counter, it starts ``PENDING_NEW``, its
  margin is reserved and its ``PlaceOrder`` joins the venue's batch. A submit with a ``ref`` is
  reported back at once (an order change with ``before=None``) or refused with a
  :class:`~gridcore.api.SubmitRefused` stimulus.
* **Every move goes through the lifecycle table** (:data:`gridcore.lifecycle.TRANSITIONS`):
  :func:`move` applies one trigger, records the change for the strategy, releases the
  reservation on a terminal status, and acts on the table's effect: ``ANOMALY`` warns and asks
  the venue for the order's status (or for fills when the order has ended).
* **Venue answers** map to triggers: an ack is ``ACCEPTED``, a rejection ``REJECTED``, a cancel
  ``CANCELED``, a refused cancel ``CANCEL_REJECTED`` (failure `leaked-cancel`: its status is
  then asked), a status report one of :data:`REPORTED_TRIGGER`. A report older than an order's
  end is ignored; a report of more filled than booked asks for fills first.
* **Lost commands.** A place that failed without being applied is ``PLACE_FAILED``; one whose
  outcome is unknown (a timeout) goes ``IN_DOUBT`` and its status is asked — a timeout never
  proves a rejection. A lost cancel goes ``CANCEL_FAILED``; a failed status request is asked
  again by maintenance, not at once.
* **Modify.** Only a resting order with no modify out may be moved, to values on tick and lot,
  above what is filled, on a synced venue, and while halted only if it is reduce-only. A size
  increase is gated and reserved like a new order. The venue's answer is believed only when the
  core asked for an amendment and it leaves something to fill; any other amendment cancels the
  order (which only reduces exposure). A modify whose outcome is unknown cancels the order; a
  refused one asks for the order's status. A fill that reaches the old size while an increase is
  out and the venue says the order rests takes the modify as applied; an order held filled that
  the venue turns out to rest (a larger amendment's answer) has what is left there canceled.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from gridcore.api import Modify, ModifyRefused, SubmitRefused
from gridcore.commands import CancelOrder, Level, ModifyOrder, PlaceOrder, RequestOrderStatus
from gridcore.events import (
    CancelRejected,
    Fill,
    ModifyRejected,
    OrderAccepted,
    OrderCanceled,
    OrderModified,
    OrderRejected,
    OrderStatusReported,
    ReportedStatus,
)
from gridcore.exposure import closes_exposure
from gridcore.kernel import _requests, _risk
from gridcore.kernel._model import Inflight, OrderChange, Submit, cloid_prefix, replace
from gridcore.kernel._tx import Tx
from gridcore.lifecycle import Effect, Order, OrderStatus, Trigger, transition
from gridcore.numbers import CTX, ZERO
from gridcore.risk import QUOTE_CAUSES, Refusal
from gridcore.sync import SyncPhase

#: Statuses in which a cancel is not sent (again).
_CANCEL_UNDER_WAY = (OrderStatus.PENDING_CANCEL, OrderStatus.CANCEL_FAILED)

#: A status report's answer, as a trigger of the lifecycle table.
REPORTED_TRIGGER = {
    ReportedStatus.OPEN: Trigger.REPORT_OPEN,
    ReportedStatus.FILLED: Trigger.REPORT_FILLED,
    ReportedStatus.CANCELED: Trigger.REPORT_CANCELED,
    ReportedStatus.REJECTED: Trigger.REPORT_REJECTED,
    ReportedStatus.NOT_FOUND: Trigger.REPORT_NOT_FOUND,
}


def move(
    tx: Tx[Any],
    order: Order,
    trigger: Trigger,
    *,
    fill: Fill | None = None,
    detail: str = "",
    quiet: bool = False,
    **updates: Any,
) -> Order:
    """Apply ``trigger`` (and field ``updates``) to ``order``; record the change."""
    before = tx.orders.get(order.cloid)
    changed = {k: v for k, v in updates.items() if getattr(order, k) != v}
    filled = changed.get("filled_qty", order.filled_qty)
    target, effect = transition(order, trigger, filled_qty=filled)
    if target is order.status and not changed and effect is Effect.NONE and order is before:
        return order  # nothing moved: a repeated ack or a report that agrees
    reserved = changed.pop("reserved", order.reserved)
    if target.is_terminal and reserved:
        _risk.release(tx, order.venue, reserved)
        reserved = ZERO
    after = replace(order, **changed, status=target, updated_ts=tx.now, reserved=reserved)
    tx.put_order(after)
    # A new status or time already makes ``after`` differ from ``before``: the full field-by-field
    # comparison is only needed when both are the same (it runs on every acknowledgement and fill).
    if not quiet and (
        before is None
        or before.status is not target
        or before.updated_ts != after.updated_ts
        or before != after
    ):
        tx.changes.append(OrderChange(before=before, after=after, fill=fill))
    if effect is Effect.ANOMALY:
        tx.notify(
            Level.WARNING,
            "order_anomaly",
            f"order {order.cloid}: {trigger.name} while {order.status.name}"
            f"{f' ({detail})' if detail else ''}; venue status requested",
        )
    if effect is not Effect.NONE and after.is_live:
        request_status(tx, after)
    elif effect is not Effect.NONE:
        _requests.request_once(tx, "fills", order.venue)
    return after


def request_status(tx: Tx[Any], order: Order) -> None:
    """Ask the venue for an order's status, unless a request is out already."""
    if tx.orders[order.cloid].status_requested:
        return
    cid = tx.next_id()
    tx.put_order(replace(tx.orders[order.cloid], status_requested=True))
    tx.commands.append(
        RequestOrderStatus(
            command_id=cid,
            venue=order.venue,
            symbol=order.symbol,
            cloid=order.cloid,
            venue_order_id=order.venue_order_id,
        )
    )
    tx.track(cid, Inflight(kind="status", venue=order.venue, cloid=order.cloid, sent_ts=tx.now))


def modify(tx: Tx[Any], intent: Modify) -> None:
    """A strategy's modify: checked, gated for any size increase, sent through the table."""
    order = tx.orders.get(intent.cloid)
    ref = order.ref if order is not None else None

    def refused(code: str, message: str) -> None:
        tx.stimuli.append(ModifyRefused(cloid=intent.cloid, ref=ref, code=code, message=message))

    if order is None or order.status not in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED):
        where = "unknown" if order is None else order.status.value
        refused("not_modifiable", f"order {intent.cloid} is {where}; only a resting order")
        return
    if order.modify_to is not None:
        refused("not_modifiable", f"order {intent.cloid} has a modify out already")
        return
    price = order.price if intent.price is None else intent.price
    qty = order.qty if intent.qty is None else intent.qty
    if price == order.price and qty == order.qty:
        refused("no_change", f"order {intent.cloid} is already {qty} @ {price}")
        return
    if qty <= order.filled_qty:
        refused(
            "bad_qty",
            f"new size {qty} must exceed what is filled ({order.filled_qty}); cancel instead",
        )
        return
    vs = tx.venue(order.venue)
    if not (vs.feed_up and vs.phase is SyncPhase.SYNCED):
        refused("not_ready", f"{order.venue} is {vs.phase.value}, feed up: {vs.feed_up}")
        return
    if tx.risk.halted and not closes_exposure(order.side, order.position_side, order.reduce_only):
        # A halt adds no exposure: only orders that close exposure may still be moved (the same
        # predicate as the gate's: reduce-only, or a hedge-mode close).
        refused("halted", f"trading is halted ({tx.risk.halt_reason})")
        return
    instrument = tx.config.instrument(order.venue, order.symbol)
    if not instrument.is_on_tick(price) or not instrument.is_on_lot(qty):
        refused(
            "bad_values",
            f"{qty} @ {price} is off the lot {instrument.lot_size} or tick {instrument.tick_size}",
        )
        return
    extra = ZERO
    increase = qty - order.qty
    if increase > 0:
        # The increase is a new order as far as risk goes: same gate, same reservation.
        verdict = _risk.gate(
            tx,
            instrument,
            side=order.side,
            qty=increase,
            price=price,
            tif=order.tif,
            reduce_only=order.reduce_only,
            position_side=order.position_side,
        )
        if isinstance(verdict, Refusal):
            refused(verdict.code, verdict.message)
            if verdict.code == "stale_balance":
                _requests.await_balance(tx, order.venue)
            elif verdict.code in QUOTE_CAUSES:
                _requests.await_quote(tx, order.venue, order.symbol)
            return
        extra = verdict
        _risk.reserve(tx, order.venue, extra)
    cid = tx.next_id()
    move(
        tx,
        order,
        Trigger.MODIFY_SENT,
        quiet=True,
        modify_to=(price, qty),
        modify_reserved=extra,
        reserved=CTX.add(order.reserved, extra),
    )
    tx.order_commands.setdefault(order.venue, []).append(
        ModifyOrder(
            command_id=cid,
            venue=order.venue,
            symbol=order.symbol,
            cloid=order.cloid,
            venue_order_id=order.venue_order_id,
            price=price,
            qty=qty,
        )
    )
    tx.track(cid, Inflight(kind="modify", venue=order.venue, cloid=order.cloid, sent_ts=tx.now))


def modify_failed(
    tx: Tx[Any], order: Order, code: str, reason: str, *, release: bool = True
) -> None:
    """The modify out for ``order`` did not happen (or, ``release=False``, may have: then the
    reservation of its increase is kept until the order ends)."""
    if order.modify_to is None:
        return
    price, qty = order.modify_to
    # Give back what the increase reserved (a terminal order released everything already).
    extra = min(order.modify_reserved, order.reserved) if release else ZERO
    if extra:
        _risk.release(tx, order.venue, extra)
    move(
        tx,
        order,
        Trigger.MODIFY_REJECTED,
        quiet=True,
        modify_to=None,
        modify_reserved=ZERO,
        reserved=CTX.subtract(order.reserved, extra),
    )
    tx.stimuli.append(
        ModifyRefused(
            cloid=order.cloid,
            ref=order.ref,
            code=code,
            message=f"modify of {order.cloid} to {qty} @ {price}: {reason}",
        )
    )


def submit(tx: Tx[Any], intent: Submit) -> str | None:
    """A strategy's (or flatten's) order: readiness, the risk gate, then named, reserved and
    sent in this step. Returns the cloid, or ``None`` when refused."""
    instrument = tx.config.instrument(intent.venue, intent.symbol)
    vs = tx.venue(intent.venue)
    # A venue that reconciles still takes closing orders (they cannot add exposure, whatever
    # the reconciliation finds); a venue whose feed is down takes none.
    if not vs.feed_up or (
        vs.phase is not SyncPhase.SYNCED
        and not closes_exposure(intent.side, intent.position_side, intent.reduce_only)
    ):
        _risk.refuse(tx, "not_ready", f"{intent.venue} is {vs.phase.value}, feed up: {vs.feed_up}")
        if intent.ref is not None:
            submit_refused(
                tx,
                intent,
                "not_ready",
                f"{intent.venue} is {vs.phase.value}, feed up: {vs.feed_up}",
            )
        return None
    verdict = _risk.gate(
        tx,
        instrument,
        side=intent.side,
        qty=intent.qty,
        price=intent.price,
        tif=intent.tif,
        reduce_only=intent.reduce_only,
        position_side=intent.position_side,
    )
    if isinstance(verdict, Refusal):
        _risk.refuse(tx, verdict.code, verdict.message)
        if intent.ref is not None:
            submit_refused(tx, intent, verdict.code, verdict.message)
        if verdict.code == "stale_balance":
            _requests.await_balance(tx, intent.venue)
        elif verdict.code in QUOTE_CAUSES:
            _requests.await_quote(tx, intent.venue, intent.symbol)
        return None
    cid = tx.next_id()
    cloid = f"0x{cloid_prefix(tx.base.epoch, tx.base.nonce):016x}{cid:016x}"
    order = Order(
        cloid=cloid,
        venue=intent.venue,
        symbol=intent.symbol,
        side=intent.side,
        position_side=intent.position_side,
        qty=intent.qty,
        price=intent.price,
        tif=intent.tif,
        reduce_only=intent.reduce_only,
        status=OrderStatus.PENDING_NEW,
        created_ts=tx.now,
        updated_ts=tx.now,
        tag=intent.tag,
        reserved=verdict,
        seq=cid,
        ref=intent.ref,
    )
    tx.put_order(order)
    if intent.ref is not None:
        # Tell the strategy the cloid it got, in this very step.
        tx.changes.append(OrderChange(before=None, after=order))
    _risk.reserve(tx, intent.venue, verdict)
    _risk.count_order(tx)
    tx.order_commands.setdefault(intent.venue, []).append(
        PlaceOrder(
            command_id=cid,
            venue=intent.venue,
            symbol=intent.symbol,
            cloid=cloid,
            side=intent.side,
            position_side=intent.position_side,
            qty=intent.qty,
            price=intent.price,
            tif=intent.tif,
            reduce_only=intent.reduce_only,
        )
    )
    tx.track(cid, Inflight(kind="place", venue=intent.venue, cloid=cloid, sent_ts=tx.now))
    return cloid


def submit_refused(tx: Tx[Any], intent: Submit, code: str, message: str) -> None:
    """Tell a strategy that submitted with a ``ref`` why its order never left."""
    tx.stimuli.append(
        SubmitRefused(
            ref=intent.ref, venue=intent.venue, symbol=intent.symbol, code=code, message=message
        )
    )


def cancel(tx: Tx[Any], cloid: str, *, refused_early: bool = False) -> None:
    """Send a cancel for a live order (nothing if it is done, being canceled, or its cancel
    was refused and its status is asked). ``refused_early``: the order's acknowledgement came
    after its cancel was refused, so that refusal proved nothing and the cancel goes again."""
    order = tx.orders.get(cloid)
    # A cancel already on its way, or one the venue refused (its status request is what
    # resolves the order), is not sent again: a venue that refuses at once would otherwise
    # be asked again and again within one instant (failure `resync-loop`).
    if order is None or not order.is_live:
        return
    status = order.status
    if status in _CANCEL_UNDER_WAY and not (refused_early and status is OrderStatus.CANCEL_FAILED):
        return
    cid = tx.next_id()
    move(tx, order, Trigger.CANCEL_SENT, quiet=True)
    _send_cancel(tx, cid, order)


def _send_cancel(tx: Tx[Any], cid: int, order: Order) -> None:
    """The venue command (id ``cid``) that cancels ``order``, and its flight."""
    tx.order_commands.setdefault(order.venue, []).append(
        CancelOrder(
            command_id=cid,
            venue=order.venue,
            symbol=order.symbol,
            cloid=order.cloid,
            venue_order_id=order.venue_order_id,
        )
    )
    tx.track(cid, Inflight(kind="cancel", venue=order.venue, cloid=order.cloid, sent_ts=tx.now))


# --- strategy calls ----------------------------------------------------------------------------


def cancel_remainder(tx: Tx[Any], order: Order, why: str) -> None:
    """The venue still rests an order the core holds filled (filled is final): take what is
    left off the venue with a cancel, and say so. A fill that beats the cancel is applied like
    any other; the cancel's answer leaves the order filled."""
    cid = tx.next_id()
    tx.notify(
        Level.WARNING,
        "order_anomaly",
        f"order {order.cloid}: {order.status.name} here but resting at {order.venue} ({why}); "
        f"canceling what is left there",
    )
    _send_cancel(tx, cid, order)


def on_accepted(tx: Tx[Any], event: OrderAccepted) -> None:
    """The venue acknowledged an order."""
    tx.resolve(event.command_id)
    _risk.ok(tx)
    order = tx.find(event.venue, event.cloid, event.venue_order_id)
    if order is None:
        tx.notify(Level.INFO, "unknown_order", f"ack for unknown order {event.cloid}")
    else:
        move(tx, order, Trigger.ACCEPTED, venue_order_id=event.venue_order_id)
        if tx.risk.halted:
            _risk.hold_halt(tx, order.cloid, acked=True)


def on_rejected(tx: Tx[Any], event: OrderRejected) -> None:
    """The venue rejected an order (a failed command for the error streak)."""
    tx.resolve(event.command_id)
    _risk.error(tx, f"order rejected: {event.reason}")
    order = tx.find(event.venue, event.cloid, None)
    if order is not None:
        tx.notify(
            Level.WARNING,
            "order_rejected",
            f"{event.venue} rejected {event.cloid}: {event.reason}",
        )
        move(tx, order, Trigger.REJECTED, detail=event.reason)


def on_canceled(tx: Tx[Any], event: OrderCanceled) -> None:
    """The venue canceled an order."""
    tx.resolve(event.command_id)
    order = tx.find(event.venue, event.cloid, event.venue_order_id)
    if order is not None:
        move(tx, order, Trigger.CANCELED)


def on_cancel_rejected(tx: Tx[Any], event: CancelRejected) -> None:
    """The venue refused a cancel: the order goes ``CANCEL_FAILED`` and its status is asked."""
    tx.resolve(event.command_id)
    order = tx.find(event.venue, event.cloid, None)
    if order is not None:
        move(tx, order, Trigger.CANCEL_REJECTED, detail=event.reason)


def modify_applied(
    tx: Tx[Any], order: Order, price: Decimal, qty: Decimal, venue_order_id: str | None = None
) -> None:
    """The modify out for ``order`` took effect at the venue: the order has its new values (and
    the venue's new order id, when it gave one)."""
    move(
        tx,
        order,
        Trigger.MODIFIED,
        price=price,
        qty=qty,
        modify_to=None,
        modify_reserved=ZERO,
        venue_order_id=venue_order_id or order.venue_order_id,
    )


def on_modified(tx: Tx[Any], event: OrderModified) -> None:
    """The venue amended an order: believed only if the core asked and something remains."""
    flight = tx.resolve(event.command_id)
    order = tx.find(event.venue, event.cloid, None)
    asked = flight is not None and flight.kind == "modify"
    values = (event.price, event.qty)
    if order is None:
        pass
    elif not order.is_live:
        if asked and order.status is OrderStatus.FILLED and event.qty > order.filled_qty:
            # The fills reached the old size before the answer of an increase (failure
            # `modify-answer-overtaken`): the rest of the new size still rests at the venue.
            cancel_remainder(tx, order, f"amended to {event.qty}, filled {order.filled_qty}")
    elif asked and order.modify_to is None and (order.price, order.qty) == values:
        _risk.ok(tx)  # a fill beyond the old size showed it applied already
    elif not asked or (order.modify_to != values and event.qty <= order.filled_qty):
        # An amendment the core did not ask for is no longer the order the
        # strategy decided (it may cross the grid), and one below what is filled
        # would leave a live order with nothing remaining: neither is believed.
        # The order is canceled (which only reduces exposure) and its status asked.
        tx.notify(
            Level.WARNING,
            "order_anomaly",
            f"order {order.cloid}: {'unrequested ' if not asked else ''}amendment to "
            f"{event.qty} @ {event.price} (filled {order.filled_qty}); not applied, "
            f"canceling",
        )
        cancel(tx, order.cloid)
    else:
        # The values asked, or others the venue chose: the venue is the truth.
        _risk.ok(tx)
        modify_applied(tx, order, event.price, event.qty, event.venue_order_id)


def on_modify_rejected(tx: Tx[Any], event: ModifyRejected) -> None:
    """The venue refused a modify: the order keeps its values; the strategy is told."""
    tx.resolve(event.command_id)
    order = tx.find(event.venue, event.cloid, None)
    if order is not None:
        modify_failed(tx, order, "rejected", f"{event.venue} refused: {event.reason}")
        order = tx.orders[order.cloid]
        if order.is_live:
            # The refusal may say the order is no longer there (filled or canceled, its
            # update lost): ask, as for a refused cancel, rather than believe it rests
            # (failure `refused-modify-of-a-filled-order`).
            request_status(tx, order)


def on_status_reported(tx: Tx[Any], event: OrderStatusReported) -> None:
    """The venue's answer to a status request moves the order through the table."""
    tx.resolve(event.command_id)
    _risk.ok(tx)
    order = tx.find(event.venue, event.cloid, event.venue_order_id)
    if order is not None and not (not order.is_live and event.ts <= order.updated_ts):
        if event.filled_qty > order.filled_qty:
            _requests.request_once(tx, "fills", event.venue)
        move(
            tx,
            order,
            REPORTED_TRIGGER[event.status],
            status_requested=False,
            venue_order_id=order.venue_order_id or event.venue_order_id,
        )
        if tx.risk.halted:
            _risk.hold_halt(tx, order.cloid)


def on_command_failed(tx: Tx[Any], flight: Inflight, reason: str, *, not_applied: bool) -> None:
    """An order command failed or timed out: what the lifecycle table says for its kind."""
    order = tx.orders.get(flight.cloid) if flight.cloid is not None else None
    if flight.kind == "place" and order is not None:
        move(
            tx,
            order,
            Trigger.PLACE_FAILED if not_applied else Trigger.PLACE_UNCERTAIN,
            detail=reason,
        )
    elif flight.kind == "modify" and order is not None:
        if not_applied:
            modify_failed(tx, order, "rejected", f"failed, not applied: {reason}")
        elif order.modify_to is not None:
            # Its size at the venue is unknown now: never guess, take it off the book.
            modify_failed(
                tx, order, "uncertain", f"outcome unknown ({reason}); canceling", release=False
            )
            cancel(tx, order.cloid)
    elif flight.kind == "cancel" and order is not None:
        if order.is_live:
            move(tx, order, Trigger.CANCEL_UNCERTAIN, detail=reason)
    elif flight.kind == "status" and order is not None:
        # Let maintenance ask again rather than hammering a failing venue now.
        tx.put_order(replace(order, status_requested=False))
