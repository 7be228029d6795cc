"""On the lockstep clock the runtime carries the simulated venue's commands, its delayed stream
messages and the core's timers as callbacks of the clock instead of tasks. Each callback runs
at the time and in the turn of the sleep it replaces, so a paper session must be the same,
row for row, as one where every one of them is a task: that is the reference here (a venue
that offers no clock executor, and the runtime's task path), compared over generated seeds,
fault profiles, latencies, timeouts, concurrency limits and channel sizes."""

from __future__ import annotations

import functools
import sqlite3
from pathlib import Path
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridcore.commands import CancelTimer, Command, StartTimer
from gridcore.config import load_config
from gridcore.core import State, step
from gridcore.events import Event, Started, TimerFired
from gridcore.shells.codec import canonical
from gridcore.shells.journal import Journal
from gridcore.shells.runtime import LockstepClock, Runtime, RuntimeOptions
from gridcore.shells.simvenue import SimVenue, VenueStore, open_venue_state
from gridcore.sim import make_bot
from gridcore.sim.faults import PROFILES

CONFIG = load_config()


class _TaskedVenue(SimVenue):
    """The simulated venue without callbacks: every command (``execute``) and every delayed
    stream message is a task that sleeps on the clock, as it was before the callbacks."""

    callbacks_on_clock = False


class _TaskedRuntime(Runtime):
    """The runtime without callbacks: a task per command and per core timer."""

    callbacks_on_clock = False


def _rows(path: Path) -> list[Any]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        out: list[Any] = []
        for sql in (
            "SELECT seq, ts, kind, crc, payload FROM events ORDER BY seq",
            "SELECT seq, command_id, batch_id, kind, cloid, payload FROM commands ORDER BY id",
            "SELECT seq, payload FROM snapshots ORDER BY seq",
            "SELECT n, payload FROM venue_log ORDER BY n",
        ):
            out.append(conn.execute(sql).fetchall())
        return out
    finally:
        conn.close()


async def _session(
    path: Path,
    tasks: bool,
    *,
    seed: int,
    faults: str,
    latency_ms: int,
    options: RuntimeOptions,
    duration_ms: int,
) -> tuple[bytes, int]:
    """One paper session as ``gridcore run`` makes it (the venue in the journal): the
    canonical final state and the commands sent."""
    start = CONFIG.market.start_ts
    # NORMAL: no fsync per commit (the rows are what is compared, not their durability).
    journal = Journal.create(
        path, state=make_bot(CONFIG, epoch=start), meta={"config": ""}, synchronous="NORMAL"
    )
    store = VenueStore.in_journal(journal)
    try:
        venue_state, _ = open_venue_state(store, CONFIG, seed=seed, faults=faults)
        clock = LockstepClock(SimVenue.resume_time(venue_state, start))
        venue = (_TaskedVenue if tasks else SimVenue)(
            config=CONFIG, state=venue_state, store=store, clock=clock, latency_ms=latency_ms
        )
        runtime = (_TaskedRuntime if tasks else Runtime)(
            state=make_bot(CONFIG, epoch=start),
            journal=journal,
            venues=[venue],
            clock=clock,
            options=options,
        )
        with anyio.fail_after(60):
            final = await runtime.run(duration_ms=duration_ms)
        venue.close()
        return canonical(final), runtime.stats.commands_sent
    finally:
        journal.close()


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.integers(min_value=0, max_value=10_000),
    faults=st.sampled_from(sorted(PROFILES)),
    latency_ms=st.sampled_from([0, 1, 50, 400]),
    timeout_ms=st.sampled_from([30, 120, 5_000]),
    concurrency=st.sampled_from([1, 2, 16]),
    channel=st.sampled_from([1, 3, 10_000]),
)
def test_clock_callbacks_give_the_journal_of_tasks(
    tmp_path_factory: Any,
    seed: int,
    faults: str,
    latency_ms: int,
    timeout_ms: int,
    concurrency: int,
    channel: int,
) -> None:
    tmp = Path(tmp_path_factory.mktemp("on-clock"))
    options = RuntimeOptions(
        handle_signals=False,
        command_timeout_ms=timeout_ms,
        max_concurrency=concurrency,
        channel_size=channel,
    )
    results = {}
    for name, tasks in (("callbacks", False), ("tasks", True)):
        session = functools.partial(
            _session,
            tmp / f"{name}.db",
            tasks,
            seed=seed,
            faults=faults,
            latency_ms=latency_ms,
            options=options,
            duration_ms=900_000,
        )
        final, sent = anyio.run(session, backend="asyncio")
        results[name] = (final, sent, _rows(tmp / f"{name}.db"))
    assert results["callbacks"][1] > 0  # commands went out
    assert results["callbacks"] == results["tasks"]


