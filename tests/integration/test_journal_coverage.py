"""The journal's refusals on a real SQLite file: every way a journal, its head file or its lock
can be wrong is a ``JournalError`` (or ``JournalDamaged``) naming the file and what to do, and a
write that fails leaves nothing behind — the journal still opens at its last commit."""

from __future__ import annotations

import sqlite3
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gridcore.commands import Level, Notify
from gridcore.config import load_config
from gridcore.core import State
from gridcore.events import QuoteTicked, Started
from gridcore.shells.codec import encode_event, encode_value
from gridcore.shells.journal import (
    CorruptRow,
    Journal,
    JournalDamaged,
    JournalError,
    JournalLocked,
    WriterLock,
    _event_crc,
    _snapshot_crc,
    head_path,
)
from gridcore.sim import make_bot

T = 1_700_000_000_000


def _state() -> State[Any]:
    config = load_config()
    return make_bot(config, epoch=config.market.start_ts)


def _tick(ts: int) -> QuoteTicked:
    return QuoteTicked(
        ts=T + ts, venue="sim", symbol="BTC-PERP", bid=Decimal("100.0"), ask=Decimal("100.1")
    )


def _note(cid: int) -> Notify:
    return Notify(command_id=cid, level=Level.INFO, code="x", message="hello")


def _sql(path: Path, *statements: str) -> None:
    """Change the file behind the journal's back, as damage or another program would."""
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def _journal(tmp_path: Path, ticks: int = 3, *, snapshot_at_end: bool = False) -> Path:
    path = tmp_path / "j.db"
    state = _state()
    with Journal.create(path, state=state) as journal:
        journal.append(
            [(_tick(i), [_note(i)]) for i in range(1, ticks + 1)],
            snapshot=state if snapshot_at_end else None,
        )
    return path


# --- verification ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (["DELETE FROM events WHERE seq = 3"], "command row 3 is corrupt (its event 3 is missing)"),
        (["UPDATE commands SET cloid = 'forged' WHERE id = 1"], "command row 1 is corrupt"),
        (
            ["DELETE FROM snapshots WHERE seq = 0"],
            "the snapshot table is corrupt (snapshot 0 is missing)",
        ),
        (["DELETE FROM snapshots"], "the snapshot table is corrupt (it is empty"),
        (
            ["DELETE FROM commands WHERE seq = 3", "DELETE FROM events WHERE seq = 3"],
            "snapshot 3 is corrupt (it is past the last event (2))",
        ),
    ],
)
def test_damaged_tables_are_refused_when_opened_naming_the_row(
    tmp_path: Path, damage: list[str], message: str
) -> None:
    path = _journal(tmp_path, snapshot_at_end=True)
    _sql(path, *damage)
    for readonly in (True, False):
        with pytest.raises(JournalDamaged) as caught:
            Journal.open(path, readonly=readonly)
        assert str(caught.value).startswith(f"{path}: ")
        assert message in str(caught.value)


