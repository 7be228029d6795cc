"""Several symbol pairs in the funding-rate arbitrage as a user runs them:
``examples/funding_arb_pairs.toml`` (BTC and ETH, named differently on each venue) through the
real command line, as a backtest (per-pair figures in the summary and in ``--json``, rates per
symbol from a CSV) and as paper on two simulated venues (``gridcore run``, then ``inspect``).
Short runs: a few seconds each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "funding_arb_pairs.toml"
RATES = ROOT / "examples" / "funding_rates_pairs.csv"
TIMEOUT = 300  # a safety net against hangs only
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


def _farm(tmp_path: Path, extra: str = "") -> Path:
    """The example in farm mode (entries at once, whatever the edge) so that a short run
    trades both pairs."""
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        'mode = "arb"', 'mode = "farm"\nfarm_hold_ms = 900000' + extra
    )
    path = tmp_path / "pairs.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_pairs_example_backtests_with_figures_per_pair(tmp_path: Path) -> None:
    config = _farm(tmp_path)
    done = cli("backtest", "--config", str(config), "--ticks", TICKS, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for pair in ("BTC-USD/BTC", "ETH-USD/ETH"):
        for label in ("entries", "exits", "rollbacks", "naked exposure", "funding a", "fees USD"):
            assert f"{pair} {label}" in done.stdout, (pair, label)
    assert "net PnL USD" in done.stdout

    doc = json.loads(
        cli("backtest", "--config", str(config), "--ticks", TICKS, "--json", cwd=tmp_path).stdout
    )
    assert doc["summary"]["invariant_violations"] == 0
    pairs = doc["pairs"]
    assert [p["pair"] for p in pairs] == ["BTC-USD/BTC", "ETH-USD/ETH"]
    assert all(p["hedged"] >= 1 for p in pairs), pairs
    for p in pairs:
        assert set(p) >= {
            "entries",
            "exits",
            "rollbacks",
            "rollback_causes",
            "naked_max_ms",
            "naked_total_ms",
            "funding",
            "fees",
            "net_pnl",
        }
    # Totals per settlement currency: the pairs' net PnL adds up to the run's.
    net = sum((Decimal(p["net_pnl"]["USD"]) for p in pairs), Decimal(0))
    assert abs(net - Decimal(doc["summary"]["net_pnl"])) < Decimal("0.0001")
    settings = doc["results"]["settings"]
    assert [p["symbol_b"] for p in settings["pairs"]] == ["ETH"]


def test_recorded_rates_per_symbol_from_a_csv(tmp_path: Path) -> None:
    config = _farm(tmp_path, f'\nsim_rates_csv = "{RATES.as_posix()}"')
    done = cli("backtest", "--config", str(config), "--ticks", TICKS, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["summary"]["invariant_violations"] == 0
    assert len(doc["pairs"]) == 2


def test_a_duplicate_pair_is_one_error_line_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        EXAMPLE.read_text(encoding="utf-8").replace('symbol_a = "ETH-USD"', 'symbol_a = "BTC-USD"'),
        encoding="utf-8",
    )
    done = cli("backtest", "--config", str(bad), cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "funding_arb.pairs[1].symbol_a" in lines[0], lines


def test_the_pairs_example_runs_paper_on_two_venues(tmp_path: Path) -> None:
    config = _farm(tmp_path)
    journal = tmp_path / "j.db"
    run = ("run", "--config", str(config), "--journal", str(journal), "--speed", "max", "-q")
    done = cli(*run, "--duration", "900", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # Again, from the journal and both venues' files: the bot resumes.
    again = cli(*run, "--duration", "120", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    shown = cli("inspect", str(journal), "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    held = {(p["venue"], p["symbol"]): Decimal(p["qty"]) for p in doc["positions"]}
    # Both pairs traded, each hedged across the venues (or closed on both).
    assert {s for _, s in held} == {"BTC-USD", "BTC", "ETH-USD", "ETH"}, held
    assert held[("a", "BTC-USD")] == -held[("b", "BTC")]
    assert held[("a", "ETH-USD")] == -held[("b", "ETH")]
    replay = cli("replay", str(journal), cwd=tmp_path)
    assert replay.returncode == 0, replay.stdout + replay.stderr
