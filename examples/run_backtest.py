"""Backtest the example grid through the library API: what ``gridcore backtest`` does, minus
the table. Run ``python examples/run_backtest.py [TICKS]``; edit ``grid.toml`` to experiment."""

from __future__ import annotations

import sys
from pathlib import Path

from gridcore.config import load_config
from gridcore.sim import backtest, profile

CONFIG = Path(__file__).with_name("grid.toml")


def main(argv: list[str] | None = None) -> int:
    """Run the grid in ``grid.toml`` on its seeded synthetic market; 0 when no invariant broke."""
    argv = sys.argv[1:] if argv is None else argv
    config = load_config(CONFIG.read_text(encoding="utf-8"), source=str(CONFIG))
    ticks = int(argv[0]) if argv else None  # None: the [market] table's one day of ticks
    trace = backtest(config, ticks=ticks, faults=profile("flaky"))
    s = trace.summary
    print(f"{s.ticks} ticks under '{s.faults}' faults: {s.fills} fills, {s.orders} orders")
    print(f"net PnL {s.net_pnl:.2f} {config.instrument.quote} (fees {s.fees:.2f})")
    print(f"max drawdown {s.max_drawdown:.2f}, final position {s.final_position}")
    print(f"invariant violations: {s.invariant_violations}")
    return 0 if s.invariant_violations == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
