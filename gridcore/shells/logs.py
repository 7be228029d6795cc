"""The log of ``gridcore run``: timestamped lines for operators and their log collectors.

The core never logs: it returns ``Notify`` and ``Halt`` commands. This module derives log
records from what the runtime already has, the ``(state before, event, state after,
commands)`` of every reduced event (:class:`SessionLog`), and writes them through the standard
:mod:`logging` module under the ``gridcore`` logger hierarchy:

* ``gridcore.run`` — start, resume, stop (INFO), a halt (ERROR), the core's notices: a
  decision the risk gate refused (``refused:*``, WARNING), other warnings (WARNING), alerts
  (ERROR), information (INFO);
* ``gridcore.fills`` — every fill booked in the ledger (INFO): side, qty, price, fee, cloid,
  source; a fill the ledger had already booked (a duplicate, a replay) is not logged again, so
  the log's fills are the journal's;
* ``gridcore.venue.<name>`` — feed disconnects and reconnects (WARNING).

Lines are written once their events are in the journal, so the log never shows what a crash
then undid. Every line carries its wall-clock time in UTC ISO 8601 with milliseconds
(``2024-01-01T00:00:00.250Z``); event lines also carry the venue time of the event
(``event_ts``). Prices are shown at the instrument's tick, sizes at its lot and money at the
quote currency's places (:mod:`gridcore.numbers`). Every message and field goes through
:func:`gridcore.shells.redact.redact` (:class:`RedactFilter`), so a secret never reaches a log.

Two formats: text (``2024-01-01T00:00:00.250Z INFO gridcore.fills: fill buy 0.001 @ 42000.1
fee 0.01 USD cloid=g1 source=stream``) and JSON lines (one object per line: ``ts``, ``level``,
``logger``, ``message`` and the structured fields, every value a string).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

from gridcore.commands import Command, Halt, Level, Notify
from gridcore.core import State
from gridcore.events import (
    Event,
    FeedDisconnected,
    FeedReconnected,
    Fill,
    FillsReported,
    OrderFilled,
    OrderPartiallyFilled,
    Started,
)
from gridcore.numbers import exact_str
from gridcore.shells.redact import redact
from gridcore.shells.render import Display

__all__ = [
    "LOGGER",
    "JsonFormatter",
    "RedactFilter",
    "SessionLog",
    "TextFormatter",
    "configure",
    "level_for",
    "utc_iso",
]

LOGGER = "gridcore"
"""The root of the hierarchy: ``gridcore.run``, ``gridcore.fills``, ``gridcore.venue.<name>``."""

_FIELDS = "fields"  # the LogRecord attribute holding a line's structured fields


def utc_iso(seconds: float) -> str:
    """UTC ISO 8601 with milliseconds: ``utc_iso(0.25)`` is ``"1970-01-01T00:00:00.250Z"``."""
    when = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fields(record: logging.LogRecord) -> dict[str, str]:
    fields = getattr(record, _FIELDS, None)
    return fields if isinstance(fields, dict) else {}


class RedactFilter(logging.Filter):
    """Passes every record, with its message and string fields redacted (secrets never logged)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        fields = _fields(record)
        if fields:
            setattr(record, _FIELDS, {k: redact(str(v)) for k, v in fields.items()})
        return True


class TextFormatter(logging.Formatter):
    """``<UTC time> <LEVEL> <logger>: <message> key=value ...``."""

    def format(self, record: logging.LogRecord) -> str:
        extra = "".join(f" {k}={v}" for k, v in _fields(record).items() if k not in _IN_TEXT)
        return (
            f"{utc_iso(record.created)} {record.levelname} {record.name}: "
            f"{record.getMessage()}{extra}"
        )


