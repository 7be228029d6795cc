"""Whole-run and differential invariants: checks that need more than one step.

A pure reducer can be run again on the same events, or on the same events changed a little,
and the answers compared. That turns several design rules into checks:

* :func:`check_replay` — recovery is a fold (failure `no-crash-recovery`): folding the recorded events from the
  initial state gives exactly the state the run ended with, so a state rebuilt from the journal
  is the state the bot had.
* :func:`check_fills_sum` — Σ fills of an order = its filled quantity (failure `partial-fill-threshold`).
* :func:`check_sync_interleaving` — the final position is the same with or without a sync
  interleaved (failure `sync-drops-close`: close events ignored while syncing).
* :func:`check_reordering` — ack and fill in either order give the same order and ledger
  (failure `stream-before-ack`: a stream update arrives before the REST ack).

Each returns the :class:`~gridcore.invariants.Violation` s it finds. :func:`replay` is the fold
they share.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from gridcore.commands import Command
from gridcore.core import State, step
from gridcore.events import (
    Event,
    FeedReconnected,
    FillsReported,
    OpenOrdersReported,
    OrderAccepted,
    OrderFilled,
    OrderPartiallyFilled,
    OrderStatusReported,
    PositionsReported,
)
from gridcore.invariants import Violation
from gridcore.numbers import CTX, ZERO
from gridcore.sim import Trace
from gridcore.sim.backtest import Reducer

__all__ = [
    "check_fills_sum",
    "check_reordering",
    "check_replay",
    "check_sync_interleaving",
    "replay",
]


def replay(
    initial: State[Any], events: Iterable[Event], *, reducer: Reducer = step
) -> tuple[State[Any], list[Command]]:
    """Fold ``events`` into ``initial`` with ``reducer``; return the state and every command."""
    state = initial
    commands: list[Command] = []
    for event in events:
        state, out = reducer(state, event)
        commands.extend(out)
    return state, commands


def _events(trace: Trace) -> tuple[Event, ...]:
    if trace.events is None:
        raise ValueError(
            "the trace has no recorded events: run simulate(..., replay=True) or "
            "run_backtest(..., record_events=True)"
        )
    return trace.events


def check_replay(initial: State[Any], trace: Trace, *, reducer: Reducer = step) -> list[Violation]:
    """Recovery is idempotent (failure `no-crash-recovery`): the recorded events folded again from ``initial``
    give the trace's final state. Fails for a reducer with hidden inputs (a clock, a random
    draw, a global counter, a mutated input)."""
    events = _events(trace)
    state, _ = replay(initial, events, reducer=reducer)
    if state == trace.state:
        return []
    diffs = [
        name
        for name in ("strategy", "now", "quotes", "epoch", "config")
        if getattr(state, name) != getattr(trace.state, name)
    ]
    diffs += [
        f"books.{name}"
        for name in ("seq", "orders", "inflight", "ledger", "risk", "venues", "attention")
        if getattr(state.books, name) != getattr(trace.state.books, name)
    ]
    return [
        Violation(
            invariant="replay_gives_same_state",
            ts=trace.state.now,
            detail=f"folding the {len(events)} recorded events again gives a different state "
            f"(differs in {', '.join(diffs) or 'identity only'})",
        )
    ]


def check_fills_sum(trace: Trace) -> list[Violation]:
    """Σ fills of an order = its filled quantity (failure `partial-fill-threshold`): for every order the final
    state tracks, its ``filled_qty`` is the sum of the distinct fills recorded for its cloid."""
    sums: dict[str, Decimal] = {}
    seen: set[str] = set()
    for event in _events(trace):
        fills = getattr(event, "fills", None)
        if fills is None:
            fill = getattr(event, "fill", None)
            fills = () if fill is None else (fill,)
        for f in fills:
            if f.fill_id in seen or f.cloid is None:
                continue
            seen.add(f.fill_id)
            sums[f.cloid] = CTX.add(sums.get(f.cloid, ZERO), f.qty)
    out = []
    for cloid, order in sorted(trace.state.orders.items()):
        total = sums.get(cloid, ZERO)
        if total != order.filled_qty:
            out.append(
                Violation(
                    invariant="fills_sum_to_filled_qty",
                    ts=trace.state.now,
                    detail=f"order {cloid} has filled_qty {order.filled_qty} but its fills "
                    f"add up to {total}",
                )
            )
    return out


def check_sync_interleaving(
    initial: State[Any], events: Sequence[Event], *, at: int, reducer: Reducer = step
) -> list[Violation]:
    """The final position is the same with or without a sync interleaved (failure `sync-drops-close`).

    Folds ``events`` twice from ``initial``: as they are, and with a reconnect of every venue
    (which starts a reconciliation that the recorded answers never complete) inserted before
    ``events[at]``. Every position (size, entry, PnL, fees, funding) must come out the same: a
    reducer that drops or defers fills while a venue is syncing does not. Meaningful for runs
    without drift repair (a repair adopts the venue's size at a moment the two folds need not
    share); returns no violation when the plain fold repaired drift.
    """
    if not 0 <= at <= len(events):
        raise ValueError(f"at must be between 0 and {len(events)}, got {at}")
    plain, _ = replay(initial, events, reducer=reducer)
    if plain.ledger.drift_repairs:
        return []
    ts = events[at].ts if at < len(events) else plain.now
    reconnects = [FeedReconnected(ts=ts, venue=v) for v in initial.config.venues]
    mixed, _ = replay(initial, [*events[:at], *reconnects, *events[at:]], reducer=reducer)
    out = []
    keys = set(plain.ledger.positions) | set(mixed.ledger.positions)
    for key in sorted(keys, key=lambda k: (k[0], k[1], k[2].value)):
        a, b = plain.ledger.position(*key), mixed.ledger.position(*key)
        if a != b:
            out.append(
                Violation(
                    invariant="sync_interleaving_keeps_position",
                    ts=ts,
                    detail=f"{key[0]}/{key[1]} {key[2].value}: position {a.qty} (fees {a.fees}) "
                    f"without a sync, {b.qty} (fees {b.fees}) with a sync started before "
                    f"event #{at}",
                    event=events[at] if at < len(events) else None,
                )
            )
    return out


def _about(event: Event) -> str | None:
    if isinstance(event, OrderAccepted):
        return event.cloid
    if isinstance(event, OrderFilled | OrderPartiallyFilled):
        return event.fill.cloid
    return getattr(event, "cloid", None)


_TOLERANCE = Decimal("1e-12")


def _same_money(a: State[Any], b: State[Any]) -> bool:
    """Same size, fees, funding and value (realized + unrealized at ``a``'s mids) per position.

    How value splits into realized PnL and average entry depends on the order fills are
    applied in (average cost), so moving one fill past fills of other orders may change it.
    """
    for key in set(a.ledger.positions) | set(b.ledger.positions):
        p, q = a.ledger.position(*key), b.ledger.position(*key)
        if (p.qty, p.fees, p.funding) != (q.qty, q.fees, q.funding):
            return False
        mark = a.mid(key[0], key[1]) or p.avg_entry
        value_p = CTX.add(p.realized, p.unrealized(mark))
        value_q = CTX.add(q.realized, q.unrealized(mark))
        if abs(CTX.subtract(value_p, value_q)) > _TOLERANCE:
            return False
    return True


_REPORTS = (FillsReported, OpenOrdersReported, OrderStatusReported, PositionsReported)


def check_reordering(
    initial: State[Any], events: Sequence[Event], *, reducer: Reducer = step, limit: int = 50
) -> list[Violation]:
    """Any ordering of ack and fill gives the same state (failure `stream-before-ack`: a stream update arrives
    before the REST ack with the order id).

    For each order (at most ``limit``) whose ack and first fill are the first two messages
    about it, with no venue report in between (a report would date the fill), the later of the
    two is moved just before the earlier and the events between them are folded again: the
    order's status, filled quantity and venue id, and every position, must come out the same.
    """
    out: list[Violation] = []
    states: list[State[Any]] = [initial]
    state = initial
    for event in events:
        state, _ = reducer(state, event)
        states.append(state)
    firsts: dict[str, list[int]] = {}
    for k, event in enumerate(events):
        cloid = _about(event)
        if cloid is not None and len(firsts.setdefault(cloid, [])) < 2:
            firsts[cloid].append(k)
    tried = 0
    for cloid, pair in firsts.items():
        if tried >= limit or len(pair) < 2:
            continue
        i, j = pair
        kinds = {type(events[i]), type(events[j])}
        is_fill = OrderFilled in kinds or OrderPartiallyFilled in kinds
        if OrderAccepted not in kinds or not is_fill:
            continue
        if any(isinstance(e, _REPORTS) for e in events[i + 1 : j]):
            continue
        tried += 1
        moved, _ = replay(states[i], [events[j], *events[i:j]], reducer=reducer)
        plain = states[j + 1]
        a, b = plain.orders.get(cloid), moved.orders.get(cloid)
        fields = ("status", "filled_qty", "venue_order_id")
        same_order = (a is None) == (b is None) and (
            a is None or b is None or all(getattr(a, f) == getattr(b, f) for f in fields)
        )
        if same_order and _same_money(plain, moved):
            continue
        first, second = type(events[i]).__name__, type(events[j]).__name__
        out.append(
            Violation(
                invariant="ack_fill_order_independent",
                ts=events[j].ts,
                detail=f"order {cloid}: {first} then {second} gives "
                f"{None if a is None else (a.status.name, a.filled_qty)}, the other order gives "
                f"{None if b is None else (b.status.name, b.filled_qty)}",
                event=events[j],
            )
        )
    return out