def test_under_trio_too(tmp_path: Path) -> None:
    """The callbacks do not depend on the backend: trio's session is asyncio's."""
    options = RuntimeOptions(handle_signals=False, command_timeout_ms=120, max_concurrency=2)
    results = []
    for backend, tasks in (("trio", False), ("asyncio", True)):
        session = functools.partial(
            _session,
            tmp_path / f"{backend}.db",
            tasks,
            seed=7,
            faults="chaos",
            latency_ms=50,
            options=options,
            duration_ms=1_800_000,
        )
        final, sent = anyio.run(session, backend=backend)
        results.append((final, sent, _rows(tmp_path / f"{backend}.db")))
    assert results[0][1] > 0
    assert results[0] == results[1]


def _timer_session(path: Path, tasks: bool) -> list[tuple[str, int]]:
    """A session whose reducer also starts a periodic timer, restarts it with another period
    at its third beat, cancels it at its sixth, and starts one-shots (one replaced, one
    canceled); returns the timers fired, with their times from the start."""
    start = CONFIG.market.start_ts
    beats = 0

    def reducer(state: State[Any], event: Event) -> tuple[State[Any], list[Command]]:
        nonlocal beats
        new, commands = step(state, event)
        extra: list[Command] = []
        if isinstance(event, Started):
            extra = [
                StartTimer(command_id=10_001, timer_id="beat", fire_at=start + 500, every_ms=700),
                StartTimer(command_id=10_002, timer_id="once", fire_at=start + 1_200),
                StartTimer(command_id=10_003, timer_id="gone", fire_at=start + 1_300),
                CancelTimer(command_id=10_004, timer_id="gone"),
                StartTimer(command_id=10_005, timer_id="moved", fire_at=start + 900),
                StartTimer(command_id=10_006, timer_id="moved", fire_at=start + 2_000),
            ]
        elif isinstance(event, TimerFired) and event.timer_id == "beat":
            beats += 1
            if beats == 3:
                extra = [
                    StartTimer(
                        command_id=10_100, timer_id="beat", fire_at=event.ts + 250, every_ms=400
                    )
                ]
            elif beats == 6:
                extra = [CancelTimer(command_id=10_200, timer_id="beat")]
        return new, [*commands, *extra]

    async def run() -> None:
        journal = Journal.create(
            path, state=make_bot(CONFIG, epoch=start), meta={"config": ""}, synchronous="NORMAL"
        )
        store = VenueStore.in_journal(journal)
        try:
            venue_state, _ = open_venue_state(store, CONFIG, seed=3, faults="none")
            clock = LockstepClock(start)
            venue = (_TaskedVenue if tasks else SimVenue)(
                config=CONFIG, state=venue_state, store=store, clock=clock
            )
            runtime = (_TaskedRuntime if tasks else Runtime)(
                state=make_bot(CONFIG, epoch=start),
                journal=journal,
                venues=[venue],
                clock=clock,
                options=RuntimeOptions(handle_signals=False),
                reducer=reducer,
            )
            with anyio.fail_after(60):
                await runtime.run(duration_ms=8_000)
            venue.close()
        finally:
            journal.close()

    anyio.run(run, backend="asyncio")
    with Journal.open(path, readonly=True) as journal:
        return [
            (e.timer_id, e.ts - start) for _, e in journal.events() if isinstance(e, TimerFired)
        ]


def test_timers_on_clock_callbacks_fire_as_timer_tasks(tmp_path: Path) -> None:
    on_clock = _timer_session(tmp_path / "callbacks.db", tasks=False)
    assert on_clock == _timer_session(tmp_path / "tasks.db", tasks=True)
    mine = [f for f in on_clock if f[0] in {"beat", "once", "moved", "gone"}]
    assert mine == [
        ("beat", 500),
        ("beat", 1_200),
        ("once", 1_200),
        ("beat", 1_900),
        ("moved", 2_000),
        ("beat", 2_150),
        ("beat", 2_550),
        ("beat", 2_950),
    ]
