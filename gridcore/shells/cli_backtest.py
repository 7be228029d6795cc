"""``gridcore backtest``: run a bot (the configured strategy kind) on a market in seconds, with no account and no network.

The command is a shell around :func:`gridcore.sim.backtest`, the same reducer that paper and
live trading run. It reads the files (config TOML, market CSV), measures wall time, draws the
progress bar, prints the summary table or JSON, and writes the plot; every trading decision is
the core's.

Exit codes: ``0`` the run finished clean; ``1`` it finished with invariant violations (they are
printed); ``2`` bad usage, config or data (one ``gridcore: error: ...`` line on stderr, no
traceback). ``--json`` prints exactly one JSON object on stdout; see ``docs/backtest.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs
from rich.console import Console

from gridcore import validators
from gridcore.config import BotConfig
from gridcore.errors import ConfigError
from gridcore.events import QuoteTicked
from gridcore.shells import cli_types, csvdata, render
from gridcore.shells.strategies import load_config
from gridcore.sim import PROFILES, FaultPlan, Trace, backtest, profile

__all__ = ["UsageError", "register", "run"]

#: Points a plot gets, about: ``sample_every`` is chosen from the number of ticks.
PLOT_POINTS = 2_000
_EXIT_OK, _EXIT_VIOLATIONS, _EXIT_USAGE, _EXIT_INTERRUPTED = 0, 1, 2, 130

_DESCRIPTION = """\
Run the configured bot (the neutral grid unless [strategy] names another kind) against the
simulated venue and print what it did.

With no arguments: the default config on a seeded synthetic market, one day of one-second
quotes (the [market] table of the config). The same seed, config and ticks always give the same
result; --json makes that checkable byte for byte.
"""

_EPILOG = f"""\
fault profiles: {", ".join(PROFILES)}
exit codes: 0 ok, 1 invariant violations, 2 bad usage, config or data
CSV format (--data): header row; timestamp (integer s, ms, us or ns since the epoch, told
apart by length, or ISO 8601 with a timezone) plus bid and ask, bid_price and ask_price,
open/high/low/close candles, or price (with size: trades); .gz files are read as they are.
See docs/backtest.md.
"""


def _bar_ms(value: int) -> int:
    if value < csvdata.CANDLE_QUOTES:
        raise ValueError(
            f"must be at least {csvdata.CANDLE_QUOTES} (a candle is replayed as "
            f"{csvdata.CANDLE_QUOTES} quotes a millisecond or more apart), got {value}"
        )
    return value


_BAR_MS = cli_types.flag_type(validators.parse_int, _bar_ms, name="milliseconds")


class UsageError(Exception):
    """A problem with what the user asked for; its message is printed as one line."""


@attrs.frozen(kw_only=True)
class _Plan:
    """Everything resolved from the arguments before the run starts."""

    config: BotConfig
    seed: int
    faults: FaultPlan
    path: Iterable[QuoteTicked] | None
    start_ts: int | None
    total: int | None
    market: str
    plotter: Callable[..., None] | None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``backtest`` subcommand to the ``gridcore`` parser."""
    p = subparsers.add_parser(
        "backtest",
        help="run a grid bot on a synthetic or recorded market (no account, no network)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        metavar="FILE.toml",
        help="bot configuration (default: the embedded one; 'gridcore init' writes it to a file "
        "to edit)",
    )
    p.add_argument(
        "--data",
        metavar="FILE.csv",
        help="recorded market instead of the synthetic one: quotes (bid/ask), candles "
        "(open/high/low/close), trades or prices, plain or .gz",
    )
    p.add_argument(
        "--bar-ms",
        type=_BAR_MS,
        metavar="MS",
        help="length of one candle of --data in milliseconds (default: the time to the next "
        "candle)",
    )
    p.add_argument(
        "--seed",
        type=cli_types.SEED,
        metavar="N",
        help="seed of the synthetic market and the fault plan (default: [market] seed)",
    )
    p.add_argument(
        "--ticks",
        type=cli_types.TICKS,
        metavar="N",
        help="number of synthetic quotes, or the first N rows of --data (default: [market] ticks)",
    )
    p.add_argument(
        "--faults",
        metavar="PROFILE",
        default="none",
        help=f"what goes wrong between bot and venue: {', '.join(PROFILES)} (default: none)",
    )
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        help="draw price with grid and fills, position and net PnL (needs gridcore[plot])",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the summary as one JSON object on stdout (exact decimals as strings)",
    )
    p.set_defaults(handler=run)


# --- resolving the arguments -------------------------------------------------------------------


def _read_config(path: str) -> BotConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(
            f"{path}: no such file; 'gridcore init {path}' writes the default configuration there"
        ) from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a TOML file") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: is not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    return load_config(text, source=path)


def _load_plotter(target: str) -> Callable[..., None]:
    """``shells.plot.plot_trace``, after checking matplotlib and the target file up front, so a
    long run never ends in 'cannot plot'."""
    try:
        from gridcore.shells import plot
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in {"matplotlib", "numpy", "PIL"}:
            raise UsageError(
                "--plot needs matplotlib, which is not installed; "
                "install it with: pip install 'gridcore[plot]'"
            ) from None
        raise
    out = Path(target)
    if out.suffix.lower() not in plot.FORMATS:
        raise UsageError(f"--plot {target}: the file name must end in {', '.join(plot.FORMATS)}")
    if not out.parent.is_dir():
        raise UsageError(f"--plot {target}: directory {str(out.parent)!r} does not exist")
    return plot.plot_trace


