"""The journal as a user meets it when things go wrong: a second bot on the same journal, bytes
overwritten in the file, SQLite's own pages damaged, a write-ahead log truncated or flipped after
a ``SIGKILL``. Real ``gridcore`` subprocesses, real files; every outcome is observed, none is
timed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridcore.shells.journal import Journal, JournalError, head_path, is_new

TIMEOUT = 60
CLI = [sys.executable, "-m", "gridcore.shells.cli"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "COLUMNS": "200"},
    )


def _error_line(result: subprocess.CompletedProcess[str], code: int, text: str) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("gridcore: ")]
    assert lines and lines[-1].startswith("gridcore: error: "), result.stderr
    assert text in lines[-1], lines[-1]
    return lines[-1]


def _count(path: Path) -> int:
    """Events committed so far, read without verification (the writer may be mid-commit)."""
    if not path.exists() or is_new(path):
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.DatabaseError:
        return 0  # the tables are not committed yet (or the file is damaged: tests do that)
    finally:
        conn.close()


def _wait_for_events(path: Path, count: int, proc: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        seen = _count(path)
        if seen >= count:
            return seen
        if proc.poll() is not None:
            pytest.fail(f"the bot ended early ({proc.returncode}): {proc.communicate()}")
        time.sleep(0.05)
    pytest.fail(f"no {count} events in {path} within {TIMEOUT} s")


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A paper bot running on ``tmp_path/j.db`` until told to stop."""
    proc = subprocess.Popen(
        [*CLI, "run", "--journal", "j.db", "--speed", "20"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=TIMEOUT)


# --- one writer -----------------------------------------------------------------------------------


# slow: the default run keeps the lock's release after a kill.
@pytest.mark.slow
def test_a_second_bot_is_refused_and_the_first_never_notices(
    tmp_path: Path, bot: subprocess.Popen[str]
) -> None:
    path = tmp_path / "j.db"
    _wait_for_events(path, 30, bot)
    second = cli("run", "--journal", "j.db", "--speed", "max", "--duration", "60", cwd=tmp_path)
    line = _error_line(second, 2, f"journal in use by pid {bot.pid}")
    assert f"kill -INT {bot.pid}" in line and "gridcore inspect" in line
    assert "UNIQUE" not in second.stderr
    assert bot.poll() is None  # the running bot was not disturbed
    # Readers are welcome meanwhile.
    report = cli("inspect", "j.db", "--json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert cli("replay", "j.db", cwd=tmp_path).returncode == 0
    # ... and the first keeps trading: its journal grows past what it held when refused.
    after_refusal = _count(path)
    _wait_for_events(path, after_refusal + 20, bot)
    bot.send_signal(signal.SIGINT)
    out, err = bot.communicate(timeout=TIMEOUT)
    assert bot.returncode == 0, err
    assert "stopped (signal SIGINT)" in out
    with Journal.open(path, readonly=True) as journal:
        assert journal.last_snapshot_seq == journal.last_seq > after_refusal
        assert journal.duplicate_cloids() == []
    # The lock died with the process: the journal resumes.
    again = cli("run", "--journal", "j.db", "--speed", "max", "--duration", "60", cwd=tmp_path)
    assert again.returncode == 0, again.stderr


def test_a_killed_bot_leaves_no_stale_lock(tmp_path: Path, bot: subprocess.Popen[str]) -> None:
    _wait_for_events(tmp_path / "j.db", 30, bot)
    bot.send_signal(signal.SIGKILL)
    bot.communicate(timeout=TIMEOUT)
    again = cli("run", "--journal", "j.db", "--speed", "max", "--duration", "60", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "resuming journal j.db" in again.stderr


# --- damage ---------------------------------------------------------------------------------------


def _finished_run(tmp_path: Path) -> Path:
    run = cli(
        "run", "--journal", "j.db", "--speed", "max", "--duration", "900", "--snapshot-every",
        "200", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert not Path(f"{tmp_path / 'j.db'}-wal").exists()  # checkpointed: every byte in j.db
    return tmp_path / "j.db"


def _flip_inside(path: Path, payload: bytes) -> None:
    """Overwrite one byte of ``payload`` where it lies in the file (at a window of it that
    occurs once in the file and in no other row, so that no other row is hit: a long payload
    spans overflow pages, and a window cut by a page boundary is found only where another row
    holds the same bytes)."""
    data = bytearray(path.read_bytes())
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        others = [
            bytes(row[0])
            for table in ("events", "snapshots")
            for row in conn.execute(f"SELECT payload FROM {table}")
            if bytes(row[0]) != payload
        ]
    finally:
        conn.close()
    for off in range(0, len(payload) - 24):
        needle = payload[off : off + 24]
        at = data.find(needle)
        if any(needle in other for other in others):
            continue
        if at > 0 and data.find(needle, at + 1) < 0:
            data[at + 12] ^= 0x5A
            path.write_bytes(bytes(data))
            return
    pytest.fail("no unique window of the payload in the file")


def _all_refuse(tmp_path: Path, code: int, text: str) -> None:
    before = _count(tmp_path / "j.db")
    for args in (("run", "--journal", "j.db", "--speed", "max", "--duration", "60"),
                 ("inspect", "j.db"), ("inspect", "j.db", "--json"), ("replay", "j.db")):  # fmt: skip
        line = _error_line(cli(*args, cwd=tmp_path), code, text)
        assert "do not resume trading" in line and "gridcore run --journal NEW.db" in line
    assert _count(tmp_path / "j.db") <= before  # nothing was appended


def _row(path: Path, sql: str) -> tuple[int, bytes]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        seq, payload = conn.execute(sql).fetchone()
        return int(seq), bytes(payload)
    finally:
        conn.close()


def test_bytes_overwritten_in_an_event_payload_are_refused_everywhere(tmp_path: Path) -> None:
    path = _finished_run(tmp_path)
    # The longest event of the run (which events they are depends on the session's ids): a
    # payload long enough to hold a window that occurs nowhere else in the file.
    seq, payload = _row(path, "SELECT seq, payload FROM events ORDER BY length(payload) DESC, seq")
    _flip_inside(path, payload)
    _all_refuse(tmp_path, 3, f"event {seq} is corrupt (checksum mismatch)")


def test_bytes_overwritten_in_a_snapshot_payload_are_refused_everywhere(tmp_path: Path) -> None:
    path = _finished_run(tmp_path)
    seq, payload = _row(path, "SELECT seq, payload FROM snapshots WHERE seq > 0 LIMIT 1 OFFSET 1")
    _flip_inside(path, payload)
    _all_refuse(tmp_path, 3, f"snapshot {seq} is corrupt")


@pytest.mark.parametrize("pages", ["schema", "tables"])
def test_damaged_sqlite_pages_are_refused_without_a_traceback(tmp_path: Path, pages: str) -> None:
    path = _finished_run(tmp_path)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    assert page >= 512 and len(data) // page > 8
    if pages == "schema":  # the b-tree header of page 1, after the 100-byte file header
        data[100:112] = b"\xff" * 12
    else:  # b-tree page headers, early and mid-file
        for n in (2, 3, len(data) // page // 2):
            data[n * page : n * page + 12] = b"\xff" * 12
    path.write_bytes(bytes(data))
    _all_refuse(tmp_path, 3, "j.db")


# --- a damaged write-ahead log after a SIGKILL ----------------------------------------------------


def _killed_run(tmp_path: Path, bot: subprocess.Popen[str]) -> tuple[Path, Path]:
    path = tmp_path / "j.db"
    _wait_for_events(path, 60, bot)
    bot.send_signal(signal.SIGKILL)
    bot.communicate(timeout=TIMEOUT)
    wal = Path(f"{path}-wal")
    assert wal.stat().st_size > 32 + 4 * 4096, "expected commits still in the WAL after SIGKILL"
    return path, wal


def _all_refuse_lost_commits(tmp_path: Path) -> None:
    wal = Path(f"{tmp_path / 'j.db'}-wal")
    evidence = (tmp_path / "j.db").read_bytes(), wal.read_bytes()
    for args in (("run", "--journal", "j.db", "--speed", "max", "--duration", "60"),
                 ("inspect", "j.db"), ("replay", "j.db")):  # fmt: skip
        line = _error_line(cli(*args, cwd=tmp_path), 3, "j.db")
        assert "lost" in line or "missing" in line, line
        assert "do not resume trading" in line
    # Refusing changed nothing: the damaged files are still there to be examined.
    assert ((tmp_path / "j.db").read_bytes(), wal.read_bytes()) == evidence


# slow: the default run keeps the damaged pages and payloads.
@pytest.mark.slow
def test_a_truncated_wal_after_sigkill_is_refused(
    tmp_path: Path, bot: subprocess.Popen[str]
) -> None:
    _, wal = _killed_run(tmp_path, bot)
    with wal.open("r+b") as f:
        f.truncate(wal.stat().st_size // 2)
    _all_refuse_lost_commits(tmp_path)


# slow: the default run keeps the damaged pages and payloads.
@pytest.mark.slow
def test_bytes_flipped_in_the_wal_after_sigkill_are_refused(
    tmp_path: Path, bot: subprocess.Popen[str]
) -> None:
    _, wal = _killed_run(tmp_path, bot)
    data = bytearray(wal.read_bytes())
    for at in range(len(data) // 2, len(data) // 2 + 64):
        data[at] ^= 0xA5
    wal.write_bytes(bytes(data))
    _all_refuse_lost_commits(tmp_path)


def test_a_missing_head_file_is_refused(tmp_path: Path) -> None:
    _finished_run(tmp_path)
    head_path(tmp_path / "j.db").unlink()
    for args in (("run", "--journal", "j.db", "--speed", "max", "--duration", "60"),
                 ("inspect", "j.db")):  # fmt: skip
        _error_line(cli(*args, cwd=tmp_path), 3, "j.db.head is missing")


def test_a_lost_journal_with_a_head_is_not_restarted_silently(tmp_path: Path) -> None:
    path = _finished_run(tmp_path)
    path.unlink()
    with pytest.raises(JournalError, match="no such journal"):
        Journal.open(path, readonly=True)
    _error_line(
        cli("run", "--journal", "j.db", "--speed", "max", "--duration", "60", cwd=tmp_path),
        3,
        "records",
    )
