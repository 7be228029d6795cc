"""The runtime with real parts: the simulated venue, a real SQLite journal, asyncio and trio.

Every run uses the lockstep clock (simulated time that advances only when nothing is
pending), so a session is deterministic and no test depends on wall-clock timing; every wait is
bounded by ``anyio.fail_after``.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from gridcore.commands import (
    CancelTimer,
    Command,
    RequestBalances,
    RequestFills,
    RequestFunding,
    RequestOpenOrders,
    RequestPositions,
    StartTimer,
)
from gridcore.config import BotConfig, load_config
from gridcore.core import State, step
from gridcore.events import (
    CommandFailed,
    CommandTimedOut,
    Event,
    HaltRequested,
    QuoteTicked,
    Started,
    TimerFired,
)
from gridcore.invariants import check_against_venue
from gridcore.shells.cli_run import replay_journal
from gridcore.shells.codec import canonical
from gridcore.shells.journal import Journal, head_path, recover
from gridcore.shells.runtime import (
    EXIT_HALT_REASON,
    ExecCommand,
    LockstepClock,
    Runtime,
    RuntimeOptions,
    Sink,
    TransportError,
    VenueError,
)
from gridcore.shells.simvenue import SimVenue, VenueStore, open_venue_state, venue_path
from gridcore.shells.venue import AdapterFailed
from gridcore.sim import make_bot


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


CONFIG = load_config()
START = CONFIG.market.start_ts
QUIET = RuntimeOptions(handle_signals=False)


def _new_journal(path: Path, config: BotConfig = CONFIG) -> Journal:
    return Journal.create(path, state=make_bot(config, epoch=START), meta={"config": "default"})


async def _paper(
    path: Path,
    *,
    seed: int = 5,
    faults: str = "chaos",
    duration_ms: int = 1_800_000,
    options: RuntimeOptions = QUIET,
    wrap: Callable[[SimVenue], Any] | None = None,
    trace: Callable[[str], None] | None = None,
    in_journal: bool = False,
) -> tuple[State[Any], SimVenue, RuntimeOptions]:
    """One paper session on the simulated venue; creates or resumes the journal at ``path``.
    ``in_journal``: the venue's state lives in the journal (group commit), else in its file."""
    journal = Journal.open(path) if path.exists() else _new_journal(path)
    journal.set_trace(trace)
    store = VenueStore.in_journal(journal) if in_journal else VenueStore(venue_path(path))
    try:
        venue_state, _ = open_venue_state(store, CONFIG, seed=seed, faults=faults)
        state, _ = recover(journal)
        clock = LockstepClock(SimVenue.resume_time(venue_state, state.now))
        venue = SimVenue(config=CONFIG, state=venue_state, store=store, clock=clock)
        adapter = venue if wrap is None else wrap(venue)
        runtime = Runtime(
            state=state, journal=journal, venues=[adapter], clock=clock, options=options
        )
        with anyio.fail_after(60):
            final = await runtime.run(duration_ms=duration_ms)
        venue.close()
        return final, venue, options
    finally:
        journal.close()


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _events(path: Path) -> list[tuple[int, Event]]:
    with Journal.open(path, readonly=True) as journal:
        return list(journal.events())


# --- determinism across backends ---------------------------------------------------------------


def test_the_same_paper_session_gives_the_same_journal_under_asyncio_and_trio(
    tmp_path: Path,
) -> None:
    finals = {}
    for backend in ("asyncio", "trio"):
        path = tmp_path / f"{backend}.db"
        session = functools.partial(_paper, path, duration_ms=2 * 3_600_000)
        final, _, _ = anyio.run(session, backend=backend)
        finals[backend] = final
    a = _rows(tmp_path / "asyncio.db", "SELECT seq, ts, kind, payload FROM events ORDER BY seq")
    b = _rows(tmp_path / "trio.db", "SELECT seq, ts, kind, payload FROM events ORDER BY seq")
    assert len(a) > 7_000
    assert a == b
    commands = "SELECT seq, command_id, kind, cloid, payload FROM commands ORDER BY id"
    assert _rows(tmp_path / "asyncio.db", commands) == _rows(tmp_path / "trio.db", commands)
    assert canonical(finals["asyncio"]) == canonical(finals["trio"])
    # The session exercised what the faults are for.
    kinds = {row[2] for row in a}
    assert {"OrderFilled", "CommandTimedOut", "CommandFailed", "FeedDisconnected"} <= kinds


