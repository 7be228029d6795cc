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
import datetime as dt
import enum
import itertools
import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gridcore import validators
from gridcore.config import BotConfig
from gridcore.errors import ConfigError
from gridcore.events import QuoteTicked
from gridcore.numbers import CTX, ZERO, format_step
from gridcore.shells import cli_types, csvdata, render
from gridcore.shells.strategies import load_config
from gridcore.sim import PROFILES, FaultPlan, Summary, Trace, backtest, profile
from gridcore.sim.results import Recorder, Results, percent, results
from gridcore.strategies.hedge_grid import HedgeGridConfig, side_figures

__all__ = [
    "RESULT_KEYS",
    "UsageError",
    "register",
    "results_dict",
    "results_table",
    "run",
    "run_results",
]

#: Points a plot gets, about: ``sample_every`` is chosen from the number of ticks.
PLOT_POINTS = 2_000
_EXIT_OK, _EXIT_VIOLATIONS, _EXIT_USAGE, _EXIT_INTERRUPTED = 0, 1, 2, 130

_DESCRIPTION = """\
Run the configured bot (the neutral grid unless [strategy] names another kind) against the
simulated venue and print what it did.

With no arguments: the default config on a seeded synthetic market, one day of one-second
quotes (the [market] table of the config). The same seed, config and ticks always give the same
result; --json makes that checkable byte for byte, up to its last key, "performance" (this run's
wall time and speed).
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
    faults: FaultPlan | Mapping[str, FaultPlan]
    path: Iterable[QuoteTicked] | None
    start_ts: int | None
    total: int | None
    market: str
    plotter: Callable[..., None] | None
    step_checks: bool = True


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
        help=f"what goes wrong between bot and venue: {', '.join(PROFILES)} (default: none); "
        "one profile for every venue, or VENUE=PROFILE[,VENUE=PROFILE] for each named venue "
        "(unnamed venues: none)",
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
    p.add_argument(
        "--no-step-checks",
        action="store_true",
        help="check the state invariants once, at the end, instead of after every step that "
        "moved the books (faster; the result is the same, a violation is found later or not "
        "at all)",
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
    """``gridcore.shells.plot.plot_trace``, after checking matplotlib and the target file up front, so a
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


def _venue_names(config: BotConfig) -> tuple[str, ...]:
    """The venues a backtest of ``config`` runs (the funding-rate arbitrage: two)."""
    from gridcore.sim import funding

    if funding.handles(config):
        return (config.venue.name, config.settings.venue_b)
    return (config.venue.name,)


def _faults(text: str, config: BotConfig) -> FaultPlan | dict[str, FaultPlan]:
    """``--faults``: one profile for every venue, or ``venue=profile`` pairs (each named
    venue its plan; every other venue none)."""
    if "=" not in text:
        return profile(text)
    names = _venue_names(config)
    plans: dict[str, FaultPlan] = {}
    for item in text.split(","):
        venue, sep, name = (part.strip() for part in item.partition("="))
        if not sep or not venue or not name:
            raise UsageError(
                f"--faults {text}: {item.strip()!r} is not VENUE=PROFILE; write one profile "
                f"for every venue, or e.g. {names[0]}=flaky (profiles: {', '.join(PROFILES)})"
            )
        if venue not in names:
            raise UsageError(
                f"--faults {text}: unknown venue {venue!r}; this configuration runs "
                f"{', '.join(names)}"
            )
        if venue in plans:
            raise UsageError(f"--faults {text}: venue {venue!r} is named twice")
        try:
            plans[venue] = profile(name)
        except ValueError as exc:
            raise UsageError(f"--faults {text}: venue {venue}: {exc}") from None
    return {venue: plans.get(venue, PROFILES["none"]) for venue in names}


def _plan(args: argparse.Namespace) -> _Plan:
    if "=" not in args.faults:  # one profile: checked before anything is read
        try:
            profile(args.faults)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    plotter = _load_plotter(args.plot) if args.plot else None
    config = _read_config(args.config) if args.config else load_config()
    try:
        faults = _faults(args.faults, config)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
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
            step_checks=not args.no_step_checks,
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
        step_checks=not args.no_step_checks,
    )


