"""A several-pair funding-arbitrage backtest as a user reads it: no summary row adds up base
quantities of different instruments (BTC and ETH), and the market row is one instrument's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAIRS = ROOT / "examples" / "funding_arb_pairs.toml"
ONE_PAIR = ROOT / "examples" / "funding_arb.toml"
TIMEOUT = 300


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


def test_positions_are_reported_per_asset_and_the_market_row_is_one_instrument(
    tmp_path: Path,
) -> None:
    done = cli("backtest", "--config", str(PAIRS), "--ticks", "3000", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["summary"]["max_position"] is None
    assert doc["summary"]["final_position"] is None
    positions = doc["positions"]
    assert set(positions) == {"BTC", "ETH"}
    # The ETH pair enters 1,500 USD a leg at about 3,000: half an ETH, far from any BTC size.
    assert Decimal(positions["ETH"]["max_position"]) > Decimal("0.1")
    assert Decimal(positions["BTC"]["max_position"]) < Decimal("0.1")
    results = doc["results"]
    start, end = Decimal(results["market_start_mid"]), Decimal(results["market_end_mid"])
    assert abs(end - start) / start < Decimal("0.1")  # BTC against BTC, not BTC against ETH

    table = cli("backtest", "--config", str(PAIRS), "--ticks", "3000", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    rows = [line for line in table.stdout.splitlines() if " position (" in line]
    labels = sorted(line.split("│")[1].strip() for line in rows)
    assert labels == [
        "final position (BTC)",
        "final position (ETH)",
        "max position (BTC)",
        "max position (ETH)",
    ]


def test_one_pair_keeps_the_summary_position_rows(tmp_path: Path) -> None:
    done = cli("backtest", "--config", str(ONE_PAIR), "--ticks", "2000", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert "positions" not in doc
    assert doc["summary"]["max_position"] is not None
