"""Recorded quotes from CSV files: the ``--data`` input of ``gridcore backtest``.

Format
------
A header row naming the columns is required; names are matched without regard to case or
surrounding spaces, and columns other than these are ignored:

* ``timestamp`` — an integer count since the Unix epoch, or ISO 8601 with a timezone
  (``2024-01-01T00:00:00Z``, ``2024-01-01 00:00:00.250+00:00``). The unit of an integer is read
  from its number of digits (:data:`INTEGER_UNITS`): 10 digits are seconds (``1704067200``), 13
  milliseconds, 16 microseconds, 19 nanoseconds; each covers 2001-09-09 to 2286-11-20, and any
  other length is refused as ambiguous. Every timestamp of a file is in the same unit (a file
  mixing units is refused); the unit found is :attr:`Quotes.timestamp_unit`. Events carry
  milliseconds: finer digits are truncated. Timestamps must strictly increase as written.
* either ``bid`` and ``ask`` (the top of book; bid below ask), or ``price`` alone (a trade or mid
  price: bid = the price, ask = the price plus one tick). When both are present, ``bid`` and
  ``ask`` are used.

Prices are decimals written exactly (never parsed through floats). A price off the instrument's
tick is rounded outward: the bid down and the ask up, so the quote never looks tighter than it
was. Blank lines are skipped.

Every error names the file, the line and the column (``data.csv:17: bid: 'abc' is not a
number``); it is raised as :class:`DataError` while reading, so a bad row stops a backtest at
that row.

Reading is lazy (:func:`read_quotes` returns an iterator): a file of millions of rows is never
held in memory.
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

__all__ = [
    "INTEGER_UNITS",
    "ISO_8601",
    "DataError",
    "Quotes",
    "count_rows",
    "open_quotes",
    "parse_timestamp",
    "read_quotes",
]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_US = dt.timedelta(microseconds=1)
_NS_PER_MS = 1_000_000

#: Integer timestamp units, told apart by the number of digits: ``(name, digits, nanoseconds
#: per unit)``. With exactly these lengths every unit spans the same dates, 2001-09-09T01:46:40Z
#: up to 2286-11-20T17:46:40Z, and no number fits two units. A length in between (a 12-digit
#: number is milliseconds in 1973 or seconds in the year 5138) is refused as ambiguous: reading
#: microseconds as milliseconds would stretch a day of quotes into three years and trade a
#: different market without a word.
INTEGER_UNITS: tuple[tuple[str, int, int], ...] = (
    ("seconds", 10, 1_000_000_000),
    ("milliseconds", 13, 1_000_000),
    ("microseconds", 16, 1_000),
    ("nanoseconds", 19, 1),
)

#: :attr:`Quotes.timestamp_unit` of a file whose timestamps are ISO 8601 text.
ISO_8601 = "ISO 8601"

_ACCEPTED = (
    "write integer seconds (10 digits), milliseconds (13), microseconds (16) or nanoseconds (19) "
    "since the epoch, or ISO 8601 with a timezone (for example 1704067200000 or "
    "2024-01-01T00:00:00Z)"
)
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
    """Milliseconds since the Unix epoch from an integer timestamp or ISO 8601 with a timezone.

    The unit of an integer is read from its number of digits (:data:`INTEGER_UNITS`); digits
    finer than a millisecond are truncated. Raises ``ValueError`` with a message saying what is
    accepted.

    >>> parse_timestamp("1700000000000")
    1700000000000
    >>> parse_timestamp("1700000000")
    1700000000000
    >>> parse_timestamp("1700000000123456")
    1700000000123
    >>> parse_timestamp("2024-01-01T00:00:00Z")
    1704067200000
    """
    ns, _ = _parse_timestamp(text)
    return ns // _NS_PER_MS


def _parse_timestamp(text: str) -> tuple[int, str]:
    """Exact nanoseconds since the epoch and the unit they were written in."""
    value = text.strip()
    if not value:
        raise ValueError(f"empty; {_ACCEPTED}")
    if value.isdigit():
        number = int(value)
        for unit, digits, ns in INTEGER_UNITS:
            if 10 ** (digits - 1) <= number < 10**digits:
                return number * ns, unit
        length = len(str(number))
        raise ValueError(
            f"{value} is ambiguous: an integer timestamp's unit is read from its length, and "
            f"{length} digit{'' if length == 1 else 's'} fit{'s' if length == 1 else ''} no "
            f"unit between 2001 and 2286; {_ACCEPTED}"
        )
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is neither an integer timestamp nor ISO 8601; {_ACCEPTED}"
        ) from None
    if when.tzinfo is None:
        raise ValueError(f"{value!r} has no timezone; add one, for example {value}Z for UTC")
    return (when - _EPOCH) // _ONE_US * 1_000, ISO_8601


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


class Quotes(Iterator[QuoteTicked]):
    """The quotes of one CSV source, read lazily row by row (see :func:`read_quotes`).

    :attr:`timestamp_unit` names how the file writes its timestamps (``"seconds"``,
    ``"milliseconds"``, ``"microseconds"``, ``"nanoseconds"`` or :data:`ISO_8601`) once the first
    quote has been read, ``None`` before; say it to the user, so that a file in an unexpected
    unit is noticed before its results are trusted.
    """

    def __init__(
        self, lines: Iterable[str], *, instrument: Instrument, source: str, limit: int | None
    ) -> None:
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        self.timestamp_unit: str | None = None
        self._rows = self._read(lines, instrument, source, limit)

    def __next__(self) -> QuoteTicked:
        return next(self._rows)

    def _read(
        self, lines: Iterable[str], instrument: Instrument, source: str, limit: int | None
    ) -> Iterator[QuoteTicked]:
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
        last_ns: int | None = None
        last_text = ""
        unit_line = 0
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
                    text = row[columns.timestamp].strip()
                    ns, unit = _parse_timestamp(text)
                    if self.timestamp_unit is None:
                        self.timestamp_unit, unit_line = unit, line
                    elif unit != self.timestamp_unit:
                        raise ValueError(
                            f"{text} is in {unit} but line {unit_line} is in "
                            f"{self.timestamp_unit}; write every timestamp of the file in "
                            "one unit"
                        )
                    if last_ns is not None and ns <= last_ns:
                        raise ValueError(
                            f"{text} is not after the previous row's {last_text}; "
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
                    # Built inside the try: a value the event refuses (a time past 2100, a
                    # price beyond 1e18) is reported with its line, like any other bad value.
                    ts = ns // _NS_PER_MS
                    column = "timestamp" if not TS_MIN <= ts < TS_MAX else column
                    quote = QuoteTicked(ts=ts, venue=venue, symbol=symbol, bid=bid, ask=ask)
                except ValueError as exc:
                    raise DataError(source, str(exc), line=line, column=column) from None
                last_ns, last_text = ns, text
                count += 1
                yield quote
        except csv.Error as exc:
            raise DataError(source, f"not valid CSV: {exc}", line=reader.line_num or None) from None
        if columns is None:
            raise DataError(source, "is empty; it needs a header row and at least one data row")
        if count == 0 and limit != 0:
            raise DataError(source, "has a header but no data rows", line=last_line or None)


def read_quotes(
    lines: Iterable[str],
    *,
    instrument: Instrument,
    source: str,
    limit: int | None = None,
) -> Quotes:
    """One :class:`~gridcore.events.QuoteTicked` per data row of CSV text ``lines``, lazily.

    Quotes carry ``instrument``'s venue and symbol; prices are snapped to its tick (bid down,
    ask up). ``limit`` stops after that many quotes. Iterating raises :class:`DataError` naming
    ``source``, the line and the column at the first bad row, and when there is no data row.
    The returned :class:`Quotes` also says which timestamp unit the file uses.
    """
    return Quotes(lines, instrument=instrument, source=source, limit=limit)


def open_quotes(path: str | Path, *, instrument: Instrument, limit: int | None = None) -> Quotes:
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
