"""A two-venue hedged entry written as a saga table, and a strategy that runs such entries.

Leg 1 buys on the long venue; once it has filled, leg 2 sells the quantity actually filled on the
short venue; if leg 2 is refused, rejected, or not filled by its deadline, leg 1 is closed with a
reduce-only order of exactly the unhedged base quantity. Terminal phases: HEDGED, ROLLED_BACK,
and ABORTED (leg 1 never filled, so there is nothing to hedge or close).

The tests below run it through :func:`gridcore.saga.advance` with hand-fed signals, through
:func:`gridcore.step` with hand-fed venue events, in a two-venue backtest with injected faults,
and against a hypothesis model of a venue that fills, rejects, refuses, races and stays silent.

A late message after a cancel (a fill the venue booked before the cancel landed, reported after
the cancel's answer) is handled where the saga can still act (rows that book a late leg 1 fill
in LEG2 and later phases); a late fill reported after a terminal phase cannot be acted on by the
saga and is left to reconciliation and the position invariants.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Mapping, Sequence
from decimal import ROUND_DOWN, Decimal
from typing import Any, Self

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore.api import ClearTimer, SetTimer, Stimulus, SubmitRefused
from gridcore.commands import CancelOrder as CancelOrderCmd
from gridcore.commands import Command, PlaceOrder
from gridcore.core import (
    Cancel,
    CoreConfig,
    Intent,
    OrderChange,
    State,
    Submit,
    initial_state,
    step,
)
from gridcore.events import (
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    QuoteTicked,
    Started,
    TimerFired,
)
from gridcore.instruments import Side, TimeInForce
from gridcore.lifecycle import OrderStatus
from gridcore.numbers import CTX
from gridcore.saga import (
    DEADLINE,
    Row,
    Saga,
    SagaSpec,
    Signal,
    advance,
    deadline_signal,
    saga_problems,
    sagas_of,
    start,
)
from gridcore.sim.backtest import run_backtest
from gridcore.sim.exchange import SimConfig, SimExchange
from gridcore.sim.faults import PROFILES
from gridcore.sim.market import synthetic_path
from tests.unit.helpers import EPOCH, answer_sync, feed, fill, instrument, of_type

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


def _without(e: Entry, leg: str) -> Mapping[str, str]:
    return {k: v for k, v in e.cloids.items() if k != leg}


def _rollback_refused(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    # Refused by the kernel (a stale quote, say): retrying in the same step would refuse again,
    # so the phase's deadline retries.
    return attrs.evolve(saga.data, cloids=_without(saga.data, "rollback")), ()


def _rollback_overdue(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    e = saga.data
    cloid = e.cloids.get("rollback")
    if cloid is not None:
        return e, [Cancel(cloid=cloid)]  # its end brings the next attempt
    e = attrs.evolve(e, attempt=e.attempt + 1)
    return e, [_rollback(e)]


def _rollback_ended(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    e = saga.data
    e = attrs.evolve(
        e,
        rolled_done=e.rolled_done + signal.qty,
        rolling=ZERO,
        attempt=e.attempt + 1,
        cloids=_without(e, "rollback"),
    )
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
        (_T.LEG1, "leg1_refused"): Row(to=_T.ABORTED),
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
        (_T.LEG2, "leg2_refused"): Row(to=_T.ROLLING_BACK, act=_to_rollback),
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
        (_T.ROLLING_BACK, "rollback_refused"): Row(to=None, act=_rollback_refused),
        (_T.ROLLING_BACK, DEADLINE): Row(to=_T.ROLLING_BACK, act=_rollback_overdue),
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
    return str(ref[0]), Signal(kind=f"{ref[1]}_refused", detail=refused.code)


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
        before = saga
        mid = view.mid(self.long_venue, self.symbol)
        if saga.phase is Hedge.ROLLING_BACK and mid is not None:
            # A rollback sent again is priced off the market as it is now, as a real strategy's
            # is: the price of the first attempt may be far from a market that has moved since.
            tick = view.config.instrument(self.long_venue, self.symbol).tick_size
            close = CTX.multiply(mid, 1 - self.slippage).quantize(tick)
            if close != saga.data.close_price:
                saga = attrs.evolve(saga, data=attrs.evolve(saga.data, close_price=close))
        moved, intents = advance(HEDGED_ENTRY, saga, signal, view.now)
        if moved is before:
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


# === the tests ==================================================================================


LOT = Decimal("0.001")
A, B, SYM = "a", "b", "BTC-PERP"


def _entry(qty: str = "0.010") -> Entry:
    return Entry(
        saga_id="e",
        qty=Decimal(qty),
        symbol=SYM,
        long_venue=A,
        short_venue=B,
        long_price=Decimal("50100"),
        short_price=Decimal("49900"),
        close_price=Decimal("49900"),
    )


def _signals(
    saga: Saga[Entry], *signals: tuple[int, Signal]
) -> tuple[Saga[Entry], list[list[Intent]]]:
    out = []
    for now, signal in signals:
        saga, intents = advance(HEDGED_ENTRY, saga, signal, now)
        out.append(intents)
    return saga, out


def _submits(intents: Sequence[Intent]) -> list[Submit]:
    return [i for i in intents if isinstance(i, Submit)]


# --- the table, fed by hand -----------------------------------------------------------------


def test_happy_path_leg2_is_sized_to_leg1s_actual_fill() -> None:
    saga, intents = begin(_entry(), 0)
    [leg1] = _submits(intents)
    assert (leg1.venue, leg1.side, leg1.qty) == (A, Side.BUY, Decimal("0.010"))
    assert SetTimer(name="saga:e", fire_at=LEG_MS) in intents
    saga, out = _signals(
        saga,
        (1, Signal(kind="leg1_named", detail="c1")),
        (2, Signal(kind="leg1_partial", qty=Decimal("0.004"))),
        (3, Signal(kind="leg1_ended_part", qty=Decimal("0.006"))),
    )
    [leg2] = _submits(out[-1])
    assert (leg2.venue, leg2.side, leg2.qty) == (B, Side.SELL, Decimal("0.006"))
    assert saga.phase is Hedge.LEG2 and saga.deadline_at == 3 + LEG_MS
    saga, out = _signals(saga, (4, Signal(kind="leg2_filled", qty=Decimal("0.006"))))
    assert saga.phase is Hedge.HEDGED and saga.terminal and saga.deadline_at is None
    assert ClearTimer(name="saga:e") in out[-1]
    assert saga.data.exposure == 0
    assert saga.history == (Hedge.LEG1, Hedge.LEG2, Hedge.HEDGED)


def test_leg2_refused_rolls_leg1_back_reduce_only_for_exactly_the_fill() -> None:
    saga, _ = begin(_entry(), 0)
    saga, out = _signals(
        saga,
        (1, Signal(kind="leg1_filled", qty=Decimal("0.010"))),
        (2, Signal(kind="leg2_refused", detail="max_position")),
    )
    [rollback] = _submits(out[-1])
    assert (rollback.venue, rollback.side, rollback.qty) == (A, Side.SELL, Decimal("0.010"))
    assert rollback.reduce_only and saga.phase is Hedge.ROLLING_BACK
    saga, _ = _signals(saga, (3, Signal(kind="rollback_filled", qty=Decimal("0.010"))))
    assert saga.phase is Hedge.ROLLED_BACK and saga.data.exposure == 0


def test_leg2_deadline_cancels_it_then_rolls_back_what_is_unhedged() -> None:
    saga, _ = begin(_entry(), 0)
    saga, out = _signals(
        saga,
        (1, Signal(kind="leg1_filled", qty=Decimal("0.010"))),
        (2, Signal(kind="leg2_named", detail="c2")),
        (3, Signal(kind="leg2_partial", qty=Decimal("0.003"))),
        (5, Signal(kind=DEADLINE)),  # too early: a stale fire changes nothing
        (1 + LEG_MS, Signal(kind=DEADLINE)),
    )
    assert out[-2] == []
    assert out[-1][0] == Cancel(cloid="c2") and saga.phase is Hedge.CANCELING_LEG2
    saga, out = _signals(saga, (2 + LEG_MS, Signal(kind="leg2_ended_part", qty=Decimal("0.003"))))
    [rollback] = _submits(out[-1])
    assert rollback.qty == Decimal("0.007") and rollback.reduce_only
    saga, out = _signals(
        saga,
        (3 + LEG_MS, Signal(kind="rollback_ended_part", qty=Decimal("0.002"))),
    )
    [again] = _submits(out[-1])
    assert again.qty == Decimal("0.005") and saga.phase is Hedge.ROLLING_BACK
    assert again.ref == ("e", "rollback", 2)
    saga, _ = _signals(saga, (4 + LEG_MS, Signal(kind="rollback_filled", qty=Decimal("0.005"))))
    assert saga.phase is Hedge.ROLLED_BACK and saga.data.exposure == 0


def test_leg1_never_filled_aborts_and_a_late_signal_changes_nothing() -> None:
    saga, _ = begin(_entry(), 0)
    saga, out = _signals(
        saga,
        (1, Signal(kind="leg1_named", detail="c1")),
        (LEG_MS, Signal(kind=DEADLINE)),
        (LEG_MS + 1, Signal(kind="leg1_ended_empty")),
        (LEG_MS + 2, Signal(kind="leg1_filled", qty=Decimal("0.01"))),
    )
    assert out[1] == [Cancel(cloid="c1"), SetTimer(name="saga:e", fire_at=2 * LEG_MS)]
    assert saga.phase is Hedge.ABORTED and out[-1] == []


# --- through the kernel, events fed by hand -----------------------------------------------------


def _fill(fill_id: str, venue: str, side: Side, qty: str, price: str, ts: int, cloid: str) -> Any:
    return attrs.evolve(fill(fill_id, side, qty, price, ts=ts, cloid=cloid), venue=venue)


def _two_venues() -> CoreConfig:
    return CoreConfig(
        instruments=(instrument(venue=A), instrument(venue=B)),
        reconcile_ms=0,
    )


def _kernel_bot(**settings: Any) -> tuple[State[HedgedEntries], list[Command]]:
    strategy = HedgedEntries(
        symbol=SYM, long_venue=A, short_venue=B, qty=Decimal("0.01"), **settings
    )
    state = initial_state(_two_venues(), strategy, epoch=EPOCH)
    ts = EPOCH + 1_000
    state, started = step(state, Started(ts=ts))
    state, _ = feed(state, answer_sync(started, ts=ts))
    quotes = [
        QuoteTicked(ts=ts + 1, venue=v, symbol=SYM, bid=Decimal("49999.9"), ask=Decimal("50000.1"))
        for v in (B, A)
    ]
    return feed(state, quotes)


def test_hedged_entry_through_step_rolls_back_when_leg2_is_rejected() -> None:
    state, commands = _kernel_bot()
    ts = EPOCH + 2_000
    [leg1] = of_type(commands, PlaceOrder)
    assert leg1.venue == A and leg1.side is Side.BUY
    state, commands = step(
        state,
        OrderFilled(ts=ts, fill=_fill("f1", A, Side.BUY, "0.01", "50000", ts, leg1.cloid)),
    )
    [leg2] = of_type(commands, PlaceOrder)
    assert (leg2.venue, leg2.side, leg2.qty) == (B, Side.SELL, Decimal("0.01"))
    state, commands = step(
        state,
        OrderRejected(
            ts=ts + 1, venue=B, cloid=leg2.cloid, reason="margin", command_id=leg2.command_id
        ),
    )
    [rollback] = of_type(commands, PlaceOrder)
    assert (rollback.venue, rollback.side, rollback.qty) == (A, Side.SELL, Decimal("0.01"))
    assert rollback.reduce_only
    state, _ = step(
        state,
        OrderFilled(
            ts=ts + 2,
            fill=_fill("f2", A, Side.SELL, "0.01", "49990", ts + 2, rollback.cloid),
        ),
    )
    [saga] = sagas_of(state.strategy)
    assert saga.phase is Hedge.ROLLED_BACK
    assert state.ledger.position(A, SYM, leg1.position_side).qty == 0
    assert saga_problems(sagas_of(state.strategy), state.now, final=True) == []


def test_hedged_entry_through_step_the_deadline_timer_cancels_a_silent_leg2() -> None:
    state, commands = _kernel_bot()
    ts = EPOCH + 2_000
    [leg1] = of_type(commands, PlaceOrder)
    state, commands = step(
        state,
        OrderFilled(ts=ts, fill=_fill("f1", A, Side.BUY, "0.01", "50000", ts, leg1.cloid)),
    )
    [leg2] = of_type(commands, PlaceOrder)
    state, _ = step(
        state,
        OrderAccepted(
            ts=ts + 1, venue=B, cloid=leg2.cloid, venue_order_id="b1", command_id=leg2.command_id
        ),
    )
    [saga] = sagas_of(state.strategy)
    assert saga.deadline_at is not None
    state, commands = step(state, TimerFired(ts=saga.deadline_at, timer_id="strategy:saga:e1"))
    assert [c.cloid for c in of_type(commands, CancelOrderCmd)] == [leg2.cloid]
    fresh = QuoteTicked(
        ts=saga.deadline_at, venue=A, symbol=SYM, bid=Decimal("49999.9"), ask=Decimal("50000.1")
    )
    state, _ = step(state, fresh)
    state, commands = step(state, OrderCanceled(ts=saga.deadline_at + 1, venue=B, cloid=leg2.cloid))
    [rollback] = of_type(commands, PlaceOrder)
    assert rollback.venue == A and rollback.qty == Decimal("0.01") and rollback.reduce_only
    assert sagas_of(state.strategy)[0].phase is Hedge.ROLLING_BACK


# --- in a two-venue backtest ------------------------------------------------------------------


def _backtest(profile: str, seed: int, **settings: Any) -> tuple[State[HedgedEntries], Any]:
    a, b = instrument(venue=A), instrument(venue=B)
    venues = (
        SimExchange(SimConfig(venue=A, instruments=(a,)), start_ts=EPOCH),
        SimExchange(SimConfig(venue=B, instruments=(b,)), start_ts=EPOCH),
    )
    strategy = HedgedEntries(
        symbol=SYM, long_venue=A, short_venue=B, qty=Decimal("0.01"), **settings
    )
    state = initial_state(CoreConfig(instruments=(a, b)), strategy, epoch=EPOCH)
    path = sorted(
        [
            *synthetic_path(instrument=a, ticks=1_200, start_ts=EPOCH),
            *synthetic_path(instrument=b, ticks=1_200, start_ts=EPOCH, seed=9),
        ],
        key=lambda q: (q.ts, q.venue),
    )
    trace = run_backtest(state, venues, path, faults=PROFILES[profile], seed=seed)
    return trace.state, trace


@pytest.mark.parametrize(
    ("profile", "seed", "short_slippage", "ends"),
    [
        ("none", 0, None, {Hedge.HEDGED}),
        ("none", 0, Decimal("0.05"), {Hedge.ROLLED_BACK}),
        ("chaos", 1, None, {Hedge.HEDGED, Hedge.ABORTED, Hedge.ROLLED_BACK}),
        ("lossy", 1, Decimal("0.05"), {Hedge.ROLLED_BACK, Hedge.ABORTED}),
        ("flaky", 3, Decimal("0.05"), {Hedge.ROLLED_BACK, Hedge.ABORTED}),
    ],
)
def test_hedged_entries_in_a_two_venue_backtest_end_hedged_or_flat(
    profile: str, seed: int, short_slippage: Decimal | None, ends: set[Hedge]
) -> None:
    """Leg 2 priced off the price band (``short_slippage``) is refused by the gate every time:
    every entry must then roll back; faults must not leave a saga open or a venue unhedged."""
    final, trace = _backtest(
        profile, seed, entries=3 if short_slippage is None else 8, short_slippage=short_slippage
    )
    assert trace.violations == ()
    sagas = sagas_of(final.strategy)
    assert sagas and {s.phase for s in sagas} <= ends
    assert saga_problems(sagas, final.now, final=True) == []
    held = {key[0]: pos.qty for key, pos in final.ledger.positions.items()}
    # Whatever happened, the long venue's position is exactly hedged on the short venue.
    assert held.get(A, ZERO) == -held.get(B, ZERO)
    if short_slippage is None and profile == "none":
        assert held[A] == Decimal("0.03")
    if short_slippage is not None:
        assert held.get(A, ZERO) == 0


@settings(max_examples=40, deadline=None)
@given(
    profile=st.sampled_from(["flaky", "lossy", "chaos", "disconnects"]),
    seed=st.integers(0, 2**16),
    refuse_leg2=st.booleans(),
)
def test_property_hedged_entries_under_any_fault_seed_end_terminal_and_hedged_or_flat(
    profile: str, seed: int, refuse_leg2: bool
) -> None:
    """Through the real kernel and simulated venues: whatever the faults, no saga is left open
    or overdue, and the long venue's position is exactly offset on the short venue."""
    final, trace = _backtest(
        profile, seed, entries=4, short_slippage=Decimal("0.05") if refuse_leg2 else None
    )
    assert trace.violations == ()
    sagas = sagas_of(final.strategy)
    assert saga_problems(sagas, final.now, final=True) == []
    held = {key[0]: pos.qty for key, pos in final.ledger.positions.items()}
    assert held.get(A, ZERO) == -held.get(B, ZERO)