# --- results ----------------------------------------------------------------------------------

#: Keys of the ``results`` object of ``--json``, in order (documented in docs/backtest.md).
RESULT_KEYS = (
    "venue",
    "symbol",
    "strategy",
    "settings",
    "data_start_ts",
    "data_end_ts",
    "market_start_mid",
    "market_end_mid",
    "market_change_pct",
    "starting_balance",
    "end_equity",
    "return_pct",
    "max_drawdown_pct",
    "max_drawdown_duration_ms",
    "round_trips",
    "wins",
    "losses",
    "win_rate",
    "profit_factor",
    "gross_profit",
    "gross_loss",
    "days",
    "sharpe_daily",
    "sortino_daily",
    "fee_share_pct",
    "outages",
    "outage_ms",
)


def _plain(value: object) -> object:
    if isinstance(value, enum.Enum):
        return value.value
    if attrs.has(type(value)):
        fields = attrs.fields(type(value))  # type: ignore[arg-type]
        return {f.name: _plain(getattr(value, f.name)) for f in fields}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):  # a list of tables ([[funding_arb.pairs]])
        return [_plain(v) for v in value]
    return render.json_value(value)


def _settings(trace: Trace) -> tuple[str, dict[str, object]]:
    """The strategy's name and its configuration (the ``config`` attrs value it carries)."""
    strategy = trace.state.strategy
    config = getattr(strategy, "config", None)
    settings: dict[str, object] = {}
    if config is not None and attrs.has(type(config)):
        settings = {
            f.name: _plain(getattr(config, f.name))
            for f in attrs.fields(type(config))
            if getattr(config, f.name) != ()  # an empty list of tables is left out
        }
    return type(strategy).__name__, settings


def run_results(config: BotConfig, trace: Trace, recorder: Recorder) -> Results:
    """The :class:`~gridcore.sim.results.Results` of a backtest run with ``recorder``."""
    s = trace.summary
    balance = config.venue.starting_balance
    return results(
        starting_balance=balance,
        net_pnl=s.net_pnl,
        realized_pnl=s.realized_pnl,
        fees=s.fees,
        curve=recorder.equity(balance, s.start_ts),
        fills=trace.exchange.fills,
        trips=trace.exchange.forgotten.trips,
        start_ts=s.start_ts,
        end_ts=s.end_ts,
        outages=recorder.all_outages(),
    )


@attrs.frozen(kw_only=True)
class AssetPosition:
    """One asset's position figures in a run of several assets (base units of that asset)."""

    asset: str
    max_position: Decimal
    """The largest position held in one instrument of the asset (absolute)."""
    final_position: Decimal
    """The position at the end, every venue's instruments of the asset together (signed)."""
    lot_size: Decimal
    """The finest lot of the asset's instruments (how the figures are shown)."""


def asset_positions(trace: Trace, recorder: Recorder) -> list[AssetPosition]:
    """Per asset (an instrument's ``base``), the position figures of a run that trades several
    assets (the funding arbitrage on several pairs); one asset: ``[]`` (the summary's own
    figures hold). Base quantities of different assets are never added up."""
    instruments = trace.state.config.instruments
    assets: dict[str, list[Any]] = {}
    for inst in instruments:
        assets.setdefault(inst.base or inst.symbol, []).append(inst)
    if len(assets) < 2:
        return []
    out = []
    for asset, insts in assets.items():
        keys = {(i.venue, i.symbol) for i in insts}
        final = ZERO
        for (venue, symbol, _), pos in trace.state.ledger.positions.items():
            if (venue, symbol) in keys:
                final = CTX.add(final, pos.qty)
        out.append(
            AssetPosition(
                asset=asset,
                max_position=max((recorder.max_qty.get(k, ZERO) for k in keys), default=ZERO),
                final_position=final,
                lot_size=min(i.lot_size for i in insts),
            )
        )
    return out


