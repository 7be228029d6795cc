"""An adapter bug stops the bot loudly; it is never absorbed as a venue failure.

The real ``gridcore run`` runs in a subprocess whose simulated venue's ``execute`` raises a
plain ``KeyError`` (an adapter bug, outside the declared ``VenueError``/``TransportError``
vocabulary). The bot must not turn it into ``CommandFailed`` (which would trip the error-streak
breaker and hide the bug): it commits its journal, stops, prints the traceback and exits 70. A
second run with a working venue resumes from that journal.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HANG = 120.0  # a safety net against hangs only

_BUGGY_RUN = """
import sys
from gridcore.shells import simvenue

async def execute(self, command):
    raise KeyError("positions")  # an adapter bug

simvenue.SimVenue.execute = execute
from gridcore.shells.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run(*args: str, cwd: Path, code: str | None = None) -> subprocess.CompletedProcess[str]:
    head = ["-c", code] if code is not None else ["-m", "gridcore.shells.cli"]
    return subprocess.run(
        [sys.executable, *head, *args], cwd=cwd, capture_output=True, text=True, timeout=HANG
    )


def test_an_adapter_bug_stops_the_bot_with_its_traceback_and_a_committed_journal(
    tmp_path: Path,
) -> None:
    run = _run(
        "run", "--journal", "j.db", "--speed", "max", "--duration", "120",
        cwd=tmp_path, code=_BUGGY_RUN,
    )  # fmt: skip
    assert run.returncode == 70, run.stdout + run.stderr
    assert "AdapterFailed" in run.stderr and "KeyError" in run.stderr, run.stderr
    assert "bug in the adapter" in run.stderr
    report = _run("inspect", "j.db", "--json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    doc = json.loads(report.stdout)
    assert doc["events"] >= 1  # Started at least: committed before the stop
    assert doc["halted"] is False  # no error streak: the bug was not counted as venue errors
    again = _run("run", "--journal", "j.db", "--speed", "max", "--duration", "60", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    resumed = json.loads(_run("inspect", "j.db", "--json", cwd=tmp_path).stdout)
    assert resumed["last_seq"] > doc["last_seq"]
