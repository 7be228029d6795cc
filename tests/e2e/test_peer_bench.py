"""The gridcore side of the peer benchmark runs and reports well-formed results (Nautilus
itself is installed only by ``nox -s peer``, never here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "peer_bench.py"


def test_gridcore_side_quick_json(tmp_path: Path) -> None:
    out = tmp_path / "peer.json"
    subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--quick",
            "--gridcore-only",
            "--ticks",
            "2000",
            "--json",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    result = json.loads(out.read_text())
    assert result["ticks"] == {"default": 2000, "matched": 2000} and result["rounds"] == 1
    assert set(result["workloads"]) == {"default", "matched"}
    for workload in result["workloads"].values():
        # no peer: no ratio either
        assert set(workload["summary"]) == {"gridcore", "gridcore-unchecked"}
        for side in ("gridcore", "gridcore-unchecked"):
            (run,) = workload["runs"][side]
            assert run["side"] == side and run["ticks"] == 2000
            assert run["events"] >= run["ticks"]  # every tick is a reducer step, plus the rest
            assert run["cpu_s"] > 0 and run["max_rss_kb"] > 0
            assert run["ticks_per_cpu_s"] == run["ticks"] / run["cpu_s"]
        # The same run either way: checking is all that differs.
        checked, unchecked = (workload["summary"][s] for s in ("gridcore", "gridcore-unchecked"))
        for key in ("events", "fills", "orders"):
            assert checked[key] == unchecked[key]
