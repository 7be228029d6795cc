"""Whole-run checks the runners keep as they go: a running record of every order ever seen.

:class:`RunMonitor` watches every step a runner makes (``simulate``'s backtest loop, the state
machine) and, when asked, the simulated venue. It checks what no single step and no final state
can show:

* ``fills_sum_to_filled_qty`` — for every order the core ever tracked (not only those still
  tracked at the end: terminal orders are pruned), the filled quantity the core last gave it is
  the sum of the distinct fills delivered for it.
* ``no_terminal_order_resting`` — no order rests at the venue for longer than a bounded
  in-flight window while the core considers it done (canceled, filled, rejected) or has never
  heard of it. A venue message on its way explains a short disagreement; a longer one is a
  level doubled at the venue, whatever a later reconciliation repairs.
* ``order_churn_bounded`` — the orders a bot places stay proportionate to what happened in
  the market (fills, moving quotes, reconciliations), and a bot does not cancel an order only
  to place the very same one (venue, symbol, side, price and size) in the same step. A bot
  that sends new orders on every quote while ignoring the ones it has is slow and costly even
  when every other invariant holds.
* ``reconnect_recovers_fills`` — every fill the venue made before the stream came back (while it
  was down, or lost before) is known to the core (applied to its ledger) once the
  reconciliation the reconnect started has ended, not only when some later repair happens to
  find it (failure `missed-fills-on-reconnect`).

A bot on several venues is watched on each: give the monitor every venue's exchange model
(``exchanges={name: exchange}``); an order resting is judged at its own venue, and a reconnect
is judged against the fills of the venue whose feed came back.

The record is kept in the monitor, outside the bot's state, and grows with the number of
orders: a testing tool, not something a live shell keeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from gridcore.commands import Batch, CancelOrder, Command, Notify
from gridcore.core import State
from gridcore.events import (
    FeedReconnected,
    Fill,
    FillsReported,
    OrderFilled,
    OrderPartiallyFilled,
    QuoteTicked,
)
from gridcore.invariants import StepRecord, Violation
from gridcore.lifecycle import OrderStatus
from gridcore.numbers import CTX, ZERO
from gridcore.sync import SyncPhase

if TYPE_CHECKING:
    from gridcore.sim.exchange import SimExchange, SimOrder

__all__ = ["MONITOR_INVARIANTS", "RunMonitor"]

MONITOR_INVARIANTS = (
    "fills_sum_to_filled_qty",
    "no_terminal_order_resting",
    "order_churn_bounded",
    "reconnect_recovers_fills",
)
"""The invariants :class:`RunMonitor` checks."""

CHURN_FLOOR = 30
"""Orders any run may place before the churn budget applies (the first build, restarts)."""

CHURN_PER_FILL = 2
"""Placements one fill may justify (a replacement level, a take-profit, their retries)."""

CHURN_PER_SYNC = 1
"""Placements per reconciliation and per order the bot held when it started (a rebuild)."""

CHURN_QUOTES_PER_ORDER = 1
"""Quotes per placement the budget allows without fills: one re-pricing per moving quote."""

CHURN_SAME_ORDER = 5
"""Orders a run may cancel and place again unchanged in one step (a repair after a restart may
re-place a level it could not confirm); beyond that, it is churn for its own sake."""


_EXCESS_REFUSALS = frozenset(
    f"refused:{code}" for code in ("max_position", "insufficient_margin", "velocity")
)
"""Refusals that say a bot asks for too much (not that the market data is old or the venue
not ready, which a bot retries on its timer)."""


def _cancels(commands: tuple[Command, ...]) -> list[str]:
    out = []
    for command in commands:
        for inner in command.commands if isinstance(command, Batch) else (command,):
            if isinstance(inner, CancelOrder):
                out.append(inner.cloid)
    return out


def _fills(event: Any) -> tuple[Fill, ...]:
    if isinstance(event, OrderFilled | OrderPartiallyFilled):
        return (event.fill,)
    if isinstance(event, FillsReported):
        return event.fills
    return ()


def _resting(exchange: SimExchange | Mapping[str, SimExchange]) -> list[tuple[str, SimOrder]]:
    """Every order resting at ``exchange`` (or at each exchange of a mapping), with its
    venue's name."""
    exchanges = exchange.values() if isinstance(exchange, Mapping) else (exchange,)
    return [(ex.config.venue, o) for ex in exchanges for o in ex.open_orders()]


@attrs.define
class _Owed:
    venue: str
    ts: int
    owed: list[Fill]
    synced: bool = False


