"""The working copy of one step: mechanics only, no rules.

:class:`Tx` is built from (never writes to) the input state and lives for one call of
:func:`gridcore.kernel._reducer.step`. It copies a mapping only on the first write
(copy-on-write), allocates ids from the state's counter (:meth:`Tx.next_id`), keeps the
derived indexes of the order registry in step (live orders, orders needing attention,
terminal count, venue order ids), and builds the new state reusing the last snapshot or its
books when nothing moved (:meth:`Tx.snapshot`). Which order moves, which command is sent, and
why, is decided by the rule modules of :mod:`gridcore.kernel`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Generic

from gridcore.api import Stimulus
from gridcore.commands import Batch, Command, Level, Notify, OrderCommand
from gridcore.kernel._model import Inflight, OrderChange, S, State, new_books, new_state, replace
from gridcore.lifecycle import Order, OrderStatus
from gridcore.sync import VenueStatus


class Tx(Generic[S]):
    """The working copy of one step. Private: it lives for one call of :func:`step` and is
    built from (never writes to) the input state."""

    __slots__ = (
        "_inflight_copied",
        "_last",
        "_oids_copied",
        "_orders_copied",
        "_venues_copied",
        "attention",
        "balance_waits",
        "base",
        "changes",
        "commands",
        "config",
        "desk",
        "done_orders",
        "inflight",
        "ledger",
        "live",
        "maintenance_due",
        "maintenance_timer",
        "now",
        "order_commands",
        "orders",
        "quote_waits",
        "quotes",
        "risk",
        "seq",
        "stimuli",
        "strategy",
        "suspect_quotes",
        "venue_oids",
        "venues",
        "wake_at",
    )

    def __init__(self, state: State[S], ts: int) -> None:
        self.base = state
        books = state.books
        self.config = state.config
        self.now = ts if ts > state.now else state.now
        self.seq = books.seq
        self.strategy: S = state.strategy
        self.orders: dict[str, Order] | Mapping[str, Order] = books.orders
        self.venue_oids: dict[tuple[str, str], str] | Mapping[tuple[str, str], str] = (
            books.venue_oids
        )
        self.inflight: dict[int, Inflight] | Mapping[int, Inflight] = books.inflight
        self.ledger = books.ledger
        self.risk = books.risk
        self.venues: dict[str, VenueStatus] | Mapping[str, VenueStatus] = books.venues
        self.quotes = state.quotes
        self.attention = books.attention
        self.done_orders = books.done_orders
        self.live = books.live
        self.suspect_quotes = books.suspect_quotes
        self.desk = books.desk
        self.maintenance_due = books.maintenance_due
        self.maintenance_timer = books.maintenance_timer
        self.wake_at = books.wake_at
        self.balance_waits = books.balance_waits
        self.quote_waits = books.quote_waits
        self.stimuli: list[Stimulus] = []
        self.commands: list[Command] = []
        self.order_commands: dict[str, list[OrderCommand]] = {}
        self.changes: list[OrderChange] = []
        self._orders_copied = False
        self._oids_copied = False
        self._inflight_copied = False
        self._venues_copied = False
        self._last = state

    # --- building blocks -----------------------------------------------------------------------

    def next_id(self) -> int:
        self.seq += 1
        return self.seq

    def snapshot(self) -> State[S]:
        """The state as of now, reusing the last snapshot (or its books) when nothing moved.

        A snapshot is frozen: the mappings it holds are the working copy's own until it is
        taken, and are copied again on the next write after it."""
        last = self._last
        b = last.books
        if (
            self.seq == b.seq
            and self.orders is b.orders
            and self.venue_oids is b.venue_oids
            and self.inflight is b.inflight
            and self.ledger is b.ledger
            and self.risk is b.risk
            and self.venues is b.venues
            and self.attention is b.attention
            and self.done_orders == b.done_orders
            and self.live is b.live
            and self.suspect_quotes is b.suspect_quotes
            and self.desk is b.desk
            and self.maintenance_due == b.maintenance_due
            and self.maintenance_timer == b.maintenance_timer
            and self.wake_at == b.wake_at
            and self.balance_waits is b.balance_waits
            and self.quote_waits is b.quote_waits
        ):
            if (
                self.strategy is last.strategy
                and self.now == last.now
                and self.quotes is last.quotes
            ):
                return last
            books = b
        else:
            books = new_books(
                self.seq,
                self.orders,
                self.venue_oids,
                self.inflight,
                self.ledger,
                self.risk,
                self.venues,
                self.attention,
                self.done_orders,
                self.live,
                self.suspect_quotes,
                self.desk,
                self.maintenance_due,
                self.maintenance_timer,
                self.balance_waits,
                self.quote_waits,
                self.wake_at,
            )
            # The books now hold the working mappings: the next write copies again, so that a
            # view handed out here never changes under its holder later in the step.
            self._orders_copied = self._oids_copied = False
            self._inflight_copied = self._venues_copied = False
        self._last = new_state(
            self.config,
            self.strategy,
            self.base.epoch,
            self.now,
            self.base.nonce,
            self.quotes,
            books,
        )
        return self._last

    def finish(self) -> tuple[State[S], list[Command]]:
        commands = self.commands
        for venue, cmds in self.order_commands.items():
            if len(cmds) == 1:
                commands.append(cmds[0])
            else:
                batch = Batch(command_id=self.next_id(), venue=venue, commands=tuple(cmds))
                commands.append(batch)
                for cmd in cmds:
                    flight = self.inflight[cmd.command_id]
                    self.track(cmd.command_id, replace(flight, batch=batch.command_id))
        return self.snapshot(), commands

    def put_order(self, order: Order) -> None:
        old = self.orders.get(order.cloid)
        if old is None or old.is_live != order.is_live:
            self.done_orders += (0 if order.is_live else 1) - (
                0 if old is None or old.is_live else 1
            )
            if order.is_live:
                self.live = {**self.live, order.cloid: order.seq}
            else:
                live = dict(self.live)
                live.pop(order.cloid, None)
                self.live = live
        status = order.status
        needs = (
            status is OrderStatus.IN_DOUBT or status is OrderStatus.CANCEL_FAILED
        ) and not order.status_requested
        if needs != (order.cloid in self.attention):
            self.attention = (
                self.attention | {order.cloid} if needs else self.attention - {order.cloid}
            )
        if not self._orders_copied:
            self.orders = dict(self.orders)
            self._orders_copied = True
        assert isinstance(self.orders, dict)
        self.orders[order.cloid] = order
        if order.venue_order_id is not None:
            key = (order.venue, order.venue_order_id)
            if self.venue_oids.get(key) != order.cloid:
                if not self._oids_copied:
                    self.venue_oids = dict(self.venue_oids)
                    self._oids_copied = True
                assert isinstance(self.venue_oids, dict)
                self.venue_oids[key] = order.cloid

    def drop_orders(self, cloids: Iterable[str]) -> None:
        orders = dict(self.orders)
        oids = dict(self.venue_oids)
        for cloid in cloids:
            order = orders.pop(cloid)
            if not order.is_live:
                self.done_orders -= 1
            if order.venue_order_id is not None:
                oids.pop((order.venue, order.venue_order_id), None)
        self.orders, self.venue_oids = orders, oids
        self._orders_copied = self._oids_copied = True

    def track(self, command_id: int, flight: Inflight) -> None:
        if not self._inflight_copied:
            self.inflight = dict(self.inflight)
            self._inflight_copied = True
        assert isinstance(self.inflight, dict)
        self.inflight[command_id] = flight

    def resolve(self, command_id: int | None) -> Inflight | None:
        if command_id is None or command_id not in self.inflight:
            return None
        if not self._inflight_copied:
            self.inflight = dict(self.inflight)
            self._inflight_copied = True
        assert isinstance(self.inflight, dict)
        return self.inflight.pop(command_id)

    def venue(self, name: str) -> VenueStatus:
        return self.venues.get(name) or VenueStatus()

    def put_venue(self, name: str, status: VenueStatus) -> None:
        if not self._venues_copied:
            self.venues = dict(self.venues)
            self._venues_copied = True
        assert isinstance(self.venues, dict)
        self.venues[name] = status

    def notify(self, level: Level, code: str, message: str) -> None:
        self.commands.append(
            Notify(command_id=self.next_id(), level=level, code=code, message=message)
        )

    def find(self, venue: str, cloid: str | None, venue_order_id: str | None) -> Order | None:
        if cloid is not None:
            order = self.orders.get(cloid)
            if order is not None:
                return order
        if venue_order_id is not None:
            found = self.venue_oids.get((venue, venue_order_id))
            if found is not None:
                return self.orders.get(found)
        return None
