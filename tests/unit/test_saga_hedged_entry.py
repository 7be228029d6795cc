"""A two-venue hedged entry written as a saga table, and a strategy that runs such entries.

Leg 1 buys on the long venue; once it has filled, leg 2 sells the quantity actually filled on the
short venue; if leg 2 is refused, rejected, or not filled by its deadline, leg 1 is closed with a
reduce-only order of exactly the unhedged base quantity. Terminal phases: HEDGED, ROLLED_BACK,
and ABORTED (leg 1 never filled, so there is nothing to hedge or close).

Used by the saga tests (hand-fed kernel steps, a two-venue backtest, a hypothesis model).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Self

import attrs

from gridcore.api import Stimulus, SubmitRefused
from gridcore.core import Cancel, Intent, OrderChange, State, Submit
from gridcore.events import Event, QuoteTicked
from gridcore.instruments import Side, TimeInForce
from gridcore.lifecycle import OrderStatus
from gridcore.numbers import CTX
from gridcore.saga import DEADLINE, Row, Saga, SagaSpec, Signal, advance, deadline_signal, start

ZERO = Decimal(0)


class Hedge(enum.Enum):
    """Where a hedged entry stands."""

    LEG1 = "leg1"  # leg 1 sent, waiting for its fill
    CANCELING_LEG1 = "canceling_leg1"  # leg 1 overdue: cancel sent, waiting for its end
    LEG2 = "leg2"  # leg 1 filled (some), leg 2 sent for that quantity
    CANCELING_LEG2 = "canceling_leg2"  # leg 2 overdue: cancel sent, waiting for its end
    ROLLING_BACK = "rolling_back"  # closing leg 1's unhedged quantity, reduce-only
    HEDGED = "hedged"  # done: both legs filled for the same quantity
    ROLLED_BACK = "rolled_back"  # done: the unhedged quantity is closed
    ABORTED = "aborted"  # done: leg 1 never filled


@attrs.frozen(kw_only=True)
class Entry:
    """One hedged entry's data: what to trade and what happened so far (base units)."""

    saga_id: str
    qty: Decimal
    symbol: str
    long_venue: str
    short_venue: str
    long_price: Decimal
    short_price: Decimal
    close_price: Decimal
    leg1_filled: Decimal = ZERO
    leg2_filled: Decimal = ZERO
    rolled_done: Decimal = ZERO
    rolling: Decimal = ZERO
    attempt: int = 0
    cloids: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def exposure(self) -> Decimal:
        """Base quantity bought on the long venue and neither hedged nor closed."""
        return self.leg1_filled - self.leg2_filled - self.rolled_done - self.rolling


def _leg1(e: Entry) -> Submit:
    return Submit(
        venue=e.long_venue,
        symbol=e.symbol,
        side=Side.BUY,
        qty=e.qty,
        price=e.long_price,
        tif=TimeInForce.IOC,
        tag="hedge:leg1",
        ref=(e.saga_id, "leg1", 0),
    )


def _leg2(e: Entry) -> Submit:
    return Submit(
        venue=e.short_venue,
        symbol=e.symbol,
        side=Side.SELL,
        qty=e.leg1_filled,  # sized to leg 1's actual fill, never to the plan
        price=e.short_price,
        tif=TimeInForce.IOC,
        tag="hedge:leg2",
        ref=(e.saga_id, "leg2", 0),
    )


def _rollback(e: Entry) -> Submit:
    return Submit(
        venue=e.long_venue,
        symbol=e.symbol,
        side=Side.SELL,
        qty=e.exposure,  # exactly the unhedged base quantity, reduce-only
        price=e.close_price,
        tif=TimeInForce.IOC,
        reduce_only=True,
        tag="hedge:rollback",
        ref=(e.saga_id, "rollback", e.attempt),
    )


# --- row actions: (saga, signal) -> (data, intents) --------------------------------------------