def _plan(args: argparse.Namespace) -> _Plan:
    try:
        faults = profile(args.faults)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    plotter = _load_plotter(args.plot) if args.plot else None
    config = _read_config(args.config) if args.config else load_config()
    seed = config.market.seed if args.seed is None else args.seed
    if args.data is None:
        if args.bar_ms is not None:
            raise UsageError("--bar-ms is the candle length of --data; give --data too")
        ticks = config.market.ticks if args.ticks is None else args.ticks
        return _Plan(
            config=config,
            seed=seed,
            faults=faults,
            path=None,
            start_ts=None,
            total=ticks,
            market=f"synthetic, {ticks:,} ticks",
            plotter=plotter,
        )
    quotes = csvdata.open_quotes(
        args.data, instrument=config.make_instrument(), limit=args.ticks, bar_ms=args.bar_ms
    )
    # The first quote fixes the bot's epoch; the rest stream, so big files are never in memory.
    first = next(quotes)
    rows = csvdata.count_rows(args.data)
    total = (rows if args.ticks is None else min(rows, args.ticks)) * quotes.quotes_per_row
    kind = "" if quotes.format in ("bid/ask quotes", "prices") else f"{quotes.format}, "
    return _Plan(
        config=config,
        seed=seed,
        faults=faults,
        path=itertools.chain((first,), quotes),
        start_ts=first.ts,
        total=total,
        # Say how the timestamps were read: a unit taken for another changes the whole market.
        market=f"{args.data} ({kind}timestamps in {quotes.timestamp_unit})",
        plotter=plotter,
    )


# --- running -----------------------------------------------------------------------------------


def _error(message: str) -> int:
    # Plain write, not rich: messages quote TOML tables like [grid] that rich would eat as markup.
    sys.stderr.write(f"gridcore: error: {message}\n")
    return _EXIT_USAGE


def _execute(plan: _Plan, progress: Callable[[int], None] | None) -> Trace:
    total = plan.total or 0
    options: dict[str, Any] = {
        "seed": plan.seed,
        "faults": plan.faults,
        "progress": progress,
        "progress_every": max(1_000, total // 200),
    }
    if plan.plotter is not None:
        options["sample_every"] = max(1, total // PLOT_POINTS)
    if plan.path is None:
        return backtest(plan.config, ticks=plan.total, **options)
    return backtest(plan.config, path=plan.path, start_ts=plan.start_ts, **options)


def run(args: argparse.Namespace) -> int:
    """The ``backtest`` handler: returns the exit code (0 clean, 1 violations, 2 bad input)."""
    out = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    try:
        plan = _plan(args)
        with render.progress_bar(err, plan.total) as progress:
            started = time.perf_counter()
            trace = _execute(plan, progress)
            wall = time.perf_counter() - started
    except (UsageError, ConfigError, csvdata.DataError) as exc:
        return _error(str(exc))
    except KeyboardInterrupt:
        sys.stderr.write("gridcore: interrupted\n")
        return _EXIT_INTERRUPTED

    summary = trace.summary
    performance = render.Performance(events=summary.events, wall_seconds=wall)
    instrument = plan.config.instrument
    if args.json:
        doc = {
            "summary": render.summary_dict(summary),
            "violations": [render.violation_dict(v) for v in trace.violations],
            # Last, so that everything before it is byte-identical between equal runs.
            "performance": performance.as_dict(),
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        out.print(
            render.summary_table(
                summary,
                performance,
                market=plan.market,
                quote=instrument.quote,
                base=instrument.base,
                lot_size=instrument.lot_size,
            )
        )
        notices = render.notices_table(trace.notices)
        if notices is not None:
            out.print(notices)
        if trace.violations:
            out.print(render.violations_table(trace.violations, summary.invariant_violations))

    if plan.plotter is not None and not trace.samples:
        return _error(f"--plot {args.plot}: nothing to draw, the run had no market ticks")
    if plan.plotter is not None:
        title = (
            f"gridcore backtest — {plan.market}, seed {summary.seed}, faults {summary.faults}: "
            f"{summary.fills:,} fills, net PnL {render.human_decimal(summary.net_pnl, instrument.quote)} "
            f"{instrument.quote}"
        )
        try:
            plan.plotter(trace, args.plot, title=title)
        except OSError as exc:
            return _error(f"--plot {args.plot}: cannot write: {exc.strerror or exc}")
        note = f"plot written to {args.plot}"
        if args.json:
            sys.stderr.write(note + "\n")
        else:
            out.print(note, markup=False)

    if summary.invariant_violations:
        sys.stderr.write(
            f"gridcore: the backtest finished with {summary.invariant_violations} "
            "invariant violation(s): this is a bug in gridcore or your strategy, please report it\n"
        )
        return _EXIT_VIOLATIONS
    return _EXIT_OK
