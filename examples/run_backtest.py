"""Backtest the example grid through the library API: what ``gridcore backtest`` does, minus
the table. Run ``python examples/run_backtest.py [TICKS] [--config FILE.toml]``; edit
``grid.toml`` (or a copy written by ``gridcore init``) to experiment."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gridcore.config import load_config
from gridcore.shells.cli_types import TICKS
from gridcore.sim import backtest, profile

CONFIG = Path(__file__).with_name("grid.toml")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """``TICKS`` is checked by the same rule as ``[market] ticks`` and ``gridcore backtest``."""
    parser = argparse.ArgumentParser(
        prog="run_backtest.py",
        description="Run a grid configuration on its seeded synthetic market under 'flaky' "
        "faults and print the summary.",
    )
    parser.add_argument(
        "ticks",
        nargs="?",
        type=TICKS,
        metavar="TICKS",
        help="number of synthetic quotes (default: the [market] table's one day)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=CONFIG,
        metavar="FILE.toml",
        help=f"bot configuration (default: {CONFIG.name} beside this script)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the grid in ``grid.toml`` on its seeded synthetic market; 0 when no invariant broke."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    path: Path = args.config
    config = load_config(path.read_text(encoding="utf-8"), source=str(path))
    trace = backtest(config, ticks=args.ticks, faults=profile("flaky"))
    s = trace.summary
    print(f"{s.ticks} ticks under '{s.faults}' faults: {s.fills} fills, {s.orders} orders")
    print(f"net PnL {s.net_pnl:.2f} {config.instrument.quote} (fees {s.fees:.2f})")
    print(f"max drawdown {s.max_drawdown:.2f}, final position {s.final_position}")
    print(f"invariant violations: {s.invariant_violations}")
    return 0 if s.invariant_violations == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
