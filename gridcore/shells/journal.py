"""The journal: the bot's write-ahead log, one SQLite file and its head file.

Theory of operation
-------------------
There is no mutable state file (a state file written outside the lock is torn by a crash). The
journal appends *events* — facts — in transactions, and the bot's state is their fold:
``state = step(step(snapshot, e1), e2) ...``. SQLite (standard library) in WAL mode with
``synchronous=FULL`` makes a committed transaction survive a process kill and a power cut; a
transaction that did not commit leaves no trace.

Tables:

* ``meta(key, value)`` — ``schema_version`` (:data:`SCHEMA_VERSION`), ``gridcore_version``,
  ``codec``, ``created_ms`` and whatever the caller records (the CLI stores the configuration
  text, so a resumed session runs with the configuration it started with).
* ``events(seq, ts, kind, crc, payload)`` — one row per event, ``seq`` from 1 without gaps.
  ``crc`` is a *chain*: the CRC-32 of the row's seq, ts, kind and payload, started from the
  previous event's ``crc`` — so a row cannot be altered, dropped or reordered without every
  later checksum disagreeing.
* ``commands(id, seq, command_id, batch_id, kind, venue, cloid, crc, payload)`` — every command
  the events produced, inserted in the *same* transaction as the event that produced it
  (``seq``), before the runtime sends anything. A :class:`~gridcore.commands.Batch` is stored as
  its inner order commands (``batch_id`` names it). A unique index forbids a client order id
  from being placed twice: the journal refuses to release such a command (crash recovery must
  never blindly re-send).
* ``snapshots(seq, ts, crc, payload)`` — the encoded state after event ``seq``, written in the
  same transaction as that event, so a snapshot can never describe events that are not
  durable. Snapshot 0 is the initial state, written when the journal is created, so a replay
  can re-fold from the very beginning.
* ``quarantine(id, after_seq, ts, kind, error, crc, payload)`` — events the reducer raised on
  (a poison event): kept for the report, never folded.
* ``venue(id, saved_ms, payload)`` and ``venue_log(n, payload)`` — the in-process simulated
  venue's state (:class:`~gridcore.shells.simvenue.VenueStore`), written only through
  :meth:`Journal.stage`, in the transactions of the events (see *What is committed when*).
* ``venues(name, saved_ms, payload)`` and ``venues_log(n, name, payload)`` — the same for a
  session of several simulated venues (the two venues of a funding arbitrage), one snapshot row
  and one log per venue name. Journals created before these tables existed lack them (their
  venues live in ``.venue`` files beside the journal); nothing else depends on them.

The head file (``PATH.head``, :func:`head_path`) lives beside the journal, outside SQLite and its
WAL. It is the journal's **single-writer lock** (``flock``, held by the writing process for as
long as the journal is open; the kernel drops it when the process dies, even by ``SIGKILL``, so
there is no stale lock) and its **high-water mark**: the pid of the writer, the last committed
seq and that event's chain CRC, rewritten and ``fsync``-ed after every commit, before any
command of that commit leaves the process. A damaged WAL (truncated, bytes flipped) makes SQLite
silently drop the damaged commit and every later one; the head file still names the last commit,
so the loss is seen and the journal is refused rather than resumed (a resumed bot would re-send
client order ids the venue already holds). Keep the head file with the journal when you copy
or move it.

Verification (:meth:`Journal.verify`, run by every :meth:`Journal.open`): SQLite's
``quick_check``, every row's checksum, the event chain, the sequence without gaps, snapshot 0
present and no snapshot past the last event, and the head's mark. Any failure raises
:class:`JournalDamaged` naming the file, the row and what to do — never a silent skip. A payload
that fails to decode raises :class:`CorruptRow` (a :class:`CodecError` and a
:class:`JournalDamaged`) naming the row.

Group commit: :meth:`Journal.append` takes many events (with their commands) and writes them in
ONE transaction.

What is committed when
----------------------
* **A real venue** (every adapter that talks to something outside the process): the write-ahead
  rule. A command leaves only after the transaction holding the event that produced it has
  committed (``synchronous=FULL``: on disk) and the head file marks it — one durable commit per
  batch of events that produced commands, before any of those commands is sent. The venue
  outlives the bot; a command it received must be in the journal, or a restart would name its
  next order with the same client order id.
* **The in-process simulated venue** (``gridcore run`` on paper): nothing outside the process
  sees a command, and the venue's own state is written through :meth:`Journal.stage` in the
  *same* transaction as the events (same file: SQLite's ``ATTACH`` is not atomic across files
  in WAL mode). A crash therefore loses the venue's effects together with the events that
  caused them, never one without the other, so commands go to it as soon as they are reduced
  and many events share one commit (every ``max_batch`` events, or when the loop is idle for
  ``flush_ms``). The runtime decides per run: every venue must say so
  (``commits_with``, see :class:`~gridcore.shells.runtime.Runtime`). The unique index on placed
  client order ids then acts at the group's commit: it fails, and nothing of the group — events
  or the venue's effects — is durable.

Why the head file is a second ``fsync`` and not a row: it guards against losing the WAL itself
(truncated or damaged, SQLite drops the damaged commit and every later one without an error).
Anything written *inside* the WAL — a count, a checksum row — is lost with it and cannot
testify to its own loss; only something outside it can. Group commit makes the cost one extra
``fsync`` per commit instead of per command.

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
from zlib import crc32

import attrs

import gridcore
from gridcore.commands import Batch, Command, PlaceOrder
from gridcore.core import State, step
from gridcore.events import Event
from gridcore.shells.codec import (
    CodecError,
    JournalDamaged,
    JournalError,
    canonical,
    decode_command,
    decode_event,
    decode_value,
    encode_command,
    encode_event,
    event_decoders,
)

__all__ = [
    "SCHEMA_VERSION",
    "CodecError",
    "CommandRow",
    "CorruptRow",
    "Journal",
    "JournalDamaged",
    "JournalError",
    "JournalLocked",
    "Quarantined",
    "Reducer",
    "Staged",
    "WriterLock",
    "fold",
    "head_path",
    "is_new",
    "recover",
]

SCHEMA_VERSION = 3
"""Bumped whenever the tables, the checksums or the codec change incompatibly (2: chained event
checksums, checksums over row headers, the quarantine table, the head file; 3: positions keep
their exact cost basis)."""

CODEC = "msgpack-1"

# Rows fetched per call into SQLite when reading events.
_READ_BATCH = 256

#: A bot reducer: gridcore's :func:`~gridcore.core.step` unless you bring your own.
Reducer = Callable[[State[Any], Event], tuple[State[Any], list[Command]]]

#: A write staged for the next commit (:meth:`Journal.stage`): an SQL statement and its
#: parameters.
Staged = tuple[str, Sequence[Any]]

#: One group of :meth:`Journal.append_groups`: the events with their commands, the snapshot
#: after the last of them (or ``None``) and the staged writes that go with them.
Group = tuple[Sequence[tuple[Event, Sequence[Command]]], State[Any] | None, Sequence[Staged]]

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
CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY,
    after_seq INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    kind TEXT NOT NULL,
    error TEXT NOT NULL,
    crc INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE venue (id INTEGER PRIMARY KEY CHECK (id = 1), saved_ms INTEGER, payload BLOB);
CREATE TABLE venue_log (n INTEGER PRIMARY KEY, payload BLOB NOT NULL);
CREATE TABLE venues (name TEXT PRIMARY KEY, saved_ms INTEGER, payload BLOB NOT NULL);
CREATE TABLE venues_log (n INTEGER PRIMARY KEY, name TEXT NOT NULL, payload BLOB NOT NULL);
"""


