"""``gridcore run``, ``inspect`` and ``replay`` as a user runs them: real subprocesses of the real
command line, real journal files, real signals."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import attrs
import pytest

from gridcore.shells.codec import decode_value, encode_value
from gridcore.shells.journal import Journal, _snapshot_crc, is_new
from gridcore.shells.simvenue import saved_venue

TIMEOUT = 60


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridcore.shells.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "COLUMNS": "200"},
    )


def _one_error_line(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gridcore: error: ") and text in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def test_run_inspect_replay_and_resume(tmp_path: Path) -> None:
    first = cli(
        "run", "--journal", "j.db", "--speed", "max", "--duration", "1800", "--faults", "flaky",
        cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "new journal j.db" in first.stderr
    assert "stopped (duration reached)" in first.stdout
    # The simulated venue's state lives in the journal, committed with the events.
    assert not (tmp_path / "j.db.venue").exists()
    assert saved_venue(tmp_path / "j.db") is not None

    report = cli("inspect", "j.db", "--json", cwd=tmp_path)
    assert report.returncode == 0, report.stdout + report.stderr
    data = json.loads(report.stdout)
    assert list(data) == [
        "journal", "schema_version", "gridcore_version", "events", "last_seq", "first_ts",
        "last_ts", "snapshots", "last_snapshot_seq", "commands", "duplicate_cloids", "now",
        "positions", "open_orders", "fills", "pnl", "pnl_by_currency", "halted", "halt_reason",
        "halt_cause", "venues", "invariants", "quarantined",
    ]  # fmt: skip
    assert data["schema_version"] == 3
    assert data["quarantined"] == []
    assert data["events"] == data["last_seq"] > 1_800
    assert data["last_snapshot_seq"] == data["last_seq"]  # the final snapshot
    assert data["duplicate_cloids"] == []
    assert data["invariants"] == {"ok": True, "violations": []}
    assert data["fills"] > 0 and data["open_orders"]
    assert set(data["pnl"]) == {"realized", "unrealized", "fees", "funding", "net"}
    assert data["venues"]["sim"]["phase"] == "synced"

    text = cli("inspect", "j.db", cwd=tmp_path)
    assert text.returncode == 0 and "positions" in text.stdout and "invariants: ok" in text.stdout
    # People see money at the currency's places (cents) and the exact values stay in --json.
    pnl_rows = [line for line in text.stdout.splitlines() if "pnl " in line]
    assert len(pnl_rows) == 5
    for line in pnl_rows:
        assert re.search(r"│ -?[\d,]+\.\d\d +│$", line.rstrip()), line
    net = next(line for line in pnl_rows if "pnl net (USD)" in line)
    shown = Decimal(net.split("│")[2].strip().replace(",", ""))
    assert shown == Decimal(data["pnl"]["net"]).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)

    replay = cli("replay", "j.db", cwd=tmp_path)
    assert replay.returncode == 0, replay.stdout
    assert "deterministic" in replay.stdout

    second = cli("run", "--journal", "j.db", "--speed", "max", "--duration", "600", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert f"resuming journal j.db at event {data['last_seq']}" in second.stderr
    after = json.loads(cli("inspect", "j.db", "--json", cwd=tmp_path).stdout)
    assert after["last_seq"] > data["last_seq"]
    assert after["first_ts"] == data["first_ts"] and after["last_ts"] > data["last_ts"]


def test_a_different_config_for_an_existing_journal_is_refused(tmp_path: Path) -> None:
    assert (
        cli(
            "run", "--journal", "j.db", "--speed", "max", "--duration", "60", cwd=tmp_path
        ).returncode
        == 0
    )
    (tmp_path / "other.toml").write_text("[grid]\nlevels = 7\n")
    result = cli("run", "--journal", "j.db", "--config", "other.toml", cwd=tmp_path)
    _one_error_line(result, "differs from the configuration journal j.db was started with")
    assert "grid.levels: 5 -> 7" in result.stderr


def test_live_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    _one_error_line(
        cli("run", "--journal", "j.db", "--live", cwd=tmp_path), "no live venue adapter"
    )
    assert is_new(tmp_path / "j.db")


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("inspect", "missing.db"), "no such journal"),
        (("replay", "notes.txt"), "not a gridcore journal"),
        (("run", "--journal", "j.db", "--config", "missing.toml"), "cannot read --config"),
        (("run", "--journal", "j.db", "--faults", "gremlins"), "unknown fault profile"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, args: tuple[str, ...], text: str) -> None:
    (tmp_path / "notes.txt").write_text("not a database " * 200)
    _one_error_line(cli(*args, cwd=tmp_path), text)


def test_a_journal_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    assert (
        cli(
            "run", "--journal", "j.db", "--speed", "max", "--duration", "60", cwd=tmp_path
        ).returncode
        == 0
    )
    conn = sqlite3.connect(tmp_path / "j.db")
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    for args in (("inspect", "j.db"), ("run", "--journal", "j.db")):
        _one_error_line(cli(*args, cwd=tmp_path), "journal schema version 99 is not supported")


def test_replay_reports_a_snapshot_that_is_not_the_fold(tmp_path: Path) -> None:
    run = cli(
        "run", "--journal", "j.db", "--speed", "max", "--duration", "900", "--snapshot-every", "300",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    with Journal.open(tmp_path / "j.db", readonly=True) as journal:
        seq = journal.snapshot_seqs()[2]
        state = journal.snapshot(seq)
    forged = attrs.evolve(state, books=attrs.evolve(state.books, seq=state.books.seq + 1))
    payload = encode_value(forged)
    assert decode_value(payload) == forged
    conn = sqlite3.connect(tmp_path / "j.db")
    # A forger who knows the checksum format: only the fold can tell.
    conn.execute(
        "UPDATE snapshots SET payload = ?, crc = ? WHERE seq = ?",
        (payload, _snapshot_crc(seq, forged.now, payload), seq),
    )
    conn.commit()
    conn.close()
    replay = cli("replay", "j.db", cwd=tmp_path)
    assert replay.returncode == 1
    assert f"NOT deterministic: the snapshot stored at seq {seq}" in replay.stdout
    assert (
        f"state.books.seq: stored {state.books.seq + 1} != fold {state.books.seq}" in replay.stdout
    )


def _wait_for_events(path: Path, count: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if path.exists() and not is_new(path):
            with Journal.open(path, readonly=True) as journal:
                if journal.event_count() >= count:
                    return
        time.sleep(0.05)
    pytest.fail(f"no {count} events in {path} within {TIMEOUT} s")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_gracefully_with_a_final_snapshot(
    tmp_path: Path, signum: signal.Signals
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridcore.shells.cli", "run", "--journal", "j.db", "--speed", "50"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_events(tmp_path / "j.db", 20)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert f"stopped (signal {signum.name})" in out
    with Journal.open(tmp_path / "j.db", readonly=True) as journal:
        assert journal.last_snapshot_seq == journal.last_seq > 20
