"""Sagas as data: multi-step, multi-venue workflows written as tables.

Theory of operation
-------------------
A hedged entry, an exit, a rollback: each is a small state machine whose every rule is one row
of a table, ``(phase, signal kind) -> (next phase, action)``. A :class:`SagaSpec` holds the
table, the deadline of every non-terminal phase and the terminal set, and is validated when it
is built (an unknown or unreachable phase, a phase with no deadline or no ``deadline`` row, a
terminal phase with outgoing rows, a phase from which no terminal phase can be reached: each a
:class:`SagaSpecError` naming it). A :class:`Saga` is one running instance: its phase, the time
its deadline falls due, and the caller's data (an attrs value).

:func:`advance` is the whole engine: given a saga and a :class:`Signal` it looks the row up,
runs the row's action (a pure function ``(saga, signal) -> (data, intents)``) and, when the row
enters a phase, (re)arms the phase's deadline as a strategy timer (:class:`~gridcore.api.SetTimer`
named ``saga:<id>``, in the strategy's timer namespace) or clears it on a terminal phase. A row
whose target is ``None`` stays in the phase and keeps its deadline (a partial fill, say); a row
whose target is its own phase re-enters it and re-arms the deadline (a retry). A signal with no
row in the current phase changes nothing (a late message about a leg already dealt with). A
``deadline`` signal before the deadline is due (a timer fire overtaken by a transition) changes
nothing either.

A row may carry a guard (``when``): several rows for one key are tried in order, so a decision
that depends on the data (leg 2 filled *all* of leg 1, or only part) is still a row of the table.

A strategy drives its sagas: it turns order changes and stimuli about the orders it submitted
with a saga's ``ref`` into signals, turns ``on_timer("saga:<id>")`` into the ``deadline`` signal
(:func:`deadline_signal`), and returns the intents :func:`advance` gives it.

:func:`saga_problems` is the invariant every run must keep: no saga sits in a non-terminal phase
past its deadline, and (``final=True``, at the end of a run) every saga is terminal.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Generic, TypeVar

import attrs

from gridcore.api import ClearTimer, SetTimer
from gridcore.core import Intent
from gridcore.errors import ContractError

__all__ = [
    "DEADLINE",
    "SAGA_TIMER_PREFIX",
    "Guard",
    "Row",
    "Saga",
    "SagaSpec",
    "SagaSpecError",
    "Signal",
    "advance",
    "deadline_signal",
    "saga_problems",
    "sagas_of",
    "start",
]

#: The signal kind a phase's deadline sends.
DEADLINE = "deadline"
#: Every saga's deadline timer is the strategy timer ``saga:<saga id>``.
SAGA_TIMER_PREFIX = "saga:"

D = TypeVar("D")


class SagaSpecError(ContractError):
    """A saga table that cannot work; the message names the phase or row and what to add."""


@attrs.frozen(kw_only=True)
class Signal:
    """Something that happened to a saga: ``kind`` (a row key), with an optional base ``qty``
    and any ``detail`` the strategy wants the row's action to see."""

    kind: str
    qty: Decimal = Decimal(0)
    detail: Any = None


@attrs.frozen(kw_only=True)
class Saga(Generic[D]):
    """One running saga: ``spec`` names its table, ``saga_id`` is unique within its strategy,
    ``deadline_at`` (ms) is when the current phase's deadline falls due (``None`` once
    terminal), ``data`` is the caller's own value, ``history`` the phases entered, in order."""

    spec: str
    saga_id: str
    phase: Hashable
    deadline_at: int | None
    data: D
    terminal: bool = False
    history: tuple[Hashable, ...] = ()

    @property
    def timer(self) -> str:
        """The name of this saga's deadline timer."""
        return SAGA_TIMER_PREFIX + self.saga_id


Action = Callable[[Saga[Any], Signal], tuple[Any, Sequence[Intent]]]


def _no_action(saga: Saga[Any], signal: Signal) -> tuple[Any, Sequence[Intent]]:
    return saga.data, ()


Guard = Callable[[Saga[Any], Signal], bool]


