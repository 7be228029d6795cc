"""The runtime and its adapters: each venue has its own concurrency limit, so a venue that stops
answering never holds back the commands of another; a feed that raises is a bug that stops the
run (after a final commit), never a silent end of the feed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from gridcore.commands import Command, RequestPositions
from gridcore.config import load_config
from gridcore.core import State
from gridcore.events import CommandTimedOut, Event, PositionsReported, Started
from gridcore.shells.journal import Journal
from gridcore.shells.runtime import ExecCommand, LockstepClock, Runtime, RuntimeOptions, Sink
from gridcore.shells.venue import AdapterFailed
from gridcore.sim import make_bot

CONFIG = load_config()
START = CONFIG.market.start_ts
OPTIONS = RuntimeOptions(handle_signals=False, max_concurrency=1, command_timeout_ms=5_000)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class _Venue:
    """Answers position requests at once, except those it is told to leave unanswered."""

    def __init__(self, name: str, silent: set[int]) -> None:
        self.name = name
        self.silent = silent
        self.sink: Sink | None = None

    async def run(self, sink: Sink) -> None:
        self.sink = sink
        await sink.clock.park()

    def quiesce(self) -> None:
        pass

    async def execute(self, command: ExecCommand) -> Sequence[Event]:
        assert self.sink is not None
        if command.command_id in self.silent:
            await self.sink.clock.park()
        return [
            PositionsReported(
                ts=self.sink.clock.now(),
                venue=self.name,
                positions=(),
                command_id=command.command_id,
            )
        ]


def _reducer(state: State[Any], event: Event) -> tuple[State[Any], list[Command]]:
    """On Started: two requests to venue ``a`` (the first never answered), one to ``b``."""
    if isinstance(event, Started):
        return state, [
            RequestPositions(command_id=9_001, venue="a"),
            RequestPositions(command_id=9_002, venue="a"),
            RequestPositions(command_id=9_003, venue="b"),
        ]
    return state, []


@pytest.mark.anyio
async def test_a_silent_venue_does_not_hold_back_another(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    state = make_bot(CONFIG, epoch=START)
    journal = Journal.create(path, state=state, meta={"config": "default"})
    runtime = Runtime(
        state=state,
        journal=journal,
        venues=[_Venue("a", {9_001}), _Venue("b", set())],
        clock=LockstepClock(START),
        options=OPTIONS,
        reducer=_reducer,
    )
    with anyio.fail_after(30):
        await runtime.run(duration_ms=20_000)
    journal.close()
    with Journal.open(path, readonly=True) as j:
        results = {
            getattr(e, "command_id", None): e for _, e in j.events() if hasattr(e, "command_id")
        }
    # Venue b's only slot is its own: answered at once, not after a's timeout.
    assert results[9_003] == PositionsReported(ts=START, venue="b", positions=(), command_id=9_003)
    # Venue a's second request waited for its only slot, freed by the first one's timeout.
    assert results[9_001] == CommandTimedOut(ts=START + 5_000, command_id=9_001)
    answer = results[9_002]
    assert isinstance(answer, PositionsReported) and answer.ts == START + 5_000


class _BrokenFeed(_Venue):
    """A feed whose parser has a bug: ``run`` raises instead of emitting MessageMalformed."""

    async def run(self, sink: Sink) -> None:
        self.sink = sink
        await anyio.lowlevel.checkpoint()
        raise ValueError("unexpected field 'px'")


@pytest.mark.anyio
async def test_a_feed_that_raises_stops_the_run_with_adapter_failed(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    state = make_bot(CONFIG, epoch=START)
    journal = Journal.create(path, state=state, meta={"config": "default"})
    runtime = Runtime(
        state=state,
        journal=journal,
        venues=[_BrokenFeed("sim", set())],
        clock=LockstepClock(START),
        options=OPTIONS,
    )
    with anyio.fail_after(30), pytest.raises(AdapterFailed) as caught:
        await runtime.run(duration_ms=20_000)
    journal.close()
    assert "run() raised ValueError" in str(caught.value)
    assert isinstance(caught.value.__cause__, ValueError)
    assert runtime.stats.stop_reason == "sim: adapter bug in run()"
    with Journal.open(path, readonly=True) as j:
        kinds = [type(e).__name__ for _, e in j.events()]
        assert kinds[0] == "Started"  # committed, with a final snapshot
        assert j.last_snapshot_seq == j.last_seq
