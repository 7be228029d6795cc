"""Terminal output of the command line: progress bars, summary tables, JSON-safe values.

Humans get rounded money in a rich table; machines get :func:`summary_dict`, exact decimals as
fixed-point strings. A progress bar only appears on an interactive terminal, on stderr, and
vanishes when done, so neither pipes nor ``--json`` consumers ever see it.
"""

from __future__ import annotations

import decimal
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
from gridcore.invariants import Violation
from gridcore.sim import Summary

__all__ = [
    "Performance",
    "human_decimal",
    "json_value",
    "notices_table",
    "progress_bar",
    "summary_dict",
    "summary_table",
    "violation_dict",
    "violations_table",
]

# Rounding for display only: explicit, independent of the thread's decimal context.
_DISPLAY = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN)


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
    """A JSON-ready form of a summary value: Decimals as exact fixed-point strings
    (``"-64.947"``, never ``"1E+1"``), enums by value, everything else unchanged."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool | int | str) or value is None:
        return value
    raise TypeError(f"no JSON form for {type(value).__name__}: {value!r}")


def summary_dict(summary: Summary) -> dict[str, object]:
    """The ``summary`` object of ``--json``: every field of :class:`~gridcore.sim.Summary`, in
    declaration order, with exact values (see :func:`json_value`)."""
    return {f.name: json_value(getattr(summary, f.name)) for f in attrs.fields(Summary)}


def human_decimal(value: Decimal, places: int = 2) -> str:
    """``value`` rounded half-even to ``places`` decimals with thousands separators, for
    people (``-64.947038`` → ``-64.95``). Never feed the result back into arithmetic."""
    exp = Decimal(1).scaleb(-places)
    rounded = value.quantize(exp, context=_DISPLAY)
    if rounded == 0:
        rounded = abs(rounded)  # no "-0.00"
    return f"{rounded:,}"


def _signed(value: Decimal, places: int = 2) -> Text:
    style = "green" if value > 0 else "red" if value < 0 else ""
    return Text(human_decimal(value, places), style=style)


def summary_table(
    summary: Summary,
    performance: Performance,
    *,
    market: str = "",
    quote: str = "USD",
    base: str = "",
) -> Table:
    """The human summary of a backtest: money rounded to cents, sizes as the ledger has them.

    ``market`` says what the bot traded on (a file name, or the synthetic market)."""
    s = summary
    unit = f" ({quote})"
    size_unit = f" ({base})" if base else ""
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
        ("volume" + unit, human_decimal(s.volume)),
        None,
        ("realized PnL" + unit, _signed(s.realized_pnl)),
        ("unrealized PnL" + unit, _signed(s.unrealized_pnl)),
        ("fees paid" + unit, human_decimal(s.fees)),
        ("funding received" + unit, _signed(s.funding)),
        ("net PnL" + unit, _signed(s.net_pnl)),
        ("max drawdown" + unit, human_decimal(s.max_drawdown)),
        None,
        ("max position" + size_unit, format(s.max_position, "f")),
        ("final position" + size_unit, format(s.final_position, "f")),
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
    )
    for row in rows:
        if row is None:
            table.add_section()
        else:
            table.add_row(*row)
    return table


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
