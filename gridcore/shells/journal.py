"""The journal: the bot's write-ahead log, one SQLite file.

Theory of operation
-------------------
There is no mutable state file (seed 001 #5 and 002 P0-6: a state file written outside the lock
was torn by a crash). The journal appends *events* — facts — in transactions, and the bot's
state is their fold: ``state = step(step(snapshot, e1), e2) ...``. SQLite (standard library) in
WAL mode with ``synchronous=FULL`` makes a committed transaction survive a process kill and a
power cut; a transaction that did not commit leaves no trace.

Tables:

* ``meta(key, value)`` — ``schema_version`` (:data:`SCHEMA_VERSION`), ``gridcore_version``,
  ``codec``, ``created_ms`` and whatever the caller records (the CLI stores the configuration
  text, so a resumed session runs with the configuration it started with).
* ``events(seq, ts, kind, crc, payload)`` — one row per event, ``seq`` from 1 without gaps.
* ``commands(id, seq, command_id, batch_id, kind, venue, cloid, crc, payload)`` — every command
  the events produced, inserted in the *same* transaction as the event that produced it
  (``seq``), before the runtime sends anything. A :class:`~gridcore.commands.Batch` is stored as
  its inner order commands (``batch_id`` names it). A unique index forbids a client order id
  from being placed twice: the journal refuses to release such a command (seed 003 #6: crash
  recovery must never blindly re-send).
* ``snapshots(seq, ts, crc, payload)`` — the encoded state after event ``seq``, written in the
  same transaction as that event, so a snapshot can never describe events that are not
  durable. Snapshot 0 is the initial state, written when the journal is created, so a replay
  can re-fold from the very beginning.

Group commit: :meth:`Journal.append` takes many events (with their commands) and writes them in
ONE transaction; the runtime only sends the commands after it returns.

Every payload carries a CRC-32; a row whose CRC or encoding does not check, a schema version
this code does not know, or a file that is not a gridcore journal raises :class:`JournalError`
naming the file, the row and what to do — never a silent skip.

Recovery (:func:`recover`) is the latest snapshot plus a fold of the events after it; the
runtime then feeds the core a fresh ``Started`` event, which reconciles with every venue and
resolves every command that was in flight at the crash through status lookups (never by sending
it again).
"""

from __future__ import annotations

import os
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

import gridcore
from gridcore.commands import Batch, Command, PlaceOrder
from gridcore.core import State, step
from gridcore.events import Event
from gridcore.shells.codec import (
    CodecError,
    decode_command,
    decode_event,
    decode_value,
    encode_command,
    encode_event,
    encode_value,
)

__all__ = [
    "SCHEMA_VERSION",
    "CommandRow",
    "Journal",
    "JournalError",
    "Reducer",
    "fold",
    "is_new",
    "recover",
]

SCHEMA_VERSION = 2  # 2: positions keep their exact cost basis
"""Bumped whenever the tables or the codec change incompatibly."""

CODEC = "msgpack-1"

