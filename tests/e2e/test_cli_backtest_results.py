"""``gridcore backtest`` results through the real CLI: the ``results`` keys are exactly the
documented ones, the plain summary keeps its values, and the table shows the new figures."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from gridcore.config import load_config
from gridcore.shells import render
from gridcore.shells.cli_backtest import RESULT_KEYS
from gridcore.sim import backtest

DOC = Path(__file__).resolve().parents[2] / "docs" / "backtest.md"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridcore.shells.cli", "backtest", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _documented(section: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    body = text.split(f"### `{section}`", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", body, flags=re.M)


def test_json_results_keys_are_the_documented_ones_in_order() -> None:
    result = _cli("--ticks", "3000", "--faults", "disconnects", "--seed", "2", "--json")
    assert result.returncode == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    assert list(doc) == ["summary", "results", "violations", "performance"]
    assert list(doc["results"]) == _documented("results") == list(RESULT_KEYS)
    r = doc["results"]
    assert r["venue"] == "sim" and r["symbol"] == "BTC-PERP" and r["strategy"] == "NeutralGrid"
    assert r["settings"]["levels"] == 5 and r["settings"]["spacing"] == "0.002"
    assert r["data_start_ts"] == doc["summary"]["start_ts"]
    assert r["data_start_ts"] < r["data_end_ts"] <= doc["summary"]["end_ts"]
    # Exact money: end equity is starting balance + net PnL to the last digit.
    from decimal import Decimal

    assert Decimal(r["end_equity"]) == Decimal(r["starting_balance"]) + Decimal(
        doc["summary"]["net_pnl"]
    )
    assert r["win_rate"] is None or 0 <= Decimal(r["win_rate"]) <= 1


def test_the_summary_keeps_its_values() -> None:
    """The results are added beside the summary; the summary is what the library computes
    without them."""
    result = _cli("--ticks", "4000", "--faults", "flaky", "--seed", "3", "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)["summary"]
    from gridcore.sim import profile

    plain = backtest(load_config(), seed=3, ticks=4000, faults=profile("flaky")).summary
    assert shown == render.summary_dict(plain)


def test_table_shows_header_results_and_engineering_last() -> None:
    result = _cli("--ticks", "3000")
    assert result.returncode == 0, result.stderr
    lines = [line.split("│")[1].strip() for line in result.stdout.splitlines() if "│" in line]
    labels = [line for line in lines if line]
    for label in (
        "instrument",
        "strategy",
        "data from",
        "market mid (USD)",
        "starting balance (USD)",
        "end equity (USD)",
        "return",
        "max drawdown",
        "max drawdown duration",
        "win rate",
        "profit factor",
        "fee share of gross PnL",
    ):
        assert label in labels, label
    assert labels[0] == "instrument"
    assert labels[-3:] == ["events processed", "events per second", "wall time"]


def test_outages_are_counted_and_drawn(tmp_path: Path) -> None:
    plot = tmp_path / "run.png"
    result = _cli(
        "--ticks", "20000", "--faults", "disconnects", "--seed", "3", "--json", "--plot", str(plot)
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    disconnects = doc["summary"]["injected"]["disconnects"]
    assert disconnects > 0
    # Every outage the venue injected is one the bot saw, and each lasted the profile's 20 s.
    assert doc["results"]["outages"] == disconnects
    assert doc["results"]["outage_ms"] == 20_000 * disconnects
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