def test_a_paper_session_through_a_one_slot_channel_gives_the_same_journal(
    tmp_path: Path,
) -> None:
    """Under the lockstep clock the runtime sends into the channel and takes from it without a
    checkpoint when it can; a full channel still makes the sender wait, and the journal is the
    same event for event as with room to spare (nothing dropped, nothing reordered)."""
    for name, size in (("wide", 10_000), ("narrow", 1)):
        options = RuntimeOptions(handle_signals=False, channel_size=size)
        anyio.run(
            functools.partial(
                _paper, tmp_path / f"{name}.db", duration_ms=3_600_000, options=options
            ),
            backend="asyncio",
        )
    events = "SELECT seq, ts, kind, payload FROM events ORDER BY seq"
    wide, narrow = _rows(tmp_path / "wide.db", events), _rows(tmp_path / "narrow.db", events)
    assert len(wide) > 3_000
    assert narrow == wide


# --- durability before sending -----------------------------------------------------------------


class _Checking:
    """Wraps the simulated venue; when a command arrives, checks (through its own connection
    to the journal file) that the event that produced it is committed already."""

    def __init__(self, venue: SimVenue, journal_path: Path) -> None:
        self.venue = venue
        self.name = venue.name
        self.path = journal_path
        self.checked = 0
        self.problems: list[str] = []

    async def run(self, sink: Sink) -> None:
        await self.venue.run(sink)

    def quiesce(self) -> None:
        self.venue.quiesce()

    async def execute(self, command: ExecCommand) -> Sequence[Event]:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            row = conn.execute(
                "SELECT seq FROM commands WHERE command_id = ? OR batch_id = ?",
                (command.command_id, command.command_id),
            ).fetchone()
            if row is None:
                self.problems.append(f"command {command.command_id} not in the journal")
            else:
                found = conn.execute("SELECT count(*) FROM events WHERE seq = ?", row).fetchone()
                if found[0] != 1:
                    self.problems.append(f"event {row[0]} of command {command.command_id} missing")
                # ... and the head file, outside the WAL, marks it as committed already.
                head = head_path(self.path).read_text().split()
                if int(head[head.index("seq") + 1]) < row[0]:
                    self.problems.append(f"event {row[0]} not marked committed in the head")
            self.checked += 1
        finally:
            conn.close()
        return await self.venue.execute(command)


