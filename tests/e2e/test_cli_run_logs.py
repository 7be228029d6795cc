"""``gridcore run --log-json --log-file``: a real paper session's log, against its journal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

TIMEOUT = 120
CANARY = "canary-7f3e-do-not-log-this"
KEYS = {"ts", "level", "logger", "message"}
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridcore.shells.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "COLUMNS": "200", "VENUE_API_SECRET": CANARY},
    )


def test_the_json_log_has_every_fill_of_the_journal_and_no_secret(tmp_path: Path) -> None:
    run = cli(
        "run", "--journal", "j.db", "--speed", "max", "--duration", "600", "--faults", "flaky",
        "--log-json", "--log-file", "log.jsonl",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "stopped (duration reached)" in run.stdout  # the console keeps its output
    text = (tmp_path / "log.jsonl").read_text(encoding="utf-8")
    assert CANARY not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines
    for line in lines:
        assert set(line) >= KEYS, line
        assert TS.match(line["ts"]), line
        assert all(isinstance(v, str) for v in line.values()), line
        assert line["logger"].startswith("gridcore."), line
    fills = [line for line in lines if line["logger"] == "gridcore.fills"]
    report = cli("inspect", "j.db", "--json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert len(fills) == json.loads(report.stdout)["fills"]
    assert fills, "a ten-minute paper session fills some orders"
    for f in fills:
        assert {"side", "qty", "price", "fee", "cloid", "source"} <= set(f)
    messages = [line["message"] for line in lines]
    assert messages[0].startswith("start: journal j.db")
    assert messages[-1].startswith("stop (duration reached)")

    # A second run appends to the same file and says it resumed.
    again = cli(
        "run", "--journal", "j.db", "--speed", "max", "--duration", "60",
        "--log-json", "--log-file", "log.jsonl",
        cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    more = (tmp_path / "log.jsonl").read_text(encoding="utf-8").splitlines()
    assert more[: len(lines)] == text.splitlines()
    assert json.loads(more[len(lines)])["message"].startswith("resume: journal j.db")


def test_text_log_lines_start_with_utc_time_and_json_goes_to_stderr_alone(
    tmp_path: Path,
) -> None:
    run = cli(
        "run", "--journal", "j.db", "--speed", "max", "--duration", "120", "--log-file", "run.log",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    for line in (tmp_path / "run.log").read_text(encoding="utf-8").splitlines():
        stamp, level, logger, _ = line.split(" ", 3)
        assert TS.match(stamp), line
        assert level in {"DEBUG", "INFO", "WARNING", "ERROR"}, line
        assert logger.startswith("gridcore."), line
    json_run = cli(
        "run", "--journal", "j2.db", "--speed", "max", "--duration", "120", "--log-json",
        cwd=tmp_path,
    )  # fmt: skip
    assert json_run.returncode == 0, json_run.stderr
    logged = [ln for ln in json_run.stderr.splitlines() if ln.startswith("{")]
    assert logged
    assert all(set(json.loads(ln)) >= KEYS for ln in logged)


def test_an_unwritable_log_file_is_named(tmp_path: Path) -> None:
    run = cli(
        "run", "--journal", "j.db", "--duration", "1", "--log-file", "missing/dir/x.log",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "--log-file missing/dir/x.log: cannot open" in run.stderr
    assert not (tmp_path / "j.db").exists()  # refused before any journal was created