def _named(leg: str) -> Any:
    def act(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
        e = saga.data
        return attrs.evolve(e, cloids={**e.cloids, leg: str(signal.detail)}), ()

    return act


def _cancel(leg: str) -> Any:
    def act(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
        cloid = saga.data.cloids.get(leg)
        return saga.data, ([Cancel(cloid=cloid)] if cloid is not None else [])

    return act


def _leg1_progress(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    return attrs.evolve(saga.data, leg1_filled=signal.qty), ()


def _to_leg2(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    e = attrs.evolve(saga.data, leg1_filled=signal.qty)
    return e, [_leg2(e)]


def _leg2_progress(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    return attrs.evolve(saga.data, leg2_filled=signal.qty), ()


def _to_rollback(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    e = attrs.evolve(saga.data, leg2_filled=signal.qty, attempt=1)
    return e, [_rollback(e)]


def _rollback_progress(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    return attrs.evolve(saga.data, rolling=signal.qty), ()


def _rollback_ended(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    e = saga.data
    e = attrs.evolve(e, rolled_done=e.rolled_done + signal.qty, rolling=ZERO, attempt=e.attempt + 1)
    return e, ([_rollback(e)] if e.exposure > 0 else [])


def _late_leg1(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    # A leg 1 fill booked after leg 2 was sized (a fill message that came late): more to hedge.
    e = saga.data
    return attrs.evolve(e, leg1_filled=max(e.leg1_filled, signal.qty)), ()


def _leg2_short(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    # Leg 2 filled what it was asked, but leg 1 filled more since: close the excess.
    e = attrs.evolve(saga.data, leg2_filled=signal.qty, attempt=saga.data.attempt + 1)
    return e, [_rollback(e)]


def _leaves_exposure(saga: Saga[Entry], signal: Signal) -> bool:
    return saga.data.leg1_filled - signal.qty - saga.data.rolled_done > 0


def _rollback_complete(saga: Saga[Entry], signal: Signal) -> bool:
    e = saga.data
    return e.leg1_filled - e.leg2_filled - e.rolled_done - signal.qty <= 0


_T = Hedge
LEG_MS = 10_000

HEDGED_ENTRY = SagaSpec(
    name="hedged_entry",
    initial=_T.LEG1,
    deadlines={
        _T.LEG1: LEG_MS,
        _T.CANCELING_LEG1: LEG_MS,
        _T.LEG2: LEG_MS,
        _T.CANCELING_LEG2: LEG_MS,
        _T.ROLLING_BACK: LEG_MS,
    },
    terminal=frozenset({_T.HEDGED, _T.ROLLED_BACK, _T.ABORTED}),
    rows={
        (_T.LEG1, "leg1_named"): Row(to=None, act=_named("leg1")),
        (_T.LEG1, "leg1_partial"): Row(to=None, act=_leg1_progress),
        (_T.LEG1, "leg1_filled"): Row(to=_T.LEG2, act=_to_leg2),
        (_T.LEG1, "leg1_ended_part"): Row(to=_T.LEG2, act=_to_leg2),
        (_T.LEG1, "leg1_ended_empty"): Row(to=_T.ABORTED),
        (_T.LEG1, DEADLINE): Row(to=_T.CANCELING_LEG1, act=_cancel("leg1")),
        (_T.CANCELING_LEG1, "leg1_partial"): Row(to=None, act=_leg1_progress),
        (_T.CANCELING_LEG1, "leg1_filled"): Row(to=_T.LEG2, act=_to_leg2),
        (_T.CANCELING_LEG1, "leg1_ended_part"): Row(to=_T.LEG2, act=_to_leg2),
        (_T.CANCELING_LEG1, "leg1_ended_empty"): Row(to=_T.ABORTED),
        (_T.CANCELING_LEG1, DEADLINE): Row(to=_T.CANCELING_LEG1, act=_cancel("leg1")),
        (_T.LEG2, "leg2_named"): Row(to=None, act=_named("leg2")),
        (_T.LEG2, "leg2_partial"): Row(to=None, act=_leg2_progress),
        (_T.LEG2, "leg2_filled"): (
            Row(to=_T.ROLLING_BACK, act=_leg2_short, when=_leaves_exposure),
            Row(to=_T.HEDGED, act=_leg2_progress),
        ),
        (_T.LEG2, "leg1_partial"): Row(to=None, act=_late_leg1),
        (_T.LEG2, "leg1_filled"): Row(to=None, act=_late_leg1),
        (_T.LEG2, "leg1_ended_part"): Row(to=None, act=_late_leg1),
        (_T.LEG2, "leg2_ended_part"): Row(to=_T.ROLLING_BACK, act=_to_rollback),
        (_T.LEG2, "leg2_ended_empty"): Row(to=_T.ROLLING_BACK, act=_to_rollback),
        (_T.LEG2, DEADLINE): Row(to=_T.CANCELING_LEG2, act=_cancel("leg2")),
        (_T.CANCELING_LEG2, "leg2_partial"): Row(to=None, act=_leg2_progress),
        (_T.CANCELING_LEG2, "leg2_filled"): (
            Row(to=_T.ROLLING_BACK, act=_leg2_short, when=_leaves_exposure),
            Row(to=_T.HEDGED, act=_leg2_progress),
        ),
        (_T.CANCELING_LEG2, "leg1_partial"): Row(to=None, act=_late_leg1),
        (_T.CANCELING_LEG2, "leg1_filled"): Row(to=None, act=_late_leg1),
        (_T.CANCELING_LEG2, "leg1_ended_part"): Row(to=None, act=_late_leg1),
        (_T.CANCELING_LEG2, "leg2_ended_part"): Row(to=_T.ROLLING_BACK, act=_to_rollback),
        (_T.CANCELING_LEG2, "leg2_ended_empty"): Row(to=_T.ROLLING_BACK, act=_to_rollback),
        (_T.CANCELING_LEG2, DEADLINE): Row(to=_T.CANCELING_LEG2, act=_cancel("leg2")),
        (_T.ROLLING_BACK, "rollback_named"): Row(to=None, act=_named("rollback")),
        (_T.ROLLING_BACK, "rollback_partial"): Row(to=None, act=_rollback_progress),
        (_T.ROLLING_BACK, "rollback_filled"): (
            Row(to=_T.ROLLED_BACK, act=_rollback_ended, when=_rollback_complete),
            Row(to=_T.ROLLING_BACK, act=_rollback_ended),
        ),
        (_T.ROLLING_BACK, "rollback_ended_part"): (
            Row(to=_T.ROLLED_BACK, act=_rollback_ended, when=_rollback_complete),
            Row(to=_T.ROLLING_BACK, act=_rollback_ended),
        ),
        (_T.ROLLING_BACK, "rollback_ended_empty"): (
            Row(to=_T.ROLLED_BACK, act=_rollback_ended, when=_rollback_complete),
            Row(to=_T.ROLLING_BACK, act=_rollback_ended),
        ),
        (_T.ROLLING_BACK, "leg1_partial"): Row(to=None, act=_late_leg1),
        (_T.ROLLING_BACK, "leg1_filled"): Row(to=None, act=_late_leg1),
        (_T.ROLLING_BACK, "leg1_ended_part"): Row(to=None, act=_late_leg1),
        (_T.ROLLING_BACK, "leg2_partial"): Row(to=None, act=_leg2_progress),
        (_T.ROLLING_BACK, "leg2_filled"): Row(to=None, act=_leg2_progress),
        (_T.ROLLING_BACK, "leg2_ended_part"): Row(to=None, act=_leg2_progress),
        (_T.ROLLING_BACK, DEADLINE): Row(to=_T.ROLLING_BACK, act=_cancel("rollback")),
    },
)
"""The hedged-entry table: every rule of the workflow, in one place."""


def begin(entry: Entry, now: int) -> tuple[Saga[Entry], list[Intent]]:
    """Start a hedged entry: the saga in LEG1 with its deadline armed, and leg 1."""
    saga, intents = start(HEDGED_ENTRY, entry.saga_id, entry, now)
    return saga, [_leg1(entry), *intents]


# --- translating what the kernel says into signals -------------------------------------------


def signal_for_change(change: OrderChange) -> tuple[str, Signal] | None:
    """``(saga id, signal)`` for a change of an order a hedged entry submitted, else ``None``."""
    ref = change.ref
    if not (isinstance(ref, tuple) and len(ref) == 3):
        return None
    saga_id, leg, _attempt = ref
    after = change.after
    if change.before is None:
        return str(saga_id), Signal(kind=f"{leg}_named", detail=after.cloid)
    if after.status is OrderStatus.FILLED and after.filled_qty >= after.qty:
        return str(saga_id), Signal(kind=f"{leg}_filled", qty=after.filled_qty)
    if after.status is OrderStatus.FILLED:
        # The venue says filled but the fills are not booked yet (the kernel asked for them):
        # only booked quantity counts.
        return str(saga_id), Signal(kind=f"{leg}_partial", qty=after.filled_qty)
    if after.status in (OrderStatus.CANCELED, OrderStatus.REJECTED):
        end = "ended_part" if after.filled_qty > 0 else "ended_empty"
        return str(saga_id), Signal(kind=f"{leg}_{end}", qty=after.filled_qty)
    if change.fill is not None:
        return str(saga_id), Signal(kind=f"{leg}_partial", qty=after.filled_qty)
    return None


def signal_for_refusal(refused: SubmitRefused) -> tuple[str, Signal] | None:
    """``(saga id, signal)`` for a refused submit of a hedged entry, else ``None``."""
    ref = refused.ref
    if not (isinstance(ref, tuple) and len(ref) == 3):
        return None
    return str(ref[0]), Signal(kind=f"{ref[1]}_ended_empty", detail=refused.code)


# --- a strategy running hedged entries one after the other ------------------------------------


@attrs.frozen(kw_only=True)
class HedgedEntries:
    """Open ``entries`` hedged entries of ``qty`` (long on ``long_venue``, short on
    ``short_venue``), one at a time, each once both venues can trade, at ``slippage`` from the
    mid (``short_slippage`` for leg 2, when given). ``sagas`` holds every entry by id (the
    invariant catalogue reads it)."""

    symbol: str
    long_venue: str
    short_venue: str
    qty: Decimal
    entries: int = 1
    slippage: Decimal = Decimal("0.002")
    short_slippage: Decimal | None = None
    sagas: Mapping[str, Saga[Entry]] = attrs.field(factory=dict)

    def _feed(self, view: State[Self], saga_id: str, signal: Signal) -> tuple[Self, list[Intent]]:
        saga = self.sagas.get(saga_id)
        if saga is None:
            return self, []
        moved, intents = advance(HEDGED_ENTRY, saga, signal, view.now)
        if moved is saga:
            return self, intents
        return attrs.evolve(self, sagas={**self.sagas, saga_id: moved}), intents

    def _maybe_begin(self, view: State[Self]) -> tuple[Self, list[Intent]]:
        if len(self.sagas) >= self.entries or any(not s.terminal for s in self.sagas.values()):
            return self, []
        if not (view.can_trade(self.long_venue) and view.can_trade(self.short_venue)):
            return self, []
        long_mid = view.mid(self.long_venue, self.symbol)
        short_mid = view.mid(self.short_venue, self.symbol)
        if long_mid is None or short_mid is None:
            return self, []
        up = 1 + self.slippage
        down = 1 - self.slippage
        tick = view.config.instrument(self.long_venue, self.symbol).tick_size
        entry = Entry(
            saga_id=f"e{len(self.sagas) + 1}",
            qty=self.qty,
            symbol=self.symbol,
            long_venue=self.long_venue,
            short_venue=self.short_venue,
            long_price=CTX.multiply(long_mid, up).quantize(tick),
            short_price=CTX.multiply(
                short_mid, down if self.short_slippage is None else 1 - self.short_slippage
            ).quantize(tick),
            close_price=CTX.multiply(long_mid, down).quantize(tick),
        )
        saga, intents = begin(entry, view.now)
        return attrs.evolve(self, sagas={**self.sagas, entry.saga_id: saga}), intents

    def on_tick(self, view: State[Self], tick: QuoteTicked) -> tuple[Self, Sequence[Intent]] | None:
        new, intents = self._maybe_begin(view)
        return None if new is self else (new, intents)

    def on_changes(
        self, view: State[Self], changes: Sequence[OrderChange]
    ) -> tuple[Self, Sequence[Intent]]:
        new, out = self, []
        for change in changes:
            found = signal_for_change(change)
            if found is not None:
                new, intents = new._feed(view, *found)
                out.extend(intents)
        return new, out

    def on_ready(self, view: State[Self], venue: str) -> tuple[Self, Sequence[Intent]]:
        return self, ()

    def on_timer(self, view: State[Self], timer_id: str) -> tuple[Self, Sequence[Intent]]:
        saga_id = deadline_signal(timer_id)
        if saga_id is None:
            return self, ()
        return self._feed(view, saga_id, Signal(kind=DEADLINE))

    def on_event(self, view: State[Self], event: Event) -> tuple[Self, Sequence[Intent]]:
        return self, ()

    def on_stimulus(self, view: State[Self], stimulus: Stimulus) -> tuple[Self, Sequence[Intent]]:
        if isinstance(stimulus, SubmitRefused):
            found = signal_for_refusal(stimulus)
            if found is not None:
                return self._feed(view, *found)
        return self, ()
