"""Group commit of a paper session: when (and only when) the simulated venue's state is written
in the journal's own transactions, commands reach it before their events are committed and
many events share one commit; any other venue — a real one, or anything that does not declare
where its state is committed — still waits for the commit of every command's event."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gridcore.shells.journal import Journal
from gridcore.shells.simvenue import SimVenue, saved_venue, venue_path
from tests.integration.test_runtime import _Checking, _paper


class _Observing(_Checking):
    """:class:`_Checking` that also declares the venue's journal, as the venue itself does: the
    runtime then treats it as the in-process venue it wraps."""

    def __init__(self, venue: SimVenue, journal_path: Path) -> None:
        super().__init__(venue, journal_path)
        self.commits_with = venue.commits_with


def _commits(trace: list[str]) -> int:
    return sum(1 for sql in trace if sql == "COMMIT")


@pytest.mark.anyio
async def test_a_real_venue_still_waits_for_every_commit(tmp_path: Path) -> None:
    # The simulated venue's state is in the journal, but the adapter the runtime sees does not
    # say so (as no real venue does): every command waits until its event is committed and
    # marked in the head file, exactly as before group commit existed.
    path = tmp_path / "j.db"
    checkers: list[_Checking] = []

    def wrap(venue: SimVenue) -> _Checking:
        assert venue.commits_with is not None
        checkers.append(_Checking(venue, path))
        return checkers[-1]

    await _paper(path, duration_ms=1_200_000, wrap=wrap, in_journal=True)
    (checker,) = checkers
    assert checker.checked > 50
    assert checker.problems == []


@pytest.mark.anyio
async def test_the_in_process_venue_gets_commands_before_their_commit(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    checkers: list[_Checking] = []
    trace: list[str] = []

    def wrap(venue: SimVenue) -> _Checking:
        checkers.append(_Observing(venue, path))
        return checkers[-1]

    await _paper(path, duration_ms=1_200_000, wrap=wrap, trace=trace.append, in_journal=True)
    (checker,) = checkers
    # Commands left before the commit of their events (the checker, reading the file, did not
    # find them yet) ...
    assert checker.checked > 50
    assert any("not in the journal" in p for p in checker.problems)
    # ... and events that produced commands shared commits: fewer commits than commands.
    assert _commits(trace) < checker.checked
    # Nothing of the venue lives outside the journal, and what the journal holds of it is the
    # venue that stopped.
    assert not venue_path(path).exists()
    saved = saved_venue(path)
    assert saved is not None
    assert saved.placed == checker.venue.venue.placed
    assert saved.exchange.fills == checker.venue.exchange.fills


@pytest.mark.anyio
async def test_a_venue_with_its_own_file_keeps_the_write_ahead_rule(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    checkers: list[_Checking] = []

    def wrap(venue: SimVenue) -> _Checking:
        assert venue.commits_with is None  # its own .venue file
        checkers.append(_Observing(venue, path))
        return checkers[-1]

    await _paper(path, duration_ms=600_000, wrap=wrap)
    (checker,) = checkers
    assert checker.checked > 20
    assert checker.problems == []


def test_staged_writes_commit_with_the_events_or_not_at_all(tmp_path: Path) -> None:
    from gridcore.config import load_config
    from gridcore.events import Started
    from gridcore.sim import make_bot

    config = load_config()
    state = make_bot(config, epoch=config.market.start_ts)
    path = tmp_path / "j.db"
    journal = Journal.create(path, state=state)
    calls: list[Any] = []
    journal.before_commit(lambda: calls.append(1))
    journal.stage("INSERT INTO venue_log (payload) VALUES (?)", (b"one",))
    assert journal.has_staged
    journal.append([(Started(ts=state.now), [])])
    assert calls == [1] and not journal.has_staged
    assert journal.side_rows("SELECT payload FROM venue_log") == [(b"one",)]
    # A failing commit writes neither the events nor the staged rows.
    journal.stage("INSERT INTO venue_log (payload) VALUES (?)", (b"two",))
    journal.stage("INSERT INTO no_such_table VALUES (1)")
    with pytest.raises(Exception, match="no_such_table"):
        journal.append([(Started(ts=state.now + 1), [])])
    assert journal.event_count() == 1
    assert journal.side_rows("SELECT payload FROM venue_log") == [(b"one",)]
    # Closing drops what is staged, as a crash would.
    journal.stage("INSERT INTO venue_log (payload) VALUES (?)", (b"three",))
    journal.close()
    with Journal.open(path, readonly=True) as reread:
        assert reread.side_rows("SELECT payload FROM venue_log") == [(b"one",)]
        assert reread.event_count() == 1


@pytest.mark.anyio
async def test_the_venue_in_the_journal_compacts_by_operations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One row per commit covers hundreds of ticks: the log is compacted by the operations it
    # holds, not only by its rows, so a load never replays an unbounded tail.
    from gridcore.shells import simvenue

    monkeypatch.setattr(simvenue, "_COMPACT_OPS", 500)
    path = tmp_path / "j.db"
    trace: list[str] = []
    _, venue, _ = await _paper(path, duration_ms=1_200_000, trace=trace.append, in_journal=True)
    assert sum("DELETE FROM venue_log" in sql for sql in trace) > 1  # compacted, repeatedly
    with Journal.open(path, readonly=True) as journal:
        rows = journal.side_rows("SELECT count(*) FROM venue_log")[0][0]
    assert rows < 4  # at most 500 operations since the last snapshot: a few rows of them
    saved = saved_venue(path)
    assert saved is not None
    assert (saved.placed, saved.now, saved.next_index) == (
        venue.venue.placed,
        venue.venue.now,
        venue.venue.next_index,
    )
    assert saved.exchange.fills == venue.exchange.fills


@pytest.mark.anyio
async def test_a_commit_cancelled_before_its_thread_runs_keeps_its_events(tmp_path: Path) -> None:
    # A shutdown cancels the reducer; if that lands on the commit's own checkpoint (before the
    # worker thread runs), the events must stay pending for the final flush — else the final
    # snapshot would describe events the journal never got.
    import anyio

    from gridcore.config import load_config
    from gridcore.core import step
    from gridcore.events import Started
    from gridcore.shells.runtime import Runtime, RuntimeOptions, WallClock
    from gridcore.sim import make_bot

    config = load_config()
    state = make_bot(config, epoch=config.market.start_ts)
    journal = Journal.create(tmp_path / "j.db", state=state)
    runtime = Runtime(
        state=state,
        journal=journal,
        venues=[],
        clock=WallClock(),
        options=RuntimeOptions(handle_signals=False),
    )
    event = Started(ts=state.now)
    after, commands = step(state, event)
    runtime._pending.append((event, commands))
    runtime._state = after
    journal.stage("INSERT INTO venue_log (payload) VALUES (?)", (b"x",))
    with anyio.CancelScope() as scope:
        scope.cancel()
        await runtime._commit()
    assert journal.last_seq == 0
    assert len(runtime._pending) == 1 and journal.has_staged
    runtime._final_flush()
    assert journal.last_seq == journal.last_snapshot_seq == 1
    assert journal.side_rows("SELECT payload FROM venue_log") == [(b"x",)]
    assert journal.snapshot_matches(1, after)
    journal.close()
