"""A poison event — one the reducer raises on — stops the runtime cleanly, is quarantined rather
than journaled as applied, and never turns every restart into the same crash.

The reducer here is gridcore's ``step`` made to raise on every fills answer, as a fills answer
holding a zero-size fill once made every start die at its first reconciliation. The simulated
venue and a real SQLite journal; the lockstep clock, so nothing depends on timing."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import anyio
import pytest

from gridcore.commands import Command
from gridcore.config import load_config
from gridcore.core import State, step
from gridcore.events import Event, FillsReported, Started
from gridcore.shells.cli_run import (
    EXIT_POISON,
    _guarded,
    cmd_inspect,
    inspect_report,
    replay_journal,
)
from gridcore.shells.journal import Journal, Reducer, recover
from gridcore.shells.runtime import EventRejected, LockstepClock, Runtime, RuntimeOptions
from gridcore.shells.simvenue import SimVenue, VenueStore, open_venue_state, venue_path
from gridcore.sim import make_bot

CONFIG = load_config()
QUIET = RuntimeOptions(handle_signals=False)


def poisoned(state: State[Any], event: Event) -> tuple[State[Any], list[Command]]:
    if isinstance(event, FillsReported):
        raise ValueError("fill size must be > 0, got 0")
    return step(state, event)


async def _session(path: Path, reducer: Reducer, duration_ms: int = 1_200_000) -> State[Any]:
    if path.exists():
        journal = Journal.open(path)
    else:
        journal = Journal.create(path, state=make_bot(CONFIG, epoch=CONFIG.market.start_ts))
    store = VenueStore(venue_path(path))
    try:
        venue_state, _ = open_venue_state(store, CONFIG, seed=3, faults="none")
        state, _ = recover(journal)
        clock = LockstepClock(SimVenue.resume_time(venue_state, state.now))
        venue = SimVenue(config=CONFIG, state=venue_state, store=store, clock=clock)
        runtime = Runtime(
            state=state,
            journal=journal,
            venues=[venue],
            clock=clock,
            options=QUIET,
            reducer=reducer,
        )
        try:
            with anyio.fail_after(60):
                return await runtime.run(duration_ms=duration_ms)
        finally:
            venue.close()
    finally:
        store.close()
        journal.close()


def _fills_reported(path: Path) -> list[int]:
    with Journal.open(path, readonly=True) as journal:
        return [seq for seq, e in journal.events() if isinstance(e, FillsReported)]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_a_poison_event_stops_the_bot_unapplied_and_restarts_do_not_crash_loop(
    tmp_path: Path, anyio_backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "j.db"
    await _session(path, step)  # a healthy first session: positions, orders, fills
    with Journal.open(path, readonly=True) as journal:
        healthy_last = journal.last_seq
    assert _fills_reported(path)  # the healthy session did get fills answers

    for attempt in (1, 2):
        with pytest.raises(EventRejected) as info:
            await _session(path, poisoned)
        rejected = info.value
        assert rejected.kind == "FillsReported"
        assert "fill size must be > 0" in rejected.error
        assert f"event {rejected.seq} (FillsReported" in str(rejected)
        assert "gridcore inspect" in str(rejected)
        # Verified on open; the poison is not in the fold but in the quarantine, named.
        with Journal.open(path, readonly=True) as journal:
            assert journal.last_seq == rejected.seq - 1 > healthy_last
            assert journal.last_snapshot_seq == journal.last_seq  # stopped with a final snapshot
            quarantined = journal.quarantined()
            assert len(quarantined) == attempt
            assert quarantined[-1].after_seq == rejected.seq - 1
            assert quarantined[-1].kind == "FillsReported"
            events = [e for _, e in journal.events(after=healthy_last)]
            assert not any(isinstance(e, FillsReported) for e in events)
            assert sum(isinstance(e, Started) for e in events) == attempt
            # Recovery folds cleanly: a restart never replays into the exception.
            recover(journal)
            assert replay_journal(journal).mismatch_seq is None
            # ... and `gridcore inspect` shows it.
            shown = inspect_report(journal)["quarantined"][-1]
            assert shown["seq"] == rejected.seq and shown["kind"] == "FillsReported"
            assert "fill size must be > 0" in shown["error"]

    capsys.readouterr()
    assert cmd_inspect(argparse.Namespace(journal=str(path), json=False)) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"quarantined: event {rejected.seq} (FillsReported" in text
    assert "ValueError: fill size must be > 0, got 0" in text

    # With the reducer fixed, the bot resumes from where it stopped and trades on.
    final = await _session(path, step)
    assert final.ledger.fill_count > 0
    with Journal.open(path, readonly=True) as journal:
        assert len(journal.quarantined()) == 2
        assert journal.last_seq > rejected.seq
        assert replay_journal(journal).mismatch_seq is None


def test_the_cli_exits_with_its_own_code_for_a_rejected_event(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def handler(args: argparse.Namespace) -> int:
        raise EventRejected("j.db: event 7 (FillsReported) ...", seq=7, kind="FillsReported",
                            error="ValueError: x")  # fmt: skip

    assert _guarded(handler)(argparse.Namespace()) == EXIT_POISON == 4
    assert capsys.readouterr().err.startswith("gridcore: error: j.db: event 7 (FillsReported)")