@attrs.frozen(kw_only=True)
class Row:
    """What a signal does in a phase: go ``to`` that phase (``None``: stay, deadline kept) after
    running ``act``. With ``when``, the row applies only if ``when(saga, signal)`` holds; several
    rows for one key are tried in order and the last must be unguarded (so every signal that has
    a key has a row)."""

    to: Hashable | None
    act: Action = _no_action
    when: Guard | None = None


def _rows_of(entry: Row | tuple[Row, ...]) -> tuple[Row, ...]:
    return entry if isinstance(entry, tuple) else (entry,)


@attrs.frozen(kw_only=True)
class SagaSpec:
    """A saga's table. ``deadlines`` maps every non-terminal phase to its deadline (ms after the
    phase is entered); ``rows`` maps ``(phase, signal kind)`` to a :class:`Row` (or a tuple of
    guarded rows ending with an unguarded one). Validated when built; raises
    :class:`SagaSpecError`."""

    name: str
    initial: Hashable
    deadlines: Mapping[Hashable, int]
    terminal: frozenset[Hashable]
    rows: Mapping[tuple[Hashable, str], Row | tuple[Row, ...]]

    def __attrs_post_init__(self) -> None:
        phases = set(self.deadlines) | set(self.terminal)
        where = f"saga {self.name!r}"
        if self.initial not in phases:
            raise SagaSpecError(
                f"{where}: initial phase {self.initial!r} has no deadline and is not terminal; "
                f"give it a deadline"
            )
        both = set(self.deadlines) & set(self.terminal)
        if both:
            raise SagaSpecError(
                f"{where}: terminal phases {sorted(map(repr, both))} have a deadline; a terminal "
                f"phase waits for nothing, remove it"
            )
        if not self.terminal:
            raise SagaSpecError(f"{where}: no terminal phase; every saga must be able to end")
        for (phase, kind), entry in self.rows.items():
            choices = _rows_of(entry)
            if not choices or choices[-1].when is not None:
                raise SagaSpecError(
                    f"{where}: rows for ({phase!r}, {kind!r}) must end with an unguarded row "
                    f"(when=None), so that the signal always has a rule"
                )
            if any(r.when is None for r in choices[:-1]):
                raise SagaSpecError(
                    f"{where}: an unguarded row for ({phase!r}, {kind!r}) is followed by rows "
                    f"that can never apply; make it the last"
                )
            if phase not in phases:
                raise SagaSpecError(
                    f"{where}: row ({phase!r}, {kind!r}) starts in an unknown phase; give "
                    f"{phase!r} a deadline or make it terminal"
                )
            if phase in self.terminal:
                raise SagaSpecError(
                    f"{where}: terminal phase {phase!r} has an outgoing row on {kind!r}; a "
                    f"terminal phase must not move, remove the row"
                )
            for row in choices:
                if row.to is not None and row.to not in phases:
                    raise SagaSpecError(
                        f"{where}: row ({phase!r}, {kind!r}) goes to unknown phase {row.to!r}; "
                        f"give it a deadline or make it terminal"
                    )
        for phase, ms in self.deadlines.items():
            if type(ms) is not int or ms <= 0:
                raise SagaSpecError(f"{where}: deadline of {phase!r} must be > 0 ms, got {ms!r}")
            if (phase, DEADLINE) not in self.rows:
                raise SagaSpecError(
                    f"{where}: phase {phase!r} has a deadline but no ({phase!r}, {DEADLINE!r}) "
                    f"row; say what happens when it falls due"
                )
        edges: dict[Hashable, set[Hashable]] = {p: set() for p in phases}
        for (phase, _kind), entry in self.rows.items():
            for row in _rows_of(entry):
                if row.to is not None:
                    edges[phase].add(row.to)
        seen = {self.initial}
        todo = deque([self.initial])
        while todo:
            for nxt in edges[todo.popleft()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        unreachable = phases - seen
        if unreachable:
            raise SagaSpecError(
                f"{where}: phases {sorted(map(repr, unreachable))} cannot be reached from "
                f"{self.initial!r}; add a row into them or remove them"
            )
        ends = set(self.terminal)
        grew = True
        while grew:
            grew = False
            for phase, targets in edges.items():
                if phase not in ends and targets & ends:
                    ends.add(phase)
                    grew = True
        stuck = phases - ends
        if stuck:
            raise SagaSpecError(
                f"{where}: no terminal phase can be reached from {sorted(map(repr, stuck))}; "
                f"add a row towards a terminal phase"
            )


def _enter(spec: SagaSpec, saga: Saga[D], phase: Hashable, data: D, now: int) -> Saga[D]:
    final = phase in spec.terminal
    return Saga(
        spec=saga.spec,
        saga_id=saga.saga_id,
        phase=phase,
        deadline_at=None if final else now + spec.deadlines[phase],
        data=data,
        terminal=final,
        history=(*saga.history, phase),
    )


def start(spec: SagaSpec, saga_id: str, data: D, now: int) -> tuple[Saga[D], list[Intent]]:
    """A new saga in ``spec.initial`` with its deadline armed. The caller adds the intents that
    begin the work (leg 1, say) itself, or starts the saga from a ``start`` row of its own."""
    blank = Saga(spec=spec.name, saga_id=saga_id, phase=spec.initial, deadline_at=None, data=data)
    saga = _enter(spec, blank, spec.initial, data, now)
    return saga, _timer_intents(saga)


def _timer_intents(saga: Saga[Any]) -> list[Intent]:
    if saga.deadline_at is None:
        return [ClearTimer(name=saga.timer)]
    return [SetTimer(name=saga.timer, fire_at=saga.deadline_at)]


def advance(
    spec: SagaSpec, saga: Saga[D], signal: Signal, now: int
) -> tuple[Saga[D], list[Intent]]:
    """Apply ``signal`` to ``saga`` at ``now`` (ms): the new saga and the intents to return.

    Raises :class:`SagaSpecError` when ``saga`` belongs to another spec."""
    if saga.spec != spec.name:
        raise SagaSpecError(f"saga {saga.saga_id} runs {saga.spec!r}, not {spec.name!r}")
    if saga.terminal:
        return saga, []
    if signal.kind == DEADLINE and (saga.deadline_at is None or now < saga.deadline_at):
        return saga, []  # a fire overtaken by a transition that re-armed the deadline
    entry = spec.rows.get((saga.phase, signal.kind))
    if entry is None:
        return saga, []
    row = next(r for r in _rows_of(entry) if r.when is None or r.when(saga, signal))
    data, intents = row.act(saga, signal)
    if row.to is None:
        return attrs.evolve(saga, data=data), list(intents)
    moved = _enter(spec, saga, row.to, data, now)
    return moved, [*intents, *_timer_intents(moved)]


def deadline_signal(timer_name: str) -> str | None:
    """The saga id whose deadline ``timer_name`` (as ``on_timer`` receives it) is, or ``None``."""
    if timer_name.startswith(SAGA_TIMER_PREFIX):
        return timer_name[len(SAGA_TIMER_PREFIX) :]
    return None


def saga_problems(
    sagas: Iterable[Saga[Any]], now: int, *, grace_ms: int = 1_000, final: bool = False
) -> list[str]:
    """What is wrong with ``sagas`` at ``now``: a saga in a non-terminal phase more than
    ``grace_ms`` past its deadline (its deadline row was never applied), and, with ``final``
    (the run is over and everything in flight has landed), any saga not in a terminal phase.

    The invariant catalogue calls it with the sagas a strategy exposes (by convention a
    ``sagas`` attribute: a mapping of saga id to :class:`Saga`, or an iterable of them).
    An empty list means no problem."""
    problems: list[str] = []
    for saga in sagas:
        if saga.terminal:
            continue
        if saga.deadline_at is not None and now > saga.deadline_at + grace_ms:
            problems.append(
                f"saga {saga.saga_id} ({saga.spec}) is still {saga.phase!r} "
                f"{now - saga.deadline_at} ms after its deadline {saga.deadline_at}"
            )
        elif final:
            problems.append(
                f"saga {saga.saga_id} ({saga.spec}) ended the run in non-terminal phase "
                f"{saga.phase!r}"
            )
    return problems


def sagas_of(strategy: object) -> list[Saga[Any]]:
    """The sagas ``strategy`` exposes through a ``sagas`` attribute (a mapping of id to saga, or
    an iterable of sagas); empty when it has none."""
    found = getattr(strategy, "sagas", None)
    if found is None:
        return []
    values = found.values() if isinstance(found, Mapping) else found
    return [s for s in values if isinstance(s, Saga)]
