"""The examples stay true: the example config is the default, and the runner script runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from gridcore.config import DEFAULT_TOML, load_config
from gridcore.sim import backtest, profile

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_example_config_is_the_embedded_default_byte_for_byte() -> None:
    assert (EXAMPLES / "grid.toml").read_bytes() == DEFAULT_TOML.encode("utf-8")


def test_example_config_loads_to_the_default_config() -> None:
    text = (EXAMPLES / "grid.toml").read_text(encoding="utf-8")
    assert load_config(text, source="grid.toml") == load_config()


def test_run_backtest_example_prints_what_the_library_computes(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "run_backtest.py"), "3000"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    expected = backtest(load_config(), ticks=3000, faults=profile("flaky")).summary
    match = re.search(
        r"^(\d+) ticks under 'flaky' faults: (\d+) fills, (\d+) orders$", done.stdout, re.M
    )
    assert match is not None, done.stdout
    assert [int(g) for g in match.groups()] == [3000, expected.fills, expected.orders]
    assert f"net PnL {expected.net_pnl:.2f} USD" in done.stdout
    assert "invariant violations: 0" in done.stdout
