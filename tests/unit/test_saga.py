"""The saga engine: tables validated at construction, :func:`advance`, and the invariant check."""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from typing import Any

import attrs
import pytest

from gridcore.api import ClearTimer, SetTimer
from gridcore.commands import Level
from gridcore.core import Intent, Say
from gridcore.errors import ContractError
from gridcore.saga import (
    DEADLINE,
    Row,
    Saga,
    SagaSpec,
    SagaSpecError,
    Signal,
    advance,
    deadline_signal,
    saga_problems,
    sagas_of,
    start,
)


class P(enum.Enum):
    """Phases of a toy saga."""

    WAIT = "wait"  # waiting for "go"
    WORK = "work"  # working
    DONE = "done"  # terminal
    GAVE_UP = "gave_up"  # terminal
    ORPHAN = "orphan"  # only used to break tables


def _say(text: str) -> Any:
    def act(saga: Saga[int], signal: Signal) -> tuple[int, Sequence[Intent]]:
        return saga.data + 1, [Say(level=Level.INFO, code="saga", message=text)]

    return act


def _spec(**changes: Any) -> SagaSpec:
    fields: dict[str, Any] = {
        "name": "toy",
        "initial": P.WAIT,
        "deadlines": {P.WAIT: 100, P.WORK: 50},
        "terminal": frozenset({P.DONE, P.GAVE_UP}),
        "rows": {
            (P.WAIT, "go"): Row(to=P.WORK, act=_say("go")),
            (P.WAIT, "poke"): Row(to=None, act=_say("poke")),
            (P.WAIT, DEADLINE): Row(to=P.GAVE_UP),
            (P.WORK, "done"): (
                Row(to=P.WORK, act=_say("again"), when=lambda s, g: g.detail == "again"),
                Row(to=P.DONE, act=_say("done")),
            ),
            (P.WORK, DEADLINE): Row(to=P.WORK, act=_say("retry")),
        },
    }
    fields.update(changes)
    return SagaSpec(**fields)


TOY = _spec()


def test_a_broken_table_is_refused_at_construction_with_the_phase_named() -> None:
    rows = dict(TOY.rows)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"initial": P.ORPHAN}, "initial phase"),
        ({"deadlines": {P.WAIT: 100}}, "unknown phase"),  # WORK has no deadline
        (
            {
                "deadlines": {**TOY.deadlines, P.ORPHAN: 10},
                "rows": {**rows, (P.ORPHAN, DEADLINE): Row(to=P.DONE)},
            },
            "cannot be reached",
        ),
        ({"deadlines": {**TOY.deadlines, P.WORK: 0}}, "must be > 0 ms"),
        ({"deadlines": {**TOY.deadlines, P.DONE: 5}}, "terminal phases"),
        ({"terminal": frozenset()}, "no terminal phase"),
        (
            {"rows": {**rows, (P.DONE, "go"): Row(to=P.WORK)}},
            "terminal phase <P.DONE: 'done'> has an outgoing row",
        ),
        (
            {"rows": {k: v for k, v in rows.items() if k != (P.WORK, DEADLINE)}},
            "no (<P.WORK: 'work'>, 'deadline') row",
        ),
        ({"rows": {**rows, (P.WAIT, "x"): Row(to=P.ORPHAN)}}, "unknown phase"),
        ({"rows": {**rows, (P.ORPHAN, "x"): Row(to=P.DONE)}}, "starts in an unknown phase"),
        (
            {"rows": {**rows, (P.WORK, "y"): (Row(to=P.DONE, when=lambda s, g: True),)}},
            "must end with an unguarded row",
        ),
        (
            {"rows": {**rows, (P.WORK, "z"): (Row(to=P.DONE), Row(to=P.WORK))}},
            "can never apply",
        ),
        (
            {
                "deadlines": {**TOY.deadlines, P.ORPHAN: 10},
                "rows": {
                    **rows,
                    (P.WAIT, "lost"): Row(to=P.ORPHAN),
                    (P.ORPHAN, DEADLINE): Row(to=P.ORPHAN),
                },
            },
            "no terminal phase can be reached",
        ),
    ]
    for changes, message in cases:
        with pytest.raises(SagaSpecError, match=re.escape(message)):
            _spec(**changes)
    assert issubclass(SagaSpecError, ContractError)


def test_start_arms_the_deadline_as_a_namespaced_strategy_timer() -> None:
    saga, intents = start(TOY, "s1", 0, now=1_000)
    assert saga.phase is P.WAIT and saga.deadline_at == 1_100 and not saga.terminal
    assert intents == [SetTimer(name="saga:s1", fire_at=1_100)]
    assert deadline_signal(saga.timer) == "s1" and deadline_signal("other") is None


