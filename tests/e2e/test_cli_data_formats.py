"""``gridcore backtest --data`` on a gzip-compressed candle file, through the real CLI."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

from gridcore.shells.csvdata import CANDLE_QUOTES

S0 = 1_704_067_200


def test_backtest_on_gzipped_candles(tmp_path: Path) -> None:
    path = tmp_path / "candles.csv.gz"
    bars = [(42_000 + 5 * (i % 7), 42_001 + 5 * (i % 5)) for i in range(300)]
    rows = "".join(
        f"{S0 + 60 * i},{o},{max(o, c) + 2},{min(o, c) - 2},{c}\n" for i, (o, c) in enumerate(bars)
    )
    with gzip.open(path, "wt") as f:
        f.write("timestamp,open,high,low,close\n" + rows)
    done = subprocess.run(
        [sys.executable, "-m", "gridcore.shells.cli", "backtest", "--data", str(path), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)["summary"]
    assert summary["ticks"] == 300 * CANDLE_QUOTES
    assert summary["orders"] > 0