#: A bot reducer: gridcore's :func:`~gridcore.core.step` unless you bring your own.
Reducer = Callable[[State[Any], Event], tuple[State[Any], list[Command]]]

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    kind TEXT NOT NULL,
    crc INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE commands (
    id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    command_id INTEGER NOT NULL,
    batch_id INTEGER,
    kind TEXT NOT NULL,
    venue TEXT,
    cloid TEXT,
    crc INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX commands_by_seq ON commands (seq);
CREATE UNIQUE INDEX commands_place_once ON commands (cloid) WHERE kind = 'PlaceOrder';
CREATE TABLE snapshots (
    seq INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    crc INTEGER NOT NULL,
    payload BLOB NOT NULL
);
"""


class JournalError(Exception):
    """The journal cannot be used as it is: corrupt, of another schema version, not a journal,
    or asked to do something that would lose or duplicate data. The message names the file and
    says what to do."""


@attrs.frozen(kw_only=True)
class CommandRow:
    """One released command: the event ``seq`` that produced it and the command itself."""

    seq: int
    command: Command
    batch_id: int | None = None


def _crc(payload: bytes) -> int:
    return zlib.crc32(payload)


def is_new(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` holds no journal yet: missing, empty, or an SQLite file in which no
    journal was ever committed (a process killed while creating it leaves such a file)."""
    p = Path(path)
    if not p.exists() or p.stat().st_size == 0:
        return True
    try:
        conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
        try:
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return False  # not SQLite at all: opening it reports the problem
    return int(tables) == 0


class Journal:
    """One journal file. Create with :meth:`create`, open with :meth:`open`.

    Not thread-safe by itself: one writer (the runtime's reducer) at a time; any number of
    readers may open the same file read-only meanwhile (WAL).
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, *, readonly: bool) -> None:
        self.path = path
        self._conn = conn
        self.readonly = readonly
        self.commits = 0
        """Transactions committed by this handle (group commit: one per :meth:`append`)."""
        self.last_seq = self._scalar("SELECT coalesce(max(seq), 0) FROM events")
        self.last_snapshot_seq = self._scalar("SELECT coalesce(max(seq), -1) FROM snapshots")

    # --- opening -------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        state: State[Any],
        meta: Mapping[str, str] | None = None,
        synchronous: str = "FULL",
    ) -> Journal:
        """A new journal at ``path`` whose snapshot 0 is ``state``.

        Everything (tables, meta, snapshot 0) is one transaction: a crash while creating leaves
        a file :func:`is_new` still calls new. Raises :class:`JournalError` if ``path`` holds a
        journal already.
        """
        p = Path(path)
        if not is_new(p):
            raise JournalError(
                f"{p}: a journal exists here already; open it to resume, or choose a new path"
            )
        if p.exists():
            # A file left by a crash during creation: nothing in it was ever committed.
            for suffix in ("", "-wal", "-shm"):
                Path(f"{p}{suffix}").unlink(missing_ok=True)
        conn = cls._connect(p, readonly=False, synchronous=synchronous)
        payload = encode_value(state)
        info = {
            "schema_version": str(SCHEMA_VERSION),
            "gridcore_version": gridcore.__version__,
            "codec": CODEC,
            "created_ms": str(int(time.time() * 1000)),
            **(meta or {}),
        }
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", sorted(info.items()))
            conn.execute(
                "INSERT INTO snapshots (seq, ts, crc, payload) VALUES (0, ?, ?, ?)",
                (state.now, _crc(payload), payload),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            conn.close()
            raise
        journal = cls(p, conn, readonly=False)
        journal.commits = 1
        return journal

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, readonly: bool = False, synchronous: str = "FULL"
    ) -> Journal:
        """Open an existing journal; :class:`JournalError` if it is missing, not a journal, or
        of another schema version."""
        p = Path(path)
        if not p.exists():
            raise JournalError(f"{p}: no such journal; check the path (gridcore run creates one)")
        if is_new(p):
            raise JournalError(
                f"{p}: the file holds no journal (empty, or its creation was interrupted); "
                f"`gridcore run --journal {p}` starts a new one there"
            )
        conn = cls._connect(p, readonly=readonly, synchronous=synchronous)
        try:
            rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise JournalError(
                f"{p}: not a gridcore journal ({exc}); check the path, or restore the file "
                f"from a backup"
            ) from None
        version = rows.get("schema_version")
        if version != str(SCHEMA_VERSION):
            conn.close()
            writer = rows.get("gridcore_version", "unknown")
            raise JournalError(
                f"{p}: journal schema version {version} is not supported (this gridcore "
                f"{gridcore.__version__} reads version {SCHEMA_VERSION}); open it with the "
                f"gridcore that wrote it ({writer}), or start a new journal"
            )
        return cls(p, conn, readonly=readonly)

    @staticmethod
    def _connect(path: Path, *, readonly: bool, synchronous: str) -> sqlite3.Connection:
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, got {synchronous!r}")
        try:
            if readonly:
                conn = sqlite3.connect(
                    f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
                )
            else:
                conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise JournalError(f"{path}: SQLite refused WAL mode (got {mode!r})")
                conn.execute(f"PRAGMA synchronous={synchronous}")
        except sqlite3.DatabaseError as exc:
            raise JournalError(
                f"{path}: not a gridcore journal ({exc}); check the path, or restore the file "
                f"from a backup"
            ) from None
        return conn

    def set_trace(self, callback: Callable[[str], None] | None) -> None:
        """Call ``callback`` with every SQL statement this handle runs (tests, debugging)."""
        self._conn.set_trace_callback(callback)

    def close(self) -> None:
        """Close the file (a checkpoint folds the WAL back into it)."""
        self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _scalar(self, sql: str, args: Sequence[Any] = ()) -> int:
        try:
            value = self._conn.execute(sql, args).fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{self.path}: cannot read the journal ({exc})") from None
        return int(value)

    # --- meta ----------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        """Every ``meta`` row."""
        return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())

    # --- writing -------------------------------------------------------------------------

    def append(
        self,
        entries: Sequence[tuple[Event, Sequence[Command]]],
        *,
        snapshot: State[Any] | None = None,
    ) -> int:
        """Append events with the commands each produced, in ONE transaction; returns the last
        seq. With ``snapshot`` (the state after the last event), it is stored in the same
        transaction. Nothing is written if anything fails (the error propagates)."""
        if self.readonly:
            raise JournalError(f"{self.path}: opened read-only")
        seq = self.last_seq
        event_rows: list[tuple[int, int, str, int, bytes]] = []
        command_rows: list[tuple[Any, ...]] = []
        for event, commands in entries:
            seq += 1
            kind, payload = encode_event(event)
            event_rows.append((seq, event.ts, kind, _crc(payload), payload))
            for command in commands:
                if type(command) is Batch:
                    for inner in command.commands:
                        command_rows.append(_command_row(seq, inner, command.command_id))
                else:
                    command_rows.append(_command_row(seq, command, None))
        snap: tuple[int, int, int, bytes] | None = None
        if snapshot is not None and entries:
            payload = encode_value(snapshot)
            snap = (seq, snapshot.now, _crc(payload), payload)
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT INTO events (seq, ts, kind, crc, payload) VALUES (?, ?, ?, ?, ?)",
                event_rows,
            )
            if command_rows:
                conn.executemany(
                    "INSERT INTO commands (seq, command_id, batch_id, kind, venue, cloid, crc, "
                    "payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    command_rows,
                )
            if snap is not None:
                conn.execute(
                    "INSERT INTO snapshots (seq, ts, crc, payload) VALUES (?, ?, ?, ?)", snap
                )
            conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            conn.execute("ROLLBACK")
            if "cloid" in str(exc):
                raise JournalError(
                    f"{self.path}: refusing to release a client order id that was placed before "
                    f"({exc}); a command must never be sent twice — this is a bug in the "
                    f"reducer or strategy, report it with this journal"
                ) from None
            raise
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.commits += 1
        self.last_seq = seq
        if snap is not None:
            self.last_snapshot_seq = seq
        return seq

    def write_snapshot(self, seq: int, state: State[Any]) -> None:
        """Store ``state`` as the state after event ``seq`` (which must be the last one)."""
        if seq != self.last_seq:
            raise JournalError(
                f"{self.path}: a snapshot at seq {seq} would not be the state after the last "
                f"event ({self.last_seq})"
            )
        payload = encode_value(state)
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(
                "INSERT OR REPLACE INTO snapshots (seq, ts, crc, payload) VALUES (?, ?, ?, ?)",
                (seq, state.now, _crc(payload), payload),
            )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self.commits += 1
        self.last_snapshot_seq = seq

    # --- reading -------------------------------------------------------------------------

    def _corrupt(self, what: str, detail: str) -> JournalError:
        return JournalError(
            f"{self.path}: {what} is corrupt ({detail}); nothing after it can be trusted. "
            f"Restore the file from a backup, or copy the events before it to a new journal "
            f"with `gridcore inspect`; do not resume trading on it"
        )

    def events(self, *, after: int = 0, upto: int | None = None) -> Iterator[tuple[int, Event]]:
        """``(seq, event)`` for every event with ``after < seq <= upto``, in order."""
        sql = "SELECT seq, kind, crc, payload FROM events WHERE seq > ?"
        args: list[int] = [after]
        if upto is not None:
            sql += " AND seq <= ?"
            args.append(upto)
        expected = after + 1
        for seq, kind, crc, payload in self._conn.execute(sql + " ORDER BY seq", args):
            if seq != expected:
                raise self._corrupt(f"the event sequence after {expected - 1}", f"next is {seq}")
            expected += 1
            if _crc(payload) != crc:
                raise self._corrupt(f"event {seq}", "checksum mismatch")
            try:
                yield seq, decode_event(kind, payload)
            except CodecError as exc:
                raise self._corrupt(f"event {seq}", str(exc)) from None

    def event_count(self) -> int:
        """How many events the journal holds."""
        return self._scalar("SELECT count(*) FROM events")

    def time_range(self) -> tuple[int, int] | None:
        """``(first ts, last ts)`` of the events, ``None`` when there are none."""
        row = self._conn.execute("SELECT min(ts), max(ts) FROM events").fetchone()
        if row[0] is None:
            return None
        return int(row[0]), int(row[1])

    def snapshot_seqs(self) -> list[int]:
        """The seqs that have a snapshot, ascending (0 is the initial state)."""
        return [int(r[0]) for r in self._conn.execute("SELECT seq FROM snapshots ORDER BY seq")]

    def snapshot(self, seq: int) -> State[Any]:
        """The stored state after event ``seq``."""
        row = self._conn.execute(
            "SELECT crc, payload FROM snapshots WHERE seq = ?", (seq,)
        ).fetchone()
        if row is None:
            raise JournalError(f"{self.path}: no snapshot at seq {seq}")
        crc, payload = row
        if _crc(payload) != crc:
            raise self._corrupt(f"snapshot {seq}", "checksum mismatch")
        try:
            state = decode_value(payload)
        except CodecError as exc:
            raise self._corrupt(f"snapshot {seq}", str(exc)) from None
        if not isinstance(state, State):
            raise self._corrupt(f"snapshot {seq}", f"it holds a {type(state).__name__}")
        return state

    def latest_snapshot(self) -> tuple[int, State[Any]]:
        """``(seq, state)`` of the newest snapshot."""
        seqs = self.snapshot_seqs()
        if not seqs:
            raise self._corrupt("the snapshot table", "it is empty: snapshot 0 is missing")
        return seqs[-1], self.snapshot(seqs[-1])

    def commands(self) -> Iterator[CommandRow]:
        """Every released command, in the order it was released (Batches as their parts)."""
        for row_id, seq, batch_id, kind, crc, payload in self._conn.execute(
            "SELECT id, seq, batch_id, kind, crc, payload FROM commands ORDER BY id"
        ):
            if _crc(payload) != crc:
                raise self._corrupt(f"command row {row_id}", "checksum mismatch")
            try:
                command = decode_command(kind, payload)
            except CodecError as exc:
                raise self._corrupt(f"command row {row_id}", str(exc)) from None
            yield CommandRow(seq=seq, command=command, batch_id=batch_id)

    def command_count(self) -> int:
        """How many command rows the journal holds."""
        return self._scalar("SELECT count(*) FROM commands")

    def duplicate_cloids(self) -> list[str]:
        """Client order ids placed more than once (always empty: the schema forbids it; kept so
        that tests and ``inspect`` prove it from the data)."""
        return [
            str(r[0])
            for r in self._conn.execute(
                "SELECT cloid FROM commands WHERE kind = 'PlaceOrder' "
                "GROUP BY cloid HAVING count(*) > 1"
            )
        ]

    def placed_cloids(self) -> list[str]:
        """Every client order id released in a ``PlaceOrder``, in order."""
        return [
            str(r[0])
            for r in self._conn.execute(
                "SELECT cloid FROM commands WHERE kind = 'PlaceOrder' ORDER BY id"
            )
        ]


def _command_row(seq: int, command: Command, batch_id: int | None) -> tuple[Any, ...]:
    kind, payload = encode_command(command)
    cloid = command.cloid if isinstance(command, PlaceOrder) else getattr(command, "cloid", None)
    venue = getattr(command, "venue", None)
    return (seq, command.command_id, batch_id, kind, venue, cloid, _crc(payload), payload)


def fold(
    journal: Journal,
    *,
    start: int = 0,
    upto: int | None = None,
    reducer: Reducer = step,
    state: State[Any] | None = None,
) -> Iterator[tuple[int, State[Any]]]:
    """Fold the events after snapshot ``start`` (or after ``start`` from ``state``), yielding
    ``(seq, state)`` after each event. Commands produced while folding are discarded: they
    were released (or not) when the events were first applied."""
    if state is None:
        state = journal.snapshot(start)
    for seq, event in journal.events(after=start, upto=upto):
        try:
            state, _ = reducer(state, event)
        except Exception as exc:
            raise JournalError(
                f"{journal.path}: event {seq} ({type(event).__name__}) cannot be applied to the "
                f"state folded so far ({type(exc).__name__}: {exc}); the journal was written by "
                f"another reducer or is damaged"
            ) from exc
        yield seq, state


def recover(journal: Journal, *, reducer: Reducer = step) -> tuple[State[Any], int]:
    """The state after the last event: latest snapshot plus a fold of the tail; and that seq."""
    last, state = journal.latest_snapshot()
    for last, state in fold(journal, start=last, reducer=reducer, state=state):  # noqa: B007, B020
        pass
    return state, last
