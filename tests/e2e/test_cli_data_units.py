"""``gridcore backtest --data`` reads a file in s, ms, µs or ns the same, and says which it read.

Reading microseconds as milliseconds once stretched 20,000 quotes over a thousand times their
duration and gave a third of the fills, without a word; these runs fail if that comes back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gridcore.config import load_config
from gridcore.sim import make_path
from tests.e2e.test_cli_backtest import error_line, gridcore, run_json

SCALE = {"seconds": 1, "milliseconds": 1_000, "microseconds": 1_000_000}


def write_in(path: Path, unit: str, ticks: int) -> None:
    """The default synthetic market (one quote a second) with timestamps in ``unit``."""
    with path.open("w", encoding="utf-8") as f:
        f.write("timestamp,bid,ask\n")
        for q in make_path(load_config(), ticks=ticks):
            assert q.ts % 1000 == 0
            f.write(f"{q.ts // 1000 * SCALE[unit]},{q.bid},{q.ask}\n")


@pytest.mark.parametrize("unit", ["seconds", "microseconds"])
def test_a_market_in_any_unit_trades_like_the_same_market_in_ms(tmp_path: Path, unit: str) -> None:
    write_in(tmp_path / "ms.csv", "milliseconds", 3000)
    write_in(tmp_path / "other.csv", unit, 3000)
    reference = run_json("--data", "ms.csv", cwd=tmp_path)["summary"]
    other = run_json("--data", "other.csv", cwd=tmp_path)["summary"]
    assert reference["fills"] > 0
    assert other == reference


def test_the_table_names_the_unit_it_read(tmp_path: Path) -> None:
    write_in(tmp_path / "us.csv", "microseconds", 1500)
    done = gridcore("--data", "us.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert "timestamps in microseconds" in done.stdout.decode()


def test_a_file_mixing_units_is_refused_with_the_line(tmp_path: Path) -> None:
    write_in(tmp_path / "mixed.csv", "milliseconds", 1500)
    with (tmp_path / "mixed.csv").open("a") as f:
        f.write("1800000000000000,50000.0,50000.1\n")  # line 1502: microseconds
    line = error_line(gridcore("--data", "mixed.csv", cwd=tmp_path))
    assert line == (
        "gridcore: error: mixed.csv:1502: timestamp: 1800000000000000 is in microseconds but "
        "line 2 is in milliseconds; write every timestamp of the file in one unit"
    )
