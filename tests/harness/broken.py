"""Deliberately broken bots: each brings one seed failure back.

Failures that live in the kernel are brought back by reducer wrappers around
:func:`gridcore.step` that undo one protection after the fact; failures that live in a
strategy are the take-profit bot's broken twins (:mod:`tests.harness.bots`). None of them is
caught by a test written for it: the harness (``simulate`` and the state machine, with the
shipped invariant catalogue) must find each one by itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Self

import attrs

from gridcore import (
    Batch,
    CancelOrder,
    CancelRejected,
    Command,
    Event,
    FeedReconnected,
    FillsReported,
    FundingPaid,
    MessageMalformed,
    OrderFilled,
    OrderPartiallyFilled,
    OrderStatus,
    PlaceOrder,
    State,
    step,
)
from gridcore.config import BotConfig
from gridcore.core import Cancel, Intent, OrderChange, Submit, initial_state
from gridcore.events import Fill, QuoteTicked
from gridcore.grid import Lattice, NeutralGrid
from gridcore.invariants import Violation
from gridcore.numbers import CTX, ZERO, Rounding
from gridcore.sim.backtest import Reducer
from gridcore.sync import SyncPhase, VenueStatus

from .bots import EPOCH, TakeProfitConfig, grid_config

__all__ = [
    "BROKEN_REDUCERS",
    "FAR_ENTRIES",
    "NOTIONAL_CLOSE",
    "ORPHAN_ENTRIES",
    "ChurningGrid",
    "IdleAfterReconnectGrid",
    "TighteningGrid",
    "churning_grid_bot",
    "dedup_in_memory",
    "double_funding",
    "drop_fills_while_syncing",
    "fills_done_at_threshold",
    "forget_untouched_cancels",
    "idle_grid_bot",
    "ignore_rejected_cancel",
    "keep_reservation_on_rejection",
    "last_fill_wins",
    "no_fill_dedup",
    "no_reconcile_on_reconnect",
    "oversized_orders",
    "resync_loop",
    "tightening_grid_bot",
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


def double_funding(state: State[Any], event: Event) -> tuple[State[Any], list[Command]]:
    """Funding counted twice: the payment is booked by its id, then once more under a second
    key, as if the statement and the stream each brought their own copy."""
    after, commands = step(state, event)
    if isinstance(event, FundingPaid) and after.ledger is not state.ledger:
        again = after.ledger.apply_funding(
            event.venue,
            event.symbol,
            event.position_side,
            event.amount,
            f"{event.payment_id}:stream",
            event.ts,
        )
        if again is not None:
            return _books(after, ledger=again), commands
    return after, commands


def oversized_orders(state: State[Any], event: Event) -> tuple[State[Any], list[Command]]:
    """An order that adds to an open position leaves the core twice as large as the risk gate
    approved (a size multiplier applied after the gate); the venue fills it all, the core
    raises "overfill" alerts and books every fill."""
    after, commands = step(state, event)
    if not commands:
        return after, commands

    def grow(command: Any) -> Any:
        if isinstance(command, PlaceOrder) and not command.reduce_only:
            held = after.ledger.position(command.venue, command.symbol, command.position_side).qty
            if held:
                return attrs.evolve(command, qty=CTX.multiply(command.qty, Decimal(2)))
        return command

    out: list[Command] = []
    for command in commands:
        if isinstance(command, Batch):
            out.append(attrs.evolve(command, commands=tuple(grow(c) for c in command.commands)))
        else:
            out.append(grow(command))
    return after, out


def forget_untouched_cancels(state: State[Any], event: Event) -> tuple[State[Any], list[Command]]:
    """A cancel of an order with no fills is taken as done when it is decided, and the request
    is never sent ("it never traded, nothing can go wrong"): the order goes on resting at the
    venue while the grid places its level again."""
    after, commands = step(state, event)
    doomed: set[str] = set()

    def keep(command: Any) -> bool:
        if isinstance(command, CancelOrder):
            order = after.orders.get(command.cloid)
            if order is not None and not order.filled_qty:
                doomed.add(command.cloid)
                return False
        return True

    out: list[Command] = []
    for command in commands:
        if isinstance(command, Batch):
            inner = tuple(c for c in command.commands if keep(c))
            if inner:
                out.append(attrs.evolve(command, commands=inner))
        elif keep(command):
            out.append(command)
    if not doomed:
        return after, commands
    orders = dict(after.orders)
    reserved = dict(after.risk.reserved)
    for cloid in doomed:
        order = orders[cloid]
        reserved[order.venue] = max(ZERO, reserved.get(order.venue, ZERO) - order.reserved)
        orders[cloid] = attrs.evolve(order, status=OrderStatus.CANCELED, reserved=ZERO)
    inflight = {
        cid: f
        for cid, f in after.inflight.items()
        if not (f.kind == "cancel" and f.cloid in doomed)
    }
    live = {c: q for c, q in after.books.live.items() if c not in doomed}
    return _books(
        after,
        orders=orders,
        inflight=inflight,
        live=live,
        risk=attrs.evolve(after.risk, reserved=reserved),
        done_orders=after.done_orders + len(doomed),
    ), out


def last_fill_wins(state: State[Any], event: Event) -> tuple[State[Any], list[Command]]:
    """An order completed by several partial fills keeps only its last fill as its filled
    quantity (the ledger is right: only the order's own record is wrong, and it is pruned from
    the registry a while later)."""
    after, commands = step(state, event)
    if not isinstance(event, OrderFilled) or event.fill.cloid is None:
        return after, commands
    prior = state.orders.get(event.fill.cloid)
    order = after.orders.get(event.fill.cloid)
    if (
        prior is None
        or order is None
        or prior.status is not OrderStatus.PARTIALLY_FILLED
        or order.status is not OrderStatus.FILLED
    ):
        return after, commands
    orders = {**after.orders, order.cloid: attrs.evolve(order, filled_qty=event.fill.qty)}
    return _books(after, orders=orders), commands


BROKEN_REDUCERS: dict[str, Reducer] = {
    "no_fill_dedup": no_fill_dedup,
    "fills_done_at_threshold": fills_done_at_threshold,
    "ignore_rejected_cancel": ignore_rejected_cancel,
    "drop_fills_while_syncing": drop_fills_while_syncing,
    "keep_reservation_on_rejection": keep_reservation_on_rejection,
    "no_reconcile_on_reconnect": no_reconcile_on_reconnect,
    "resync_loop": resync_loop,
    "double_funding": double_funding,
    "oversized_orders": oversized_orders,
    "forget_untouched_cancels": forget_untouched_cancels,
    "last_fill_wins": last_fill_wins,
}
"""The kernel-level broken bots, by name."""

NOTIONAL_CLOSE = TakeProfitConfig(close_in_notional=True)
"""Failure `rollback-in-quote`: the take-profit (a close) sized in quote instead of base units."""

ORPHAN_ENTRIES = TakeProfitConfig(cancel_entries_on_close=False)
"""Failure `orphaned-entries`: after a take-profit, the other side's entries are left open."""

