"""The two simulated venues of a funding-arbitrage paper session kept in the journal: each its
own rows of the ``venues`` tables, both written in the journal's own transactions, so the
runtime group-commits the pair session as it does a one-venue one."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from gridcore.config import load_config
from gridcore.shells.journal import Journal
from gridcore.shells.runtime import LockstepClock, Runtime, RuntimeOptions
from gridcore.shells.simpair import (
    open_pair_venue,
    pair_names,
    pair_venue_path,
    pair_venues,
    saved_pair_venue,
)
from gridcore.shells.simvenue import SimVenue, VenueStore
from gridcore.sim import make_bot

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config((ROOT / "examples" / "funding_arb.toml").read_text(encoding="utf-8"))


def test_two_named_venues_share_one_journal_without_touching_each_other(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = Journal.create(path, state=make_bot(CONFIG, epoch=CONFIG.market.start_ts))
    try:
        a, b = (VenueStore.in_journal(journal, name) for name in pair_names(CONFIG))
        state_a, _ = open_pair_venue(a, CONFIG, 0, seed=None, faults=None)
        state_b, _ = open_pair_venue(b, CONFIG, 1, seed=None, faults=None)
        assert a.load() is None  # staged, not yet committed
        journal.commit_staged()
        state_a.now += 1_000
        a.append(state_a, [])  # a log row of venue a only
        state_b.now += 2_000
        b.save(state_b)  # venue b's snapshot: empties b's log, never a's
        journal.commit_staged()
        loaded_a, loaded_b = a.load(), b.load()
    finally:
        journal.close()
    assert loaded_a is not None and loaded_b is not None
    assert (loaded_a.now, loaded_b.now) == (state_a.now, state_b.now)
    assert loaded_a.fingerprint != loaded_b.fingerprint  # each its own venue
    for which, state in enumerate((state_a, state_b)):
        read = saved_pair_venue(path, CONFIG, which)  # read-only, as tests and tools read
        assert read is not None and read.now == state.now
        assert not pair_venue_path(path, CONFIG, which).exists()


def test_a_named_store_needs_a_journal(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="in_journal"):
        VenueStore(tmp_path / "x.venue", name="a")


def test_the_pair_session_group_commits_and_the_journal_holds_both_venues(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    state = make_bot(CONFIG, epoch=CONFIG.market.start_ts)
    journal = Journal.create(path, state=state)
    trace: list[str] = []
    journal.set_trace(trace.append)
    try:
        opened = []
        for which, name in enumerate(pair_names(CONFIG)):
            store = VenueStore.in_journal(journal, name)
            opened.append(
                (open_pair_venue(store, CONFIG, which, seed=None, faults="flaky")[0], store)
            )
        clock = LockstepClock(max(SimVenue.resume_time(s, state.now) for s, _ in opened))
        venues, market = pair_venues(CONFIG, opened, clock)
        assert all(v.commits_with is journal for v in venues)
        runtime = Runtime(
            state=state,
            journal=journal,
            venues=venues,
            clock=clock,
            options=RuntimeOptions(handle_signals=False),
        )
        assert runtime.group_commit

        async def session() -> None:
            async with anyio.create_task_group() as tg:
                clock.hold()

                async def feed() -> None:
                    try:
                        await market.run(venues)
                    finally:
                        clock.release()

                tg.start_soon(feed)
                with anyio.fail_after(120):
                    await runtime.run(duration_ms=3_600_000)
                tg.cancel_scope.cancel()

        anyio.run(session)
        for venue in venues:
            venue.close()
        commands = journal.command_count()
    finally:
        journal.close()
    commits = sum(1 for sql in trace if sql == "COMMIT")
    # Events that produced commands shared commits (the write-ahead rule commits at least once
    # per batch of events that produced commands): fewer commits than commands.
    assert 0 < commits < commands
    for which, venue in enumerate(venues):
        saved = saved_pair_venue(path, CONFIG, which)
        assert saved is not None
        # What the journal holds of each venue is the venue that stopped.
        assert saved.placed == venue.venue.placed
        assert saved.exchange.fills == venue.exchange.fills
        assert saved.now == venue.venue.now