def test_a_stay_row_keeps_the_deadline_and_a_move_re_arms_it() -> None:
    saga, _ = start(TOY, "s1", 0, now=0)
    saga, intents = advance(TOY, saga, Signal(kind="poke"), 30)
    assert saga.phase is P.WAIT and saga.deadline_at == 100 and saga.data == 1
    assert [type(i) for i in intents] == [Say]
    saga, intents = advance(TOY, saga, Signal(kind="go"), 40)
    assert saga.phase is P.WORK and saga.deadline_at == 90
    assert intents[-1] == SetTimer(name="saga:s1", fire_at=90)


def test_guards_pick_the_row_and_re_entering_a_phase_re_arms_it() -> None:
    saga, _ = start(TOY, "s1", 0, now=0)
    saga, _ = advance(TOY, saga, Signal(kind="go"), 0)
    saga, intents = advance(TOY, saga, Signal(kind="done", detail="again"), 10)
    assert saga.phase is P.WORK and saga.deadline_at == 60
    saga, intents = advance(TOY, saga, Signal(kind="done"), 20)
    assert saga.phase is P.DONE and saga.terminal and saga.deadline_at is None
    assert intents[-1] == ClearTimer(name="saga:s1")
    assert saga.history == (P.WAIT, P.WORK, P.WORK, P.DONE)


def test_signals_without_a_row_early_deadlines_and_terminal_sagas_change_nothing() -> None:
    saga, _ = start(TOY, "s1", 0, now=0)
    assert advance(TOY, saga, Signal(kind="nonsense"), 5) == (saga, [])
    assert advance(TOY, saga, Signal(kind=DEADLINE), 99) == (saga, [])
    over, _ = advance(TOY, saga, Signal(kind=DEADLINE), 100)
    assert over.phase is P.GAVE_UP
    assert advance(TOY, over, Signal(kind="go"), 200) == (over, [])


def test_a_saga_of_another_table_is_a_contract_error() -> None:
    saga, _ = start(TOY, "s1", 0, now=0)
    other = _spec(name="other")
    with pytest.raises(SagaSpecError, match="runs 'toy'"):
        advance(other, saga, Signal(kind="go"), 1)


def test_saga_problems_reports_overdue_and_unfinished_sagas() -> None:
    waiting, _ = start(TOY, "w", 0, now=0)
    done, _ = advance(TOY, waiting, Signal(kind=DEADLINE), 100)
    assert saga_problems([waiting, done], 100) == []
    assert saga_problems([waiting, done], 1_100) == []  # within the grace
    [overdue] = saga_problems([waiting, done], 1_101)
    assert "w" in overdue and "after its deadline" in overdue
    [open_] = saga_problems([waiting, done], 50, final=True)
    assert "non-terminal" in open_
    assert saga_problems([done], 10**9, final=True) == []


@attrs.frozen
class _Holder:
    sagas: Any


def test_sagas_of_reads_a_strategys_sagas_attribute() -> None:
    saga, _ = start(TOY, "s1", 0, now=0)
    assert sagas_of(_Holder({"s1": saga})) == [saga]
    assert sagas_of(_Holder((saga, "not a saga"))) == [saga]
    assert sagas_of(object()) == []


def test_the_invariant_catalogue_judges_a_strategys_sagas() -> None:
    """``sagas_reach_terminal`` is in the shipped catalogue and reads the strategy's sagas: a saga
    overdue in the state a step leaves is a violation; the end-of-run check wants them terminal."""
    from gridcore.invariants import (
        STATE_INVARIANTS,
        invariant_named,
        sagas_finished,
        sagas_reach_terminal,
    )

    assert sagas_reach_terminal in STATE_INVARIANTS
    assert "racing-legs" in invariant_named("sagas_reach_terminal").failures
    waiting, _ = start(TOY, "w", 0, now=0)

    @attrs.frozen
    class _State:
        strategy: Any
        now: int

    on_time = _State(strategy=_Holder({"w": waiting}), now=100)
    late = _State(strategy=_Holder({"w": waiting}), now=1_101)
    assert sagas_reach_terminal(on_time) == []  # type: ignore[arg-type]
    [violation] = sagas_reach_terminal(late)  # type: ignore[arg-type]
    assert violation.invariant == "sagas_reach_terminal" and "w" in violation.detail
    [unfinished] = sagas_finished(on_time)  # type: ignore[arg-type]
    assert "non-terminal" in unfinished.detail