def results_dict(
    config: BotConfig, trace: Trace, recorder: Recorder, figures: Results
) -> dict[str, object]:
    """The ``results`` object of ``--json``: keys :data:`RESULT_KEYS`, money exact, ratios and
    percentages rounded to 4 places, ``null`` where undefined."""
    first, last = recorder.first_quote, recorder.last_quote
    name, settings = _settings(trace)
    start, end = first, last
    if len(asset_positions(trace, recorder)) > 1:
        # Several assets: the market moves are the configured instrument's, never one asset's
        # first quote against another's last.
        key = (config.venue.name, config.instrument.symbol)
        start, end = recorder.first_quotes.get(key), recorder.last_quotes.get(key)
    values: dict[str, object] = {
        "venue": config.venue.name,
        "symbol": config.instrument.symbol,
        "strategy": name,
        "settings": settings,
        "data_start_ts": first.ts if first is not None else None,
        "data_end_ts": last.ts if last is not None else None,
        "market_start_mid": start.mid if start is not None else None,
        "market_end_mid": end.mid if end is not None else None,
        "market_change_pct": (
            percent(CTX.subtract(end.mid, start.mid), start.mid)
            if start is not None and end is not None
            else None
        ),
        **{f.name: getattr(figures, f.name) for f in attrs.fields(Results)},
    }
    return {key: _plain(values[key]) for key in RESULT_KEYS}


