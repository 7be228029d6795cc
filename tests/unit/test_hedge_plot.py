"""The picture of a hedge-grid backtest, checked by its artists (matplotlib Agg: line labels
and legend texts), never by its pixels: both ladders, both take-profits, the fills by side and
kind, each side's position and the net; the grid's legend only for a grid."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gridcore.config import load_config
from gridcore.instruments import PositionSide
from gridcore.shells.plot import LadderRecorder, trace_figure
from gridcore.sim import Trace, backtest
from gridcore.strategies.hedge_grid import side_figures

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hedge_grid.toml"
TICKS = 4_000  # enough for entries on both sides and SHORT take-profits (seed 1)


def legend_texts(ax: Any) -> list[str]:
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


def line_labels(ax: Any) -> set[str]:
    return {str(line.get_label()) for line in ax.get_lines()}


@pytest.fixture(scope="module")
def hedge_run() -> tuple[Trace, LadderRecorder]:
    config = load_config(EXAMPLE.read_text(encoding="utf-8"))
    ladders = LadderRecorder()
    trace = backtest(config, ticks=TICKS, sample_every=20, reducer=ladders)
    return trace, ladders


def test_the_price_panel_shows_both_ladders_take_profits_and_fills_by_kind(
    hedge_run: tuple[Trace, LadderRecorder],
) -> None:
    trace, ladders = hedge_run
    fig = trace_figure(trace, ladders=ladders)
    ax_price, ax_pos = fig.axes[0], fig.axes[1]
    texts = legend_texts(ax_price)
    for side in ("LONG", "SHORT"):
        for what in ("pending entry", "take-profit", "average entry"):
            assert f"{side} {what}" in texts
            assert f"{side} {what}" in line_labels(ax_price)
    assert not [t for t in texts if t.startswith("grid")], texts
    # Fills by side and kind, each label with its count; together they are every fill.
    counts: dict[str, int] = {}
    for text in texts:
        m = re.fullmatch(r"(LONG|SHORT) (entry|take-profit|stop|other) fills \((\d+)\)", text)
        if m:
            counts[f"{m[1]} {m[2]}"] = int(m[3])
    assert counts.get("LONG entry", 0) > 0 and counts.get("SHORT entry", 0) > 0
    assert counts.get("SHORT take-profit", 0) > 0
    assert sum(counts.values()) == len(trace.exchange.fills)
    figures = {f.side: f for f in side_figures(trace.state)}
    # The venue's fills of take-profits are the take-profits the strategy counted as hit
    # (a take-profit fills whole here: the synthetic book's liquidity covers a side).
    assert counts.get("SHORT take-profit", 0) == figures[PositionSide.SHORT].take_profits
    assert counts.get("LONG take-profit", 0) == figures[PositionSide.LONG].take_profits
    # The position panel: each side and the net.
    assert legend_texts(ax_pos) == ["LONG", "SHORT", "net"]
    # Without the ladders (a library user's plot_trace) a hedge grid still gets no grid legend.
    bare = legend_texts(trace_figure(trace).axes[0])
    assert "mid" in bare and not [t for t in bare if t.startswith("grid")], bare


def test_the_ladder_recorder_follows_the_strategy_and_changes_nothing(
    hedge_run: tuple[Trace, LadderRecorder],
) -> None:
    trace, ladders = hedge_run
    points = ladders.points
    assert points and [p.ts for p in points] == sorted(p.ts for p in points)
    assert set(ladders.roles.values()) >= {"entry", "tp"}
    drawn = [(f.pending_entry, f.take_profit, f.position, f.avg_entry) for f in points[-1].sides]
    now = [
        (f.pending_entry, f.take_profit, f.position, f.avg_entry) for f in side_figures(trace.state)
    ]
    assert drawn == now  # the last point is the final state
    # A LONG entry below the touch and a SHORT one above: the ladders never cross.
    for p in points:
        long, short = p.sides
        if long.pending_entry is not None and short.pending_entry is not None:
            assert long.pending_entry < short.pending_entry
    config = load_config(EXAMPLE.read_text(encoding="utf-8"))
    plain = backtest(config, ticks=TICKS, sample_every=20)
    assert plain.summary == trace.summary


def test_a_neutral_grid_keeps_its_grid_legend_and_one_position() -> None:
    trace = backtest(load_config(), ticks=1_500, sample_every=20)
    fig = trace_figure(trace)
    texts = legend_texts(fig.axes[0])
    assert {"mid", "grid bounds", "grid center"} <= set(texts)
    assert not [t for t in texts if t.startswith(("LONG", "SHORT"))]
    assert fig.axes[1].get_legend() is None