# Fields already said by a fill's text message.
_IN_TEXT = frozenset({"side", "qty", "price", "fee", "currency"})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message``, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {
            "ts": utc_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _fields(record).items():
            line.setdefault(key, value)
        return json.dumps(line, ensure_ascii=False)


def level_for(*, verbose: bool, quiet: bool) -> int:
    """``-v`` logs DEBUG and up, ``-q`` WARNING and up, neither INFO and up."""
    if quiet:
        return logging.WARNING
    return logging.DEBUG if verbose else logging.INFO


def configure(
    *, level: int, json_lines: bool, path: str | None, stream: TextIO | None = None
) -> Callable[[], None]:
    """Send the ``gridcore`` loggers to ``path`` (appended) and/or ``stream``; returns the
    function that detaches and closes those handlers. Opening ``path`` raises ``OSError``."""
    logger = logging.getLogger(LOGGER)
    formatter: logging.Formatter = JsonFormatter() if json_lines else TextFormatter()
    handlers: list[logging.Handler] = []
    if path is not None:
        handlers.append(logging.FileHandler(path, mode="a", encoding="utf-8"))
    if stream is not None:
        handlers.append(logging.StreamHandler(stream))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(RedactFilter())
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False

    def close() -> None:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()

    return close


_NOTICE_LEVELS = {
    Level.INFO: logging.INFO,
    Level.WARNING: logging.WARNING,
    Level.ALERT: logging.ERROR,
}

_Line = tuple[str, int, str, dict[str, str], int]


class SessionLog:
    """Derives log lines from reduced events; :meth:`observe` each, :meth:`flush` once they are
    journaled (lines of events never journaled are never written)."""

    def __init__(self) -> None:
        self._lines: list[_Line] = []
        self._ts = 0
        self.fills = 0
        """Fills logged so far (each one the ledger booked)."""

    def observe(
        self, before: State[Any], event: Event, after: State[Any], commands: Sequence[Command]
    ) -> None:
        """Note the lines of one reduced event: ``before`` and ``after`` are the states around it."""
        # Most events (quotes) give no line: the event's time is formatted only for lines made.
        self._ts = event.ts
        match event:
            case OrderFilled(fill=fill) | OrderPartiallyFilled(fill=fill):
                self._fills(before, after, (fill,), event.source.value)
            case FillsReported(fills=fills):
                self._fills(before, after, fills, event.source.value)
            case FeedDisconnected(venue=venue, reason=reason):
                text = f"feed disconnected from {venue}" + (f": {reason}" if reason else "")
                self._add(f"venue.{venue}", logging.WARNING, text, {"venue": venue})
            case FeedReconnected(venue=venue):
                self._add(
                    f"venue.{venue}",
                    logging.WARNING,
                    f"feed reconnected to {venue}",
                    {"venue": venue},
                )
            case Started():
                self._add("run", logging.INFO, "core started", {})
            case _:
                pass
        for command in commands:
            if isinstance(command, Halt):
                self._add("run", logging.ERROR, f"halted: {command.reason}", {})
            elif isinstance(command, Notify):
                level = _NOTICE_LEVELS.get(command.level, logging.WARNING)
                if command.code.startswith("refused:"):
                    level = logging.WARNING
                self._add(
                    "run",
                    level,
                    f"{command.code}: {command.message}",
                    {"code": command.code},
                )

    def _fills(
        self,
        before: State[Any],
        after: State[Any],
        fills: Iterable[Fill],
        source: str,
    ) -> None:
        booked = after.ledger.fill_count - before.ledger.fill_count
        for fill in fills:
            if booked <= 0:
                return
            if before.ledger.has_seen(fill):
                continue  # a duplicate or replay: the ledger did not book it again
            booked -= 1
            self.fills += 1
            self._add("fills", logging.INFO, *_fill_line(after, fill, source))

    def _add(self, name: str, level: int, message: str, fields: dict[str, str]) -> None:
        self._lines.append((f"{LOGGER}.{name}", level, message, fields, self._ts))

    @property
    def noted(self) -> int:
        """Lines noted and not yet written."""
        return len(self._lines)

    def flush(self, count: int | None = None) -> None:
        """Write the lines noted so far (``count``: only the first ``count`` of them, those of
        the events a commit took while more were being reduced)."""
        if count is None:
            count = len(self._lines)
        lines, self._lines = self._lines[:count], self._lines[count:]
        for name, level, message, fields, ts in lines:
            fields = {**fields, "event_ts": utc_iso(ts / 1000)}
            logging.getLogger(name).log(level, "%s", message, extra={_FIELDS: fields})


def _fill_line(state: State[Any], fill: Fill, source: str) -> tuple[str, dict[str, str]]:
    shown = Display(state.config)
    where = (fill.venue, fill.symbol)
    qty, price = shown.size(*where, fill.qty), shown.price(*where, fill.price)
    inst = state.config.by_key.get(where)
    currency = inst.quote if inst is not None else ""
    fee = shown.money(*where, fill.fee) if inst is not None else exact_str(fill.fee)
    side = fill.side.value
    fields = {
        "venue": fill.venue,
        "symbol": fill.symbol,
        "side": side,
        "qty": qty,
        "price": price,
        "fee": fee,
        "currency": currency,
        "cloid": fill.cloid or "",
        "fill_id": fill.fill_id,
        "source": source,
    }
    text = (
        f"fill {side} {qty} {fill.symbol} @ {price} fee {fee}{' ' + currency if currency else ''}"
    )
    return text, fields