FAR_ENTRIES = TakeProfitConfig(reprice_entries=False)
"""Pending entries left far from the market: never repriced, whatever the market does (the
bot still declares the band of the repricing one)."""


# --- strategies that keep a grid inside them ---------------------------------------------------


@attrs.frozen(kw_only=True)
class TighteningGrid:
    """A strategy that keeps a neutral grid inside it and tightens the grid's spacing to a
    third of its step each time the price leaves the grid (loss-drift tightening, with no
    floor). It passes the grid's own promises on through its ``invariants`` hook, as a
    wrapping strategy should: that is how the harness sees the collapsed spacing."""

    grid: NeutralGrid

    def _wrap(
        self, view: State[Any], result: tuple[NeutralGrid, Sequence[Intent]] | None
    ) -> tuple[TighteningGrid, Sequence[Intent]] | None:
        if result is None:
            return None
        grid, intents = result
        if grid.recenters and grid.lattice is not self.grid.lattice and grid.center is not None:
            cfg = grid.config
            inst = view.config.instrument(cfg.venue, cfg.symbol)
            step_ = max(
                inst.tick_size, inst.round_price(CTX.divide(grid.step, Decimal(3)), Rounding.DOWN)
            )
            lattice = Lattice.build(center=grid.center, step=step_, config=cfg, instrument=inst)
            tight = attrs.evolve(grid, step=step_, lattice=lattice)
            grid, intents = tight._rebuild(view, recenter=False)
        return attrs.evolve(self, grid=grid), intents

    def on_tick(
        self, view: State[Any], tick: QuoteTicked
    ) -> tuple[TighteningGrid, Sequence[Intent]] | None:
        return self._wrap(view, self.grid.on_tick(view, tick))

    def on_changes(
        self, view: State[Any], changes: Sequence[OrderChange]
    ) -> tuple[TighteningGrid, Sequence[Intent]]:
        out = self._wrap(view, self.grid.on_changes(view, changes))
        assert out is not None
        return out

    def on_ready(self, view: State[Any], venue: str) -> tuple[TighteningGrid, Sequence[Intent]]:
        out = self._wrap(view, self.grid.on_ready(view, venue))
        assert out is not None
        return out

    def on_timer(self, view: State[Any], timer_id: str) -> tuple[TighteningGrid, Sequence[Intent]]:
        out = self._wrap(view, self.grid.on_timer(view, timer_id))
        assert out is not None
        return out

    def on_event(self, view: State[Any], event: Event) -> tuple[TighteningGrid, Sequence[Intent]]:
        return self, ()

    def invariants(self, view: State[Any]) -> Sequence[Violation]:
        return self.grid.invariants(view)

    def order_band(self, view: State[Any]) -> Decimal:
        return self.grid.order_band(view)


