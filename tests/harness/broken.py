"""Deliberately broken bots: each brings one seed failure back.

Failures that live in the kernel are brought back by reducer wrappers around
:func:`gridcore.step` that undo one protection after the fact; failures that live in a
strategy are the take-profit bot's broken twins (:mod:`tests.harness.bots`). None of them is
caught by a test written for it: the harness (``simulate`` and the state machine, with the
shipped invariant catalogue) must find each one by itself.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

from gridcore import (
    CancelRejected,
    Command,
    Event,
    FeedReconnected,
    FillsReported,
    MessageMalformed,
    OrderFilled,
    OrderPartiallyFilled,
    OrderStatus,
    State,
    step,
)
from gridcore.events import Fill
from gridcore.numbers import CTX, ZERO
from gridcore.sim.backtest import Reducer
from gridcore.sync import SyncPhase

from .bots import TakeProfitConfig

__all__ = [
    "BROKEN_REDUCERS",
    "NOTIONAL_CLOSE",
    "ORPHAN_ENTRIES",
    "dedup_in_memory",
    "drop_fills_while_syncing",
    "fills_done_at_threshold",
    "ignore_rejected_cancel",
    "keep_reservation_on_rejection",
    "no_fill_dedup",
    "no_reconcile_on_reconnect",
    "resync_loop",
]


def _books(state: State[Any], **changes: Any) -> State[Any]:
    return attrs.evolve(state, books=attrs.evolve(state.books, **changes))


def _fills(event: Event) -> tuple[Fill, ...]:
    if isinstance(event, OrderFilled | OrderPartiallyFilled):
        return (event.fill,)
    if isinstance(event, FillsReported):
        return event.fills
    return ()


def no_fill_dedup(state: State[Any], event: Event) -> tuple[State[Any], list[Command]]:
    """Failure `double-counted-fill`: a fill seen before (stream duplicate, REST report overlap, replay) is
    counted again."""
    after, commands = step(state, event)
    ledger = after.ledger
    for fill in _fills(event):
        if state.ledger.has_seen(fill):
            key = (fill.venue, fill.symbol, fill.position_side)
            signed = fill.qty if fill.side.sign > 0 else -fill.qty
            pos = ledger.position(*key).apply(signed, fill.price, fill.fee)
            ledger = attrs.evolve(ledger, positions={**ledger.positions, key: pos})
    return _books(after, ledger=ledger), commands


_THRESHOLD = Decimal("0.99")


def fills_done_at_threshold(state: State[Any], event: Event) -> tuple[State[Any], list[Command]]:
    """Failure `partial-fill-threshold`: an order 99 % filled is treated as done, leaving its dust live at the
    venue. (Its reservation is released properly, so only the threshold is wrong.)"""
    after, commands = step(state, event)
    orders = dict(after.orders)
    reserved = dict(after.risk.reserved)
    done = after.done_orders
    changed = False
    for cloid, order in after.orders.items():
        if (
            order.is_live
            and order.filled_qty < order.qty
            and order.filled_qty >= CTX.multiply(order.qty, _THRESHOLD)
        ):
            reserved[order.venue] = max(ZERO, reserved.get(order.venue, ZERO) - order.reserved)
            orders[cloid] = attrs.evolve(order, status=OrderStatus.FILLED, reserved=ZERO)
            done += 1
            changed = True
    if not changed:
        return after, commands
    risk = attrs.evolve(after.risk, reserved=reserved)
    live = {c: q for c, q in after.books.live.items() if orders[c].is_live}
    return _books(after, orders=orders, risk=risk, done_orders=done, live=live), commands


def ignore_rejected_cancel(state: State[Any], event: Event) -> tuple[State[Any], list[Command]]:
    """Failure `leaked-cancel`: a rejected cancel is shrugged off: the order is believed open again and
    nobody asks the venue what became of it."""
    if not isinstance(event, CancelRejected):
        return step(state, event)
    order = state.orders.get(event.cloid)
    if order is None or order.status is not OrderStatus.PENDING_CANCEL:
        return step(state, event)
    status = OrderStatus.PARTIALLY_FILLED if order.filled_qty else OrderStatus.OPEN
    orders = {**state.orders, order.cloid: attrs.evolve(order, status=status)}
    inflight = {cid: f for cid, f in state.inflight.items() if cid != event.command_id}
    moved = attrs.evolve(state, now=max(state.now, event.ts))
    return _books(moved, orders=orders, inflight=inflight), []


def drop_fills_while_syncing(state: State[Any], event: Event) -> tuple[State[Any], list[Command]]:
    """Failure `sync-drops-close`: fill events that arrive while the venue is reconciling are ignored."""
    if isinstance(event, OrderFilled | OrderPartiallyFilled):
        vs = state.venues.get(event.fill.venue)
        if vs is not None and vs.phase is SyncPhase.SYNCING:
            return state, []
    return step(state, event)


def keep_reservation_on_rejection(
    state: State[Any], event: Event
) -> tuple[State[Any], list[Command]]:
    """Failure `unreleased-funds`: the margin reserved for an order is not given back when the order is
    rejected (by the venue, or a request that failed before reaching it)."""
    after, commands = step(state, event)
    reserved = dict(after.risk.reserved)
    changed = False
    for cloid, order in after.orders.items():
        prior = state.orders.get(cloid)
        if (
            prior is not None
            and prior.is_live
            and prior.reserved
            and order.status is OrderStatus.REJECTED
        ):
            reserved[order.venue] = CTX.add(reserved.get(order.venue, ZERO), prior.reserved)
            changed = True
    if not changed:
        return after, commands
    return _books(after, risk=attrs.evolve(after.risk, reserved=reserved)), commands


def no_reconcile_on_reconnect(state: State[Any], event: Event) -> tuple[State[Any], list[Command]]:
    """Failure `missed-fills-on-reconnect`: after the stream comes back the bot trades on, without asking for the
    fills it missed while it was down."""
    if isinstance(event, FeedReconnected):
        vs = state.venues.get(event.venue)
        if vs is not None and vs.phase is SyncPhase.SYNCED:
            venues = {**state.venues, event.venue: attrs.evolve(vs, feed_up=True)}
            moved = attrs.evolve(state, now=max(state.now, event.ts))
            return _books(moved, venues=venues), []
    return step(state, event)


def resync_loop(state: State[Any], event: Event) -> tuple[State[Any], list[Command]]:
    """Failure `resync-loop`: the end of a restore triggers another restore, forever."""
    after, commands = step(state, event)
    for venue, vs in after.venues.items():
        prior = state.venues.get(venue)
        if prior is not None and prior.phase is SyncPhase.SYNCING and vs.phase is SyncPhase.SYNCED:
            after, more = step(after, MessageMalformed(ts=event.ts, venue=venue, detail="restore"))
            commands = [*commands, *more]
    return after, commands


def dedup_in_memory() -> Reducer:
    """Failure `no-crash-recovery` (no crash recovery): part of the bot's state (the fill ids it has seen) lives
    in process memory beside the reducer instead of in the state the journal folds. The first
    run behaves, but the state can no longer be rebuilt from the events: a replay of the
    journal through the same process drops every fill."""
    seen: set[str] = set()

    def reducer(state: State[Any], event: Event) -> tuple[State[Any], list[Command]]:
        if isinstance(event, OrderFilled | OrderPartiallyFilled):
            if event.fill.fill_id in seen:
                return state, []
            seen.add(event.fill.fill_id)
        return step(state, event)

    return reducer


BROKEN_REDUCERS: dict[str, Reducer] = {
    "no_fill_dedup": no_fill_dedup,
    "fills_done_at_threshold": fills_done_at_threshold,
    "ignore_rejected_cancel": ignore_rejected_cancel,
    "drop_fills_while_syncing": drop_fills_while_syncing,
    "keep_reservation_on_rejection": keep_reservation_on_rejection,
    "no_reconcile_on_reconnect": no_reconcile_on_reconnect,
    "resync_loop": resync_loop,
}
"""The kernel-level broken bots, by name."""

NOTIONAL_CLOSE = TakeProfitConfig(close_in_notional=True)
"""Failure `rollback-in-quote`: the take-profit (a close) sized in quote instead of base units."""

ORPHAN_ENTRIES = TakeProfitConfig(cancel_entries_on_close=False)
"""Failure `orphaned-entries`: after a take-profit, the other side's entries are left open."""
