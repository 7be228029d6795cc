"""The funding-rate arbitrage as a user runs it: ``gridcore backtest --config
examples/funding_arb.toml`` through the real command line, two simulated venues, the strategy's
own summary (entries, exits, rollbacks with their cause, naked-exposure time, funding per venue,
fees, net PnL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "funding_arb.toml"
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


def test_the_example_backtests_on_two_venues_and_prints_the_strategy_metrics(
    tmp_path: Path,
) -> None:
    done = cli("backtest", "--config", str(EXAMPLE), "--ticks", "20000", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for label in (
        "entries",
        "exits",
        "rollbacks",
        "naked exposure",
        "funding a",
        "funding b",
        "fees",
        "net PnL",
    ):
        assert label in out, label
    assert "invariant violations" in out


def test_json_carries_the_strategy_metrics_and_is_reproducible(tmp_path: Path) -> None:
    args = ("backtest", "--config", str(EXAMPLE), "--ticks", "20000", "--faults", "flaky")
    one = cli(*args, "--json", cwd=tmp_path)
    two = cli(*args, "--json", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    doc, again = json.loads(one.stdout), json.loads(two.stdout)
    doc.pop("performance")
    again.pop("performance")
    assert doc == again
    rows = doc["strategy_metrics"]
    assert rows["entries"].split()[0].isdigit() and int(rows["entries"].split()[0]) >= 1
    assert doc["summary"]["invariant_violations"] == 0
    funding = Decimal(rows["funding a"].replace(",", "")) + Decimal(
        rows["funding b"].replace(",", "")
    )
    assert abs(funding - Decimal(doc["summary"]["funding"])) < Decimal("0.0002")


def test_a_bad_setting_is_one_error_line_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        EXAMPLE.read_text(encoding="utf-8").replace('exit_apr = "0"', 'exit_apr = "0.9"'),
        encoding="utf-8",
    )
    done = cli("backtest", "--config", str(bad), cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gridcore: error: ")
    assert "funding_arb.exit_apr" in lines[0]


def test_recorded_funding_rates_from_a_csv_named_in_the_config(tmp_path: Path) -> None:
    rates = EXAMPLE.parent / "funding_rates.csv"
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        'sim_rate_volatility = "0.0001"',
        f'sim_rate_volatility = "0.0001"\nsim_rates_csv = "{rates.as_posix()}"',
    )
    good = tmp_path / "recorded.toml"
    good.write_text(text, encoding="utf-8")
    done = cli("backtest", "--config", str(good), "--ticks", "20000", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    synthetic = json.loads(
        cli("backtest", "--config", str(EXAMPLE), "--ticks", "20000", "--json", cwd=tmp_path).stdout
    )
    assert doc["strategy_metrics"]["funding b"] != synthetic["strategy_metrics"]["funding b"]
    broken = tmp_path / "broken.csv"
    broken.write_text("timestamp,venue,rate\nsoon,a,0.1\n", encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(rates.as_posix(), broken.as_posix()), encoding="utf-8")
    done = cli("backtest", "--config", str(bad), cwd=tmp_path)
    assert done.returncode == 2
    assert "funding_arb.sim_rates_csv" in done.stderr and "line 2" in done.stderr