def _when(ts: object) -> str:
    if not isinstance(ts, int):
        return "-"
    return dt.datetime.fromtimestamp(ts / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(ms: int) -> str:
    """``1 d 02:03:04`` / ``02:03:04`` for people."""
    seconds = ms // 1000
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    text = f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{days} d {text}" if days else text


def _ratio(value: object, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value}{suffix}"


def _settings_text(name: str, settings: dict[str, object], base: str) -> str:
    """``grid 5 × 0.002, 0.002 BTC a level, max 0.02``: the grid's settings people compare runs
    by; other strategies by name (every setting is in ``--json``)."""
    levels, spacing = settings.get("levels"), settings.get("spacing")
    if levels is None or spacing is None:
        return name
    qty = settings.get("order_qty")
    each = f"{qty} {base}" if qty is not None else f"{settings.get('order_notional')} quote"
    inventory = settings.get("max_inventory")
    cap = "" if inventory is None else f", max {inventory}"
    return f"grid {levels} × {spacing}, {each} a level{cap}"


def results_table(
    summary: Summary,
    performance: render.Performance,
    doc: dict[str, object],
    *,
    market: str,
    quote: str,
    base: str,
    lot_size: Decimal,
    assets: Sequence[AssetPosition] = (),
) -> Table:
    """The human summary of a backtest: what ran on what (header), trading, money and the
    results people expect, position and health, faults, then the engineering figures last.
    Every figure of the plain summary keeps its value and format. A run of several ``assets``
    shows each asset's position rows in its own base units instead of the summary's."""
    s = summary
    unit = f" ({quote})"
    size_unit = f" ({base})" if base else ""

    def money(value: object) -> str:
        assert isinstance(value, str)
        return render.human_decimal(Decimal(value), quote)

    def signed(value: Decimal) -> Text:
        style = "green" if value > 0 else "red" if value < 0 else ""
        return Text(render.human_decimal(value, quote), style=style)

    def size(value: Decimal) -> str:
        return format_step(value, lot_size)

    settings = doc["settings"]
    assert isinstance(settings, dict)
    change = doc["market_change_pct"]
    start_mid, end_mid = doc["market_start_mid"], doc["market_end_mid"]
    moved = (
        f"{start_mid} → {end_mid} ({_ratio(change, ' %')})"
        if isinstance(start_mid, str) and isinstance(end_mid, str)
        else "-"
    )
    faults: list[tuple[str, str | Text] | None] = []
    if s.faults != "none" or s.injected.total:
        faults = [None] + [
            (label, f"{getattr(s.injected, name):,}") for label, name in render.FAULT_ROWS
        ]
    win_rate = doc["win_rate"]
    table = Table(title="gridcore backtest", show_header=False, title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    rows: Sequence[tuple[str, str | Text] | None] = (
        ("instrument", Text(f"{doc['venue']} {doc['symbol']}")),
        ("strategy", Text(_settings_text(str(doc["strategy"]), settings, base))),
        ("market", Text(market or "-")),
        ("data from", f"{_when(doc['data_start_ts'])} UTC"),
        ("data to", f"{_when(doc['data_end_ts'])} UTC"),
        (f"market mid{unit}", moved),
        ("seed", str(s.seed)),
        ("fault profile", s.faults),
        ("market ticks", f"{s.ticks:,}"),
        None,
        ("orders placed", f"{s.orders:,}"),
        ("fills", f"{s.fills:,}"),
        ("cancels", f"{s.cancels:,}"),
        ("rejections", f"{s.rejections:,}"),
        ("volume" + unit, render.human_decimal(s.volume, quote)),
        ("round trips (won / lost)", f"{doc['round_trips']:,} ({doc['wins']} / {doc['losses']})"),
        (
            "win rate",
            "n/a"
            if win_rate is None
            else f"{CTX.multiply(Decimal(str(win_rate)), Decimal(100)).normalize(CTX):f} %",
        ),
        ("profit factor", _ratio(doc["profit_factor"])),
        None,
        ("starting balance" + unit, money(doc["starting_balance"])),
        ("realized PnL" + unit, signed(s.realized_pnl)),
        ("unrealized PnL" + unit, signed(s.unrealized_pnl)),
        ("fees paid" + unit, render.human_decimal(s.fees, quote)),
        ("fee share of gross PnL", _ratio(doc["fee_share_pct"], " %")),
        ("funding received" + unit, signed(s.funding)),
        ("net PnL" + unit, signed(s.net_pnl)),
        ("end equity" + unit, money(doc["end_equity"])),
        ("return", _ratio(doc["return_pct"], " %")),
        ("max drawdown" + unit, render.human_decimal(s.max_drawdown, quote)),
        ("max drawdown", f"{doc['max_drawdown_pct']} %"),
        ("max drawdown duration", _duration(int(str(doc["max_drawdown_duration_ms"])))),
        (
            f"Sharpe / Sortino (daily, {doc['days']} d)",
            f"{_ratio(doc['sharpe_daily'])} / {_ratio(doc['sortino_daily'])}",
        ),
        None,
        *(
            [
                ("max position" + size_unit, size(s.max_position)),
                ("final position" + size_unit, size(s.final_position)),
            ]
            if not assets
            else [
                *(
                    (f"max position ({a.asset})", format_step(a.max_position, a.lot_size))
                    for a in assets
                ),
                *(
                    (f"final position ({a.asset})", format_step(a.final_position, a.lot_size))
                    for a in assets
                ),
            ]
        ),
        ("grid recenters", str(s.recenters)),
        ("syncs / drift repairs", f"{s.syncs} / {s.drift_repairs}"),
        ("alerts / warnings", f"{s.alerts} / {s.warnings}"),
        ("feed outages", f"{doc['outages']} ({_duration(int(str(doc['outage_ms'])))})"),
        ("halted", Text("yes", style="red") if s.halted else Text("no")),
        (
            "invariant violations",
            Text(
                str(s.invariant_violations), style="bold red" if s.invariant_violations else "green"
            ),
        ),
        *faults,
        None,
        ("events processed", f"{s.events:,}"),
        ("events per second", f"{performance.events_per_second:,.0f}"),
        ("wall time", f"{performance.wall_seconds:.2f} s"),
    )
    for row in rows:
        if row is None:
            table.add_section()
        else:
            table.add_row(*row)
    return table


# --- running -----------------------------------------------------------------------------------


def _error(message: str) -> int:
    # Plain write, not rich: messages quote TOML tables like [grid] that rich would eat as markup.
    sys.stderr.write(f"gridcore: error: {message}\n")
    return _EXIT_USAGE


def _execute(
    plan: _Plan, progress: Callable[[int], None] | None, recorder: Recorder | None = None
) -> Trace:
    total = plan.total or 0
    options: dict[str, Any] = {
        "seed": plan.seed,
        "faults": plan.faults,
        "progress": progress,
        "progress_every": max(1_000, total // 200),
        "check_every_step": plan.step_checks,
    }
    if recorder is not None:
        options["reducer"] = recorder
    if plan.plotter is not None:
        options["sample_every"] = max(1, total // PLOT_POINTS)
    rates_csv = getattr(plan.config.settings, "sim_rates_csv", "")
    if rates_csv:  # recorded funding rates per venue (the funding-rate arbitrage)
        options["rates"] = _funding_rates(rates_csv)
    if plan.path is None:
        return backtest(plan.config, ticks=plan.total, **options)
    return backtest(plan.config, path=plan.path, start_ts=plan.start_ts, **options)


def _funding_rates(path: str) -> Any:
    from gridcore.sim.funding import parse_rates_csv

    try:
        return parse_rates_csv(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"funding_arb.sim_rates_csv {path}: {exc}") from None


def _ladders(plan: _Plan) -> Any:
    """For ``--plot`` of a hedge grid, the recorder of both ladders (``None`` otherwise: other
    runs pay nothing for it)."""
    if plan.plotter is None or not isinstance(plan.config.settings, HedgeGridConfig):
        return None
    from gridcore.shells.plot import LadderRecorder

    return LadderRecorder()


def run(args: argparse.Namespace) -> int:
    """The ``backtest`` handler: returns the exit code (0 clean, 1 violations, 2 bad input)."""
    out = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    try:
        plan = _plan(args)
        ladders = _ladders(plan)
        recorder = Recorder() if ladders is None else Recorder(ladders)
        with render.progress_bar(err, plan.total) as progress:
            started = time.perf_counter()
            trace = _execute(plan, progress, recorder)
            wall = time.perf_counter() - started
    except (UsageError, ConfigError, csvdata.DataError) as exc:
        return _error(str(exc))
    except KeyboardInterrupt:
        sys.stderr.write("gridcore: interrupted\n")
        return _EXIT_INTERRUPTED

    summary = trace.summary
    performance = render.Performance(events=summary.events, wall_seconds=wall)
    instrument = plan.config.instrument
    figures = results_dict(plan.config, trace, recorder, run_results(plan.config, trace, recorder))
    # A strategy may add its own figures (the hedge grid: per side) through ``summary_figures(view)``.
    figures_of = getattr(trace.state.strategy, "summary_figures", None)
    per_side: dict[str, str] = dict(figures_of(trace.state)) if callable(figures_of) else {}
    sides = side_figures(trace.state)  # the hedge grid's LONG and SHORT (else empty)
    # The funding arbitrage with several symbol pairs: each pair's figures, structured.
    pairs_of = getattr(trace.state.strategy, "pair_figures", None)
    pairs: list[Any] = pairs_of(trace.state) if callable(pairs_of) else []
    # Several assets (pairs of different instruments): positions per asset, never summed.
    assets = asset_positions(trace, recorder)
    if args.json:
        summary_doc = render.summary_dict(summary)
        if assets:
            summary_doc["max_position"] = summary_doc["final_position"] = None
        doc = {
            "summary": summary_doc,
            "results": figures,
            "violations": [render.violation_dict(v) for v in trace.violations],
            **({"strategy_metrics": dict(per_side)} if per_side else {}),
            **({"sides": render.side_dict(sides)} if sides else {}),
            **({"pairs": pairs} if len(pairs) > 1 else {}),
            **(
                {
                    "positions": {
                        a.asset: {
                            "max_position": render.json_value(a.max_position),
                            "final_position": render.json_value(a.final_position),
                        }
                        for a in assets
                    }
                }
                if assets
                else {}
            ),
            # Last, so that everything before it is byte-identical between equal runs.
            "performance": performance.as_dict(),
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        out.print(
            results_table(
                summary,
                performance,
                figures,
                market=plan.market,
                quote=instrument.quote,
                base=instrument.base,
                lot_size=instrument.lot_size,
                assets=assets,
            )
        )
        if sides:
            caption = f"cycles {per_side.get('cycles', '-')}, halted: {per_side.get('halted', '-')}"
            out.print(render.side_table(sides, render.Display(trace.state.config), caption=caption))
        elif per_side:
            extra = Table(title="strategy figures", show_header=False, title_justify="left")
            extra.add_column("metric", style="bold")
            extra.add_column("value", justify="right")
            for label, value in per_side.items():
                extra.add_row(label, value)
            out.print(extra)
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
            drawn: dict[str, Any] = {} if ladders is None else {"ladders": ladders}
            plan.plotter(trace, args.plot, title=title, outages=recorder.all_outages(), **drawn)
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