class JournalLocked(JournalError):
    """Another live process writes this journal (a journal has exactly one writer)."""

    def __init__(self, message: str, *, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


class CorruptRow(CodecError, JournalDamaged):
    """A stored row does not decode although its checksum holds (forged, or written by a
    gridcore whose classes differ): the message names the file and the row."""


@attrs.frozen(kw_only=True)
class CommandRow:
    """One released command: the event ``seq`` that produced it and the command itself."""

    seq: int
    command: Command
    batch_id: int | None = None


@attrs.frozen(kw_only=True)
class Quarantined:
    """An event the reducer raised on, kept out of the fold: it would have been event
    ``after_seq + 1``."""

    after_seq: int
    ts: int
    kind: str
    error: str


def _crc(payload: bytes, header: str = "", start: int = 0) -> int:
    return zlib.crc32(payload, zlib.crc32(header.encode(), start))


def _event_crc(prev: int, seq: int, ts: int, kind: str, payload: bytes) -> int:
    return _crc(payload, f"event:{seq}:{ts}:{kind}:", prev)


def _snapshot_crc(seq: int, ts: int, payload: bytes) -> int:
    return _crc(payload, f"snapshot:{seq}:{ts}:")


def _command_crc(
    seq: int,
    command_id: int,
    batch_id: int | None,
    kind: str,
    venue: str | None,
    cloid: str | None,
    payload: bytes,
) -> int:
    return _crc(payload, f"command:{seq}:{command_id}:{batch_id}:{kind}:{venue}:{cloid}:")


def _quarantine_crc(after_seq: int, ts: int, kind: str, error: str, payload: bytes) -> int:
    return _crc(payload, f"quarantine:{after_seq}:{ts}:{kind}:{error}:")


def head_path(path: str | os.PathLike[str]) -> Path:
    """The head file of the journal at ``path``: its writer lock and committed high-water mark."""
    return Path(f"{os.fspath(path)}.head")


# --- the head file ---------------------------------------------------------------------------

_HEAD_MAGIC = "gridcore-journal-head 1"


@attrs.frozen
class _Mark:
    pid: int
    seq: int
    chain: int


def _format_head(mark: _Mark) -> bytes:
    # Fixed width: every rewrite covers the same bytes, so a reader never sees a shorter tail.
    body = f"{_HEAD_MAGIC} pid {mark.pid:>10} seq {mark.seq:>20} chain {mark.chain:>10}"
    return f"{body} crc {zlib.crc32(body.encode()):>10}\n".encode()


def _parse_head(data: bytes) -> _Mark | None:
    """The mark in ``data``; ``None`` when the file is empty; ``ValueError`` when garbled."""
    if not data:
        return None
    text = data.decode("ascii")
    body, sep, crc = text.rstrip("\n").rpartition(" crc ")
    parts = body.split()
    if (
        not sep
        or int(crc) != zlib.crc32(body.encode())
        or " ".join(parts[:2]) != _HEAD_MAGIC
        or parts[2::2] != ["pid", "seq", "chain"]
    ):
        raise ValueError("not a head file")
    return _Mark(pid=int(parts[3]), seq=int(parts[5]), chain=int(parts[7]))


def _read_head(path: Path) -> _Mark | None:
    """The committed mark of the journal at ``path``; ``None`` if there is no head file (or it
    is empty). A garbled head (read while being rewritten) is read again a few times."""
    head = head_path(path)
    for attempt in range(5):
        try:
            data = head.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise JournalError(f"{head}: cannot read the journal's head file ({exc})") from None
        try:
            return _parse_head(data)
        except (ValueError, UnicodeDecodeError, IndexError):
            if attempt == 4:
                raise JournalDamaged(
                    f"{head}: the journal's head file is garbled, so it cannot tell whether "
                    f"committed events were lost; do not resume trading on {path}. Keep both "
                    f"files for a report and start a new journal (`gridcore run --journal NEW`)"
                ) from None
            time.sleep(0.01)
    raise AssertionError("unreachable")  # pragma: no cover


# The head is rewritten in place at the same size: its data is what must be durable (macOS has
# no fdatasync).
_datasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


class WriterLock:
    """The exclusive writer lock of one journal: ``flock`` on its head file.

    The kernel releases it when the process exits or is killed, so a crashed bot never leaves a
    stale lock. :meth:`acquire` raises :class:`JournalLocked` naming the pid that holds it.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd
        self.fsync = True
        """Whether :meth:`mark` forces the mark to disk (off with ``synchronous=NORMAL``)."""

    @classmethod
    def acquire(cls, path: str | os.PathLike[str]) -> WriterLock:
        """Take the lock of the journal at ``path`` now, or raise :class:`JournalLocked`."""
        p = Path(path)
        head = head_path(p)
        try:
            # Imported here: everything else in this module (and `gridcore backtest`) works on
            # platforms without flock; writing a journal does not.
            import fcntl
        except ImportError:
            raise JournalError(
                f"{p}: writing a journal needs a POSIX system (flock); this one has none"
            ) from None
        try:
            fd = os.open(head, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise JournalError(
                f"{head}: cannot open the journal's head file ({exc.strerror or exc}); check "
                f"the directory's permissions"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            try:
                mark = _read_head(p)
            except JournalError:
                mark = None
            pid = mark.pid if mark is not None and mark.pid > 0 else None
            who = f"pid {pid}" if pid is not None else "another process"
            raise JournalLocked(
                f"{p}: journal in use by {who}; a journal has one writer. Stop that bot first "
                f"(`kill -INT {pid if pid is not None else 'PID'}` stops it gracefully) or use "
                f"another --journal path; `gridcore inspect {p}` reads it meanwhile",
                pid=pid,
            ) from None
        except OSError as exc:
            os.close(fd)
            raise JournalError(f"{head}: cannot lock the journal ({exc})") from None
        lock = cls(p, fd)
        try:
            mark = _read_head(p)
        except BaseException:
            lock.release()
            raise
        # Name ourselves at once (keeping the mark; -1: none known yet), so that a refused
        # second writer names us.
        lock.mark(mark.seq if mark else -1, mark.chain if mark else 0)
        return lock

    def previous(self) -> _Mark | None:
        """The mark in the head file (the last committed seq and chain; seq -1 when none is
        known)."""
        return _read_head(self.path)

    def check_new(self) -> None:
        """Raise :class:`JournalDamaged` if the head records committed events although the
        journal is missing or empty: it was lost, and starting afresh would forget what the
        venue already received."""
        previous = self.previous()
        if previous is not None and previous.seq > 0:
            head = head_path(self.path)
            raise JournalDamaged(
                f"{self.path}: the journal is missing or empty, but its head file {head.name} "
                f"records {previous.seq} committed events: the journal was lost or damaged; "
                f"{_RESTART_ADVICE}, or delete {head.name} too if you really mean to start "
                f"over at this path"
            )

    def mark(self, seq: int, chain: int) -> None:
        """Record ``seq`` (with its chain CRC) as committed, durably."""
        if self._fd is None:
            raise JournalError(f"{self.path}: the writer lock was released")
        os.pwrite(self._fd, _format_head(_Mark(pid=os.getpid(), seq=seq, chain=chain)), 0)
        if self.fsync:
            _datasync(self._fd)

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


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


def _not_a_journal(path: Path, exc: sqlite3.DatabaseError) -> JournalError:
    """Not SQLite at all (a wrong path: a usage error), or SQLite whose own pages are damaged."""
    if getattr(exc, "sqlite_errorname", "") == "SQLITE_CORRUPT" or "malformed" in str(exc):
        return JournalDamaged(
            f"{path}: SQLite cannot read the journal ({exc}); the file is damaged; "
            f"{_RESTART_ADVICE}"
        )
    return JournalError(
        f"{path}: not a gridcore journal ({exc}); check the path (journals are written by "
        f"`gridcore run --journal PATH`)"
    )


_RESTART_ADVICE = (
    "do not resume trading on it: keep the files for a report, check the venue's open orders "
    "and positions by hand, and start a new journal (`gridcore run --journal NEW.db`)"
)


class Journal:
    """One journal file. Create with :meth:`create`, open with :meth:`open`.

    Not thread-safe by itself: one writer (the runtime's reducer) at a time — a second writing
    process is refused with :class:`JournalLocked` — and any number of readers may open the
    same file read-only meanwhile (WAL).
    """

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        *,
        readonly: bool,
        lock: WriterLock | None = None,
    ) -> None:
        self.path = path
        self._conn = conn
        self.readonly = readonly
        self._lock = lock
        self.commits = 0
        """Transactions committed by this handle (group commit: one per :meth:`append`)."""
        self.last_seq = self._scalar("SELECT coalesce(max(seq), 0) FROM events")
        self.last_snapshot_seq = self._scalar("SELECT coalesce(max(seq), -1) FROM snapshots")
        self._chain = self._scalar(
            "SELECT coalesce((SELECT crc FROM events WHERE seq = ?), 0)", (self.last_seq,)
        )
        self._staged: list[Staged] = []
        self._before_commit: list[Callable[[], None]] = []

    # --- opening -------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        state: State[Any],
        meta: Mapping[str, str] | None = None,
        synchronous: str = "FULL",
        lock: WriterLock | None = None,
    ) -> Journal:
        """A new journal at ``path`` whose snapshot 0 is ``state``.

        Everything (tables, meta, snapshot 0) is one transaction: a crash while creating leaves
        a file :func:`is_new` still calls new. Raises :class:`JournalError` if ``path`` holds a
        journal already, :class:`JournalLocked` if another process writes there, and
        :class:`JournalDamaged` if the head file says events were committed there (the journal
        itself was lost). ``lock`` (taken with :meth:`WriterLock.acquire`) is adopted; without
        it the lock is taken here.
        """
        p = Path(path)
        if not is_new(p):
            raise JournalError(
                f"{p}: a journal exists here already; open it to resume, or choose a new path"
            )
        own = lock if lock is not None else WriterLock.acquire(p)
        try:
            if not is_new(p):  # created by another process before we held the lock
                raise JournalError(
                    f"{p}: a journal exists here already; open it to resume, or choose a new path"
                )
            own.check_new()
            if p.exists():
                # A file left by a crash during creation: nothing in it was ever committed.
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{p}{suffix}").unlink(missing_ok=True)
            conn = cls._connect(p, readonly=False, synchronous=synchronous)
        except BaseException:
            own.release()
            raise
        own.fsync = synchronous != "NORMAL"
        payload = canonical(state)
        info = {
            "schema_version": str(SCHEMA_VERSION),
            "gridcore_version": gridcore.__version__,
            "codec": CODEC,
            "created_ms": str(int(time.time() * 1000)),
            **(meta or {}),
        }
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)", sorted(info.items())
                )
                conn.execute(
                    "INSERT INTO snapshots (seq, ts, crc, payload) VALUES (0, ?, ?, ?)",
                    (state.now, _snapshot_crc(0, state.now, payload), payload),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            own.mark(0, 0)
        except BaseException:
            conn.close()
            own.release()
            raise
        journal = cls(p, conn, readonly=False, lock=own)
        journal.commits = 1
        return journal

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        synchronous: str = "FULL",
        lock: WriterLock | None = None,
        verify: bool = True,
        verify_events: bool = True,
    ) -> Journal:
        """Open an existing journal and verify it (:meth:`verify`; ``verify_events=False``: all
        but the walk over the event rows, for a reader that reads every event next).

        Raises :class:`JournalError` if it is missing, not a journal, or of another schema
        version; :class:`JournalLocked` (writing) if another process writes it;
        :class:`JournalDamaged` if it fails verification. A writer adopts ``lock`` or takes it.
        """
        p = Path(path)
        if not p.exists():
            raise JournalError(f"{p}: no such journal; check the path (gridcore run creates one)")
        own: WriterLock | None = None
        if not readonly:
            own = lock if lock is not None else WriterLock.acquire(p)
            own.fsync = synchronous != "NORMAL"
        try:
            if is_new(p):
                previous = _read_head(p)
                if previous is not None and previous.seq > 0:
                    raise JournalDamaged(
                        f"{p}: the file holds no journal, but its head file {head_path(p).name} "
                        f"records {previous.seq} committed events: they were lost (the "
                        f"write-ahead log {p.name}-wal was truncated or damaged); "
                        f"{_RESTART_ADVICE}"
                    )
                raise JournalError(
                    f"{p}: the file holds no journal (empty, or its creation was interrupted); "
                    f"`gridcore run --journal {p}` starts a new one there"
                )
            # The mark is read BEFORE the journal: a live writer commits first and marks after,
            # so whatever the journal shows next is at least the mark read here.
            mark = _read_head(p)
            # Verified through a read-only connection first: a writer's connection folds the
            # write-ahead log into the file when it closes, which would destroy the evidence of
            # a damaged one (SQLite drops what it cannot read and checkpoints the rest).
            journal = cls._checked(p, readonly=True, synchronous=synchronous)
            try:
                if verify:
                    try:
                        journal.verify(mark=mark, events=verify_events)
                    except JournalDamaged:
                        if not verify_events:
                            # The whole walk names the first fault, as a full open would.
                            journal.verify(mark=mark)
                        raise
            except BaseException:
                journal.close()
                raise
            if not readonly:
                journal.close()
                journal = cls._checked(p, readonly=False, synchronous=synchronous, lock=own)
        except BaseException:
            if own is not None:
                own.release()
            raise
        return journal

    @classmethod
    def _checked(
        cls, path: Path, *, readonly: bool, synchronous: str, lock: WriterLock | None = None
    ) -> Journal:
        """A handle on ``path`` once its meta table says it is a journal of our schema."""
        conn = cls._connect(path, readonly=readonly, synchronous=synchronous)
        try:
            try:
                rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            except sqlite3.DatabaseError as exc:
                raise _not_a_journal(path, exc) from None
            version = rows.get("schema_version")
            if version != str(SCHEMA_VERSION):
                writer = rows.get("gridcore_version", "unknown")
                raise JournalError(
                    f"{path}: journal schema version {version} is not supported (this gridcore "
                    f"{gridcore.__version__} reads version {SCHEMA_VERSION}); open it with the "
                    f"gridcore that wrote it ({writer}), or start a new journal"
                )
            return cls(path, conn, readonly=readonly, lock=lock)
        except BaseException:
            conn.close()
            raise

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
            raise _not_a_journal(path, exc) from None
        return conn

    def set_trace(self, callback: Callable[[str], None] | None) -> None:
        """Call ``callback`` with every SQL statement this handle runs (tests, debugging)."""
        self._conn.set_trace_callback(callback)

    def close(self) -> None:
        """Close the file (a checkpoint folds the WAL back into it) and release the lock.
        Writes still staged (:meth:`stage`) are dropped, as a crash would drop them."""
        self._staged = []
        self._before_commit = []
        self._conn.close()
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _scalar(self, sql: str, args: Sequence[Any] = ()) -> int:
        try:
            value = self._conn.execute(sql, args).fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None
        return int(value)

    def _unreadable(self, exc: sqlite3.DatabaseError) -> JournalDamaged:
        return JournalDamaged(
            f"{self.path}: SQLite cannot read the journal ({exc}); the file is damaged; "
            f"{_RESTART_ADVICE}"
        )

    # --- verification ----------------------------------------------------------------------

    def verify(
        self, *, mark: Any = None, events: bool = True, integrity: bool = True, rows: bool = True
    ) -> None:
        """Check everything this file holds; raise :class:`JournalDamaged` at the first fault.

        SQLite's ``quick_check``; every event's chained checksum and the sequence without
        gaps; every command, snapshot and quarantine row's checksum; snapshot 0 present and no
        snapshot or command past the last event; and the head file's committed mark (``mark``,
        read before the journal was opened; read now when not given): the journal must hold
        the marked event with the marked chain — less means committed events were lost.

        ``events=False`` leaves out the walk over the event rows (and compares the mark with
        the marked row's stored checksum instead of the recomputed chain) for a caller that
        reads every event through :meth:`events` next, which checks each row's sequence and
        chained checksum as the walk would: a replay, which would otherwise read them twice.

        ``integrity=False`` leaves out SQLite's ``quick_check``, ``rows=False`` everything
        else: the two halves of the check, for a parallel replay that runs them in two
        processes at once (both together are the whole check; a fault found by either is
        named, as an open names it, by the whole check run again).
        """
        if not rows:
            if integrity:
                try:
                    self._conn.execute("BEGIN")
                    self._quick_check()
                except sqlite3.DatabaseError as exc:
                    raise self._unreadable(exc) from None
                finally:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
            return
        if mark is None:
            mark = _read_head(self.path)
        try:
            # One read transaction: a bot may be appending meanwhile, and every SELECT below
            # must see the same commit (an event's commands without the event read as damage).
            self._conn.execute("BEGIN")
            if integrity:
                self._quick_check()
            marked = -1 if mark is None else mark.seq
            if events:
                last, marked_chain = self._walk_events(marked)
            else:
                marked_chain, last = self._conn.execute(
                    "SELECT (SELECT crc FROM events WHERE seq = ?), coalesce(max(seq), 0) "
                    "FROM events",
                    (marked,),
                ).fetchone()
            for row_id, seq, _, _, _ in self._command_rows():
                if not 1 <= seq <= last:
                    raise self._corrupt(f"command row {row_id}", f"its event {seq} is missing")
            snapshots = 0
            for seq, ts, crc, payload in self._conn.execute(
                "SELECT seq, ts, crc, payload FROM snapshots ORDER BY seq"
            ):
                if _snapshot_crc(seq, ts, payload) != crc:
                    raise self._corrupt(f"snapshot {seq}", "checksum mismatch")
                if snapshots == 0 and seq != 0:
                    raise self._corrupt("the snapshot table", "snapshot 0 is missing")
                if seq > last:
                    raise self._corrupt(f"snapshot {seq}", f"it is past the last event ({last})")
                snapshots += 1
            if snapshots == 0:
                raise self._corrupt("the snapshot table", "it is empty: snapshot 0 is missing")
            for row_id, after_seq, ts, kind, error, crc, payload in self._conn.execute(
                "SELECT id, after_seq, ts, kind, error, crc, payload FROM quarantine ORDER BY id"
            ):
                if _quarantine_crc(after_seq, ts, kind, error, payload) != crc:
                    raise self._corrupt(f"quarantine row {row_id}", "checksum mismatch")
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None
        finally:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        head = head_path(self.path)
        if mark is None or mark.seq < 0:
            if last > 0:
                raise JournalDamaged(
                    f"{self.path}: its head file {head} is missing, so nothing proves that no "
                    f"committed event was lost; if you copied or moved the journal, bring "
                    f"{head.name} along; otherwise {_RESTART_ADVICE}"
                )
            return
        if last < mark.seq:
            raise JournalDamaged(
                f"{self.path}: committed events {last + 1}..{mark.seq} are missing (the head "
                f"file {head.name} records event {mark.seq} as committed; the write-ahead log "
                f"{self.path.name}-wal was truncated or damaged); resuming would re-send orders "
                f"the venue already received; {_RESTART_ADVICE}"
            )
        if marked_chain != mark.chain and mark.seq > 0:
            raise JournalDamaged(
                f"{self.path}: event {mark.seq} is not the event that was committed (its chain "
                f"checksum differs from the head file {head.name}); {_RESTART_ADVICE}"
            )

    def _quick_check(self) -> None:
        problems = [r[0] for r in self._conn.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            raise JournalDamaged(
                f"{self.path}: SQLite's integrity check fails ({'; '.join(problems)}); "
                f"{_RESTART_ADVICE}"
            )

    def _walk_events(self, marked: int) -> tuple[int, int | None]:
        """Check every event row's sequence and chained checksum; ``(last seq, chain at seq
        marked)``."""
        chain, expected, marked_chain = 0, 1, None
        cursor = self._conn.execute("SELECT seq, ts, kind, crc, payload FROM events ORDER BY seq")
        while rows := cursor.fetchmany(_READ_BATCH):
            for seq, ts, kind, crc, payload in rows:
                if seq != expected:
                    raise self._corrupt(
                        f"the event sequence after {expected - 1}", f"next is {seq}"
                    )
                # _event_crc inlined: this loop reads every event on every open.
                chain = crc32(payload, crc32(f"event:{seq}:{ts}:{kind}:".encode(), chain))
                if chain != crc:
                    raise self._corrupt(f"event {seq}", "checksum mismatch")
                if seq == marked:
                    marked_chain = chain
                expected += 1
        return expected - 1, marked_chain

    # --- meta ----------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        """Every ``meta`` row."""
        try:
            return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None

    # --- writing -------------------------------------------------------------------------

    def _check_writable(self) -> WriterLock:
        if self.readonly or self._lock is None:
            raise JournalError(f"{self.path}: opened read-only")
        return self._lock

    def stage(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Write ``sql`` (with ``params``) in the transaction of the next commit, together with
        the events committed there; never on its own before them.

        For state that must be exactly as durable as the journal's events and no more: the
        in-process simulated venue's log (:class:`~gridcore.shells.simvenue.VenueStore` in the
        journal). A crash loses a staged write together with the events reduced since the last
        commit, so the venue can never hold an order whose event the journal lost (a restart
        would name its next order with the same client order id). :meth:`close` drops what
        is still staged, as a crash would."""
        self._check_writable()
        self._staged.append((sql, params))

    def before_commit(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` at the start of every commit, before the staged writes are taken (the
        simulated venue stages what it applied since its last write there)."""
        self._before_commit.append(hook)

    def take_staged(self) -> list[Staged]:
        """Run the :meth:`before_commit` hooks and hand over the staged writes (for a caller
        that commits from another thread: take them in the thread that stages, pass them to
        :meth:`append`)."""
        for hook in self._before_commit:
            hook()
        staged, self._staged = self._staged, []
        return staged

    def restage(self, staged: Sequence[Staged]) -> None:
        """Put writes taken by :meth:`take_staged` back, ahead of any staged since (their
        commit did not happen)."""
        self._staged[:0] = staged

    @property
    def has_staged(self) -> bool:
        """Whether writes wait for the next commit."""
        return bool(self._staged)

    def commit_staged(self) -> None:
        """Commit the staged writes (after the :meth:`before_commit` hooks) without events;
        nothing when there are none."""
        staged = self.take_staged()
        if staged:
            self.append([], staged=staged)

    def side_rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query on the journal's other tables (the simulated venue's)."""
        try:
            return [tuple(r) for r in self._conn.execute(sql, args)]
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None

    def append(
        self,
        entries: Sequence[tuple[Event, Sequence[Command]]],
        *,
        snapshot: State[Any] | None = None,
        staged: Sequence[Staged] | None = None,
    ) -> int:
        """Append events with the commands each produced, in ONE transaction; returns the last
        seq. With ``snapshot`` (the state after the last event), it is stored in the same
        transaction, and so are the staged writes (:meth:`stage`): ``staged`` as taken by
        :meth:`take_staged`, or, when ``None``, taken here. Nothing is written if anything
        fails (the error propagates). When it returns, the head file marks the last event as
        committed (durably)."""
        self._check_writable()
        if staged is None:
            staged = self.take_staged()
        return self.append_groups([(entries, snapshot, staged)])

    def append_groups(self, groups: Sequence[Group]) -> int:
        """:meth:`append` of several groups, one after the other, in ONE transaction (and one
        flush to disk): each group's rows, its snapshot (after its last event) and its staged
        writes, exactly the rows that one :meth:`append` per group would write. A runtime
        whose commits fall behind the reducer catches up this way."""
        lock = self._check_writable()
        seq = self.last_seq
        chain = self._chain
        snap_seq = self.last_snapshot_seq
        event_rows: list[tuple[int, int, str, int, bytes]] = []
        command_rows: list[tuple[Any, ...]] = []
        # Per group, in order: its events, its commands, its snapshot, its staged writes.
        writes: list[tuple[list[Any], list[Any], Any, Sequence[Staged]]] = []
        for entries, snapshot, staged in groups:
            event_rows = []
            command_rows = []
            for event, commands in entries:
                seq += 1
                kind, payload = encode_event(event)
                chain = _event_crc(chain, seq, event.ts, kind, payload)
                event_rows.append((seq, event.ts, kind, chain, payload))
                for command in commands:
                    if type(command) is Batch:
                        for inner in command.commands:
                            command_rows.append(_command_row(seq, inner, command.command_id))
                    else:
                        command_rows.append(_command_row(seq, command, None))
            snap: tuple[int, int, int, bytes] | None = None
            if snapshot is not None and entries:
                payload = canonical(snapshot)  # set members sorted: see snapshot_matches
                snap = (seq, snapshot.now, _snapshot_crc(seq, snapshot.now, payload), payload)
                snap_seq = seq
            writes.append((event_rows, command_rows, snap, staged))
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for event_rows, command_rows, snap, staged in writes:
                conn.executemany(
                    "INSERT INTO events (seq, ts, kind, crc, payload) VALUES (?, ?, ?, ?, ?)",
                    event_rows,
                )
                if command_rows:
                    conn.executemany(
                        "INSERT INTO commands (seq, command_id, batch_id, kind, venue, cloid, "
                        "crc, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        command_rows,
                    )
                if snap is not None:
                    conn.execute(
                        "INSERT INTO snapshots (seq, ts, crc, payload) VALUES (?, ?, ?, ?)", snap
                    )
                for sql, params in staged:
                    conn.execute(sql, params)
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
        self._chain = chain
        self.last_snapshot_seq = snap_seq
        # After the commit and before any command leaves: the mark never runs ahead of the
        # journal, and every command sent is covered by it.
        lock.mark(seq, chain)
        return seq

    def write_snapshot(self, seq: int, state: State[Any]) -> None:
        """Store ``state`` as the state after event ``seq`` (which must be the last one)."""
        self._check_writable()
        if seq != self.last_seq:
            raise JournalError(
                f"{self.path}: a snapshot at seq {seq} would not be the state after the last "
                f"event ({self.last_seq})"
            )
        payload = canonical(state)
        staged = self.take_staged()
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(
                "INSERT OR REPLACE INTO snapshots (seq, ts, crc, payload) VALUES (?, ?, ?, ?)",
                (seq, state.now, _snapshot_crc(seq, state.now, payload), payload),
            )
            for sql, params in staged:
                self._conn.execute(sql, params)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self.commits += 1
        self.last_snapshot_seq = seq

    def quarantine(self, event: Event, error: str) -> int:
        """Keep ``event``, which the reducer raised on, out of the fold but in the file (for
        the report and ``gridcore inspect``); returns the seq it would have had."""
        self._check_writable()
        kind, payload = encode_event(event)
        after = self.last_seq
        error = error[:2000]
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(
                "INSERT INTO quarantine (after_seq, ts, kind, error, crc, payload) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    after,
                    event.ts,
                    kind,
                    error,
                    _quarantine_crc(after, event.ts, kind, error, payload),
                    payload,
                ),
            )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self.commits += 1
        return after + 1

    # --- reading -------------------------------------------------------------------------

    def _corrupt(self, what: str, detail: str) -> JournalDamaged:
        return JournalDamaged(
            f"{self.path}: {what} is corrupt ({detail}); nothing after it can be trusted; "
            f"{_RESTART_ADVICE}"
        )

    def _undecodable(self, what: str, exc: CodecError) -> CorruptRow:
        return CorruptRow(
            f"{self.path}: {what} is corrupt ({exc}); nothing after it can be trusted; "
            f"{_RESTART_ADVICE}"
        )

    def events(self, *, after: int = 0, upto: int | None = None) -> Iterator[tuple[int, Event]]:
        """``(seq, event)`` for every event with ``after < seq <= upto``, in order."""
        sql = "SELECT seq, ts, kind, crc, payload FROM events WHERE seq > ?"
        args: list[int] = [after]
        if upto is not None:
            sql += " AND seq <= ?"
            args.append(upto)
        chain = (
            0
            if after <= 0
            else self._scalar(
                "SELECT coalesce((SELECT crc FROM events WHERE seq = ?), -1)", (after,)
            )
        )
        if chain < 0:
            raise self._corrupt(f"the event sequence before {after + 1}", f"event {after} is gone")
        expected = after + 1
        decoders = event_decoders()
        try:
            cursor = self._conn.execute(sql + " ORDER BY seq", args)
            # Rows in batches: one call into SQLite per batch instead of one per row (replay and
            # recovery read every event through here; it is a measurable share of a replay).
            while rows := cursor.fetchmany(_READ_BATCH):
                for seq, ts, kind, crc, payload in rows:
                    if seq != expected:
                        raise self._corrupt(
                            f"the event sequence after {expected - 1}", f"next is {seq}"
                        )
                    expected += 1
                    # _event_crc inlined.
                    chain = crc32(payload, crc32(f"event:{seq}:{ts}:{kind}:".encode(), chain))
                    if chain != crc:
                        raise self._corrupt(f"event {seq}", "checksum mismatch")
                    try:
                        event: Event = decoders[kind](payload)
                    except Exception:  # unknown kind or hostile bytes: decode_event says which
                        try:
                            event = decode_event(kind, payload)
                        except CodecError as exc:
                            raise self._undecodable(f"event {seq}", exc) from None
                    if event.ts != ts:
                        # The row's ts is what the checksum and SQLite's 64-bit column vouch
                        # for; a payload time beyond it (2^64, say) would poison every later
                        # snapshot.
                        raise CorruptRow(
                            f"{self.path}: event {seq} is corrupt (its payload says ts "
                            f"{event.ts}, its row {ts}); {_RESTART_ADVICE}"
                        )
                    yield seq, event
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None

    def event_count(self) -> int:
        """How many events the journal holds."""
        return self._scalar("SELECT count(*) FROM events")

    def time_range(self) -> tuple[int, int] | None:
        """``(first ts, last ts)`` of the events, ``None`` when there are none."""
        try:
            row = self._conn.execute("SELECT min(ts), max(ts) FROM events").fetchone()
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None
        if row[0] is None:
            return None
        return int(row[0]), int(row[1])

    def snapshot_seqs(self) -> list[int]:
        """The seqs that have a snapshot, ascending (0 is the initial state)."""
        try:
            return [int(r[0]) for r in self._conn.execute("SELECT seq FROM snapshots ORDER BY seq")]
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None

    def snapshot(self, seq: int) -> State[Any]:
        """The stored state after event ``seq``."""
        try:
            row = self._conn.execute(
                "SELECT ts, crc, payload FROM snapshots WHERE seq = ?", (seq,)
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None
        if row is None:
            raise JournalError(f"{self.path}: no snapshot at seq {seq}")
        ts, crc, payload = row
        if _snapshot_crc(seq, ts, payload) != crc:
            raise self._corrupt(f"snapshot {seq}", "checksum mismatch")
        try:
            state = decode_value(payload)
        except CodecError as exc:
            raise self._undecodable(f"snapshot {seq}", exc) from None
        if not isinstance(state, State):
            raise CorruptRow(
                f"{self.path}: snapshot {seq} is corrupt (it holds a {type(state).__name__}, "
                f"not a bot state); {_RESTART_ADVICE}"
            )
        if type(state.now) is not int or state.now != ts:
            raise CorruptRow(
                f"{self.path}: snapshot {seq} is corrupt (its state's time {state.now!r} is not "
                f"its row's {ts}); {_RESTART_ADVICE}"
            )
        return state

    def snapshot_matches(self, seq: int, state: State[Any]) -> bool:
        """Whether the stored snapshot ``seq`` is exactly ``state`` (:func:`canonical` bytes).

        Snapshots are written in canonical form, so the stored bytes are compared with
        ``canonical(state)`` first: equal bytes (checksum verified) decode to ``state`` itself
        and the snapshot need not be decoded. Otherwise (a snapshot written before they were
        canonical, or a mismatch) it is read as :meth:`snapshot` reads it, with every check,
        and compared canonically."""
        try:
            row = self._conn.execute(
                "SELECT ts, crc, payload FROM snapshots WHERE seq = ?", (seq,)
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None
        if (
            row is not None
            and row[0] == state.now
            and _snapshot_crc(seq, row[0], row[2]) == row[1]
            and canonical(state) == row[2]
        ):
            return True
        return canonical(self.snapshot(seq)) == canonical(state)

    def latest_snapshot(self) -> tuple[int, State[Any]]:
        """``(seq, state)`` of the newest snapshot."""
        seqs = self.snapshot_seqs()
        if not seqs:
            raise self._corrupt("the snapshot table", "it is empty: snapshot 0 is missing")
        return seqs[-1], self.snapshot(seqs[-1])

    def commands(self) -> Iterator[CommandRow]:
        """Every released command, in the order it was released (Batches as their parts)."""
        try:
            for row_id, seq, batch_id, kind, payload in self._command_rows():
                try:
                    command = decode_command(kind, payload)
                except CodecError as exc:
                    raise self._undecodable(f"command row {row_id}", exc) from None
                yield CommandRow(seq=seq, command=command, batch_id=batch_id)
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None

    def _command_rows(self) -> Iterator[tuple[int, int, int | None, str, bytes]]:
        """``(row id, seq, batch id, kind, payload)`` of every command row, in release order,
        each checked against its checksum (a mismatch raises, naming the row)."""
        for (
            row_id,
            seq,
            command_id,
            batch_id,
            kind,
            venue,
            cloid,
            crc,
            payload,
        ) in self._conn.execute(
            "SELECT id, seq, command_id, batch_id, kind, venue, cloid, crc, payload "
            "FROM commands ORDER BY id"
        ):
            if _command_crc(seq, command_id, batch_id, kind, venue, cloid, payload) != crc:
                raise self._corrupt(f"command row {row_id}", "checksum mismatch")
            yield row_id, seq, batch_id, kind, payload

    def command_count(self) -> int:
        """How many command rows the journal holds."""
        return self._scalar("SELECT count(*) FROM commands")

    def duplicate_cloids(self) -> list[str]:
        """Client order ids placed more than once (always empty: the schema forbids it; kept so
        that tests and ``inspect`` prove it from the data)."""
        try:
            return [
                str(r[0])
                for r in self._conn.execute(
                    "SELECT cloid FROM commands WHERE kind = 'PlaceOrder' "
                    "GROUP BY cloid HAVING count(*) > 1"
                )
            ]
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None

    def placed_cloids(self) -> list[str]:
        """Every client order id released in a ``PlaceOrder``, in order."""
        try:
            return [
                str(r[0])
                for r in self._conn.execute(
                    "SELECT cloid FROM commands WHERE kind = 'PlaceOrder' ORDER BY id"
                )
            ]
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None

    def quarantined(self) -> list[Quarantined]:
        """Every event the reducer raised on, in order (see :meth:`quarantine`)."""
        try:
            return [
                Quarantined(after_seq=int(a), ts=int(t), kind=str(k), error=str(e))
                for a, t, k, e in self._conn.execute(
                    "SELECT after_seq, ts, kind, error FROM quarantine ORDER BY id"
                )
            ]
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None


def _command_row(seq: int, command: Command, batch_id: int | None) -> tuple[Any, ...]:
    kind, payload = encode_command(command)
    cloid = command.cloid if isinstance(command, PlaceOrder) else getattr(command, "cloid", None)
    venue = getattr(command, "venue", None)
    crc = _command_crc(seq, command.command_id, batch_id, kind, venue, cloid, payload)
    return (seq, command.command_id, batch_id, kind, venue, cloid, crc, payload)


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
