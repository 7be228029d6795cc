"""Intents: running what a strategy asks for, telling it what happened, and its timers.

Rules
-----
* A strategy returns intents (:data:`~gridcore.kernel._model.Intent`); :func:`run_intents`
  carries them out in order: ``Submit`` and ``Modify`` through :mod:`gridcore.kernel._orders`,
  ``Cancel`` (ignored for an order done, being canceled, or whose cancel was refused),
  ``Say`` as a notice, timers and refreshes here and in :mod:`gridcore.kernel._requests`.
  Anything else is a ``ContractError``. An intent whose outcome may arrive as a stimulus (a
  submit with a ``ref``, a modify, a refresh) requires the strategy to define ``on_stimulus``.
* The strategy sees the state after the event was applied, never a half-updated one
  (:func:`tell_strategy` takes a snapshot). Order changes the venue or the kernel caused are
  reported in order, then stimuli one at a time (:func:`flush_changes`); what the strategy asked
  for itself (a cancel sent, a new order without a ref) is not reported back. A strategy still
  answering its own intents after :data:`MAX_STRATEGY_ROUNDS` rounds in
  one step is a ``ContractError`` (a pure step must end).
* **Timers.** A strategy's timer lives in ``State.desk`` under the name it chose and is fired by
  the shell as ``strategy:<name>``; a cleared timer whose fire was on its way is never
  delivered; a periodic one is re-armed from the later of its due time and the fire. On
  ``Started`` every armed timer is started again (the shell's timers died with the previous
  run). Housekeeping reaches ``on_timer`` as ``gridcore:maintenance`` whenever it runs (in any
  step, see :func:`housekeeping`); the shell's clock timer ``gridcore:clock`` reaches nobody; any
  other timer reaches ``on_timer`` as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gridcore.api import (
    STRATEGY_TIMER_PREFIX,
    ClearTimer,
    Modify,
    Refresh,
    SetTimer,
    strategy_timer_id,
)
from gridcore.commands import CancelTimer, StartTimer
from gridcore.errors import ContractError
from gridcore.events import Event, TimerFired
from gridcore.kernel import _orders, _requests
from gridcore.kernel._model import (
    CLOCK_TIMER,
    MAINTENANCE_TIMER,
    Cancel,
    Intent,
    Say,
    Submit,
    replace,
)
from gridcore.kernel._tx import Tx

#: How many rounds of "strategy reacts to what its own intents caused" one step allows before
#: the strategy is declared stuck in a loop (a pure step must end).
MAX_STRATEGY_ROUNDS = 256


def run_intents(tx: Tx[Any], intents: Sequence[Intent]) -> None:
    """Carry out a strategy's intents in order (see the module's rules)."""
    for intent in intents:
        if type(intent) is Submit:
            if intent.ref is not None:
                needs_stimuli(tx, intent)
            _orders.submit(tx, intent)
        elif type(intent) is Cancel:
            _orders.cancel(tx, intent.cloid)
        elif type(intent) is Say:
            tx.notify(intent.level, intent.code, intent.message)
        elif type(intent) is Modify:
            needs_stimuli(tx, intent)
            _orders.modify(tx, intent)
        elif type(intent) is SetTimer:
            set_timer(tx, intent)
        elif type(intent) is ClearTimer:
            clear_timer(tx, intent.name)
        elif type(intent) is Refresh:
            needs_stimuli(tx, intent)
            _requests.refresh(tx, intent)
        else:
            raise ContractError(f"a strategy returned {intent!r}, which is not an Intent")


def needs_stimuli(tx: Tx[Any], intent: Intent) -> None:
    """Refuse an intent whose outcome may come back as a stimulus the strategy cannot take."""
    if not callable(getattr(tx.strategy, "on_stimulus", None)):
        raise ContractError(
            f"{type(tx.strategy).__name__} returned {intent!r}, whose outcome may arrive "
            f"as a stimulus, but has no on_stimulus(view, stimulus) method; define it "
            f"(see docs/strategy-api.md) so that a refusal is never lost"
        )


def set_timer(tx: Tx[Any], intent: SetTimer) -> None:
    """Arm (or re-arm) a strategy timer under its name (the shell fires ``strategy:<name>``)."""
    if intent.every_ms is not None and intent.every_ms <= 0:
        raise ContractError(f"{intent!r}: every_ms must be > 0 ms or None")
    tx.desk = replace(
        tx.desk, timers={**tx.desk.timers, intent.name: (intent.fire_at, intent.every_ms)}
    )
    tx.commands.append(
        StartTimer(
            command_id=tx.next_id(),
            timer_id=strategy_timer_id(intent.name),
            fire_at=intent.fire_at,
            every_ms=intent.every_ms,
        )
    )


def clear_timer(tx: Tx[Any], name: str) -> None:
    """Disarm a strategy timer (nothing to do if it is not armed)."""
    if name not in tx.desk.timers:
        return
    timers = {k: v for k, v in tx.desk.timers.items() if k != name}
    tx.desk = replace(tx.desk, timers=timers)
    tx.commands.append(CancelTimer(command_id=tx.next_id(), timer_id=strategy_timer_id(name)))


def strategy_timer(tx: Tx[Any], name: str, ts: int) -> None:
    """A strategy timer fired: deliver it if still armed, re-arm a periodic one."""
    armed = tx.desk.timers.get(name)
    if armed is None:
        return  # cleared while the fire was on its way (or not ours): never delivered
    fire_at, every = armed
    if every is None:
        timers = {k: v for k, v in tx.desk.timers.items() if k != name}
    else:
        timers = {**tx.desk.timers, name: (max(fire_at, ts) + every, every)}
    tx.desk = replace(tx.desk, timers=timers)
    tell_strategy(tx, "on_timer", name)


def report_to_strategy(tx: Tx[Any], event: Event) -> None:
    """Show a report the kernel has applied to the strategy's ``on_event``."""
    tell_strategy(tx, "on_event", event)


