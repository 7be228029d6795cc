"""The picture of a backtest: price with the grid's levels and fills, position, net PnL,
drawdown, and the feed outages shaded across every panel. For a hedge grid the price panel
shows both ladders instead (each side's pending entry and take-profit over time, fills by side
and kind) and the position panel each side's position and the net; :class:`LadderRecorder`
notes them while the backtest runs.

Needs matplotlib (``pip install 'gridcore[plot]'``); importing this module without it raises
``ModuleNotFoundError``, which the command line turns into that advice. Drawing uses the Agg
backend, attached to each figure (no display needed, and pyplot's global backend is left alone
for users who import this in a notebook). Decimals become floats here for drawing only: nothing drawn is
fed back into any computation.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import matplotlib.dates as mdates
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gridcore.core import State, step
from gridcore.events import Event
from gridcore.instruments import PositionSide, Side
from gridcore.sim import Trace
from gridcore.sim.results import Outage
from gridcore.strategies.grid import NeutralGrid
from gridcore.strategies.hedge_grid import SideFigures, order_role, side_figures

__all__ = [
    "FORMATS",
    "LadderPoint",
    "LadderRecorder",
    "plot_heatmap",
    "plot_trace",
    "trace_figure",
]

#: File types :func:`plot_trace` writes, by suffix.
FORMATS = (".png", ".svg", ".pdf")
#: Fills drawn at most (evenly thinned beyond): a marker per fill stops being readable anyway.
MAX_FILL_MARKERS = 5_000
#: Grids with more levels a side than this draw only their bounds and center (a line per level
#: beyond it is a solid band, not information).
MAX_LEVEL_LINES = 25


def _times(ts: Sequence[int]) -> np.ndarray:
    return np.array(ts, dtype="datetime64[ms]")


def _floats(values: Sequence[Decimal | None]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def _levels(trace: Trace) -> int:
    grid = trace.state.strategy
    return grid.config.levels if isinstance(grid, NeutralGrid) else 0


@attrs.frozen(kw_only=True)
class LadderPoint:
    """Both sides of a hedge grid at ``ts``: :class:`~gridcore.strategies.hedge_grid.SideFigures`
    of LONG then SHORT, as :func:`~gridcore.strategies.hedge_grid.side_figures` gives them."""

    ts: int
    sides: tuple[SideFigures, ...]


def _drawn(sides: tuple[SideFigures, ...]) -> tuple[object, ...]:
    # What the plot draws of a side: a point is kept only when one of these changed.
    return tuple((f.pending_entry, f.take_profit, f.position, f.avg_entry) for f in sides)


class LadderRecorder:
    """Wraps a reducer (default :func:`gridcore.core.step`) and notes, while a backtest of a
    hedge grid runs, a :class:`LadderPoint` whenever an order or the ledger changed what the
    plot draws (each side's pending entry, take-profit, position and average entry), and the
    role (``entry``, ``tp``, ``stop``) of every order the grid named, by cloid, so that the
    venue's fills can be drawn by kind. Pass it as ``reducer=`` (inside
    :class:`~gridcore.sim.results.Recorder` if both are wanted). Only ``--plot`` pays for it."""

    def __init__(self, reducer: Any = step) -> None:
        self._reducer = reducer
        self.points: list[LadderPoint] = []
        """The points, in time order."""
        self.roles: dict[str, str] = {}
        """The role of each order of the grid, by cloid."""
        self._last: tuple[object, ...] | None = None

    def __call__(self, state: State[Any], event: Event) -> tuple[State[Any], list[Any]]:
        after, commands = self._reducer(state, event)
        if after.orders is not state.orders or after.ledger is not state.ledger:
            for order in after.live_orders():  # an order is live for a step at least
                if order.cloid not in self.roles:
                    role = order_role(order)
                    if role is not None:
                        self.roles[order.cloid] = role
            sides = side_figures(after)
            drawn = _drawn(sides)
            if sides and drawn != self._last:
                self._last = drawn
                self.points.append(LadderPoint(ts=after.now, sides=sides))
        return after, commands


def plot_trace(
    trace: Trace,
    path: str | Path,
    *,
    title: str = "",
    outages: Sequence[Outage] = (),
    ladders: LadderRecorder | None = None,
) -> None:
    """Draw ``trace`` to ``path`` (``.png``, ``.svg`` or ``.pdf``): the figure of
    :func:`trace_figure`."""
    trace_figure(trace, title=title, outages=outages, ladders=ladders).savefig(path)


def trace_figure(
    trace: Trace,
    *,
    title: str = "",
    outages: Sequence[Outage] = (),
    ladders: LadderRecorder | None = None,
) -> Figure:
    """The picture of ``trace`` (an Agg figure, not saved): four panels sharing the
    time axis — mid price with the grid's levels (bounds dashed, center dotted, inner levels
    faint) and buy/sell fills, position (base units), net PnL (quote, unrealized included) and
    its drawdown from the running peak. ``outages`` (feed down) are shaded on every panel. Needs
    ``trace.samples`` (run the backtest with ``sample_every``); raises ``ValueError`` when there
    are none.

    With ``ladders`` (a hedge grid's :class:`LadderRecorder` of the same run) the price panel
    shows both ladders instead of grid levels: each side's pending entry (LONG below the mid,
    SHORT above) and take-profit over time, and the fills by side and kind (entry, take-profit,
    stop); the position panel shows the LONG and the SHORT position and the net. The grid's
    bounds and levels are drawn for a neutral grid only."""
    samples = trace.samples
    if not samples:
        raise ValueError("the trace has no samples; run the backtest with sample_every > 0")
    venue = trace.exchange.config
    quote = venue.asset
    bases = {i.base for i in venue.instruments if i.base}
    base = bases.pop() if len(bases) == 1 else "base units"
    t = _times([s.ts for s in samples])
    mid = _floats([s.mid for s in samples])
    fig = Figure(figsize=(12, 10), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)  # Agg, set on this figure only: the process-wide backend is untouched
    ax_price, ax_pos, ax_pnl, ax_dd = fig.subplots(
        4, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.1, 1.3, 1.0]}
    )

    ax_price.plot(t, mid, color="#333333", linewidth=0.8, label="mid", zorder=2)
    hedge = ladders is not None and bool(ladders.points)
    if isinstance(trace.state.strategy, NeutralGrid):
        # The grid's bounds, center and levels: only a grid has them (no grid legend otherwise).
        upper = _floats([s.grid_upper for s in samples])
        lower = _floats([s.grid_lower for s in samples])
        center = _floats([s.grid_center for s in samples])
        ax_price.fill_between(
            t, lower, upper, step="post", color="#4c72b0", alpha=0.08, linewidth=0, zorder=1
        )
        ax_price.step(t, upper, where="post", color="#4c72b0", linewidth=0.9, linestyle="--")
        ax_price.step(
            t,
            lower,
            where="post",
            color="#4c72b0",
            linewidth=0.9,
            linestyle="--",
            label="grid bounds",
        )
        ax_price.step(
            t,
            center,
            where="post",
            color="#4c72b0",
            linewidth=0.7,
            linestyle=":",
            label="grid center",
        )
        n = _levels(trace)
        if 1 < n <= MAX_LEVEL_LINES:
            # Levels are evenly spaced between center and bounds: k/n of the way out, each side.
            for k in range(1, n):
                for bound in (upper, lower):
                    ax_price.step(
                        t,
                        center + (bound - center) * k / n,
                        where="post",
                        color="#4c72b0",
                        linewidth=0.4,
                        alpha=0.35,
                        label="grid levels" if (k, bound is upper) == (1, True) else None,
                    )
    if hedge:
        assert ladders is not None
        _draw_ladders(ax_price, ladders, last=samples[-1].ts)
        _draw_fills_by_kind(ax_price, trace, ladders)
    else:
        fills = trace.exchange.fill_sample()
        if len(fills) > MAX_FILL_MARKERS:
            stride = -(-len(fills) // MAX_FILL_MARKERS)
            fills = fills[::stride]
        for side, marker, color, label in (
            (Side.BUY, "^", "#2ca02c", "buy fill"),
            (Side.SELL, "v", "#d62728", "sell fill"),
        ):
            chosen = [f for f in fills if f.side is side]
            if chosen:
                ax_price.scatter(
                    _times([f.ts for f in chosen]),
                    _floats([f.price for f in chosen]),
                    marker=marker,
                    s=22,
                    color=color,
                    edgecolors="none",
                    alpha=0.85,
                    label=f"{label}s ({trace.exchange.fills_by_side(side)})",
                    zorder=3,
                )
    ax_price.set_ylabel(f"price ({quote})")
    ax_price.legend(
        loc="lower left",
        bbox_to_anchor=(0, 1),
        fontsize="small",
        ncols=6 if hedge else 5,
        frameon=False,
    )
    ax_price.grid(alpha=0.25)

    position = _floats([s.position for s in samples])
    if hedge:
        assert ladders is not None
        _draw_side_positions(ax_pos, ladders, last=samples[-1].ts)
        ax_pos.step(t, position, where="post", color="#8172b2", linewidth=0.9, label="net")
        ax_pos.legend(loc="upper left", fontsize="x-small", ncols=3, frameon=False)
    else:
        ax_pos.step(t, position, where="post", color="#8172b2", linewidth=0.9)
        ax_pos.fill_between(t, 0, position, step="post", color="#8172b2", alpha=0.25, linewidth=0)
    ax_pos.axhline(0, color="#999999", linewidth=0.6)
    ax_pos.set_ylabel(f"position ({base})")
    ax_pos.grid(alpha=0.25)

    pnl = _floats([s.pnl for s in samples])
    ax_pnl.plot(t, pnl, color="#dd8452", linewidth=0.9)
    ax_pnl.fill_between(t, 0, pnl, where=pnl >= 0, color="#2ca02c", alpha=0.15, linewidth=0)
    ax_pnl.fill_between(t, 0, pnl, where=pnl < 0, color="#d62728", alpha=0.15, linewidth=0)
    ax_pnl.axhline(0, color="#999999", linewidth=0.6)
    ax_pnl.set_ylabel(f"net PnL ({quote})")
    ax_pnl.grid(alpha=0.25)

    # Drawdown of the sampled net PnL from its running peak (peak starts at 0, the start).
    peak = np.maximum.accumulate(np.concatenate(([0.0], pnl)))[1:]
    fall = pnl - peak
    ax_dd.fill_between(t, fall, 0, step="post", color="#d62728", alpha=0.3, linewidth=0)
    ax_dd.step(t, fall, where="post", color="#d62728", linewidth=0.8)
    ax_dd.set_ylabel(f"drawdown ({quote})")
    ax_dd.set_xlabel("time (UTC)")
    ax_dd.grid(alpha=0.25)

    last = samples[-1].ts
    for i, outage in enumerate(outages):
        start = np.datetime64(outage.start, "ms")
        end = np.datetime64(outage.end if outage.end is not None else last, "ms")
        for ax in (ax_price, ax_pos, ax_pnl, ax_dd):
            ax.axvspan(
                start,
                end,
                color="#999999",
                alpha=0.25,
                linewidth=0,
                label=f"feed down ({len(outages)})" if i == 0 and ax is ax_price else None,
            )
    if outages:
        ax_price.legend(
            loc="lower left", bbox_to_anchor=(0, 1), fontsize="small", ncols=6, frameon=False
        )

    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call,unused-ignore]
    ax_dd.xaxis.set_major_locator(locator)
    formatter = mdates.ConciseDateFormatter(locator)  # type: ignore[no-untyped-call,unused-ignore]
    ax_dd.xaxis.set_major_formatter(formatter)

    if title:
        fig.suptitle(title, fontsize="medium")
    return fig


#: Colors of the sides: LONG green, SHORT red (the fills keep them, their marker says the kind).
SIDE_COLORS = {PositionSide.LONG: "#2ca02c", PositionSide.SHORT: "#d62728"}
#: Markers and names of the kinds of fills of a hedge grid; "other" is any fill of an order the
#: grid did not name (a manual trade, a liquidation).
FILL_KINDS = (
    ("entry", "entry fills", {PositionSide.LONG: "^", PositionSide.SHORT: "v"}),
    ("tp", "take-profit fills", {PositionSide.LONG: "o", PositionSide.SHORT: "o"}),
    ("stop", "stop fills", {PositionSide.LONG: "X", PositionSide.SHORT: "X"}),
    ("other", "other fills", {PositionSide.LONG: "d", PositionSide.SHORT: "d"}),
)


def _series(
    ladders: LadderRecorder, side: PositionSide, last: int, value: Any
) -> tuple[np.ndarray, np.ndarray]:
    """``value(figures)`` of ``side`` at each point, held to ``last`` (a step series)."""
    points = ladders.points
    ts = [p.ts for p in points] + [max(last, points[-1].ts)]
    picked = [next(f for f in p.sides if f.side is side) for p in points]
    values = [value(f) for f in picked]
    return _times(ts), _floats([*values, values[-1]])


def _draw_ladders(ax: Any, ladders: LadderRecorder, *, last: int) -> None:
    for side in (PositionSide.LONG, PositionSide.SHORT):
        color = SIDE_COLORS[side]
        name = side.name
        t, entry = _series(ladders, side, last, lambda f: f.pending_entry)
        ax.step(t, entry, where="post", color=color, linewidth=1.0, label=f"{name} pending entry")
        t, tp = _series(ladders, side, last, lambda f: f.take_profit)
        ax.step(
            t,
            tp,
            where="post",
            color=color,
            linewidth=1.0,
            linestyle="--",
            label=f"{name} take-profit",
        )
        t, avg = _series(ladders, side, last, lambda f: f.avg_entry if f.position else None)
        ax.step(
            t,
            avg,
            where="post",
            color=color,
            linewidth=0.7,
            linestyle=":",
            alpha=0.8,
            label=f"{name} average entry",
        )


def _draw_fills_by_kind(ax: Any, trace: Trace, ladders: LadderRecorder) -> None:
    # A long run's venue model remembers its recent fills only: the older ones are an even
    # sample, so the counts are of the drawn fills then.
    every = trace.exchange.fill_sample()
    sampled = trace.exchange.forgotten.fills > 0
    fills = every
    if len(fills) > MAX_FILL_MARKERS:
        stride = -(-len(fills) // MAX_FILL_MARKERS)
        fills = fills[::stride]
    roles = ladders.roles

    def kind(cloid: str | None) -> str:
        return roles.get(cloid or "", "other")

    for side in (PositionSide.LONG, PositionSide.SHORT):
        for role, name, markers in FILL_KINDS:
            chosen = [f for f in fills if f.position_side is side and kind(f.cloid) == role]
            if not chosen:
                continue
            count = sum(1 for f in every if f.position_side is side and kind(f.cloid) == role)
            ax.scatter(
                _times([f.ts for f in chosen]),
                _floats([f.price for f in chosen]),
                marker=markers[side],
                s=30 if role != "entry" else 22,
                color=SIDE_COLORS[side],
                edgecolors="black" if role in ("tp", "stop") else "none",
                linewidths=0.5,
                alpha=0.9,
                label=f"{side.name} {name} ({count}{', sampled' if sampled else ''})",
                zorder=3,
            )


def _draw_side_positions(ax: Any, ladders: LadderRecorder, *, last: int) -> None:
    for side in (PositionSide.LONG, PositionSide.SHORT):
        t, qty = _series(ladders, side, last, lambda f: f.position)
        color = SIDE_COLORS[side]
        ax.step(t, qty, where="post", color=color, linewidth=0.9, label=side.name)
        ax.fill_between(t, 0, qty, step="post", color=color, alpha=0.15, linewidth=0)


def plot_heatmap(
    ranked: Sequence[Any], x_key: str, y_key: str, figure: str, path: str | Path
) -> None:
    """Draw a sweep's ``figure`` (the mean over seeds) as a heatmap over two swept settings:
    ``x_key`` across, ``y_key`` up, each cell annotated with its value (blank: undefined).
    ``ranked`` are :class:`gridcore.shells.cli_sweep.Ranked` combinations."""
    xs: list[object] = []
    ys: list[object] = []
    cells: dict[tuple[str, str], float] = {}
    for r in ranked:
        params = dict(r.params)
        x, y = params[x_key], params[y_key]
        if x not in xs:
            xs.append(x)
        if y not in ys:
            ys.append(y)
        value = r.figures.get(figure)
        if value is not None:
            cells[(repr(x), repr(y))] = float(value)

    def order(values: list[object]) -> list[object]:
        try:
            return sorted(values, key=lambda v: Decimal(str(v)))
        except ArithmeticError:
            return values

    xs, ys = order(xs), order(ys)
    grid = np.full((len(ys), len(xs)), np.nan)
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            grid[i, j] = cells.get((repr(x), repr(y)), np.nan)
    fig = Figure(figsize=(max(5.0, 1.0 + 0.9 * len(xs)), max(4.0, 1.5 + 0.5 * len(ys))), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    finite = grid[np.isfinite(grid)]
    bound = float(np.max(np.abs(finite))) if finite.size else 1.0
    diverging = finite.size > 0 and float(finite.min()) < 0 < float(finite.max())
    image = ax.imshow(
        grid,
        origin="lower",
        aspect="auto",
        cmap="RdYlGn"
        if diverging or figure not in ("max_drawdown", "max_drawdown_pct")
        else "RdYlGn_r",
        vmin=-bound if diverging else None,
        vmax=bound if diverging else None,
    )
    ax.set_xticks(range(len(xs)), [str(x) for x in xs])
    ax.set_yticks(range(len(ys)), [str(y) for y in ys])
    ax.set_xlabel(x_key)
    ax.set_ylabel(y_key)
    if len(xs) * len(ys) <= 400:
        for i in range(len(ys)):
            for j in range(len(xs)):
                if np.isfinite(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.4g}", ha="center", va="center", fontsize="x-small")
    fig.colorbar(image, ax=ax, label=figure)
    ax.set_title(f"gridcore sweep: {figure} by {x_key} and {y_key}", fontsize="medium")
    fig.tight_layout()
    fig.savefig(path)