# --- a property: any order of fills, rejections, refusals and timeouts ------------------------


_OUTCOMES = ("fill", "partial", "reject", "refuse", "silent", "late_fill", "split")


@settings(max_examples=300, deadline=None)
@given(data=st.data(), qty=st.integers(1, 30))
def test_property_every_hedged_entry_ends_terminal_and_never_naked_past_a_deadline(
    data: st.DataObject, qty: int
) -> None:
    """A model venue answers every order of the saga with a drawn outcome (a fill, a partial
    fill then the rest canceled, a rejection, a refusal by the gate, silence until canceled, a
    fill arriving after the deadline, a fill in two parts far apart), with drawn delays, for a
    drawn number of adverse outcomes; then it fills. A cancel races the fills (whichever the
    venue handles first wins); one order's messages arrive in the order they were sent. Whatever it draws: exposure (leg 1 filled minus leg 2 filled minus
    rolled back, as the venue knows it) is never left past the current phase's deadline, and
    every saga ends in a terminal phase with no exposure."""
    adverse = data.draw(st.integers(0, 8), label="adverse outcomes")
    now = 0
    saga, intents = begin(_entry(str(LOT * qty)), now)
    heap: list[tuple[int, int, str, Signal | None]] = []  # (time, seq, cloid, signal)
    orders: dict[str, dict[str, Any]] = {}
    truth = {"leg1": ZERO, "leg2": ZERO, "rollback": ZERO}
    timer: list[int | None] = [None]
    seq = [0]

    def push(at: int, cloid: str, signal: Signal | None) -> None:
        seq[0] += 1
        heapq.heappush(heap, (at, seq[0], cloid, signal))

    def feed_signal(signal: Signal, at: int) -> list[Intent]:
        nonlocal saga
        saga, out = advance(HEDGED_ENTRY, saga, signal, at)
        return out

    def handle(out: Sequence[Intent], at: int) -> None:
        nonlocal adverse
        todo = list(out)
        while todo:
            intent = todo.pop(0)
            if isinstance(intent, SetTimer):
                timer[0] = intent.fire_at
            elif isinstance(intent, ClearTimer):
                timer[0] = None
            elif isinstance(intent, Cancel):
                o = orders.get(intent.cloid)
                if o is not None and not o["done"]:
                    delay = data.draw(st.integers(1, 3_000), label="cancel delay")
                    # One order's messages arrive in the order the venue sent them.
                    push(max(at + delay, o["last"] + 1), intent.cloid, None)
            elif isinstance(intent, Submit):
                ref = intent.ref
                assert isinstance(ref, tuple)
                leg = str(ref[1])
                if leg == "rollback":
                    # Reduce-only: the venue never closes more than the long position.
                    assert intent.reduce_only
                    assert intent.qty <= truth["leg1"] - truth["rollback"]
                if leg == "leg2":
                    assert intent.qty <= truth["leg1"] - truth["rollback"]
                outcome = "fill"
                if adverse > 0:
                    outcome = data.draw(st.sampled_from(_OUTCOMES), label=f"{leg} outcome")
                    adverse -= outcome != "fill"
                if outcome == "refuse":
                    todo.extend(feed_signal(Signal(kind=f"{leg}_refused"), at))
                    continue
                cloid = f"c{len(orders) + 1}"
                orders[cloid] = {
                    "leg": leg,
                    "qty": intent.qty,
                    "filled": ZERO,
                    "done": False,
                    "outcome": outcome,
                    "last": at,
                }
                todo.extend(feed_signal(Signal(kind=f"{leg}_named", detail=cloid), at))
                delay = data.draw(st.integers(1, 3_000), label="answer delay")
                if outcome == "late_fill":
                    delay += LEG_MS
                if outcome == "split":
                    later = at + delay + data.draw(st.integers(1, 2 * LEG_MS), label="rest")
                    push(at + delay, cloid, Signal(kind="first_half"))
                    push(later, cloid, Signal(kind="rest"))
                    orders[cloid]["last"] = later
                elif outcome != "silent":
                    push(at + delay, cloid, Signal(kind=outcome))
                    orders[cloid]["last"] = at + delay

    def exposure() -> Decimal:
        return truth["leg1"] - truth["leg2"] - truth["rollback"]

    def venue_event(cloid: str, what: Signal | None, at: int) -> list[Intent]:
        o = orders[cloid]
        if o["done"]:
            return []
        leg = o["leg"]
        kind = "cancel" if what is None else what.kind
        if kind in ("fill", "late_fill"):
            amount = o["qty"] - o["filled"]
            o["filled"] = o["qty"]
            o["done"] = True
            truth[leg] += amount
            return feed_signal(Signal(kind=f"{leg}_filled", qty=o["filled"]), at)
        if kind == "first_half":
            half = (o["qty"] / 2).quantize(LOT, rounding=ROUND_DOWN)
            if half == 0:
                return []
            o["filled"] = half
            truth[leg] += half
            return feed_signal(Signal(kind=f"{leg}_partial", qty=half), at)
        if kind == "rest":
            truth[leg] += o["qty"] - o["filled"]
            o["filled"] = o["qty"]
            o["done"] = True
            return feed_signal(Signal(kind=f"{leg}_filled", qty=o["qty"]), at)
        if kind == "partial":
            half = (o["qty"] / 2).quantize(LOT, rounding=ROUND_DOWN)
            o["filled"] = half
            o["done"] = True
            truth[leg] += half
            end = "ended_part" if half > 0 else "ended_empty"
            return feed_signal(Signal(kind=f"{leg}_{end}", qty=half), at)
        # a rejection, or the answer to a cancel
        o["done"] = True
        end = "ended_part" if o["filled"] > 0 else "ended_empty"
        return feed_signal(Signal(kind=f"{leg}_{end}", qty=o["filled"]), at)

    handle(intents, now)
    for _ in range(400):
        if saga.terminal:
            break
        next_event = heap[0][0] if heap else None
        fire = timer[0]
        assert next_event is not None or fire is not None, "a live saga with nothing to wait for"
        if fire is not None and (next_event is None or fire <= next_event):
            now = max(now, fire)
            timer[0] = None
            handle(feed_signal(Signal(kind=DEADLINE), now), now)
        else:
            at, _, cloid, what = heapq.heappop(heap)
            now = max(now, at)
            handle(venue_event(cloid, what, now), now)
        # Naked exposure only ever inside a phase whose deadline has not passed.
        if exposure() != 0:
            assert not saga.terminal, f"terminal {saga.phase} with exposure {exposure()}"
            assert saga.deadline_at is not None and now <= saga.deadline_at
        assert saga_problems([saga], now, grace_ms=0) == []
    assert saga.terminal, f"still {saga.phase} after 400 events"
    assert exposure() == 0
    if saga.phase is Hedge.HEDGED:
        assert truth["leg2"] == truth["leg1"] > 0
    if saga.phase is Hedge.ABORTED:
        assert truth["leg1"] == 0