def tell_strategy(tx: Tx[Any], call: str, arg: object) -> None:
    """Call the strategy's ``call`` with a snapshot of the state as of now; run its intents."""
    view = tx.snapshot()
    method = getattr(tx.strategy, call)
    new, intents = method(view, arg)
    tx.strategy = new
    if intents:
        run_intents(tx, intents)


def flush_changes(tx: Tx[Any]) -> None:
    # What the strategy asked for itself (a cancel sent, a new order without a ref) is not
    # reported back to it; everything the venue or the kernel did is, in order, and so is
    # every stimulus (refusals, refresh answers).
    """Tell the strategy every order change, then every stimulus, until none is left."""
    rounds = 0
    while tx.changes or tx.stimuli:
        rounds += 1
        if rounds > MAX_STRATEGY_ROUNDS:
            raise ContractError(
                f"{type(tx.strategy).__name__} kept answering what its own intents caused "
                f"for {MAX_STRATEGY_ROUNDS} rounds in one step (a resubmit-on-refusal "
                f"loop?); wait for a timer or the next event before trying again"
            )
        if tx.changes:
            changes, tx.changes = tx.changes, []
            tell_strategy(tx, "on_changes", tuple(changes))
        else:
            stimulus = tx.stimuli.pop(0)
            tell_strategy(tx, "on_stimulus", stimulus)


# --- sync ----------------------------------------------------------------------------------


def on_timer_fired(tx: Tx[Any], event: TimerFired) -> None:
    """A timer fired: a strategy timer, the clock timer (the step moved the clock), the
    maintenance timer (its housekeeping ran at the start of the step), or any other (told to
    the strategy as is)."""
    if event.timer_id.startswith(STRATEGY_TIMER_PREFIX):
        strategy_timer(tx, event.timer_id[len(STRATEGY_TIMER_PREFIX) :], event.ts)
    elif event.timer_id == CLOCK_TIMER:
        pass  # the shell's clock moved: the step moved the core's clock, nothing else to do
    elif event.timer_id == MAINTENANCE_TIMER:
        if tx.maintenance_timer is not None and event.ts >= tx.maintenance_timer:
            tx.maintenance_timer = None  # fired: one-shot (re-armed by schedule if needed)
    else:
        tell_strategy(tx, "on_timer", event.timer_id)


def housekeeping(tx: Tx[Any]) -> None:
    """Housekeeping is due (``tx.now >= maintenance_due``): run it in this step (before its event, after a quote),
    tell the strategy (its ``on_timer`` heartbeat under :data:`MAINTENANCE_TIMER`) and set the
    next due time on the same ``maintenance_ms`` grid, however long the gap was. It runs in
    whatever step comes first at or after the due time, a tick included, so that time with no
    data costs nothing (failure `idle-time-cost`)."""
    m = tx.config.maintenance_ms
    due = tx.maintenance_due
    tx.maintenance_due = due + m * ((tx.now - due) // m + 1)
    _requests.maintenance(tx)
    tell_strategy(tx, "on_timer", MAINTENANCE_TIMER)
