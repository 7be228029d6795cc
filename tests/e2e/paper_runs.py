"""Shared by the paper crash tests: start ``gridcore run`` on a journal, and wait for the
journal (read-only, while the bot writes) to reach an event."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gridcore.core import State
from gridcore.shells.cli_run import replay_journal
from gridcore.shells.codec import canonical
from gridcore.shells.journal import Journal, fold, is_new, recover

HANG_S = 300.0  # a safety net against hangs only: no assertion depends on how fast runs are


def start(journal: Path, *extra: str) -> subprocess.Popen[bytes]:
    """``gridcore run --journal JOURNAL -q EXTRA...`` in the background."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gridcore.shells.cli",
            "run",
            "--journal",
            str(journal),
            "-q",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )


def wait_for_seq(path: Path, target: int, proc: subprocess.Popen[bytes]) -> int:
    """Poll the journal read-only until its committed sequence reaches ``target``."""
    deadline = time.monotonic() + HANG_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"gridcore run ended (exit {proc.returncode}) before event {target}: {err}")
        if path.exists() and not is_new(path):
            with Journal.open(path, readonly=True) as journal:
                seq = journal.last_seq
            if seq >= target:
                return seq
        time.sleep(0.01)
    pytest.fail(f"{path} did not reach event {target} within {HANG_S} s (hung?)")


def run_until_killed(path: Path, target: int, *args: str) -> None:
    """``gridcore run --journal PATH ARGS...``, SIGKILLed once its journal holds event
    ``target``: a kill at a point the caller's draw decides, not the machine's speed."""
    proc = start(path, *args)
    try:
        wait_for_seq(path, target, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=HANG_S)
        err = proc.stderr.read().decode() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, err


def recovered_as_folded(journal: Journal) -> tuple[State[Any], int]:
    """Assert the journal replays without a mismatch and that recovery (from the last snapshot)
    gives the state of a fold from snapshot 0; return the recovered state and its seq."""
    result = replay_journal(journal)
    assert result.mismatch_seq is None, result.diff
    recovered, seq = recover(journal)
    full = journal.snapshot(0)
    for _, full in fold(journal, start=0):  # noqa: B007
        pass
    assert canonical(recovered) == canonical(full)
    return recovered, seq