@pytest.mark.anyio
async def test_an_event_is_durable_before_its_commands_reach_the_venue(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    checkers: list[_Checking] = []

    def wrap(venue: SimVenue) -> _Checking:
        checkers.append(_Checking(venue, path))
        return checkers[-1]

    await _paper(path, duration_ms=1_200_000, wrap=wrap)
    (checker,) = checkers
    assert checker.checked > 50
    assert checker.problems == []


@pytest.mark.anyio
async def test_every_command_gets_exactly_one_result(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    await _paper(path, duration_ms=3_600_000)
    executable = {
        "PlaceOrder",
        "CancelOrder",
        "ModifyOrder",
        "RequestPositions",
        "RequestBalances",
        "RequestOpenOrders",
        "RequestFills",
        "RequestOrderStatus",
    }
    with Journal.open(path, readonly=True) as journal:
        sent = [
            r.command.command_id
            for r in journal.commands()
            if type(r.command).__name__ in executable
        ]
        results: dict[int, int] = {}
        for _, event in journal.events():
            cid = getattr(event, "command_id", None)
            if cid is not None:
                results[cid] = results.get(cid, 0) + 1
    assert len(sent) > 100
    assert {cid: results.get(cid, 0) for cid in sent if results.get(cid, 0) != 1} == {}


# --- timeouts, failures, timers ------------------------------------------------------------------


class _Scripted:
    """A venue without a market whose answers are scripted per request kind."""

    name = "sim"

    def __init__(self) -> None:
        self.sink: Sink | None = None

    async def run(self, sink: Sink) -> None:
        self.sink = sink
        await sink.clock.park()

    def quiesce(self) -> None:
        pass

    async def execute(self, command: ExecCommand) -> Sequence[Event]:
        assert self.sink is not None
        match command:
            case RequestPositions():
                raise VenueError("venue said no", not_applied=True)
            case RequestBalances():
                raise TransportError("connection reset")
            case RequestOpenOrders():
                await self.sink.clock.park()  # silence
            case RequestFills():
                return []  # an answer that does not mention the command
            case RequestFunding():
                raise VenueError("no funding history", not_applied=True)
        raise AssertionError(f"unexpected {command!r}")


@pytest.mark.anyio
async def test_silence_times_out_and_declared_errors_become_failures(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = _new_journal(path)
    clock = LockstepClock(START)
    runtime = Runtime(
        state=make_bot(CONFIG, epoch=START),
        journal=journal,
        venues=[_Scripted()],
        clock=clock,
        options=QUIET,
    )
    with anyio.fail_after(30):
        await runtime.run(duration_ms=6_000)
    journal.close()
    events = [e for _, e in _events(path)]
    started = events[0]
    assert isinstance(started, Started)
    with Journal.open(path, readonly=True) as j:
        first = {type(r.command).__name__: r.command.command_id for r in j.commands() if r.seq == 1}
    by_cid = {e.command_id: e for e in events if isinstance(e, CommandFailed | CommandTimedOut)}
    assert by_cid[first["RequestPositions"]] == CommandFailed(
        ts=START + 0,
        command_id=first["RequestPositions"],
        reason="VenueError: venue said no",
        not_applied=True,
    )
    assert by_cid[first["RequestBalances"]] == CommandFailed(
        ts=START, command_id=first["RequestBalances"], reason="TransportError: connection reset"
    )
    assert by_cid[first["RequestOpenOrders"]] == CommandTimedOut(
        ts=START + QUIET.command_timeout_ms, command_id=first["RequestOpenOrders"]
    )
    fills = by_cid[first["RequestFills"]]
    assert isinstance(fills, CommandFailed) and "did not mention" in fills.reason
    assert not fills.not_applied


@pytest.mark.anyio
async def test_timers_fire_on_the_simulated_clock(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = _new_journal(path)

    def reducer(state: State[Any], event: Event) -> tuple[State[Any], list[Command]]:
        new, commands = step(state, event)
        if isinstance(event, Started):
            t = event.ts
            commands = [
                *commands,
                StartTimer(command_id=10_001, timer_id="once", fire_at=t + 1_500),
                StartTimer(command_id=10_002, timer_id="canceled", fire_at=t + 2_500),
                CancelTimer(command_id=10_003, timer_id="canceled"),
                StartTimer(command_id=10_004, timer_id="moved", fire_at=t + 1_000),
                StartTimer(command_id=10_005, timer_id="moved", fire_at=t + 3_000),
            ]
        return new, commands

    runtime = Runtime(
        state=make_bot(CONFIG, epoch=START),
        journal=journal,
        venues=[_Scripted()],
        clock=LockstepClock(START),
        options=QUIET,
        reducer=reducer,
    )
    with anyio.fail_after(30):
        await runtime.run(duration_ms=16_000)
    journal.close()
    fired = [(e.timer_id, e.ts - START) for _, e in _events(path) if isinstance(e, TimerFired)]
    assert fired == [
        ("once", 1_500),
        ("moved", 3_000),
    ]  # no heartbeat: with no data and nothing owed, the maintenance timer stays disarmed


# --- group commit --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_events_without_commands_share_transactions(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    statements: list[str] = []
    await _paper(path, faults="none", duration_ms=1_800_000, trace=statements.append)
    commits = sum(1 for s in statements if s.strip().upper() == "COMMIT")
    events = len(_events(path))
    assert events > 1_500  # 30 min of one-second quotes and their answers
    # Ticks and timers that produce nothing wait for the next commit (group commit): far fewer
    # transactions than events, where a commit per event would make them equal.
    assert 0 < commits < events / 5


# --- shutdown and resume ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_cancel_on_exit_cancels_every_order_and_writes_a_final_snapshot(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    options = RuntimeOptions(handle_signals=False, cancel_on_exit=True)
    final, venue, _ = await _paper(path, faults="none", duration_ms=1_800_000, options=options)
    assert venue.exchange.open_orders() == []
    assert final.live_orders() == []
    assert final.risk.halted and final.risk.halt_reason == EXIT_HALT_REASON
    events = [e for _, e in _events(path)]
    assert any(isinstance(e, HaltRequested) and e.reason == EXIT_HALT_REASON for e in events)
    with Journal.open(path, readonly=True) as journal:
        assert journal.last_snapshot_seq == journal.last_seq
        recovered, _ = recover(journal)
    assert canonical(recovered) == canonical(final)


@pytest.mark.anyio
async def test_a_resumed_session_continues_the_fold_and_matches_the_venue(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    await _paper(path, faults="none", duration_ms=1_200_000)
    final, venue, _ = await _paper(path, faults="none", duration_ms=1_200_000)
    events = [e for _, e in _events(path)]
    assert sum(isinstance(e, Started) for e in events) == 2
    with Journal.open(path, readonly=True) as journal:
        result = replay_journal(journal)
        recovered, _ = recover(journal)
    assert result.mismatch_seq is None and len(result.verified) >= 3
    assert canonical(recovered) == canonical(final)
    assert final.ledger.fill_count > 0
    assert check_against_venue(final, venue.exchange) == []


class _Buggy(_Scripted):
    """A venue whose adapter has a bug: a balances request raises a plain ``KeyError``."""

    async def execute(self, command: ExecCommand) -> Sequence[Event]:
        if isinstance(command, RequestBalances):
            raise KeyError("balances")
        await anyio.lowlevel.checkpoint()
        return []


@pytest.mark.anyio
async def test_an_undeclared_exception_stops_the_bot_instead_of_failing_the_command(
    tmp_path: Path,
) -> None:
    """An adapter bug is not a venue failure: no CommandFailed (which would feed the error
    breaker and hide it), the journal is committed and the run raises AdapterFailed."""
    path = tmp_path / "j.db"
    journal = _new_journal(path)
    runtime = Runtime(
        state=make_bot(CONFIG, epoch=START),
        journal=journal,
        venues=[_Buggy()],
        clock=LockstepClock(START),
        options=QUIET,
    )
    with anyio.fail_after(30), pytest.raises(AdapterFailed) as caught:
        await runtime.run(duration_ms=6_000)
    journal.close()
    assert "KeyError" in str(caught.value) and "bug in the adapter" in str(caught.value)
    assert isinstance(caught.value.__cause__, KeyError)
    assert caught.value.venue == "sim"
    events = [e for _, e in _events(path)]
    assert isinstance(events[0], Started)  # committed before the stop
    with Journal.open(path, readonly=True) as j:
        balances = [
            r.command.command_id for r in j.commands() if isinstance(r.command, RequestBalances)
        ]
        assert j.last_snapshot_seq == j.last_seq  # the final snapshot was written
        # ... and it is the fold of the events: the answers reduced while the stop was under way
        # are journaled, not dropped at a commit the stop cancelled.
        assert replay_journal(j).mismatch_seq is None
    assert balances
    answered = {getattr(e, "command_id", None) for e in events}
    assert not answered & set(balances)
    # The bug never became a failed command (the other commands' answers are what they are).
    assert not [e for e in events if isinstance(e, CommandFailed) and e.command_id in balances]


def _fresh_paper(
    journal: Journal, venue_class: type[SimVenue] = SimVenue
) -> tuple[Runtime, SimVenue]:
    """A new paper session (quiet) on ``journal`` with a ``venue_class`` venue whose state is
    in the journal's commits (group commit)."""
    store = VenueStore.in_journal(journal)
    venue_state, _ = open_venue_state(store, CONFIG, seed=5, faults="none")
    clock = LockstepClock(SimVenue.resume_time(venue_state, START))
    venue = venue_class(config=CONFIG, state=venue_state, store=store, clock=clock)
    runtime = Runtime(
        state=make_bot(CONFIG, epoch=START), journal=journal, venues=[venue], clock=clock,
        options=QUIET,
    )  # fmt: skip
    return runtime, venue


class _BrokenMatching(SimVenue):
    """The simulated venue with a matching engine that raises from tick ``break_at`` on (its
    ticks are callbacks of the lockstep clock, outside any task of the venue's)."""

    break_at = 100

    def _tick_events(self, index: int, tick: QuoteTicked) -> list[Event]:
        if index >= self.break_at:
            raise ZeroDivisionError("matching engine bug (injected)")
        return super()._tick_events(index, tick)


@pytest.mark.anyio
async def test_a_feed_callback_that_raises_stops_the_bot_with_adapter_failed(
    tmp_path: Path,
) -> None:
    """A bug in the simulated feed's tick callback surfaces from the venue's ``run`` as it would
    from a feed task: the run stops with AdapterFailed naming it, after the final snapshot."""
    path = tmp_path / "j.db"
    journal = _new_journal(path)
    runtime, _ = _fresh_paper(journal, _BrokenMatching)
    with anyio.fail_after(30), pytest.raises(AdapterFailed) as caught:
        await runtime.run(duration_ms=3_600_000)
    journal.close()
    assert "ZeroDivisionError" in str(caught.value) and "run()" in str(caught.value)
    assert isinstance(caught.value.__cause__, ZeroDivisionError)
    with Journal.open(path, readonly=True) as j:
        assert j.last_snapshot_seq == j.last_seq  # the final snapshot was written
        assert replay_journal(j).mismatch_seq is None
        quotes = [e for _, e in j.events() if isinstance(e, QuoteTicked)]
    assert len(quotes) == _BrokenMatching.break_at  # every tick before the bug, none after


class _HeldJournal(Journal):
    """A journal whose first commit of events, in the runtime's worker thread, waits until
    the reducer has reduced ``ahead`` events past it (or gives up after a minute)."""

    runtime: Runtime | None = None
    # One event past the held group proves the reducer went on. Not more: the reducer may
    # take only a few more groups while a commit is held (they wait to share the next
    # transaction) and their size depends on how the events fall into the channel.
    ahead = 1
    overlapped: bool | None = None

    def append(self, entries: Any, **kwargs: Any) -> int:
        if self.overlapped is None and entries and self.runtime is not None:
            upto = self.last_seq + len(entries) + self.ahead
            runtime = self.runtime
            deadline = time.monotonic() + 60  # a bound for a broken runtime, never a measure
            while runtime.stats.events < upto and time.monotonic() < deadline:
                time.sleep(0.001)
            self.overlapped = runtime.stats.events >= upto
        return super().append(entries, **kwargs)


@pytest.mark.anyio
async def test_a_paper_commit_runs_behind_the_reducer(tmp_path: Path) -> None:
    """With the venue in the journal's commits, the reducer goes on with the next group while
    a commit is in its thread (the disk's flush is not a stop of the bot); the commits stay in
    order and the journal is the fold of its events, snapshots included."""
    path = tmp_path / "j.db"
    _new_journal(path).close()
    journal = _HeldJournal.open(path)
    assert isinstance(journal, _HeldJournal)
    runtime, venue = _fresh_paper(journal)
    assert runtime.group_commit
    journal.runtime = runtime
    with anyio.fail_after(120):
        await runtime.run(duration_ms=1_800_000)
    venue.close()
    journal.close()
    assert journal.overlapped is True
    with Journal.open(path, readonly=True) as j:
        assert j.last_seq == runtime.stats.events and j.last_snapshot_seq == j.last_seq
        assert replay_journal(j).mismatch_seq is None


class _CountingTicks(SimVenue):
    """A venue that adds to ``_on_tick`` (as a pair's venue does): it must still be called for
    every tick, so such a venue keeps the feed task instead of the clock's callbacks."""

    calls = 0

    async def _on_tick(self, index: int, tick: QuoteTicked) -> None:
        self.calls += 1
        await super()._on_tick(index, tick)


@pytest.mark.anyio
async def test_a_venue_that_overrides_on_tick_is_called_for_every_tick(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = _new_journal(path)
    runtime, venue = _fresh_paper(journal, _CountingTicks)
    assert isinstance(venue, _CountingTicks)
    with anyio.fail_after(60):
        await runtime.run(duration_ms=600_000)
    journal.close()
    assert venue.calls == venue.ticks > 500
