"""The picture of a backtest: price with the grid and fills, position, net PnL.

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

import matplotlib.dates as mdates
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gridcore.instruments import Side
from gridcore.sim import Trace

__all__ = ["FORMATS", "plot_trace"]

#: File types :func:`plot_trace` writes, by suffix.
FORMATS = (".png", ".svg", ".pdf")
#: Fills drawn at most (evenly thinned beyond): a marker per fill stops being readable anyway.
MAX_FILL_MARKERS = 5_000


def _times(ts: Sequence[int]) -> np.ndarray:
    return np.array(ts, dtype="datetime64[ms]")


def _floats(values: Sequence[Decimal | None]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def plot_trace(trace: Trace, path: str | Path, *, title: str = "") -> None:
    """Draw ``trace`` to ``path`` (``.png``, ``.svg`` or ``.pdf``): three panels sharing the
    time axis — mid price with the grid's lower/upper/center and buy/sell fills, position (base
    units), and net PnL (quote, unrealized included). Needs ``trace.samples`` (run the backtest
    with ``sample_every``); raises ``ValueError`` when there are none."""
    samples = trace.samples
    if not samples:
        raise ValueError("the trace has no samples; run the backtest with sample_every > 0")
    venue = trace.exchange.config
    quote = venue.asset
    bases = {i.base for i in venue.instruments if i.base}
    base = bases.pop() if len(bases) == 1 else "base units"
    t = _times([s.ts for s in samples])
    mid = _floats([s.mid for s in samples])
    fig = Figure(figsize=(12, 8.5), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)  # Agg, set on this figure only: the process-wide backend is untouched
    ax_price, ax_pos, ax_pnl = fig.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.2, 1.5]}
    )

    ax_price.plot(t, mid, color="#333333", linewidth=0.8, label="mid", zorder=2)
    upper = _floats([s.grid_upper for s in samples])
    lower = _floats([s.grid_lower for s in samples])
    center = _floats([s.grid_center for s in samples])
    ax_price.fill_between(
        t, lower, upper, step="post", color="#4c72b0", alpha=0.08, linewidth=0, zorder=1
    )
    ax_price.step(t, upper, where="post", color="#4c72b0", linewidth=0.9, linestyle="--")
    ax_price.step(
        t, lower, where="post", color="#4c72b0", linewidth=0.9, linestyle="--", label="grid bounds"
    )
    ax_price.step(
        t, center, where="post", color="#4c72b0", linewidth=0.7, linestyle=":", label="grid center"
    )
    fills = trace.exchange.fills
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
                label=f"{label}s ({sum(1 for f in trace.exchange.fills if f.side is side)})",
                zorder=3,
            )
    ax_price.set_ylabel(f"price ({quote})")
    ax_price.legend(
        loc="lower left", bbox_to_anchor=(0, 1), fontsize="small", ncols=5, frameon=False
    )
    ax_price.grid(alpha=0.25)

    position = _floats([s.position for s in samples])
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
    ax_pnl.set_xlabel("time (UTC)")
    ax_pnl.grid(alpha=0.25)
    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call,unused-ignore]
    ax_pnl.xaxis.set_major_locator(locator)
    formatter = mdates.ConciseDateFormatter(locator)  # type: ignore[no-untyped-call,unused-ignore]
    ax_pnl.xaxis.set_major_formatter(formatter)

    if title:
        fig.suptitle(title, fontsize="medium")
    fig.savefig(path)