@attrs.frozen(kw_only=True)
class ChurningGrid:
    """A neutral grid that sends its whole grid again on every quote: it cancels every live
    level and places every desired one anew, ignoring that the live orders are already the
    right ones. Every promise about positions, money and levels holds; it is only slow and
    costly."""

    grid: NeutralGrid

    def on_tick(
        self, view: State[Any], tick: QuoteTicked
    ) -> tuple[ChurningGrid, Sequence[Intent]] | None:
        cfg = self.grid.config
        if not view.can_trade(cfg.venue):
            return None
        moved = self.grid.on_tick(view, tick)
        if moved is not None and moved[1]:
            return attrs.evolve(self, grid=moved[0]), moved[1]
        grid = self.grid if moved is None else moved[0]
        if grid.lattice is None:
            return None
        position = view.ledger.position(cfg.venue, cfg.symbol, cfg.position_side).qty
        pivot = grid.lattice.pivot(CTX.subtract(position, grid.base_position))
        desired = grid.lattice.desired(
            pivot=pivot, position=position, max_inventory=cfg.max_inventory
        )
        prefix = cfg.tag + ":"
        intents: list[Intent] = [
            Cancel(cloid=o.cloid)
            for o in view.live_orders(prefix)
            if o.status is not OrderStatus.PENDING_CANCEL
        ]
        intents.extend(
            Submit(
                venue=cfg.venue,
                symbol=cfg.symbol,
                side=lv.side,
                qty=lv.qty,
                price=lv.price,
                position_side=cfg.position_side,
                tag=f"{prefix}{lv.index}",
            )
            for lv in desired
        )
        return attrs.evolve(self, grid=grid), intents

    def on_changes(
        self, view: State[Any], changes: Sequence[OrderChange]
    ) -> tuple[ChurningGrid, Sequence[Intent]]:
        grid, intents = self.grid.on_changes(view, changes)
        return attrs.evolve(self, grid=grid), intents

    def on_ready(self, view: State[Any], venue: str) -> tuple[ChurningGrid, Sequence[Intent]]:
        grid, intents = self.grid.on_ready(view, venue)
        return attrs.evolve(self, grid=grid), intents

    def on_timer(self, view: State[Any], timer_id: str) -> tuple[ChurningGrid, Sequence[Intent]]:
        grid, intents = self.grid.on_timer(view, timer_id)
        return attrs.evolve(self, grid=grid), intents

    def on_event(self, view: State[Any], event: Event) -> tuple[ChurningGrid, Sequence[Intent]]:
        return self, ()

    def invariants(self, view: State[Any]) -> Sequence[Violation]:
        return self.grid.invariants(view)

    def order_band(self, view: State[Any]) -> Decimal:
        return self.grid.order_band(view)


def tightening_grid_bot(config: BotConfig | None = None) -> State[TighteningGrid]:
    """A fresh :class:`TighteningGrid` bot on the harness's grid configuration."""
    cfg = config or grid_config()
    return initial_state(
        cfg.make_core_config(), TighteningGrid(grid=NeutralGrid(config=cfg.grid)), epoch=EPOCH
    )


def churning_grid_bot(config: BotConfig | None = None) -> State[ChurningGrid]:
    """A fresh :class:`ChurningGrid` bot on the harness's grid configuration."""
    cfg = config or grid_config()
    return initial_state(
        cfg.make_core_config(), ChurningGrid(grid=NeutralGrid(config=cfg.grid)), epoch=EPOCH
    )


@attrs.frozen(kw_only=True)
class IdleAfterReconnectGrid(NeutralGrid):
    """A neutral grid that goes idle after a restart or a reconnect (failure
    `grid-idle-after-refusal`): when its only quote predates its venue's feed coming up, it
    rebuilds from it anyway, without marking itself unfinished, so the risk gate refuses every
    level it places, silently; and it ignores ``on_ready`` (the kernel's wake). A fresh quote
    inside its bounds brings no rebuild, and its heartbeat has nothing to retry: once its
    orders are gone it sits with none. Every safety promise holds; it only stops trading."""

    def on_ready(self, view: State[Any], venue: str) -> tuple[Self, Sequence[Intent]]:
        return self, ()

    def _rebuild(self, view: State[Self], *, recenter: bool) -> tuple[Self, Sequence[Intent]]:
        venue = self.config.venue
        status = view.venues.get(venue)
        if status is None:
            return super()._rebuild(view, recenter=recenter)
        # Blind to the feed's gap: every quote looks fresh to it (not to the risk gate).
        blind: VenueStatus = attrs.evolve(status, quotes_before=-1)
        seen = attrs.evolve(
            view, books=attrs.evolve(view.books, venues={**view.venues, venue: blind})
        )
        return super()._rebuild(seen, recenter=recenter)


def idle_grid_bot(config: BotConfig | None = None) -> State[IdleAfterReconnectGrid]:
    """A fresh :class:`IdleAfterReconnectGrid` bot on the harness's grid configuration."""
    cfg = config or grid_config()
    return initial_state(
        cfg.make_core_config(), IdleAfterReconnectGrid(config=cfg.grid), epoch=EPOCH
    )
