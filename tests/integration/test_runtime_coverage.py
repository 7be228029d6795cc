"""The runtime's edges, with a real journal and the lockstep clock (no test depends on wall-clock
speed; every wait is bounded by ``anyio.fail_after``): a command for a venue without an adapter
fails as not applied, a venue's free text is redacted before it is journaled, a feed that ends
stops the run, a runtime runs once, and the clocks and options refuse what cannot work."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from gridcore.commands import Command, RequestBalances, RequestPositions
from gridcore.config import load_config
from gridcore.core import State
from gridcore.events import (
    TS_MAX,
    TS_MIN,
    BalanceReported,
    CommandFailed,
    Event,
    HaltRequested,
    MessageMalformed,
    Started,
)
from gridcore.instruments import Source
from gridcore.shells.journal import Journal
from gridcore.shells.runtime import (
    K_COMMAND,
    K_FEED,
    EventRejected,
    ExecCommand,
    LockstepClock,
    Runtime,
    RuntimeOptions,
    Sink,
    WallClock,
)
from gridcore.sim import make_bot

CONFIG = load_config()
START = CONFIG.market.start_ts
QUIET = RuntimeOptions(handle_signals=False)
SECRET = "api_key=abc123def456"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class _Venue:
    """Answers a balance request together with a stream message it had buffered (one that
    carries a credential in its text); its feed parks, or ends at once when ``ends``."""

    name = "sim"

    def __init__(self, *, ends: bool = False, answers: int = 1) -> None:
        self.ends = ends
        self.answers = answers
        self.sink: Sink | None = None
        self.executed: list[ExecCommand] = []

    async def run(self, sink: Sink) -> None:
        self.sink = sink
        if not self.ends:
            await sink.clock.park()

    def quiesce(self) -> None:
        pass

    async def execute(self, command: ExecCommand) -> Sequence[Event]:
        assert self.sink is not None
        self.executed.append(command)
        now = self.sink.clock.now()
        balance = BalanceReported(
            ts=now,
            venue="sim",
            asset="USDT",
            equity=Decimal(1000),
            available=Decimal(1000),
            command_id=command.command_id,
        )
        malformed = MessageMalformed(ts=now, venue="sim", detail=f"GET /v5/x?{SECRET} -> 500")
        return [malformed, *[balance] * self.answers]


def _reducer(state: State[Any], event: Event) -> tuple[State[Any], list[Command]]:
    """On Started: one request to a venue nobody configured, one to ``sim``."""
    if isinstance(event, Started):
        return state, [
            RequestPositions(command_id=7_001, venue="nowhere"),
            RequestBalances(command_id=7_002, venue="sim"),
        ]
    return state, []


async def _run(path: Path, venue: _Venue, **kwargs: Any) -> tuple[Runtime, list[Event]]:
    state = make_bot(CONFIG, epoch=START)
    journal = Journal.create(path, state=state, meta={"config": "default"})
    runtime = Runtime(
        state=state,
        journal=journal,
        venues=[venue],
        clock=LockstepClock(START),
        options=QUIET,
        reducer=_reducer,
        **kwargs,
    )
    with anyio.fail_after(30):
        await runtime.run(duration_ms=10_000)
    journal.close()
    with Journal.open(path, readonly=True) as j:
        events = [e for _, e in j.events()]
    return runtime, events


@pytest.mark.anyio
async def test_a_command_for_a_venue_without_adapter_fails_as_not_applied(tmp_path: Path) -> None:
    venue = _Venue()
    runtime, events = await _run(tmp_path / "j.db", venue)
    failed = [e for e in events if isinstance(e, CommandFailed)]
    assert failed == [
        CommandFailed(
            ts=START,
            command_id=7_001,
            reason="no venue adapter for 'nowhere'; configured: ['sim']",
            not_applied=True,
        )
    ]
    assert [c.command_id for c in venue.executed] == [7_002]
    assert runtime.outstanding == 0
    assert runtime.backlog == 0
    # A runtime runs once.
    with pytest.raises(RuntimeError, match="runs once"):
        await runtime.run()


class _EmitsWhenIdle(_Venue):
    """Once the runtime is idle, sends one stream message and notes the runtime's backlog
    right after the send returned (before the reducer could run)."""

    def __init__(self) -> None:
        super().__init__()
        self.runtime: Runtime | None = None
        self.backlog_after_send: int | None = None

    async def run(self, sink: Sink) -> None:
        self.sink = sink
        runtime = self.runtime
        assert runtime is not None
        while not (self.executed and runtime.outstanding == 0 and runtime.backlog == 0):
            await anyio.sleep(0)
        await sink.emit(MessageMalformed(ts=sink.clock.now(), venue="sim", detail="late"))
        self.backlog_after_send = runtime.backlog
        runtime.request_stop("test: done")
        await sink.clock.park()


@pytest.mark.anyio
async def test_an_event_handed_to_a_waiting_reducer_counts_in_the_backlog(tmp_path: Path) -> None:
    # On the wall clock (every real venue) the reducer waits on the channel, and a send to it
    # hands the event over without buffering it:
    # until it is reduced (and its commands are out), the runtime is not idle, or a caller
    # waiting for "nothing outstanding, no backlog" would act while it is on its way.
    venue = _EmitsWhenIdle()
    state = make_bot(CONFIG, epoch=START)
    journal = Journal.create(tmp_path / "j.db", state=state, meta={"config": "default"})
    runtime = Runtime(
        state=state,
        journal=journal,
        venues=[venue],
        clock=WallClock(),
        options=QUIET,
        reducer=_reducer,
    )
    venue.runtime = runtime
    with anyio.fail_after(30):  # a bound against hangs: the venue stops the run
        await runtime.run()
    journal.close()
    assert venue.backlog_after_send == 1
    assert runtime.backlog == 0


@pytest.mark.anyio
async def test_a_venue_message_carried_by_an_answer_is_journaled_redacted(tmp_path: Path) -> None:
    _, events = await _run(tmp_path / "j.db", _Venue())
    (malformed,) = [e for e in events if isinstance(e, MessageMalformed)]
    assert SECRET not in malformed.detail
    assert malformed.detail.startswith("GET /v5/x?api_key=[redacted]")
    assert malformed.source is Source.STREAM
    (balance,) = [e for e in events if isinstance(e, BalanceReported)]
    assert balance.command_id == 7_002


@pytest.mark.anyio
async def test_start_events_follow_started_and_a_feed_that_ends_stops_the_run(
    tmp_path: Path,
) -> None:
    halt = HaltRequested(ts=START, reason="resume of a halted session")
    heard: list[str] = []
    runtime, events = await _run(
        tmp_path / "j.db", _Venue(ends=True), start_events=[halt], on_stop=heard.append
    )
    assert events[:2] == [Started(ts=START), halt]
    assert runtime.stats.stop_reason == "sim: feed ended"
    assert heard == ["sim: feed ended"]
    assert runtime.stopping
    runtime.request_stop("again")  # idempotent: the first reason stands
    assert heard == ["sim: feed ended"]


class _Operated(_Venue):
    """A feed through which an operator halts the bot, then the venue asks to stop."""

    runtime: Runtime | None = None

    async def run(self, sink: Sink) -> None:
        self.sink = sink
        assert self.runtime is not None
        await self.runtime.emit(HaltRequested(ts=sink.clock.now(), reason="operator"))
        sink.stop("venue maintenance")
        await sink.clock.park()


@pytest.mark.anyio
async def test_an_operator_event_and_a_venue_stop_request_reach_the_journal(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    state = make_bot(CONFIG, epoch=START)
    venue = _Operated()
    with Journal.create(path, state=state, meta={"config": "default"}) as journal:
        runtime = Runtime(
            state=state,
            journal=journal,
            venues=[venue],
            clock=LockstepClock(START),
            options=RuntimeOptions(handle_signals=False, offload_commits=False),
            reducer=_reducer,
        )
        venue.runtime = runtime
        with anyio.fail_after(30):
            await runtime.run(duration_ms=10_000)
        assert runtime.stats.stop_reason == "venue maintenance"
        assert not runtime.shutdown_signals.installed
        runtime.release_signals()  # nothing was installed: a no-op
        events = [e for _, e in journal.events()]
    assert HaltRequested(ts=START, reason="operator") in events
    assert next(e for e in events if isinstance(e, CommandFailed)).command_id == 7_001


@pytest.mark.anyio
async def test_a_second_answer_to_one_command_is_dropped(tmp_path: Path) -> None:
    _, events = await _run(tmp_path / "j.db", _Venue(answers=2))
    assert [e.command_id for e in events if isinstance(e, BalanceReported)] == [7_002]


def _refuses_halts(state: State[Any], event: Event) -> tuple[State[Any], list[Command]]:
    if isinstance(event, HaltRequested):
        raise ValueError("cannot halt here")
    return state, []


@pytest.mark.anyio
async def test_an_event_the_reducer_raises_on_is_quarantined_after_what_came_before(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    state = make_bot(CONFIG, epoch=START)
    halt = HaltRequested(ts=START, reason="operator")
    with Journal.create(path, state=state, meta={"config": "default"}) as journal:
        runtime = Runtime(
            state=state,
            journal=journal,
            venues=[_Venue()],
            clock=LockstepClock(START),
            options=QUIET,
            reducer=_refuses_halts,
            start_events=[halt],
        )
        with anyio.fail_after(30), pytest.raises(EventRejected) as caught:
            await runtime.run(duration_ms=10_000)
        assert [e for _, e in journal.events()] == [Started(ts=START)]
        (kept,) = journal.quarantined()
    assert caught.value.seq == 2 and caught.value.kind == "HaltRequested"
    assert caught.value.error == "ValueError: cannot halt here"
    assert kept.kind == "HaltRequested" and kept.error == "ValueError: cannot halt here"
    assert runtime.stats.stop_reason == "event 2 (HaltRequested) rejected by the reducer"


# --- options and clocks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_batch": 0}, "RuntimeOptions.max_batch must be >= 1, got 0"),
        ({"channel_size": 0}, "RuntimeOptions.channel_size must be >= 1, got 0"),
        ({"flush_ms": -1}, "flush_ms and drain_grace_ms must be >= 0"),
        ({"drain_grace_ms": -1}, "flush_ms and drain_grace_ms must be >= 0"),
    ],
)
def test_runtime_options_that_cannot_work_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RuntimeOptions(**fields)


@pytest.mark.parametrize("speed", [0.0, -1.0, math.nan])
def test_a_lockstep_clock_needs_a_positive_speed(speed: float) -> None:
    with pytest.raises(ValueError, match="speed must be > 0"):
        LockstepClock(START, speed=speed)


def test_a_lockstep_clock_counts_its_work_and_refuses_an_unbalanced_release() -> None:
    clock = LockstepClock(START)
    clock.hold()
    clock.hold()
    assert clock.pending == 2
    clock.release()
    clock.release()
    assert clock.pending == 0
    with pytest.raises(RuntimeError, match="released more often than held"):
        clock.release()


@pytest.mark.anyio
async def test_two_sleepers_may_not_share_a_key_at_one_time() -> None:
    clock = LockstepClock(START)
    async with anyio.create_task_group() as tg:
        clock.hold()
        tg.start_soon(clock.sleep_until, START + 5, (1, 2))
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(RuntimeError, match=r"two sleepers share key \(1, 2\)"):
            await clock.sleep_until(START + 5, (1, 2))
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_a_deadline_fires_in_its_turn_without_a_task_and_a_cancelled_one_never() -> None:
    """The command timeout on simulated time: a callback at its time and key among the
    sleepers, called inside the clock's step (here the reducer's release); cancelled, never."""
    clock = LockstepClock(START)
    seen: list[tuple[str, int]] = []

    def note(what: str) -> Callable[[], None]:
        return lambda: seen.append((what, clock.now()))

    clock.call_at(START + 10, (K_COMMAND, 1, 9), note("late"))
    dropped = clock.call_at(START + 5, (K_COMMAND, 2, 9), note("dropped"))
    clock.call_at(START + 5, (K_COMMAND, 0, 9), note("first"))
    dropped.cancel()
    dropped.cancel()  # idempotent
    with pytest.raises(RuntimeError, match="share key"):
        clock.call_at(START + 5, (K_COMMAND, 0, 9), note("again"))

    async def task() -> None:
        try:
            await clock.sleep_until(START + 5, (K_FEED, 0))
            seen.append(("task", clock.now()))
        finally:
            clock.release()

    async with anyio.create_task_group() as tg:
        clock.hold()  # the task's unit
        tg.start_soon(task)
        clock.hold()  # ours, as the reducer holds one while it reduces
        tg.start_soon(clock.run)
        await anyio.wait_all_tasks_blocked()
        assert seen == []  # nothing is due while a unit is held
        clock.release_and_advance()  # the deadline due first fires right here; the task wakes
        assert seen == [("first", START + 5)]
        await clock.settle(lambda: len(seen) == 3, START + 1_000)
        tg.cancel_scope.cancel()
    assert seen == [("first", START + 5), ("task", START + 5), ("late", START + 10)]


def test_the_default_wall_clock_reads_the_system_time_in_milliseconds() -> None:
    now = WallClock().now()
    assert type(now) is int
    assert TS_MIN <= now < TS_MAX  # milliseconds, not seconds or nanoseconds


@pytest.mark.anyio
async def test_the_wall_clock_reads_its_time_source_and_never_sleeps_into_the_past() -> None:
    now = [START]
    clock = WallClock(time_ms=lambda: now[0])
    assert clock.now() == START
    now[0] += 250
    assert clock.now() == START + 250
    with anyio.fail_after(30):
        await clock.sleep_until(START, (1,))  # already passed: returns at once
        await clock.sleep_until(START + 251, (2,))  # 1 ms ahead of the source
        calls: list[int] = []

        def done() -> bool:
            calls.append(1)
            return len(calls) >= 3

        await clock.settle(done, deadline=START + 10**9)
        assert len(calls) == 3
        await clock.settle(lambda: False, deadline=START)  # past its deadline: returns
    clock.hold()
    clock.release()
    with anyio.move_on_after(0.01) as parked:
        await clock.park()
    assert parked.cancelled_caught
    with anyio.move_on_after(0.01) as running:
        await clock.run()
    assert running.cancelled_caught
