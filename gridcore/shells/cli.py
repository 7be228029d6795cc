"""The ``gridcore`` command line: one entry point, one module per group of subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gridcore.shells import cli_backtest, cli_run

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="gridcore",
        description="Grid and funding-arbitrage bots on a pure, property-tested core.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cli_backtest.register(sub)
    cli_run.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
