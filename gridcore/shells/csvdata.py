"""Recorded quotes from CSV files: the ``--data`` input of ``gridcore backtest``.

Format
------
A header row naming the columns is required; names are matched without regard to case or
surrounding spaces, and columns other than these are ignored:

* ``timestamp`` — integer milliseconds since the Unix epoch (``1700000000000``) or ISO 8601
  with a timezone (``2024-01-01T00:00:00Z``, ``2024-01-01 00:00:00.250+00:00``). Sub-millisecond
  digits are truncated. Timestamps must strictly increase.
* either ``bid`` and ``ask`` (the top of book; bid below ask), or ``price`` alone (a trade or mid
  price: bid = the price, ask = the price plus one tick). When both are present, ``bid`` and
  ``ask`` are used.

Prices are decimals written exactly (never parsed through floats). A price off the instrument's
tick is rounded outward: the bid down and the ask up, so the quote never looks tighter than it
was. Blank lines are skipped.

Every error names the file, the line and the column (``data.csv:17: bid: 'abc' is not a
number``); it is raised as :class:`DataError` while reading, so a bad row stops a backtest at
that row.

Reading is lazy (:func:`read_quotes` is a generator): a file of millions of rows is never held
in memory.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import TextIO

from gridcore.errors import GridcoreError
from gridcore.events import TS_MAX, TS_MIN, QuoteTicked
from gridcore.instruments import Instrument
from gridcore.numbers import CTX, Rounding

__all__ = ["DataError", "count_rows", "open_quotes", "parse_timestamp", "read_quotes"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_MS = dt.timedelta(milliseconds=1)
# Below this, an integer "millisecond" timestamp is before March 1973: almost surely seconds.
_SECONDS_HINT_BELOW = 100_000_000_000
_CACHE_LIMIT = 100_000
_MAX_DIGITS = 18  # integer digits of the largest price accepted


class DataError(GridcoreError):
    """A market-data file cannot be used; the message names the file, line and column.

    ``source`` is the file name as the user gave it, ``line`` the 1-based line number (``None``
    for problems with the whole file) and ``column`` the offending column when there is one.
    """

    def __init__(
        self, source: str, message: str, *, line: int | None = None, column: str | None = None
    ) -> None:
        self.source = source
        self.line = line
        self.column = column
        where = source if line is None else f"{source}:{line}"
        what = message if column is None else f"{column}: {message}"
        super().__init__(f"{where}: {what}")


def parse_timestamp(text: str) -> int:
    """Milliseconds since the Unix epoch from integer milliseconds or ISO 8601 with a timezone.

    Raises ``ValueError`` with a message saying what is accepted.

    >>> parse_timestamp("1700000000000")
    1700000000000
    >>> parse_timestamp("2024-01-01T00:00:00Z")
    1704067200000
    """
    value = text.strip()
    if not value:
        raise ValueError("empty; write integer milliseconds or ISO 8601 with a timezone")
    if value.isdigit():
        ms = int(value)
        if ms < _SECONDS_HINT_BELOW:
            raise ValueError(
                f"{value} looks like seconds; write milliseconds since the epoch ({value}000)"
            )
        return ms
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is neither integer milliseconds nor ISO 8601 "
            "(for example 1704067200000 or 2024-01-01T00:00:00Z)"
        ) from None
    if when.tzinfo is None:
        raise ValueError(f"{value!r} has no timezone; add one, for example {value}Z for UTC")
    return (when - _EPOCH) // _ONE_MS


class _Columns:
    """Where the needed columns sit in a row, from the header."""

    def __init__(self, header: list[str], source: str, line: int) -> None:
        names = [h.strip().lstrip("\ufeff").lower() for h in header]
        index: dict[str, int] = {}
        for i, name in enumerate(names):
            index.setdefault(name, i)
        if "timestamp" not in index:
            if header and _looks_like_data(header[0]):
                raise DataError(
                    source,
                    "no header row; the first line must name the columns, "
                    "for example: timestamp,bid,ask  or  timestamp,price",
                    line=line,
                )
            raise DataError(
                source,
                f"no 'timestamp' column in the header (found: {', '.join(names) or 'nothing'}); "
                "expected timestamp plus bid and ask, or timestamp plus price",
                line=line,
            )
        self.timestamp = index["timestamp"]
        self.bid: int | None = index.get("bid")
        self.ask: int | None = index.get("ask")
        self.price: int | None = index.get("price")
        if (self.bid is None) != (self.ask is None):
            missing = "ask" if self.ask is None else "bid"
            if self.price is None:
                raise DataError(
                    source,
                    f"the header has {'bid' if missing == 'ask' else 'ask'} but no {missing} "
                    "column; give both bid and ask, or a price column",
                    line=line,
                )
            self.bid = self.ask = None  # fall back to price
        if self.bid is None and self.price is None:
            raise DataError(
                source,
                f"no price columns in the header (found: {', '.join(names)}); "
                "expected bid and ask, or price",
                line=line,
            )
        self.width = 1 + max(
            i for i in (self.timestamp, self.bid, self.ask, self.price) if i is not None
        )


def _looks_like_data(cell: str) -> bool:
    try:
        parse_timestamp(cell)
    except ValueError:
        return False
    return True


def _decimal(text: str, cache: dict[str, Decimal]) -> Decimal:
    """A positive finite decimal from ``text`` (cached: recorded prices repeat a lot)."""
    value = cache.get(text)
    if value is not None:
        return value
    stripped = text.strip()
    if not stripped:
        raise ValueError("is empty; every row needs a value here")
    try:
        value = Decimal(stripped)
    except decimal.InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{text!r} is not a finite number")
    if value <= 0:
        raise ValueError(f"must be > 0, got {stripped}")
    if value.adjusted() >= _MAX_DIGITS:
        raise ValueError(f"{stripped} is too large to be a price")
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[text] = value
    return value


def read_quotes(
    lines: Iterable[str],
    *,
    instrument: Instrument,
    source: str,
    limit: int | None = None,
) -> Iterator[QuoteTicked]:
    """Yield one :class:`~gridcore.events.QuoteTicked` per data row of CSV text ``lines``.

    Quotes carry ``instrument``'s venue and symbol; prices are snapped to its tick (bid down,
    ask up). ``limit`` stops after that many quotes. Raises :class:`DataError` naming
    ``source``, the line and the column at the first bad row, and when there is no data row.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    reader = csv.reader(lines)
    columns: _Columns | None = None
    tick = instrument.tick_size
    venue, symbol = instrument.venue, instrument.symbol
    cache: dict[str, Decimal] = {}
    snapped: dict[tuple[Decimal, bool], Decimal] = {}

    def snap(price: Decimal, up: bool) -> Decimal:
        key = (price, up)
        out = snapped.get(key)
        if out is None:
            out = instrument.round_price(price, Rounding.UP if up else Rounding.DOWN)
            if len(snapped) >= _CACHE_LIMIT:
                snapped.clear()
            snapped[key] = out
        return out

    count = 0
    last_ts: int | None = None
    last_line = 0
    try:
        for row in reader:
            line = reader.line_num
            last_line = line
            if not row or all(not cell.strip() for cell in row):
                continue
            if columns is None:
                columns = _Columns(row, source, line)
                continue
            if limit is not None and count >= limit:
                return
            if len(row) < columns.width:
                raise DataError(
                    source,
                    f"has {len(row)} {'column' if len(row) == 1 else 'columns'}, "
                    f"the header needs at least {columns.width}",
                    line=line,
                )
            column = "timestamp"
            try:
                ts = parse_timestamp(row[columns.timestamp])
                if last_ts is not None and ts <= last_ts:
                    raise ValueError(
                        f"{ts} is not after the previous row's {last_ts}; "
                        "timestamps must strictly increase"
                    )
                if columns.bid is not None and columns.ask is not None:
                    column = "bid"
                    raw_bid = _decimal(row[columns.bid], cache)
                    column = "ask"
                    raw_ask = _decimal(row[columns.ask], cache)
                    if raw_bid >= raw_ask:
                        raise ValueError(f"{raw_ask} is not above the bid {raw_bid}")
                    column = "bid"
                    bid = snap(raw_bid, up=False)
                    if bid <= 0:
                        raise ValueError(f"{raw_bid} rounds down to 0 at tick size {tick}")
                    ask = snap(raw_ask, up=True)
                else:
                    assert columns.price is not None
                    column = "price"
                    raw = _decimal(row[columns.price], cache)
                    bid = snap(raw, up=False)
                    if bid <= 0:
                        raise ValueError(f"{raw} rounds down to 0 at tick size {tick}")
                    ask = CTX.add(bid, tick)
                # Built inside the try: a value the event refuses (a time in microseconds, a
                # price beyond 1e18) is reported with its line, like any other bad value.
                column = "timestamp" if not TS_MIN <= ts < TS_MAX else column
                quote = QuoteTicked(ts=ts, venue=venue, symbol=symbol, bid=bid, ask=ask)
            except ValueError as exc:
                raise DataError(source, str(exc), line=line, column=column) from None
            last_ts = ts
            count += 1
            yield quote
    except csv.Error as exc:
        raise DataError(source, f"not valid CSV: {exc}", line=reader.line_num or None) from None
    if columns is None:
        raise DataError(source, "is empty; it needs a header row and at least one data row")
    if count == 0 and limit != 0:
        raise DataError(source, "has a header but no data rows", line=last_line or None)


