"""A second Ctrl-C while ``gridcore run`` shuts down: a clean exit 130, never a traceback.

The first SIGINT starts a graceful stop that waits for outstanding orders; a second one stops
the wait. Signals that keep coming must never raise into the final snapshot, the simulated
venue's last save or the closing of the files. The run is paced so slowly (a thousandth of
real time) that the orders placed at the first quote stay outstanding for the whole test: the
second signal lands in the wait whatever the machine's speed, with no sleep anywhere.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gridcore.shells.cli_run import replay_journal
from gridcore.shells.journal import Journal, is_new
from gridcore.shells.simvenue import saved_venue

HANG = 120.0  # a safety net against hangs only; nothing below depends on speed


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridcore.shells.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=HANG,
        env=os.environ.copy(),
    )


def _wait_for_commands(path: Path, proc: subprocess.Popen[str]) -> None:
    """Until the journal holds sent commands (read-only; the bot keeps writing)."""
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if path.exists() and not is_new(path):
            with Journal.open(path, readonly=True) as journal:
                if journal.command_count() > 0:
                    return
        time.sleep(0.02)
    pytest.fail(f"no command in {path} within {HANG} s")


@pytest.mark.parametrize(
    ("second", "backend"),
    [(signal.SIGINT, "asyncio"), (signal.SIGTERM, "asyncio"), (signal.SIGINT, "trio")],
)
def test_a_second_signal_during_shutdown_exits_130_cleanly(
    tmp_path: Path, second: signal.Signals, backend: str
) -> None:
    journal = tmp_path / "j.db"
    command = ["run", "--journal", "j.db", "--speed", "0.001", "--backend", backend]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridcore.shells.cli", *command],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_commands(journal, proc)
        proc.send_signal(signal.SIGINT)
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # ends at EOF, so a process that died is reported below
            seen.append(line)
            if "gridcore: stopping (signal SIGINT)" in line:
                break
        assert seen and "press Ctrl-C again" in seen[-1], seen
        proc.send_signal(second)
        # Then keep signalling until it is gone: whatever point of the shutdown each one
        # reaches (the snapshot, the venue's save, the files' closing), none may break it.
        barrage = 0
        while proc.poll() is None and barrage < 10_000:
            proc.send_signal(signal.SIGINT)
            barrage += 1
            time.sleep(0.001)  # pacing only; the assertions do not depend on it
        out, rest = proc.communicate(timeout=HANG)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=HANG)
    err = "".join(seen) + rest
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err
    assert "interrupted during shutdown" in err
    assert "stopped (signal SIGINT)" in out

    # The journal is committed with its final snapshot, the venue's file reads back.
    with Journal.open(journal, readonly=True) as j:
        assert j.last_snapshot_seq == j.last_seq > 0
        assert replay_journal(j).mismatch_seq is None
    assert saved_venue(journal) is not None

    # And both resume: a clean run reconciles the orders whose answers were not awaited.
    resumed = _cli("run", "--journal", "j.db", "--speed", "max", "--duration", "120", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr
    inspect = _cli("inspect", "j.db", cwd=tmp_path)
    assert inspect.returncode == 0, inspect.stdout + inspect.stderr
    assert "invariants: ok" in inspect.stdout
