"""A paper session's journal and final state are exactly those recorded before the paper
pipeline was made faster (the venue's append-only log, group commit, the loop's fast paths):
speed work must never change a result. The reference is a digest of every event row, every
command row and the canonical final state of a fixed session (seed 5, chaos faults, two
simulated hours, then one more hour resumed from the journal and the venue's file)."""

from __future__ import annotations

import functools
import hashlib
import sqlite3
from pathlib import Path

import anyio
import pytest

from gridcore.shells import simvenue
from gridcore.shells.codec import canonical
from gridcore.shells.simvenue import (
    SimVenue,
    VenueStore,
    VenueStoreError,
    saved_venue,
    venue_path,
)
from tests.integration.test_runtime import _paper, _rows

#: First recorded with the pipeline as it was before the speed work (pickled venue rewritten
#: whole); re-recorded when the session's events legitimately changed: the core now asks each
#: venue for its funding history every round, and runs housekeeping in data time instead of on a
#: 5 s timer, a quote applied before the housekeeping it brings; and the paper venue now uses the
#: backtest's link model, which delays each answer of a batch on its own, draws a reply's delays
#: in message order and judges a quote's stream messages by the feed as it was before that
#: quote; and the final state records, per venue, the newest quote at its feed's last start or
#: reconnect (every event and command row stayed the same); and a reconnect is applied before
#: the housekeeping due at its time (the session's one such reconnect no longer sends the
#: periodic round's three requests beside its own four); and the final state's books record the
#: instruments whose quote an order was refused for (none in this session: every event and
#: command row stayed the same, and the state differs only by that empty field); and a periodic
#: round asks for the funding history once an hour of data time, not with every round. A speed
#: change must never move it.
REFERENCE = "491907be96de93a0b20c33f50c7b027915013cacda6af47537cb465d4c88d97c"


def _digest(path: Path, final: object) -> str:
    h = hashlib.sha256()
    for row in _rows(path, "SELECT seq, ts, kind, crc, payload FROM events ORDER BY seq"):
        h.update(repr(row).encode())
    commands = "SELECT seq, command_id, batch_id, kind, cloid, payload FROM commands ORDER BY id"
    for row in _rows(path, commands):
        h.update(repr(row).encode())
    h.update(canonical(final))
    return h.hexdigest()


def _fields(obj: object) -> object:
    """A value to compare ``obj`` by: itself if its class compares by value, else its
    attributes (``__dict__`` or ``__slots__``), recursively."""
    if type(obj).__eq__ is not object.__eq__:
        return obj
    names = list(getattr(obj, "__dict__", {})) + list(getattr(type(obj), "__slots__", ()))
    return (type(obj).__name__, {n: _fields(getattr(obj, n)) for n in names})


def _reloaded_matches(path: Path, venue: SimVenue) -> None:
    """The venue's file (snapshot plus log) reads back as exactly the venue that stopped."""
    store = VenueStore(venue_path(path))
    try:
        saved = store.load()
    finally:
        store.close()
    assert saved is not None
    assert saved.exchange.fills == venue.exchange.fills
    assert _fields(saved.exchange) == _fields(venue.exchange)  # orders, positions, cash, ...
    assert _fields(saved.injector) == _fields(venue.venue.injector)
    assert (saved.now, saved.next_index, saved.placed) == (
        venue.venue.now,
        venue.venue.next_index,
        venue.venue.placed,
    )


def test_a_paper_session_matches_its_recorded_reference(tmp_path: Path) -> None:
    path = tmp_path / "paper.db"
    anyio.run(functools.partial(_paper, path, duration_ms=2 * 3_600_000), backend="asyncio")
    final, venue, _ = anyio.run(
        functools.partial(_paper, path, duration_ms=3_600_000), backend="asyncio"
    )
    _reloaded_matches(path, venue)
    assert _digest(path, final) == REFERENCE


def test_a_group_committed_paper_session_matches_the_same_reference(tmp_path: Path) -> None:
    # The venue's state in the journal: commands leave before their events commit and many
    # events share one commit. Only the grouping changes: every event, command and the final
    # state are those of the session that committed before every command.
    path = tmp_path / "paper.db"
    run = functools.partial(_paper, path, in_journal=True)
    anyio.run(functools.partial(run, duration_ms=2 * 3_600_000), backend="asyncio")
    final, venue, _ = anyio.run(functools.partial(run, duration_ms=3_600_000), backend="asyncio")
    assert not venue_path(path).exists()  # nothing outside the journal
    saved = saved_venue(path)
    assert saved is not None
    assert _fields(saved.exchange) == _fields(venue.exchange)
    assert (saved.now, saved.next_index, saved.placed) == (
        venue.venue.now,
        venue.venue.next_index,
        venue.venue.placed,
    )
    assert _digest(path, final) == REFERENCE


def test_the_venue_log_compacts_into_a_snapshot_that_reads_back_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(simvenue, "_COMPACT_EVERY", 7)
    path = tmp_path / "paper.db"
    anyio.run(functools.partial(_paper, path, duration_ms=1_800_000), backend="asyncio")
    _, venue, _ = anyio.run(functools.partial(_paper, path, duration_ms=900_000), backend="asyncio")
    _reloaded_matches(path, venue)
    assert venue.exchange.fills  # the session traded


def test_a_venue_log_row_that_cannot_be_applied_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "paper.db"
    anyio.run(functools.partial(_paper, path, duration_ms=300_000), backend="asyncio")
    conn = sqlite3.connect(venue_path(path))
    conn.execute("INSERT INTO venue_log (payload) VALUES (?)", (b"\x80\x05garbage",))
    conn.commit()
    conn.close()
    store = VenueStore(venue_path(path))
    try:
        with pytest.raises(VenueStoreError, match=r"log row \d+ cannot be applied"):
            store.load()
    finally:
        store.close()