def open_quotes(
    path: str | Path, *, instrument: Instrument, limit: int | None = None
) -> Iterator[QuoteTicked]:
    """:func:`read_quotes` over the file at ``path`` (UTF-8, a byte-order mark is skipped).

    The file is opened at once, so a missing or unreadable file raises :class:`DataError`
    before the first quote is asked for.
    """
    source = str(path)
    try:
        handle = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed by _lines
    except FileNotFoundError:
        raise DataError(source, "no such file") from None
    except IsADirectoryError:
        raise DataError(source, "is a directory, not a CSV file") from None
    except OSError as exc:
        raise DataError(source, f"cannot be read: {exc.strerror or exc}") from None
    return read_quotes(_lines(handle, source), instrument=instrument, source=source, limit=limit)


def _lines(handle: TextIO, source: str) -> Iterator[str]:
    with handle:
        try:
            yield from handle
        except UnicodeDecodeError as exc:
            raise DataError(source, f"is not UTF-8 text ({exc.reason})") from None


def count_rows(path: str | Path) -> int:
    """The number of lines after the first in ``path``: a cheap upper bound on its quotes,
    for progress bars (``0`` when the file cannot be read; reading reports that properly)."""
    try:
        with open(path, "rb") as f:
            lines = 0
            last = b"\n"
            while chunk := f.read(1 << 20):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
    except OSError:
        return 0
    if last != b"\n":
        lines += 1
    return max(0, lines - 1)
