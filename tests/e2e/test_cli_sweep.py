"""``gridcore sweep`` as a user runs it: the ranked table, the CSV of every run, the heatmap,
and bad input named before anything runs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from gridcore.shells.cli_sweep import ROW_KEYS


def sweep(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridcore.shells.cli", "sweep", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def test_a_sweep_ranks_writes_every_run_and_draws_a_heatmap(tmp_path: Path) -> None:
    done = sweep(
        "--grid",
        "grid.spacing=0.001,0.003",
        "--grid",
        "grid.levels=3..4",
        "--ticks",
        "1500",
        "--workers",
        "2",
        "--out",
        "runs.csv",
        "--plot",
        "heat.png",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "4 combinations, ranked by net_pnl" in done.stdout
    assert "4 runs on process" in done.stdout
    with (tmp_path / "runs.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert list(rows[0]) == ["grid.spacing", "grid.levels", "seed", *ROW_KEYS]
    # Each row is what `gridcore backtest` reports for that combination.
    (tmp_path / "c.toml").write_text('[grid]\nspacing = "0.003"\nlevels = 4\n')
    single = subprocess.run(
        [
            *(sys.executable, "-m", "gridcore.shells.cli", "backtest"),
            *("--config", "c.toml", "--ticks", "1500", "--json"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
        check=True,
    )
    doc = json.loads(single.stdout)
    row = next(r for r in rows if (r["grid.spacing"], r["grid.levels"]) == ("0.003", "4"))
    assert row["net_pnl"] == doc["summary"]["net_pnl"]
    assert row["return_pct"] == doc["results"]["return_pct"]
    assert (tmp_path / "heat.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_settings_and_options_fail_before_anything_runs(tmp_path: Path) -> None:
    cases = {
        ("--grid", "grid.levels=5,0"): "grid.levels=0: grid.levels: must be between 1 and 100",
        ("--grid", "grid.colour=1"): "grid.colour: unknown setting",
        ("--grid", "levels=1"): "expected TABLE.SETTING=VALUES",
        ("--grid", "grid.levels=3,4", "--plot", "h.png"): "two swept settings",
        ("--grid", "grid.levels=3", "--out", "r.xlsx"): "must end in .csv or .parquet",
        ("--faults", "gremlins"): "unknown fault profile 'gremlins'",
    }
    for args, message in cases.items():
        done = sweep(*args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("gridcore: error: ") and message in done.stderr, done.stderr
        assert done.stdout == ""
        assert len(done.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