def test_a_forged_quarantine_row_is_refused(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    with Journal.open(path) as journal:
        assert journal.quarantine(Started(ts=T + 9), "boom") == 4
        assert [q.error for q in journal.quarantined()] == ["boom"]
    _sql(path, "UPDATE quarantine SET error = 'nothing happened'")
    with pytest.raises(JournalDamaged, match=r"quarantine row 1 is corrupt \(checksum mismatch\)"):
        Journal.open(path, readonly=True)


def test_a_journal_without_its_head_file_opens_while_nothing_was_committed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    Journal.create(path, state=_state()).close()
    head_path(path).unlink()
    with Journal.open(path, readonly=True) as journal:
        assert journal.last_seq == 0
        assert journal.time_range() is None
        assert journal.snapshot_seqs() == [0]


def test_a_lost_journal_whose_head_records_commits_is_refused_not_restarted(
    tmp_path: Path,
) -> None:
    path = _journal(tmp_path)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(b"")  # the journal is gone; its head file is not
    with pytest.raises(JournalDamaged, match="records 3 committed events: they were lost"):
        Journal.open(path, readonly=True)


# --- reading a journal damaged under a reader --------------------------------------------------


@pytest.mark.parametrize(
    ("table", "read"),
    [
        ("meta", lambda j: j.meta()),
        ("events", lambda j: list(j.events())),
        ("events", lambda j: j.time_range()),
        ("snapshots", lambda j: j.snapshot_seqs()),
        ("snapshots", lambda j: j.snapshot(0)),
        ("commands", lambda j: list(j.commands())),
        ("commands", lambda j: j.duplicate_cloids()),
        ("commands", lambda j: j.placed_cloids()),
        ("quarantine", lambda j: j.quarantined()),
        ("quarantine", lambda j: j.verify()),
    ],
)
def test_a_table_gone_under_an_open_reader_is_a_damaged_journal_not_a_traceback(
    tmp_path: Path, table: str, read: Any
) -> None:
    path = _journal(tmp_path)
    with Journal.open(path, readonly=True) as journal:
        _sql(path, f"DROP TABLE {table}")
        with pytest.raises(JournalDamaged) as caught:
            read(journal)
    assert str(caught.value).startswith(f"{path}: ")
    assert f"no such table: {table}" in str(caught.value)


def test_reading_past_a_missing_event_names_the_gap(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    _sql(path, "DELETE FROM commands WHERE seq = 2", "DELETE FROM events WHERE seq = 2")
    with Journal.open(path, readonly=True, verify=False) as journal:
        assert [seq for seq, _ in journal.events(after=0, upto=1)] == [1]
        with pytest.raises(JournalDamaged, match="event 2 is gone"):
            list(journal.events(after=2))


def test_snapshots_that_are_not_there_are_named(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    with Journal.open(path, readonly=True) as journal:
        with pytest.raises(JournalError, match="no snapshot at seq 2"):
            journal.snapshot(2)
        assert journal.time_range() == (T + 1, T + 3)
    _sql(path, "DELETE FROM snapshots")
    with (
        Journal.open(path, readonly=True, verify=False) as journal,
        pytest.raises(JournalDamaged, match="snapshot 0 is missing"),
    ):
        journal.latest_snapshot()


# --- writing -----------------------------------------------------------------------------------


def test_a_reader_cannot_write(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    with Journal.open(path, readonly=True) as journal:
        for write in (
            lambda: journal.append([(_tick(9), [])]),
            lambda: journal.write_snapshot(3, _state()),
            lambda: journal.quarantine(_tick(9), "x"),
        ):
            with pytest.raises(JournalError, match="opened read-only"):
                write()
        assert journal.last_seq == 3


def test_a_snapshot_must_be_the_state_after_the_last_event(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    with Journal.open(path) as journal:
        with pytest.raises(JournalError, match=r"snapshot at seq 2 .* after the last event \(3\)"):
            journal.write_snapshot(2, _state())
        journal.write_snapshot(3, _state())
        assert journal.snapshot_seqs() == [0, 3]


_REFUSE = (
    "CREATE TRIGGER refuse BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
)
_BREAK = "CREATE TRIGGER refuse BEFORE INSERT ON {table} BEGIN DELETE FROM gone; END"


@pytest.mark.parametrize("trigger", [_REFUSE, _BREAK], ids=["refused", "broken"])
@pytest.mark.parametrize(
    ("table", "write"),
    [
        ("events", lambda j: j.append([(_tick(9), [])])),
        ("commands", lambda j: j.append([(_tick(9), [_note(9)])])),
        ("snapshots", lambda j: j.write_snapshot(3, _state())),
        ("quarantine", lambda j: j.quarantine(_tick(9), "x")),
    ],
)
def test_a_write_that_fails_leaves_the_journal_at_its_last_commit(
    tmp_path: Path, trigger: str, table: str, write: Any
) -> None:
    path = _journal(tmp_path)
    _sql(path, trigger.format(table=table))
    with Journal.open(path) as journal:
        with pytest.raises(
            sqlite3.DatabaseError, match=r"disk says no|no such table: (main\.)?gone"
        ):
            write(journal)
        assert journal.last_seq == 3
    _sql(path, "DROP TRIGGER refuse")
    with Journal.open(path) as journal:
        assert journal.last_seq == 3
        assert journal.snapshot_seqs() == [0]
        assert journal.quarantined() == []
        assert len(list(journal.commands())) == 3
        journal.append([(_tick(9), [_note(9)])])  # and it writes again
        assert journal.last_seq == 4


def test_a_creation_that_fails_leaves_no_journal_and_no_lock(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    bad_meta: dict[str, Any] = {"config": object()}  # SQLite cannot store it
    with pytest.raises(sqlite3.Error):
        Journal.create(path, state=_state(), meta=bad_meta)
    with pytest.raises(ValueError, match="synchronous must be FULL, NORMAL or EXTRA, got 'OFF'"):
        Journal.create(path, state=_state(), synchronous="OFF")
    # Neither left a journal or held the lock: creating it now works.
    with Journal.create(path, state=_state(), meta={"config": "x"}) as journal:
        assert journal.meta()["config"] == "x"


def test_a_journal_written_without_fsync_still_marks_its_commits(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal.create(path, state=_state(), synchronous="NORMAL") as journal:
        journal.append([(_tick(1), []), (_tick(2), [])])
    assert "seq                    2 " in head_path(path).read_text()
    with Journal.open(path, readonly=True) as journal:
        assert journal.last_seq == 2


# --- the head file and the lock -----------------------------------------------------------------


def test_a_head_file_that_cannot_be_read_or_opened_is_named(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    head = head_path(path)
    head.unlink()
    head.mkdir()  # something that is not a file stands where the head file should be
    with pytest.raises(JournalError, match="cannot read the journal's head file"):
        Journal.open(path, readonly=True)
    with pytest.raises(JournalError, match="cannot open the journal's head file"):
        Journal.open(path)


def test_a_released_lock_marks_nothing(tmp_path: Path) -> None:
    lock = WriterLock.acquire(tmp_path / "j.db")
    lock.release()
    lock.release()  # idempotent
    with pytest.raises(JournalError, match="the writer lock was released"):
        lock.mark(1, 0)


def test_a_held_lock_with_a_garbled_head_still_says_it_is_held(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal.create(path, state=_state()):
        head_path(path).write_bytes(b"garbage")
        with pytest.raises(JournalLocked, match=r"kill -INT PID") as caught:
            WriterLock.acquire(path)
        assert caught.value.pid is None


def test_writing_a_journal_without_flock_is_refused_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "fcntl", None)  # a platform without it
    with pytest.raises(JournalError, match=r"needs a POSIX system \(flock\)"):
        Journal.create(tmp_path / "j.db", state=_state())


# --- rows forged with valid checksums ----------------------------------------------------------
# What a bug in another writer (or a hand edit that recomputed the checksums) could leave: the
# checksums vouch for the rows, so only the reader's own checks stand between them and a resume.


def test_an_event_whose_payload_time_differs_from_its_row_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    Journal.create(path, state=_state()).close()
    kind, payload = encode_event(Started(ts=T + 5))
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO events (seq, ts, kind, crc, payload) VALUES (1, ?, ?, ?, ?)",
        (T + 6, kind, _event_crc(0, 1, T + 6, kind, payload), payload),
    )
    conn.commit()
    conn.close()
    with (
        Journal.open(path, readonly=True, verify=False) as journal,
        pytest.raises(
            CorruptRow,
            match=rf"event 1 is corrupt \(its payload says ts {T + 5}, its row {T + 6}\)",
        ),
    ):
        list(journal.events())


def test_a_snapshot_that_holds_no_state_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    Journal.create(path, state=_state()).close()
    payload = encode_value(Decimal("1.5"))
    conn = sqlite3.connect(path)
    conn.execute(
        "UPDATE snapshots SET ts = ?, crc = ?, payload = ? WHERE seq = 0",
        (T, _snapshot_crc(0, T, payload), payload),
    )
    conn.commit()
    conn.close()
    with (
        Journal.open(path, readonly=True) as journal,
        pytest.raises(CorruptRow, match=r"snapshot 0 is corrupt \(it holds a Decimal"),
    ):
        journal.snapshot(0)
