"""Terminal output of the command line: progress bars, summary tables, JSON-safe values.

Humans get a rich table with money at the quote currency's places and sizes at the lot (the
rules are in :mod:`gridcore.numbers`); machines get :func:`summary_dict`, exact decimals as
normalized fixed-point strings. A progress bar only appears on an interactive terminal, on stderr, and
vanishes when done, so neither pipes nor ``--json`` consumers ever see it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import attrs
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from gridcore.commands import Level, Notify
from gridcore.core import CoreConfig
from gridcore.invariants import Violation
from gridcore.numbers import exact_str, format_money, format_step
from gridcore.sim import FaultCounts, Summary
from gridcore.strategies.hedge_grid import SideFigures

__all__ = [
    "Performance",
    "human_decimal",
    "json_value",
    "notices_table",
    "progress_bar",
    "side_dict",
    "side_lines",
    "side_rows",
    "side_table",
    "summary_dict",
    "summary_table",
    "violation_dict",
    "violations_table",
]


@attrs.frozen(kw_only=True)
class Performance:
    """How fast a run went, measured by the shell (the core reads no clock)."""

    events: int
    wall_seconds: float

    @property
    def events_per_second(self) -> float:
        """Events processed per wall-clock second (0 when the run took no measurable time)."""
        return self.events / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The ``performance`` object of ``--json`` output."""
        return {
            "events": self.events,
            "wall_seconds": round(self.wall_seconds, 4),
            "events_per_second": round(self.events_per_second, 1),
        }


def json_value(value: object) -> object:
    """A JSON-ready form of a summary value: Decimals as exact, normalized fixed-point strings
    (``"-64.94703838"``, never ``"1E+1"`` nor trailing zeros), fault counts as an object of
    integers, everything else unchanged."""
    if isinstance(value, Decimal):
        return exact_str(value)
    if isinstance(value, FaultCounts):
        return attrs.asdict(value)
    if isinstance(value, bool | int | str) or value is None:
        return value
    raise TypeError(f"no JSON form for {type(value).__name__}: {value!r}")


def summary_dict(summary: Summary) -> dict[str, object]:
    """The ``summary`` object of ``--json``: every field of :class:`~gridcore.sim.Summary`, in
    declaration order, with exact values (see :func:`json_value`)."""
    return {f.name: json_value(getattr(summary, f.name)) for f in attrs.fields(Summary)}


def human_decimal(value: Decimal, currency: str = "USD") -> str:
    """``value`` rounded half-even to ``currency``'s places with thousands separators, for
    people (``-64.947038`` USD → ``-64.95``). Never feed the result back into arithmetic."""
    return format_money(value, currency, grouping=True)


class Display:
    """How one bot's figures are shown to people: prices at the instrument's tick, sizes at its
    lot, money at its quote currency's places; the exact value for an instrument the bot does
    not trade. Machines (``--json``, the journal) keep the exact values."""

    def __init__(self, config: CoreConfig) -> None:
        self._by_key = config.by_key
        currencies = config.currencies
        self.currency = currencies[0] if len(currencies) == 1 else None
        """The one settlement currency of every instrument, else ``None``: totals that add
        positions up are shown at a currency's places only then."""

    def price(self, venue: str, symbol: str, value: Decimal) -> str:
        inst = self._by_key.get((venue, symbol))
        return exact_str(value) if inst is None else format_step(value, inst.tick_size)

    def size(self, venue: str, symbol: str, value: Decimal) -> str:
        inst = self._by_key.get((venue, symbol))
        return exact_str(value) if inst is None else format_step(value, inst.lot_size)

    def quote(self, venue: str | None, symbol: str | None) -> str | None:
        """The currency money on ``venue``/``symbol`` settles in (``None``: the bot's one
        currency, if it has one)."""
        inst = self._by_key.get((venue or "", symbol or ""))
        return inst.settlement if inst is not None else self.currency

    def money(
        self, venue: str | None, symbol: str | None, value: Decimal, *, grouping: bool = False
    ) -> str:
        currency = self.quote(venue, symbol)
        if currency is None:
            return exact_str(value)
        return format_money(value, currency, grouping=grouping)


def _signed(value: Decimal, currency: str) -> Text:
    style = "green" if value > 0 else "red" if value < 0 else ""
    return Text(human_decimal(value, currency), style=style)


