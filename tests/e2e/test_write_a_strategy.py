"""The "write a strategy" example as a user runs it: a strategy of one's own, registered from
its own module, backtested, run, inspected and replayed by the real command line, and proved
with the harness."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore import Intent, Side, State, Submit
from gridcore.config import load_config
from gridcore.invariants import CATALOGUE, state_invariant
from gridcore.sim import backtest, make_bot
from gridcore.testing import MarketPath, Scenario, assert_no_violations, simulate
from gridcore.testing import strategies as gst

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFIG = EXAMPLES / "write_a_strategy.toml"
TIMEOUT = 120

sys.path.insert(0, str(EXAMPLES))
import write_a_strategy  # noqa: E402  (the example registers its kind when imported)

sys.path.remove(str(EXAMPLES))


def cli(*args: str, cwd: Path, pythonpath: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = str(EXAMPLES)
    return subprocess.run(
        [sys.executable, "-m", "gridcore.shells.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**env, "COLUMNS": "200"},
        check=False,
    )


def _one_error_line(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("gridcore: error: "), lines[0]
    assert all(w in lines[0] for w in words), lines[0]


def test_the_cli_backtests_the_registered_strategy(tmp_path: Path) -> None:
    done = cli("backtest", "--config", str(CONFIG), "--ticks", "5000", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)["summary"]
    # The library computes the same run: the CLI ran this strategy, not the grid.
    config = load_config(CONFIG.read_text(encoding="utf-8"))
    trace = backtest(config, ticks=5000)
    assert isinstance(trace.state.strategy, write_a_strategy.MeanReversion)
    expected = trace.summary
    assert (summary["orders"], summary["fills"]) == (expected.orders, expected.fills)
    assert summary["net_pnl"] == str(expected.net_pnl.normalize())
    assert expected.fills > 0 and summary["invariant_violations"] == 0
    tags = {o.tag.split(":")[1] for o in trace.state.orders.values()}
    assert tags <= {"entry", "tp", "stop"} and "entry" in tags


def test_run_inspect_replay_and_resume_a_strategy_of_ones_own(tmp_path: Path) -> None:
    config = str(CONFIG)
    first = cli(
        "run", "--journal", "j.db", "--config", config, "--speed", "max", "--duration", "3600",
        "--faults", "flaky", cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "stopped (duration reached)" in first.stdout

    report = cli("inspect", "j.db", "--json", cwd=tmp_path)
    assert report.returncode == 0, report.stdout + report.stderr
    data = json.loads(report.stdout)
    assert data["invariants"] == {"ok": True, "violations": []}
    assert data["fills"] > 0
    assert all(o["tag"].startswith("mr:") for o in data["open_orders"])

    replay = cli("replay", "j.db", cwd=tmp_path)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "deterministic" in replay.stdout

    # Resumed from the recorded configuration, which names the module again.
    second = cli("run", "--journal", "j.db", "--speed", "max", "--duration", "600", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "resuming journal j.db" in second.stderr
    again = json.loads(cli("inspect", "j.db", "--json", cwd=tmp_path).stdout)
    assert again["events"] > data["events"] and again["invariants"]["ok"]

    # Without the module on the path the journal cannot be read, and the error says why.
    lost = cli("inspect", "j.db", cwd=tmp_path, pythonpath=False)
    _one_error_line(lost, "strategy.module", "write_a_strategy", "PYTHONPATH")


def test_init_writes_a_configuration_for_the_registered_kind(tmp_path: Path) -> None:
    done = cli("init", "--strategy", "mean_reversion", "--module", "write_a_strategy", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "mean_reversion.toml").read_text(encoding="utf-8")
    assert 'kind = "mean_reversion"' in text and 'stop_loss = "0.005"' in text
    # Every key at its default: the same bot as a file that names only the kind and module.
    named = '[strategy]\nkind = "mean_reversion"\nmodule = "write_a_strategy"\n'
    assert load_config(text) == load_config(named)
    run = cli("backtest", "--config", "mean_reversion.toml", "--ticks", "500", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    unknown = cli("init", "--strategy", "mean_reversion", cwd=tmp_path, pythonpath=False)
    _one_error_line(unknown, "--strategy", "registered kinds:", "grid")


def test_a_bad_setting_of_the_kinds_table_names_the_field(tmp_path: Path) -> None:
    bad = CONFIG.read_text(encoding="utf-8").replace('order_qty = "0.002"', 'order_qty = "0.0025"')
    (tmp_path / "bad.toml").write_text(bad, encoding="utf-8")
    done = cli("backtest", "--config", "bad.toml", cwd=tmp_path)
    _one_error_line(done, "bad.toml: mean_reversion.order_qty", "lot_size")
    hedge = CONFIG.read_text(encoding="utf-8") + '\n[venue]\nposition_mode = "hedge"\n'
    (tmp_path / "hedge.toml").write_text(hedge, encoding="utf-8")
    _one_error_line(cli("backtest", "--config", "hedge.toml", cwd=tmp_path), "venue.position_mode")
    missing = CONFIG.read_text(encoding="utf-8").replace('"write_a_strategy"', '"nowhere.mine"')
    (tmp_path / "missing.toml").write_text(missing, encoding="utf-8")
    _one_error_line(cli("backtest", "--config", "missing.toml", cwd=tmp_path), "strategy.module")


# --- the proof: the harness judges the strategy with the catalogue and its own invariant --------

INVARIANTS = (
    *CATALOGUE,
    *(state_invariant(check) for check in write_a_strategy.MEAN_REVERSION.invariants),
)


@settings(deadline=None, max_examples=15)  # a run's duration depends on the market drawn
@given(data=st.data())
def test_the_strategy_keeps_every_invariant_under_faults(data: st.DataObject) -> None:
    config = load_config(CONFIG.read_text(encoding="utf-8"))
    market = st.just(config.make_instrument())
    scenario: Scenario = data.draw(
        gst.scenarios(market=gst.market_paths(instrument=market, max_ticks=600))
    )
    bot = make_bot(config, epoch=scenario.market.start_ts)
    assert_no_violations(simulate(bot, scenario, invariants=INVARIANTS))


@attrs.frozen(kw_only=True)
class Impatient(write_a_strategy.MeanReversion):
    """A broken variant: bids every dip again while its last entry is still out."""

    def decide(self, view: State[Self]) -> tuple[Self, Sequence[Intent]]:
        new, intents = super().decide(view)
        cfg, quote = self.config, view.quotes.get((self.config.venue, self.config.symbol))
        if intents or quote is None or self.average is None or not view.can_trade(cfg.venue):
            return new, intents
        if view.live_orders(f"{cfg.tag}:entry:") and quote.mid < self.average:
            again = Submit(venue=cfg.venue, symbol=cfg.symbol, side=Side.BUY, qty=cfg.order_qty,
                           price=quote.bid, tag=f"{cfg.tag}:entry:{self.cycle + 1}")  # fmt: skip
            return attrs.evolve(self, cycle=self.cycle + 1), [again]
        return new, intents


def test_the_kinds_invariant_catches_a_broken_variant() -> None:
    config = load_config(CONFIG.read_text(encoding="utf-8"))
    scenario = Scenario(market=MarketPath(instrument=config.make_instrument(), ticks=3000))
    fine = make_bot(config, epoch=scenario.market.start_ts)
    assert simulate(fine, scenario, invariants=INVARIANTS).violations == ()
    broken = attrs.evolve(fine, strategy=Impatient(config=config.settings))
    names = {v.invariant for v in simulate(broken, scenario, invariants=INVARIANTS).violations}
    assert "one_cycle_at_a_time" in names


def test_an_installed_user_gets_the_example_and_runs_it(tmp_path: Path) -> None:
    done = cli("init", "--example", "write-a-strategy", cwd=tmp_path, pythonpath=False)
    assert done.returncode == 0, done.stderr
    written = (tmp_path / "write_a_strategy.py").read_text(encoding="utf-8")
    assert written == (EXAMPLES / "write_a_strategy.py").read_text(encoding="utf-8")
    assert "gridcore init --strategy mean_reversion --module write_a_strategy" in done.stderr
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    steps = (
        ("init", "--strategy", "mean_reversion", "--module", "write_a_strategy"),
        ("backtest", "--config", "mean_reversion.toml", "--ticks", "3000", "--json"),
    )
    for args in steps:
        run = subprocess.run(
            [sys.executable, "-m", "gridcore.shells.cli", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env={**env, "PYTHONPATH": str(tmp_path)},
            check=False,
        )
        assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["summary"]["orders"] > 0


def test_an_installed_package_is_found_by_its_entry_point_alone(tmp_path: Path) -> None:
    """A package that declares its kind in the gridcore.strategies group needs no module key;
    only the entry point named by the configured kind is loaded (another one that would fail
    on import is never touched)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "write_a_strategy.py").write_text(
        (EXAMPLES / "write_a_strategy.py").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (site / "exploding.py").write_text("raise RuntimeError('imported')\n", encoding="utf-8")
    info = site / "mybots-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mybots\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[gridcore.strategies]\n"
        "mean_reversion = write_a_strategy:MEAN_REVERSION\n"
        "exploding = exploding\n"
    )
    (tmp_path / "bot.toml").write_text(
        '[strategy]\nkind = "mean_reversion"\n[market]\nticks = 500\n'
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run(
        [sys.executable, "-m", "gridcore.shells.cli", "backtest", "--config", "bot.toml", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**env, "PYTHONPATH": str(site)},
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["summary"]["ticks"] == 500