class RunMonitor:
    """The running record of one run (see the module documentation).

    ``resting_window_ms`` bounds how long an order may rest at the venue while the core holds
    it done or unknown (default: two maintenance periods and 20 s for answers on their way).
    ``recovery_window_ms`` bounds how long after a reconnect that starts no reconciliation the
    core may still miss a fill the venue made before it (default: one maintenance period); a
    reconnect that starts one (as the kernel's always does) is judged when that reconciliation
    ends, however long its retries take. ``exchanges`` (every simulated venue of the run, by
    name) turns that check on for each venue; ``exchange`` is the same for a run on one venue.
    """

    def __init__(
        self,
        initial: State[Any],
        *,
        resting_window_ms: int | None = None,
        recovery_window_ms: int | None = None,
        exchange: SimExchange | None = None,
        exchanges: Mapping[str, SimExchange] | None = None,
    ) -> None:
        if exchange is not None and exchanges is not None:
            raise ValueError(
                "RunMonitor takes exchange= (one venue) or exchanges= (every venue by name), "
                "not both"
            )
        if exchange is not None:
            exchanges = {exchange.config.venue: exchange}
        for name, ex in (exchanges or {}).items():
            if ex.config.venue != name:
                raise ValueError(
                    f"RunMonitor exchanges[{name!r}] is the exchange of venue "
                    f"{ex.config.venue!r}: key every exchange by its own venue's name"
                )
        if resting_window_ms is None:
            resting_window_ms = 2 * initial.config.maintenance_ms + 20_000
        if recovery_window_ms is None:
            recovery_window_ms = initial.config.maintenance_ms
        self.window = resting_window_ms
        self.recovery = recovery_window_ms
        self.exchanges: dict[str, SimExchange] = dict(exchanges or {})
        self.owed: list[_Owed] = []
        self.found: list[Violation] = []
        self.same = 0
        self.filled: dict[str, Decimal] = {}
        self.sums: dict[str, Decimal] = {}
        self.fill_ids: set[str] = set()
        self.resting: dict[str, int] = {}
        self.flagged: set[str] = set()
        self.placed = 0
        self.refused = 0
        self.fills = 0
        self.quotes = 0
        self.syncs = 0
        self.held = 0
        self.last_mid: dict[tuple[str, str], Decimal] = {}

    # --- feeding -------------------------------------------------------------------------------

    def step(self, record: StepRecord) -> None:
        """Record one step of the bot."""
        before, after, event = record.before, record.after, record.event
        if type(event) is QuoteTicked:
            key = (event.venue, event.symbol)
            mid = event.mid
            if self.last_mid.get(key) != mid:
                self.quotes += 1
                self.last_mid[key] = mid
        orders = after.orders
        if orders is not before.orders:
            prior = before.orders
            for name, order in orders.items():
                if prior.get(name) is not order:
                    self.filled[name] = order.filled_qty
        for fill in _fills(event):
            if fill.fill_id in self.fill_ids:
                continue
            self.fill_ids.add(fill.fill_id)
            self.fills += 1
            cloid: str | None = fill.cloid
            if cloid is None and fill.venue_order_id is not None:
                cloid = after.venue_oids.get((fill.venue, fill.venue_order_id))
            if cloid is not None and cloid in orders:
                # A fill that reaches an order the core no longer tracks cannot move it.
                self.sums[cloid] = CTX.add(self.sums.get(cloid, ZERO), fill.qty)
        if after.venues is not before.venues:
            for venue, vs in after.venues.items():
                old = before.venues.get(venue)
                if old is not None and vs.syncs > old.syncs:
                    self.syncs += 1
                    self.held += sum(
                        1
                        for c in after.live
                        if after.orders[c].status is not OrderStatus.PENDING_CANCEL
                    )
        canceled = _cancels(record.commands)
        again = (
            {
                (o.venue, o.symbol, o.side, o.price, o.remaining)
                for o in (before.orders.get(c) for c in canceled)
                if o is not None
            }
            if canceled
            else set()
        )
        for place in record.places():
            self.placed += 1
            if (place.venue, place.symbol, place.side, place.price, place.qty) in again:
                self.same += 1
        for command in record.commands:
            if isinstance(command, Notify) and command.code in _EXCESS_REFUSALS:
                self.refused += 1
        if type(event) is FeedReconnected:
            self._reconnected(event, after)
        if self.owed:
            self._settle_owed(after)

    def _reconnected(self, event: FeedReconnected, after: State[Any]) -> None:
        exchange = self.exchanges.get(event.venue)
        if exchange is None:
            return
        ledger = after.ledger
        owed = [f for f in exchange.fills if f.ts <= event.ts and not ledger.has_seen(f)]
        if owed:
            self.owed.append(_Owed(venue=event.venue, ts=event.ts, owed=owed))

    def _settle_owed(self, after: State[Any]) -> None:
        """Judge every reconnect whose reconciliation has just ended (or that started none
        within the window)."""
        keep = []
        for entry in self.owed:
            vs = after.venues.get(entry.venue)
            syncing = vs is not None and vs.phase is not SyncPhase.SYNCED
            if syncing:
                entry.synced = True
                keep.append(entry)
                continue
            if not entry.synced and after.now < entry.ts + self.recovery:
                keep.append(entry)
                continue
            missing = [f for f in entry.owed if not after.ledger.has_seen(f)]
            if missing:
                first = missing[0]
                when = (
                    "once the reconnect's reconciliation ended"
                    if entry.synced
                    else f"{after.now - entry.ts} ms after it, with no reconciliation started"
                )
                self.found.append(
                    Violation(
                        invariant="reconnect_recovers_fills",
                        ts=after.now,
                        detail=f"{len(missing)} fill(s) the venue made on {entry.venue} while "
                        f"its feed was down are still unknown to the core, {when} (the feed "
                        f"came back at ts={entry.ts}; first: {first.fill_id}, {first.side.value} "
                        f"{first.qty} @ {first.price} for order {first.cloid} at ts={first.ts})",
                    )
                )
        self.owed = keep

    def venue(
        self,
        state: State[Any],
        exchange: SimExchange | Mapping[str, SimExchange] | None,
        now: int,
    ) -> list[Violation]:
        """Compare the orders resting at ``exchange`` (or at each of a mapping of venues;
        ``None``: every venue the monitor was given) with the core's at ``now`` (ms); return the
        orders that have rested while done or unknown in the core for longer than the window
        (each reported once), and what the other running checks found since the last call."""
        out, self.found = self.found, []
        seen: set[str] = set()
        for venue, order in _resting(self.exchanges if exchange is None else exchange):
            ours = state.orders.get(order.cloid)
            if ours is not None and ours.is_live:
                continue
            seen.add(order.cloid)
            since = self.resting.setdefault(order.cloid, now)
            if now - since > self.window and order.cloid not in self.flagged:
                self.flagged.add(order.cloid)
                out.append(
                    Violation(
                        invariant="no_terminal_order_resting",
                        ts=now,
                        detail=f"venue {venue} has rested {order.cloid} ({order.side.value} "
                        f"{order.remaining} @ {order.price}) for {now - since} ms while the core "
                        f"has it {'unknown' if ours is None else ours.status.name} (window "
                        f"{self.window} ms)",
                    )
                )
        for cloid in [c for c in self.resting if c not in seen]:
            del self.resting[cloid]
        return out

    def quiescent(
        self, state: State[Any], exchange: SimExchange | Mapping[str, SimExchange] | None = None
    ) -> list[Violation]:
        """With nothing in flight between bot and venue, every order resting at the venue (at
        each venue of a mapping; ``None``: every venue the monitor was given) is live in the
        core."""
        out = []
        for venue, order in _resting(self.exchanges if exchange is None else exchange):
            ours = state.orders.get(order.cloid)
            if (ours is None or not ours.is_live) and order.cloid not in self.flagged:
                self.flagged.add(order.cloid)
                out.append(
                    Violation(
                        invariant="no_terminal_order_resting",
                        ts=state.now,
                        detail=f"with nothing in flight venue {venue} rests {order.cloid} "
                        f"({order.side.value} {order.remaining} @ {order.price}) while the core "
                        f"has it {'unknown' if ours is None else ours.status.name}",
                    )
                )
        return out

    # --- whole-run checks ---------------------------------------------------------------------

    def churn_budget(self) -> int:
        """Orders the run may place: a floor, plus some per fill, per reconciliation and per
        moving quote."""
        return (
            CHURN_FLOOR
            + CHURN_PER_FILL * self.fills
            + CHURN_PER_SYNC * (self.syncs + self.held)
            + self.quotes // CHURN_QUOTES_PER_ORDER
        )

    def finish(self, state: State[Any]) -> list[Violation]:
        """The whole-run checks, on the final state: fills sum for every order ever seen,
        churn within its budget (and whatever the running checks found and were not yet asked
        for)."""
        out, self.found = self.found, []
        for cloid, filled in sorted(self.filled.items()):
            order = state.orders.get(cloid)
            if order is not None:
                filled = order.filled_qty
            total = self.sums.get(cloid, ZERO)
            if total != filled:
                out.append(
                    Violation(
                        invariant="fills_sum_to_filled_qty",
                        ts=state.now,
                        detail=f"order {cloid} "
                        f"{'' if order is not None else '(no longer tracked) '}"
                        f"has filled_qty {filled} but its fills add up to {total}",
                    )
                )
        if self.same > CHURN_SAME_ORDER:
            out.append(
                Violation(
                    invariant="order_churn_bounded",
                    ts=state.now,
                    detail=f"{self.same} orders canceled and placed again unchanged in the same "
                    f"step (at most {CHURN_SAME_ORDER} per run)",
                )
            )
        tried = self.placed
        budget = self.churn_budget()
        if tried > budget:
            out.append(
                Violation(
                    invariant="order_churn_bounded",
                    ts=state.now,
                    detail=f"{self.placed} orders placed ({self.refused} more refused for "
                    f"position, margin or rate) against a budget of {budget} ({CHURN_FLOOR} + {CHURN_PER_FILL} x {self.fills} fills "
                    f"+ {CHURN_PER_SYNC} x ({self.syncs} reconciliations + {self.held} orders "
                    f"held at them) + "
                    f"{self.quotes} moving quotes / {CHURN_QUOTES_PER_ORDER})",
                )
            )
        return out