#: Rows of the "faults injected" section: (label, :class:`FaultCounts` field).
FAULT_ROWS = (
    ("stream messages dropped", "dropped"),
    ("stream messages lost in outages", "lost_in_outage"),
    ("fills duplicated", "duplicated"),
    ("REST answers delayed", "delayed"),
    ("REST errors", "rest_errors"),
    ("timeouts, not executed", "timeouts_lost"),
    ("timeouts, executed", "timeouts_applied"),
    ("disconnects", "disconnects"),
    ("quotes missed (feed down)", "quotes_missed"),
)


def summary_table(
    summary: Summary,
    performance: Performance,
    *,
    market: str = "",
    quote: str = "USD",
    base: str = "",
    lot_size: Decimal | None = None,
) -> Table:
    """The human summary of a backtest: money at ``quote``'s places, sizes at ``lot_size`` (as
    the ledger has them when no lot is given), and, when the run had a fault profile, how many
    faults of each kind it injected.

    ``market`` says what the bot traded on (a file name, or the synthetic market)."""
    s = summary
    unit = f" ({quote})"
    size_unit = f" ({base})" if base else ""

    def size(value: Decimal) -> str:
        return format_step(value, lot_size) if lot_size is not None else exact_str(value)

    faults: list[tuple[str, str | Text] | None] = []
    if s.faults != "none" or s.injected.total:
        faults = [None] + [(label, f"{getattr(s.injected, name):,}") for label, name in FAULT_ROWS]
    table = Table(title="gridcore backtest", show_header=False, title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    rows: Sequence[tuple[str, str | Text] | None] = (
        ("market", Text(market or "-")),
        ("seed", str(s.seed)),
        ("fault profile", s.faults),
        ("market ticks", f"{s.ticks:,}"),
        ("events processed", f"{s.events:,}"),
        ("events per second", f"{performance.events_per_second:,.0f}"),
        ("wall time", f"{performance.wall_seconds:.2f} s"),
        None,
        ("orders placed", f"{s.orders:,}"),
        ("fills", f"{s.fills:,}"),
        ("cancels", f"{s.cancels:,}"),
        ("rejections", f"{s.rejections:,}"),
        ("volume" + unit, human_decimal(s.volume, quote)),
        None,
        ("realized PnL" + unit, _signed(s.realized_pnl, quote)),
        ("unrealized PnL" + unit, _signed(s.unrealized_pnl, quote)),
        ("fees paid" + unit, human_decimal(s.fees, quote)),
        ("funding received" + unit, _signed(s.funding, quote)),
        ("net PnL" + unit, _signed(s.net_pnl, quote)),
        ("max drawdown" + unit, human_decimal(s.max_drawdown, quote)),
        None,
        ("max position" + size_unit, size(s.max_position)),
        ("final position" + size_unit, size(s.final_position)),
        ("grid recenters", str(s.recenters)),
        ("syncs / drift repairs", f"{s.syncs} / {s.drift_repairs}"),
        ("alerts / warnings", f"{s.alerts} / {s.warnings}"),
        ("halted", Text("yes", style="red") if s.halted else Text("no")),
        (
            "invariant violations",
            Text(
                str(s.invariant_violations), style="bold red" if s.invariant_violations else "green"
            ),
        ),
        *faults,
    )
    for row in rows:
        if row is None:
            table.add_section()
        else:
            table.add_row(*row)
    return table


def side_rows(figures: Sequence[SideFigures], shown: Display) -> list[tuple[str, str, list[str]]]:
    """The per-side figures of a hedge grid for people, one ``(label, unit, [value per side])``
    row per figure, in the order of ``figures`` (LONG, SHORT): the side's phase (``trading``,
    ``stopping``, ``stopped``), counts as integers, money at the
    settlement currency's places with the currency as its unit (the sides of one symbol settle
    alike; amounts are never added across currencies), the position at the lot in base units
    and the average entry at the tick (``-`` when flat). The backtest's table and the run's
    stop summary both show these rows, so they always agree."""

    def each(fn: Callable[[SideFigures], str]) -> list[str]:
        return [fn(f) for f in figures]

    def common(values: set[str]) -> str:
        return values.pop() if len(values) == 1 else ""

    currency = common({f.currency for f in figures})
    base = common({f.base for f in figures})

    def money(f: SideFigures, value: Decimal) -> str:
        text = shown.money(f.venue, f.symbol, value, grouping=True)
        return text if currency else f"{text} {f.currency}"

    return [
        ("phase", "", each(lambda f: f.phase.value)),
        ("entries filled", "", each(lambda f: f"{f.entries:,}")),
        ("averaging depth (max)", "", each(lambda f: str(f.max_depth))),
        ("take-profits hit", "", each(lambda f: f"{f.take_profits:,}")),
        ("take-profit failures", "", each(lambda f: f"{f.tp_failures:,}")),
        ("stops", "", each(lambda f: f"{f.stops:,}")),
        ("realized PnL", currency, each(lambda f: money(f, f.realized))),
        ("fees paid", currency, each(lambda f: money(f, f.fees))),
        ("position", base, each(lambda f: shown.size(f.venue, f.symbol, f.position))),
        (
            "average entry",
            "",
            each(lambda f: shown.price(f.venue, f.symbol, f.avg_entry) if f.position else "-"),
        ),
    ]


def side_table(figures: Sequence[SideFigures], shown: Display, *, caption: str = "") -> Table:
    """:func:`side_rows` as a table with a column per side (the backtest's summary)."""
    table = Table(title="hedge grid per side", title_justify="left", caption=caption or None)
    table.add_column("figure", style="bold")
    for f in figures:
        table.add_column(f.side.name, justify="right")
    for label, unit, values in side_rows(figures, shown):
        table.add_row(f"{label} ({unit})" if unit else label, *values)
    return table


def side_lines(figures: Sequence[SideFigures], shown: Display) -> list[str]:
    """:func:`side_rows` as one line per side (``gridcore run``'s stop summary)::

    LONG: entries filled 5, averaging depth (max) 5, take-profits hit 0, ...
    """
    rows = side_rows(figures, shown)
    return [
        f"{f.side.name}: "
        + ", ".join(
            f"{label} {values[i]}" + (f" {unit}" if unit and values[i] != "-" else "")
            for label, unit, values in rows
        )
        for i, f in enumerate(figures)
    ]


def side_dict(figures: Sequence[SideFigures]) -> dict[str, dict[str, object]]:
    """The ``sides`` object of ``--json`` for a hedge grid: per side (``long``, ``short``),
    counts as integers and money, sizes and prices as exact strings (see :func:`json_value`);
    ``currency`` names what the money is in."""
    return {
        f.side.value: {
            "phase": f.phase.value,
            "entries_filled": f.entries,
            "max_depth": f.max_depth,
            "take_profits": f.take_profits,
            "take_profit_failures": f.tp_failures,
            "stops": f.stops,
            "realized_pnl": json_value(f.realized),
            "fees": json_value(f.fees),
            "currency": f.currency,
            "position": json_value(f.position),
            "avg_entry": json_value(f.avg_entry),
        }
        for f in figures
    }


def violations_table(violations: Sequence[Violation], total: int) -> Table:
    """The invariant violations a run kept (at most 100 of ``total``)."""
    shown = f"first {len(violations)} of {total}" if total > len(violations) else str(total)
    table = Table(title=f"invariant violations ({shown})", title_justify="left", title_style="red")
    table.add_column("ts (ms)", justify="right")
    table.add_column("invariant")
    table.add_column("detail")
    for v in violations:
        table.add_row(str(v.ts), Text(v.invariant), Text(v.detail))
    return table


def notices_table(notices: Sequence[Notify]) -> Table | None:
    """Warnings and alerts the bot raised, grouped by code with a count and the first message
    (why a run made no trades, for instance); ``None`` when there were none."""
    groups: dict[tuple[str, str], tuple[int, str]] = {}
    for n in notices:
        if n.level in (Level.WARNING, Level.ALERT):
            key = (n.level.value, n.code)
            count, first = groups.get(key, (0, n.message))
            groups[key] = (count + 1, first)
    if not groups:
        return None
    table = Table(title="warnings and alerts", title_justify="left", title_style="yellow")
    table.add_column("count", justify="right")
    table.add_column("level")
    table.add_column("code")
    table.add_column("first message")
    for (level, code), (count, first) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
        table.add_row(f"{count:,}", level, Text(code), Text(first))
    return table


def violation_dict(violation: Violation) -> Mapping[str, object]:
    """One entry of the ``violations`` array of ``--json``."""
    return {"invariant": violation.invariant, "ts": violation.ts, "detail": violation.detail}


@contextmanager
def progress_bar(
    console: Console, total: int | None, description: str = "backtest"
) -> Iterator[Callable[[int], None] | None]:
    """A transient progress bar of ticks done on ``console``, or ``None`` (no callback at all,
    so the run pays nothing) when ``console`` does not write to an interactive terminal."""
    # is_terminal alone is not enough: FORCE_COLOR makes rich call a pipe a terminal.
    if not (console.is_terminal and console.file.isatty()):
        yield None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    task = progress.add_task(description, total=total)

    def update(done: int) -> None:
        progress.update(task, completed=done)

    with progress:
        yield update
