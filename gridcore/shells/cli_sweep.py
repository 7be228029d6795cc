"""``gridcore sweep``: a backtest for every combination of settings, ranked.

``gridcore sweep --config base.toml --grid 'grid.spacing=0.001,0.002' --grid 'grid.levels=5..20'``
expands every ``--grid`` into its values, takes their Cartesian product (times ``--seeds``),
validates every resulting configuration with the same loader ``gridcore backtest`` uses (a bad
field is named before anything runs), runs each as a backtest — on a local process pool by
default, or on Ray with ``--backend ray`` — and prints a ranked table; ``--out`` keeps every
run's figures (CSV, or Parquet when pyarrow is installed) and ``--plot`` draws a heatmap of two
swept settings.

A run is a pure function of its task (configuration text, seed, ticks, faults, data file):
whichever backend runs it, its row is the same, byte for byte, and the table is ranked by
exact decimals with the task order breaking ties. Exit codes: 0 ok; 1 a run found invariant
violations; 2 bad usage, configuration or data; 130 interrupted.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import itertools
import json
import re
import sys
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from decimal import Decimal, InvalidOperation
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import attrs
from rich.console import Console
from rich.table import Table

from gridcore.config import DEFAULT_TOML
from gridcore.errors import ConfigError
from gridcore.numbers import CTX, exact_str
from gridcore.shells import cli_backtest, cli_types, csvdata, render
from gridcore.shells.strategies import load_config
from gridcore.sim import PROFILES, backtest, profile
from gridcore.sim.results import Recorder

__all__ = [
    "RANK_KEYS",
    "ROW_KEYS",
    "Ranked",
    "SweepError",
    "Task",
    "expand",
    "parse_grid",
    "rank",
    "register",
    "run",
    "run_sweep",
    "run_task",
]

_EXIT_OK, _EXIT_VIOLATIONS, _EXIT_USAGE, _EXIT_INTERRUPTED = 0, 1, 2, 130
BACKENDS = ("process", "ray")

#: Figures of each run, in the order of the CSV's columns after the swept settings and the seed.
ROW_KEYS = (
    "ticks",
    "events",
    "fills",
    "orders",
    "volume",
    "realized_pnl",
    "unrealized_pnl",
    "fees",
    "funding",
    "net_pnl",
    "max_drawdown",
    "max_position",
    "final_position",
    "recenters",
    "halted",
    "invariant_violations",
    "end_equity",
    "return_pct",
    "max_drawdown_pct",
    "max_drawdown_duration_ms",
    "round_trips",
    "win_rate",
    "profit_factor",
    "sharpe_daily",
    "sortino_daily",
    "fee_share_pct",
    "market_change_pct",
)
#: Figures the table can be ranked by, and whether higher is better.
RANK_KEYS = {
    "net_pnl": True,
    "return_pct": True,
    "sharpe_daily": True,
    "sortino_daily": True,
    "profit_factor": True,
    "win_rate": True,
    "max_drawdown": False,
    "max_drawdown_pct": False,
}


class SweepError(Exception):
    """A problem with what the user asked for; its message is printed as one line."""


# --- the grid of settings ------------------------------------------------------------------------

_KEY = re.compile(r"^[a-z_]+\.[a-z_]+$")
_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)(?:\.\.(\d+))?$")


def _scalar(raw: str) -> object:
    """A swept value as TOML would read it: integers and booleans as such, anything else as a
    string (decimals stay exact strings, as the configuration wants them)."""
    text = raw.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if text in ("true", "false"):
        return text == "true"
    return text


def parse_grid(spec: str) -> tuple[str, list[object]]:
    """``'grid.spacing=0.001,0.002'`` → ``("grid.spacing", ["0.001", "0.002"])``;
    ``'grid.levels=5..20'`` (inclusive) and ``'grid.levels=5..20..5'`` (a step) give integers."""
    key, sep, values = spec.partition("=")
    key = key.strip()
    if not sep or not _KEY.match(key):
        raise SweepError(
            f"--grid {spec!r}: expected TABLE.SETTING=VALUES, for example "
            "'grid.spacing=0.001,0.002' or 'grid.levels=5..20'"
        )
    out: list[object] = []
    for part in values.split(","):
        part = part.strip()
        if not part:
            raise SweepError(f"--grid {spec!r}: an empty value; separate values with commas")
        m = _RANGE.match(part)
        if m:
            lo, hi, step = int(m[1]), int(m[2]), int(m[3] or 1)
            if step < 1 or hi < lo:
                raise SweepError(
                    f"--grid {spec!r}: range {part} is empty (write LOW..HIGH[..STEP])"
                )
            out.extend(range(lo, hi + 1, step))
        else:
            out.append(_scalar(part))
    if len(set(map(repr, out))) != len(out):
        raise SweepError(f"--grid {spec!r}: a value is repeated")
    return key, out


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON's escapes are TOML basic-string escapes
    raise SweepError(f"cannot write {value!r} back to TOML")  # pragma: no cover


def _toml(data: Mapping[str, Any]) -> str:
    """Tables of scalars (a configuration's shape) as TOML text."""
    lines: list[str] = []
    for table, values in data.items():
        if not isinstance(values, Mapping):
            raise SweepError(f"{table}: expected a table")
        lines.append(f"[{table}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in values.items())
        lines.append("")
    return "\n".join(lines)


@attrs.frozen(kw_only=True)
class Task:
    """One backtest of a sweep: ``params`` are the swept settings (key → value) it runs with;
    ``config`` is the whole configuration as TOML text, validated."""

    index: int
    params: tuple[tuple[str, object], ...]
    seed: int
    config: str
    ticks: int | None
    faults: str
    data: str | None = None
    bar_ms: int | None = None


def expand(
    base_text: str,
    grid: Sequence[tuple[str, Sequence[object]]],
    *,
    seeds: int = 1,
    ticks: int | None = None,
    faults: str = "none",
    data: str | None = None,
    bar_ms: int | None = None,
    source: str = "base configuration",
) -> list[Task]:
    """Every combination of ``grid`` over ``base_text`` (times ``seeds`` seeds from the
    configuration's ``[market] seed``), each configuration checked by :func:`load_config`: the
    first bad one raises :class:`ConfigError` naming the setting and the value."""
    try:
        base = tomllib.loads(base_text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("toml", f"not valid TOML: {exc}", source=source) from None
    keys = [k for k, _ in grid]
    if len(set(keys)) != len(keys):
        raise SweepError("--grid: a setting is swept twice; give all its values in one --grid")
    tasks: list[Task] = []
    for combo in itertools.product(*(values for _, values in grid)):
        data_ = {t: dict(v) if isinstance(v, Mapping) else v for t, v in base.items()}
        for key, value in zip(keys, combo, strict=True):
            table, setting = key.split(".")
            section = data_.setdefault(table, {})
            if not isinstance(section, dict):
                raise SweepError(f"--grid {key}: [{table}] is not a table in {source}")
            section[setting] = value
        text = _toml(data_)
        shown = ", ".join(f"{k}={v}" for k, v in zip(keys, combo, strict=True))
        config = load_config(text, source=f"{source} with {shown}" if shown else source)
        for i in range(seeds):
            seed = (config.market.seed + i) % (1 << 64)
            tasks.append(
                Task(
                    index=len(tasks),
                    params=tuple(zip(keys, combo, strict=True)),
                    seed=seed,
                    config=text,
                    ticks=ticks,
                    faults=faults,
                    data=data,
                    bar_ms=bar_ms,
                )
            )
    return tasks


# --- one run -------------------------------------------------------------------------------------


def run_task(task: Task) -> dict[str, object]:
    """Run one task; its row: the swept settings, the seed and :data:`ROW_KEYS` (decimals as
    exact strings). Deterministic: the same task gives the same row on any machine."""
    config = load_config(task.config)
    recorder = Recorder()
    options: dict[str, Any] = {"seed": task.seed, "faults": profile(task.faults)}
    if task.data is None:
        trace = backtest(config, ticks=task.ticks, reducer=recorder, **options)
    else:
        quotes = csvdata.open_quotes(
            task.data, instrument=config.make_instrument(), limit=task.ticks, bar_ms=task.bar_ms
        )
        first = next(quotes)
        trace = backtest(
            config,
            path=itertools.chain((first,), quotes),
            start_ts=first.ts,
            reducer=recorder,
            **options,
        )
    summary = render.summary_dict(trace.summary)
    figures = cli_backtest.results_dict(
        config, trace, recorder, cli_backtest.run_results(config, trace, recorder)
    )
    values = {**summary, **figures}
    row: dict[str, object] = {key: _cell(value) for key, value in task.params}
    row["seed"] = task.seed
    row.update({key: values[key] for key in ROW_KEYS})
    return row


def _cell(value: object) -> object:
    return exact_str(value) if isinstance(value, Decimal) else value


def _run_indexed(task: Task) -> tuple[int, dict[str, object]]:
    return task.index, run_task(task)


# --- backends ------------------------------------------------------------------------------------


def _process_pool(
    tasks: Sequence[Task], workers: int, done: Callable[[int], None]
) -> dict[int, dict[str, object]]:
    rows: dict[int, dict[str, object]] = {}
    # spawn: workers start clean (no copy of this process's threads), as they would on Ray.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        pending: set[Future[tuple[int, dict[str, object]]]] = {
            pool.submit(_run_indexed, t) for t in tasks
        }
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    index, row = future.result()
                    rows[index] = row
                    done(len(rows))
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return rows


def _ray(
    tasks: Sequence[Task], address: str | None, done: Callable[[int], None]
) -> dict[int, dict[str, object]]:
    try:
        ray: Any = importlib.import_module("ray")
    except ModuleNotFoundError:
        raise SweepError(
            "--backend ray needs ray, which is not installed; install it with: "
            "pip install 'gridcore[ray]'"
        ) from None
    started = not ray.is_initialized()
    if started:
        # A cluster's address, or a local Ray on this machine; quiet: our progress bar reports.
        ray.init(address=address, log_to_driver=False, include_dashboard=False)
    try:
        remote = ray.remote(_run_indexed)
        pending = [remote.remote(t) for t in tasks]
        rows: dict[int, dict[str, object]] = {}
        while pending:
            finished, pending = ray.wait(pending, num_returns=1)
            for ref in finished:
                index, row = ray.get(ref)
                rows[index] = row
                done(len(rows))
        return rows
    finally:
        if started:
            ray.shutdown()


def run_sweep(
    tasks: Sequence[Task],
    *,
    backend: str = "process",
    workers: int = 2,
    ray_address: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, object]]:
    """Run every task on ``backend`` (``process``: a local pool of ``workers`` processes;
    ``ray``: the Ray cluster at ``ray_address``, or the one this process already initialized,
    or a local one); the rows in task order, whatever order they finished in."""
    done = progress or (lambda _n: None)
    if not tasks:
        return []
    if backend == "process":
        rows = _process_pool(tasks, workers, done)
    elif backend == "ray":
        rows = _ray(tasks, ray_address, done)
    else:
        raise SweepError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    return [rows[t.index] for t in tasks]


# --- ranking -------------------------------------------------------------------------------------


def _decimal(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


@attrs.frozen(kw_only=True)
class Ranked:
    """One combination of settings over its seeds: means of the figures (exact quotients to
    the context's precision), the worst drawdown, totals of counts."""

    params: tuple[tuple[str, object], ...]
    runs: int
    figures: Mapping[str, Decimal | None]
    violations: int


def rank(
    rows: Sequence[Mapping[str, object]], keys: Sequence[str], *, by: str = "net_pnl"
) -> list[Ranked]:
    """Combine the rows of each combination of ``keys`` (its seeds) and rank the combinations
    by ``by`` (best first; undefined values last; ties in first-seen order)."""
    groups: dict[tuple[object, ...], list[Mapping[str, object]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    ranked: list[Ranked] = []
    for combo, members in groups.items():
        figures: dict[str, Decimal | None] = {}
        for key in (
            "net_pnl",
            "return_pct",
            "sharpe_daily",
            "sortino_daily",
            "profit_factor",
            "win_rate",
            "fills",
            "round_trips",
        ):
            values = [_decimal(m[key]) for m in members]
            known = [v for v in values if v is not None]
            figures[key] = (
                CTX.divide(sum(known, Decimal(0)), Decimal(len(known))) if known else None
            )
        for key in ("max_drawdown", "max_drawdown_pct"):
            known = [v for v in (_decimal(m[key]) for m in members) if v is not None]
            figures[key] = max(known) if known else None
        violations = sum(int(str(m["invariant_violations"])) for m in members)
        ranked.append(
            Ranked(
                params=tuple(zip(keys, combo, strict=True)),
                runs=len(members),
                figures=figures,
                violations=violations,
            )
        )
    higher = RANK_KEYS[by]

    def order(item: tuple[int, Ranked]) -> tuple[int, Decimal, int]:
        value = item[1].figures.get(by)
        if value is None:
            return (1, Decimal(0), item[0])
        return (0, -value if higher else value, item[0])

    return [r for _, r in sorted(enumerate(ranked), key=order)]


def _fmt(value: Decimal | None, places: int = 2) -> str:
    if value is None:
        return "n/a"
    return f"{value.quantize(Decimal(1).scaleb(-places), context=CTX):,}"


def ranked_table(ranked: Sequence[Ranked], *, by: str, top: int, quote: str) -> Table:
    """The best ``top`` combinations, ranked by ``by``."""
    seeds = max((r.runs for r in ranked), default=1)
    title = f"gridcore sweep: {len(ranked)} combinations" + (
        f" × {seeds} seeds (means; worst drawdown)" if seeds > 1 else ""
    )
    table = Table(
        title=f"{title}, ranked by {by}; PnL in {quote}, return and max drawdown (DD) in %",
        title_justify="left",
    )
    table.add_column("#", justify="right", no_wrap=True)
    keys = [k for k, _ in ranked[0].params] if ranked else []
    for key in keys:
        table.add_column(key.split(".", 1)[1], justify="right", no_wrap=True)
    for label in ("PnL", "ret %", "DD %", "Sharpe", "win %", "PF", "fills"):
        table.add_column(label, justify="right", no_wrap=True)
    for i, r in enumerate(ranked[:top], start=1):
        f = r.figures
        win = f["win_rate"]
        table.add_row(
            str(i),
            *(str(v) for _, v in r.params),
            _fmt(f["net_pnl"]),
            _fmt(f["return_pct"]),
            _fmt(f["max_drawdown_pct"]),
            _fmt(f["sharpe_daily"]),
            "n/a" if win is None else _fmt(win * 100, 1),
            _fmt(f["profit_factor"]),
            _fmt(f["fills"], 0),
        )
    return table


# --- outputs -------------------------------------------------------------------------------------


def _check_out(target: str) -> str:
    out = Path(target)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise SweepError(f"--out {target}: the file name must end in .csv or .parquet")
    if suffix == ".parquet":
        try:
            importlib.import_module("pyarrow")
        except ModuleNotFoundError:
            raise SweepError(
                f"--out {target}: Parquet needs pyarrow, which is not installed; install it "
                "(pip install pyarrow) or write .csv"
            ) from None
    if not out.parent.is_dir():
        raise SweepError(f"--out {target}: directory {str(out.parent)!r} does not exist")
    return suffix


def write_rows(rows: Sequence[Mapping[str, object]], target: str) -> None:
    """Every run's row to ``target``: CSV (empty cells for undefined figures), or Parquet
    (every column a string, exact) when the name ends in ``.parquet``."""
    columns = list(rows[0]) if rows else []
    if target.lower().endswith(".parquet"):
        pa: Any = importlib.import_module("pyarrow")
        pq: Any = importlib.import_module("pyarrow.parquet")
        table = pa.table({c: [None if r[c] is None else str(r[c]) for r in rows] for c in columns})
        pq.write_table(table, target)
        return
    with open(target, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv(v) for k, v in row.items()})


def _csv(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _load_heatmap() -> Callable[..., None]:
    try:
        from gridcore.shells import plot
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in {"matplotlib", "numpy", "PIL"}:
            raise SweepError(
                "--plot needs matplotlib, which is not installed; "
                "install it with: pip install 'gridcore[plot]'"
            ) from None
        raise
    return plot.plot_heatmap


# --- the command ---------------------------------------------------------------------------------

_DESCRIPTION = """\
Backtest every combination of settings and rank them.

Each --grid TABLE.SETTING=VALUES sweeps one setting of the configuration: comma-separated
values (0.001,0.002,0.004) or an integer range LOW..HIGH[..STEP] (5..20). Every combination is
validated by the configuration loader before anything runs. Runs go to a local process pool
(--workers) or to Ray (--backend ray, --ray-address); the results are identical either way.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sweep`` subcommand to the ``gridcore`` parser."""
    p = subparsers.add_parser(
        "sweep",
        help="backtest every combination of settings (--grid) and rank them; local or on Ray",
        description=_DESCRIPTION,
        epilog="exit codes: 0 ok, 1 a run had invariant violations, 2 bad usage, config or "
        "data. See docs/backtest.md, 'Sweeps'.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="FILE.toml", help="base configuration (default: embedded)")
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="TABLE.SETTING=VALUES",
        help="a setting and its values: 'grid.spacing=0.001,0.002' or 'grid.levels=5..20' "
        "(repeat for more settings)",
    )
    p.add_argument(
        "--seeds",
        type=cli_types.POSITIVE_INT,
        default=1,
        metavar="N",
        help="run each combination on N seeds, from [market] seed on (default 1)",
    )
    p.add_argument("--data", metavar="FILE.csv", help="recorded market (as gridcore backtest)")
    p.add_argument(
        "--bar-ms",
        type=cli_backtest._BAR_MS,  # the same rule as gridcore backtest's
        metavar="MS",
        help="candle length of --data (ms)",
    )
    p.add_argument(
        "--ticks", type=cli_types.TICKS, metavar="N", help="quotes per run (default [market] ticks)"
    )
    p.add_argument("--faults", metavar="PROFILE", default="none", help="fault profile (none)")
    p.add_argument(
        "--rank-by",
        choices=sorted(RANK_KEYS),
        default="net_pnl",
        help="figure to rank combinations by (default net_pnl)",
    )
    p.add_argument(
        "--top", type=cli_types.POSITIVE_INT, default=20, metavar="N", help="rows shown (20)"
    )
    p.add_argument("--out", metavar="FILE.csv", help="every run's figures (.csv or .parquet)")
    p.add_argument(
        "--plot", metavar="FILE.png", help="heatmap of the ranked figure over two swept settings"
    )
    p.add_argument(
        "--backend", choices=BACKENDS, default="process", help="where runs go (default process)"
    )
    p.add_argument(
        "--workers",
        type=cli_types.POSITIVE_INT,
        default=None,
        metavar="N",
        help="processes of the local pool (default: the CPU count)",
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="Ray cluster to join (ray.init(address=...)); default: start a local Ray",
    )
    p.set_defaults(handler=run)


def _error(message: str) -> int:
    sys.stderr.write(f"gridcore: error: {message}\n")
    return _EXIT_USAGE


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SweepError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepError(f"{path}: cannot be read: {exc}") from None


def _plan(args: argparse.Namespace) -> tuple[list[Task], list[str]]:
    if args.faults not in PROFILES:
        raise SweepError(
            f"unknown fault profile {args.faults!r}; choose one of: {', '.join(PROFILES)}"
        )
    grid = [parse_grid(spec) for spec in args.grid]
    if args.out:
        _check_out(args.out)
    if args.plot:
        swept = [k for k, values in grid if len(values) > 1]
        if len(swept) != 2:
            raise SweepError(
                f"--plot draws a heatmap over two swept settings (with two values or more); "
                f"this sweep varies {len(swept)}"
            )
        _load_heatmap()
        if not Path(args.plot).parent.is_dir():
            raise SweepError(f"--plot {args.plot}: directory does not exist")
    if args.data is not None:
        # Read the header and the first row now: a wrong file fails before any run.
        config = load_config(_read(args.config) if args.config else None, source=args.config)
        quotes = csvdata.open_quotes(
            args.data, instrument=config.make_instrument(), bar_ms=args.bar_ms
        )
        next(quotes)
    text = _read(args.config) if args.config else DEFAULT_TOML
    tasks = expand(
        text,
        grid,
        seeds=args.seeds,
        ticks=args.ticks,
        faults=args.faults,
        data=args.data,
        bar_ms=args.bar_ms,
        source=args.config or "the default configuration",
    )
    return tasks, [k for k, _ in grid]


def run(args: argparse.Namespace) -> int:
    """The ``sweep`` handler: returns the exit code."""
    out = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    try:
        tasks, keys = _plan(args)
        workers = args.workers or _cpus()
        started = time.perf_counter()
        with render.progress_bar(err, len(tasks), description="sweep") as progress:
            rows = run_sweep(
                tasks,
                backend=args.backend,
                workers=workers,
                ray_address=args.ray_address,
                progress=progress,
            )
        wall = time.perf_counter() - started
    except (SweepError, ConfigError, csvdata.DataError) as exc:
        return _error(str(exc))
    except KeyboardInterrupt:
        sys.stderr.write("gridcore: interrupted\n")
        return _EXIT_INTERRUPTED
    config = load_config(tasks[0].config) if tasks else load_config()
    ranked = rank(rows, keys, by=args.rank_by)
    out.print(ranked_table(ranked, by=args.rank_by, top=args.top, quote=config.instrument.quote))
    out.print(f"{len(rows)} runs on {args.backend} in {wall:.1f} s", markup=False)
    if args.out:
        write_rows(rows, args.out)
        out.print(f"results written to {args.out}", markup=False)
    if args.plot:
        swept = [k for k in keys if len({repr(r[k]) for r in rows}) > 1]
        _load_heatmap()(ranked, swept[0], swept[1], args.rank_by, args.plot)
        out.print(f"heatmap written to {args.plot}", markup=False)
    bad = sum(r.violations for r in ranked)
    if bad:
        sys.stderr.write(
            f"gridcore: {bad} invariant violation(s) across the sweep: this is a bug in gridcore "
            "or your strategy; rerun the combination with gridcore backtest to see them\n"
        )
        return _EXIT_VIOLATIONS
    return _EXIT_OK


def _cpus() -> int:
    import os

    return max(1, os.cpu_count() or 1)
