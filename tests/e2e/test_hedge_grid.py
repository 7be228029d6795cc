"""The hedge grid through the real command line: backtest, paper run, kill and recover.

``examples/hedge_grid.toml`` names only ``[strategy] kind = "hedge_grid"``: the kind is built
in, so no module and no ``PYTHONPATH`` are needed.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

from gridcore.instruments import PositionSide
from gridcore.shells.journal import Journal
from gridcore.shells.render import Display, side_dict, side_lines
from gridcore.shells.simvenue import saved_venue
from gridcore.strategies.hedge_grid import HedgeGrid, side_figures

from .paper_runs import HANG_S, run_until_killed, start
from .test_crash import _check_journal

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hedge_grid.toml"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-m", "gridcore.shells.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_S,
        check=False,
    )


def test_backtest_prints_the_per_side_figures(tmp_path: Path) -> None:
    done = cli("backtest", "--config", str(EXAMPLE), "--ticks", "4000", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["summary"]["invariant_violations"] == 0
    figures = doc["strategy_metrics"]
    for side in ("long", "short"):
        for what in ("entries filled", "averaging depth (max)", "take-profits hit", "realized PnL"):
            assert f"{side} {what}" in figures
    assert int(figures["long entries filled"]) + int(figures["short entries filled"]) > 0
    assert doc["summary"]["fills"] > 0
    sides = doc["sides"]
    assert set(sides) == {"long", "short"}
    for side in sides.values():
        assert side["currency"] == "USD"
        for key in ("entries_filled", "max_depth", "take_profits", "take_profit_failures"):
            assert isinstance(side[key], int)
        for key in ("realized_pnl", "fees", "position", "avg_entry"):
            assert isinstance(side[key], str)
    assert sides["short"]["take_profits"] == int(figures["short take-profits hit"])
    table = cli("backtest", "--config", str(EXAMPLE), "--ticks", "4000", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "hedge grid per side" in table.stdout
    rows = {
        line.strip("│┃ ").split("│")[0].strip(): [
            c.strip() for c in line.strip("│ ").split("│")[1:]
        ]
        for line in table.stdout.splitlines()
        if line.startswith("│")
    }
    assert rows["take-profits hit"] == [
        str(sides["long"]["take_profits"]),
        str(sides["short"]["take_profits"]),
    ]
    for label in ("take-profit failures", "stops", "realized PnL (USD)", "fees paid (USD)"):
        assert len(rows[label]) == 2, label
    # Money at the currency's two places, whatever the exact figure.
    assert all(re.fullmatch(r"-?[\d,]+\.\d\d", v) for v in rows["fees paid (USD)"])


def test_backtest_plot_of_a_hedge_grid_is_written(tmp_path: Path) -> None:
    done = cli(
        "backtest", "--config", str(EXAMPLE), "--ticks", "3000", "--plot", "hg.png", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "plot written to hg.png" in done.stdout
    assert (tmp_path / "hg.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_one_way_account_is_refused_naming_the_field(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        'position_mode = "hedge"', 'position_mode = "one_way"'
    )
    (tmp_path / "bad.toml").write_text(text, encoding="utf-8")
    done = cli("backtest", "--config", "bad.toml", cwd=tmp_path)
    assert done.returncode == 2
    assert "venue.position_mode" in done.stderr and "Traceback" not in done.stderr
    typo = EXAMPLE.read_text(encoding="utf-8").replace("take_profit =", "take_proft =")
    (tmp_path / "typo.toml").write_text(typo, encoding="utf-8")
    done = cli("backtest", "--config", "typo.toml", cwd=tmp_path)
    assert done.returncode == 2 and "hedge_grid.take_proft" in done.stderr


def test_paper_run_trades_both_sides_in_hedge_mode(tmp_path: Path) -> None:
    journal = tmp_path / "hg.db"
    done = cli(
        "run",
        "--journal",
        str(journal),
        "--config",
        str(EXAMPLE),
        "--duration",
        "3600",
        "--speed",
        "max",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    state, _, fill_ids = _check_journal(journal)
    assert isinstance(state.strategy, HedgeGrid)
    assert fill_ids
    sides = {o.position_side for o in state.orders.values()}
    assert sides == {PositionSide.LONG, PositionSide.SHORT}
    # The stop summary prints each side's figures: those of the journaled state, as people
    # see them (the rows of the backtest's per-side table).
    printed = [line for line in done.stdout.splitlines() if line.startswith(("LONG:", "SHORT:"))]
    assert printed == side_lines(side_figures(state), Display(state.config))
    assert printed[0].startswith("LONG: phase ")
    assert "take-profit failures" in printed[1] and " USD" in printed[1]
    inspect = cli("inspect", str(journal), cwd=tmp_path)
    assert inspect.returncode == 0, inspect.stderr
    assert "hedge grid per side" in inspect.stdout
    report = cli("inspect", str(journal), "--json", cwd=tmp_path)
    assert json.loads(report.stdout)["sides"] == side_dict(side_figures(state))


def test_kill_at_any_point_and_recover_exactly(tmp_path: Path) -> None:
    """Failure `torn-state-file`: there is no state file. The real ``gridcore run`` on this
    strategy is SIGKILLed after a drawn number of journaled events (never timed) and restarted;
    after every kill the recovered state equals the fold of the journal, no fill is counted
    twice and no order was sent twice. A last clean run settles against the venue."""
    rng = random.Random(20_261_129)
    path = tmp_path / "hg.db"
    config = ("--config", str(EXAMPLE))
    last_seq = 0
    cycles = 6
    for _ in range(cycles):
        target = last_seq + rng.randint(1, 300)
        run_until_killed(
            path, target, *config, "--speed", "3000", "--faults", "chaos", "--seed", "11"
        )
        state, seq, _ = _check_journal(path)
        assert isinstance(state.strategy, HedgeGrid)
        assert seq >= target
        last_seq = seq
    final = start(path, *config, "--speed", "max", "--duration", "240", "--faults", "none")
    _, final_err = final.communicate(timeout=HANG_S)
    assert final.returncode == 0, final_err
    state, _, fill_ids = _check_journal(path)
    venue = saved_venue(path)
    assert venue is not None
    assert fill_ids == {f.fill_id for f in venue.exchange.fills}
    for (symbol, side), position in venue.exchange.positions.items():
        assert state.ledger.position(venue.exchange.config.venue, symbol, side).qty == position.qty
    with Journal.open(path, readonly=True) as journal:
        starts = sum(type(e).__name__ == "Started" for _, e in journal.events())
    assert starts == cycles + 1
