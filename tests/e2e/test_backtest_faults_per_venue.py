"""``gridcore backtest --faults`` per venue, through the real command line: one profile for
every venue as before, or ``venue=profile`` pairs (each named venue its own plan, every other
venue none); an unknown venue or profile is refused naming it and listing the valid ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "funding_arb.toml"
TIMEOUT = 300
TICKS = "3000"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridcore.shells.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )


def summary(faults: str, cwd: Path) -> dict[str, Any]:
    done = cli(
        "backtest",
        "--config",
        str(EXAMPLE),
        "--ticks",
        TICKS,
        "--faults",
        faults,
        "--json",
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)["summary"]
    return doc


def test_each_named_venue_gets_its_own_profile(tmp_path: Path) -> None:
    only_b = summary("b=flaky", tmp_path)
    assert only_b["faults"] == "a=none,b=flaky"
    assert sum(only_b["injected"].values()) > 0
    both = summary("a=flaky,b=lossy", tmp_path)
    assert both["faults"] == "a=flaky,b=lossy"
    # One profile still means every venue, as it always did.
    assert summary("flaky", tmp_path)["faults"] == "flaky"
    # Naming every venue 'none' injects nothing.
    quiet = summary("a=none,b=none", tmp_path)
    assert sum(quiet["injected"].values()) == 0


def test_an_unknown_venue_or_profile_is_refused_naming_it(tmp_path: Path) -> None:
    base = ("backtest", "--config", str(EXAMPLE), "--ticks", TICKS, "--faults")
    venue = cli(*base, "c=flaky", cwd=tmp_path)
    assert venue.returncode == 2
    assert "unknown venue 'c'" in venue.stderr and "a, b" in venue.stderr
    assert "Traceback" not in venue.stderr
    plan = cli(*base, "a=flaky,b=nope", cwd=tmp_path)
    assert plan.returncode == 2
    assert "venue b" in plan.stderr and "'nope'" in plan.stderr
    assert "flaky, disconnects, lossy, chaos" in plan.stderr
    twice = cli(*base, "a=flaky,a=lossy", cwd=tmp_path)
    assert twice.returncode == 2 and "named twice" in twice.stderr
    malformed = cli(*base, "a=flaky,", cwd=tmp_path)
    assert malformed.returncode == 2 and "is not VENUE=PROFILE" in malformed.stderr
    # A one-venue bot (the embedded grid) lists its own venue.
    grid = cli("backtest", "--ticks", "100", "--faults", "b=flaky", cwd=tmp_path)
    assert grid.returncode == 2 and "unknown venue 'b'" in grid.stderr
