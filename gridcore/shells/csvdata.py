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

Other formats, told apart by the header in the order of :data:`FORMATS` (the first whose
columns are all present wins; a header that could mean two is refused naming its columns):
``bid_price``/``ask_price`` quotes (Tardis-style exports, read like bid and ask),
``open``/``high``/``low``/``close`` candles (each replayed as four quotes along
:func:`candle_path`, spread evenly inside the bar), and trades (``price`` with ``size``, one
quote per trade). Trades and Tardis quotes may repeat a timestamp; gzip files are decompressed
as they are read.

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
import gzip
import zlib
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import TextIO

from gridcore.errors import GridcoreError
from gridcore.events import TS_MAX, TS_MIN, QuoteTicked
from gridcore.instruments import Instrument
from gridcore.numbers import CTX, Rounding

__all__ = [
    "CANDLE_QUOTES",
    "FORMATS",
    "INTEGER_UNITS",
    "ISO_8601",
    "DataError",
    "Quotes",
    "candle_path",
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


#: Data formats, in the order a header is matched (the first whose columns are all present
#: wins): ``(name, columns)``.
FORMATS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("bid/ask quotes", ("bid", "ask")),
    ("bid_price/ask_price quotes", ("bid_price", "ask_price")),
    ("OHLC candles", ("open", "high", "low", "close")),
    ("trades", ("price", "size")),
    ("prices", ("price",)),
)
#: Names of a trade's size column in the exports people have (``size``, ``qty``, ...).
_SIZE_NAMES = ("size", "qty", "quantity", "amount")
_EXPECTED = (
    "expected timestamp plus bid and ask, bid_price and ask_price, open high low close, or price"
)


class _Columns:
    """Which format a header names and where its columns sit in a row."""

    def __init__(self, header: list[str], source: str, line: int) -> None:
        names = [h.strip().lstrip("\ufeff").lower() for h in header]
        index: dict[str, int] = {}
        for i, name in enumerate(names):
            index.setdefault(name, i)
        for alias in _SIZE_NAMES:
            if alias in index:
                index.setdefault("size", index[alias])
        found = ", ".join(names) or "nothing"
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
                f"no 'timestamp' column in the header (found: {found}); "
                "expected timestamp plus bid and ask, or timestamp plus price",
                line=line,
            )
        self.timestamp = index["timestamp"]
        chosen = next(((n, c) for n, c in FORMATS if all(col in index for col in c)), None)
        if chosen is None or chosen[0] == "prices":
            _refuse_partial(index, names, source, line, has_price=chosen is not None)
        if chosen is None:
            raise DataError(
                source,
                f"no price columns in the header (found: {found}); expected bid and ask, or price",
                line=line,
            )
        #: The format's name (a key of :data:`FORMATS`).
        self.format, wanted = chosen
        #: Where each of the format's columns sits, in the format's order.
        self.prices = tuple(index[c] for c in wanted if c != "size")
        self.names = tuple(c for c in wanted if c != "size")
        self.width = 1 + max((self.timestamp, *(index[c] for c in wanted)))


def _refuse_partial(
    index: dict[str, int], names: list[str], source: str, line: int, *, has_price: bool
) -> None:
    """Refuse a header whose price columns could mean more than one format, naming the fix."""
    found = ", ".join(names)
    for a, b in (
        ("bid", "ask"),
        ("bid_price", "ask_price"),
        ("bid", "ask_price"),
        ("bid_price", "ask"),
    ):
        if a in index and b in index and (a, b) not in (("bid", "ask"), ("bid_price", "ask_price")):
            raise DataError(
                source,
                f"the header mixes {a} and {b} (found: {found}); name the columns bid and ask, "
                "or bid_price and ask_price",
                line=line,
            )
    ohlc = [c for c in ("open", "high", "low", "close") if c in index]
    if ohlc:
        missing = [c for c in ("open", "high", "low", "close") if c not in index]
        raise DataError(
            source,
            f"the header has {', '.join(ohlc)} but no {', '.join(missing)} (found: {found}); "
            "candles need all of open, high, low and close"
            + ("; rename or drop those columns to read the price column" if has_price else ""),
            line=line,
        )
    if has_price:
        return  # one of bid or ask next to price: the price is used
    for a, b in (("bid", "ask"), ("bid_price", "ask_price")):
        if (a in index) != (b in index):
            have, lacking = (a, b) if a in index else (b, a)
            raise DataError(
                source,
                f"the header has {have} but no {lacking} column; give both {a} and {b}, "
                "or a price column",
                line=line,
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


def candle_path(
    open_: Decimal, high: Decimal, low: Decimal, close: Decimal
) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """The four prices a bar is replayed as: open, high, low, close for a down bar (close
    below open), open, low, high, close otherwise.

    A bar does not say whether its high or its low came first; this is the conventional
    assumption (a falling bar rose first, a rising or flat bar fell first), which makes the
    bar's range visit both extremes and end where it closed.

    >>> candle_path(Decimal(10), Decimal(12), Decimal(9), Decimal(11))
    (Decimal('10'), Decimal('9'), Decimal('12'), Decimal('11'))
    """
    if close < open_:
        return (open_, high, low, close)
    return (open_, low, high, close)


#: Quotes replayed per candle (:func:`candle_path`).
CANDLE_QUOTES = 4

# Formats whose timestamps may repeat: recorded feeds stamp several trades or book updates
# with the same time.
_REPEATING = frozenset({"bid_price/ask_price quotes", "trades"})


class Quotes(Iterator[QuoteTicked]):
    """The quotes of one CSV source, read lazily row by row (see :func:`read_quotes`).

    :attr:`timestamp_unit` names how the file writes its timestamps (``"seconds"``,
    ``"milliseconds"``, ``"microseconds"``, ``"nanoseconds"`` or :data:`ISO_8601`) once the first
    quote has been read, ``None`` before; say it to the user, so that a file in an unexpected
    unit is noticed before its results are trusted. :attr:`format` names the format the header
    was read as (a name in :data:`FORMATS`) and :attr:`quotes_per_row` how many quotes a data
    row becomes (:data:`CANDLE_QUOTES` for candles, else 1), both once the header is read.
    """

    def __init__(
        self,
        lines: Iterable[str],
        *,
        instrument: Instrument,
        source: str,
        limit: int | None,
        bar_ms: int | None = None,
    ) -> None:
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        if bar_ms is not None and bar_ms < CANDLE_QUOTES:
            raise ValueError(f"bar_ms must be >= {CANDLE_QUOTES}, got {bar_ms}")
        self.timestamp_unit: str | None = None
        self.format: str | None = None
        self.quotes_per_row = 1
        self._bar_ms = bar_ms
        self._names: tuple[str, ...] = ()
        self._rows = self._read(lines, instrument, source, limit)

    def __next__(self) -> QuoteTicked:
        return next(self._rows)

    def _read(
        self, lines: Iterable[str], instrument: Instrument, source: str, limit: int | None
    ) -> Iterator[QuoteTicked]:
        tick = instrument.tick_size
        venue, symbol = instrument.venue, instrument.symbol
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

        def around(ts: int, raw: Decimal) -> QuoteTicked:
            bid = snap(raw, up=False)
            if bid <= 0:
                raise ValueError(f"{raw} rounds down to 0 at tick size {tick}")
            return QuoteTicked(ts=ts, venue=venue, symbol=symbol, bid=bid, ask=CTX.add(bid, tick))

        bar: tuple[int, int, tuple[Decimal, ...]] | None = None  # candle waiting for its length
        last_gap: int | None = None

        def expand(
            line: int, ts: int, prices: tuple[Decimal, ...], length: int | None
        ) -> list[QuoteTicked]:
            if length is None:
                raise DataError(
                    source,
                    "is the only candle, so the bar length cannot be inferred; "
                    "pass --bar-ms (for example --bar-ms 60000 for one-minute bars)",
                    line=line,
                )
            step = length // CANDLE_QUOTES
            if step < 1:
                raise DataError(
                    source,
                    f"the bar is {length} ms long, too short to replay its open, high, low and "
                    f"close one millisecond apart; candles need bars of {CANDLE_QUOTES} ms or more",
                    line=line,
                    column="timestamp",
                )
            try:
                path = candle_path(*prices)
                return [around(ts + k * step, price) for k, price in enumerate(path)]
            except ValueError as exc:
                raise DataError(source, str(exc), line=line, column="open") from None

        for line, ts, prices in self._parse(lines, source, limit):
            if self.format == "OHLC candles":
                if bar is not None:
                    gap = ts - bar[1]
                    if self._bar_ms is not None and self._bar_ms > gap:
                        raise DataError(
                            source,
                            f"this bar starts {gap} ms after the one on line {bar[0]}, "
                            f"sooner than --bar-ms {self._bar_ms}; check --bar-ms",
                            line=line,
                            column="timestamp",
                        )
                    last_gap = gap
                    yield from expand(*bar, self._bar_ms or gap)
                bar = (line, ts, prices)
                continue
            if len(prices) == 1:
                try:
                    quote = around(ts, prices[0])
                except ValueError as exc:
                    raise DataError(source, str(exc), line=line, column="price") from None
                yield quote
                continue
            raw_bid, raw_ask = prices
            column = self._names[0]
            try:
                if raw_bid >= raw_ask:
                    column = self._names[1]
                    raise ValueError(f"{raw_ask} is not above the bid {raw_bid}")
                bid = snap(raw_bid, up=False)
                if bid <= 0:
                    raise ValueError(f"{raw_bid} rounds down to 0 at tick size {tick}")
                quote = QuoteTicked.of(ts, venue, symbol, bid, snap(raw_ask, up=True))
            except ValueError as exc:
                raise DataError(source, str(exc), line=line, column=column) from None
            yield quote
        if bar is not None:
            yield from expand(*bar, self._bar_ms or last_gap)

    def _parse(
        self, lines: Iterable[str], source: str, limit: int | None
    ) -> Iterator[tuple[int, int, tuple[Decimal, ...]]]:
        """``(line, ms, prices)`` per data row, checked: prices in the format's column order."""
        reader = csv.reader(lines)
        columns: _Columns | None = None
        cache: dict[str, Decimal] = {}
        count = 0
        last_ns: int | None = None
        last_text = ""
        unit_line = 0
        last_line = 0
        repeating = False
        try:
            for row in reader:
                line = reader.line_num
                last_line = line
                if not row or all(not cell.strip() for cell in row):
                    continue
                if columns is None:
                    columns = _Columns(row, source, line)
                    self.format, self._names = columns.format, columns.names
                    if columns.format == "OHLC candles":
                        self.quotes_per_row = CANDLE_QUOTES
                    repeating = columns.format in _REPEATING
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
                    if last_ns is not None and (ns < last_ns or (ns == last_ns and not repeating)):
                        raise ValueError(
                            f"{text} is not after the previous row's {last_text}; "
                            "timestamps must strictly increase"
                            if not repeating
                            else f"{text} is before the previous row's {last_text}; "
                            "timestamps must not decrease"
                        )
                    ts = ns // _NS_PER_MS
                    if not TS_MIN <= ts < TS_MAX:
                        # Checked here so that a time past 2100 is reported with its line.
                        QuoteTicked(ts=ts, venue="-", symbol="-", bid=Decimal(1), ask=Decimal(2))
                    prices: list[Decimal] = []
                    for name, i in zip(columns.names, columns.prices, strict=True):
                        column = name
                        prices.append(_decimal(row[i], cache))
                    if columns.format == "OHLC candles":
                        o, h, lo, c = prices
                        if h < max(o, c) or h < lo:
                            column = "high"
                            raise ValueError(
                                f"{h} is below the bar's open {o}, close {c} or low {lo}"
                            )
                        if lo > min(o, c):
                            column = "low"
                            raise ValueError(f"{lo} is above the bar's open {o} or close {c}")
                except ValueError as exc:
                    raise DataError(source, str(exc), line=line, column=column) from None
                last_ns, last_text = ns, text
                count += 1
                yield line, ts, tuple(prices)
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
    bar_ms: int | None = None,
) -> Quotes:
    """The :class:`~gridcore.events.QuoteTicked` events of CSV text ``lines``, lazily.

    The header says the format (:data:`FORMATS`): one quote per row of quotes, prices or
    trades, :data:`CANDLE_QUOTES` per candle (:func:`candle_path`). Quotes carry
    ``instrument``'s venue and symbol; prices are snapped to its tick (bid down, ask up).
    ``limit`` stops after that many data rows. ``bar_ms`` is the length of a candle in
    milliseconds (default: the time to the next candle; the last one takes the previous length).
    Iterating raises :class:`DataError` naming ``source``, the line and the column at the first
    bad row, and when there is no data row. The returned :class:`Quotes` also says which
    timestamp unit and format the file uses.
    """
    return Quotes(lines, instrument=instrument, source=source, limit=limit, bar_ms=bar_ms)


_GZIP_MAGIC = b"\x1f\x8b"


def _is_gzip(path: str | Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def open_quotes(
    path: str | Path,
    *,
    instrument: Instrument,
    limit: int | None = None,
    bar_ms: int | None = None,
) -> Quotes:
    """:func:`read_quotes` over the file at ``path`` (UTF-8, a byte-order mark is skipped).

    A gzip-compressed file (``.csv.gz``, told by its first bytes, not its name) is decompressed
    as it is read, never whole in memory. The file is opened at once, so a missing or unreadable
    file raises :class:`DataError` before the first quote is asked for.
    """
    source = str(path)
    try:
        if _is_gzip(path):
            handle: TextIO = gzip.open(path, "rt", encoding="utf-8-sig", newline="")  # noqa: SIM115
        else:
            handle = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed by _lines
    except FileNotFoundError:
        raise DataError(source, "no such file") from None
    except IsADirectoryError:
        raise DataError(source, "is a directory, not a CSV file") from None
    except OSError as exc:
        raise DataError(source, f"cannot be read: {exc.strerror or exc}") from None
    return read_quotes(
        _lines(handle, source), instrument=instrument, source=source, limit=limit, bar_ms=bar_ms
    )


def _lines(handle: TextIO, source: str) -> Iterator[str]:
    with handle:
        try:
            yield from handle
        except UnicodeDecodeError as exc:
            raise DataError(source, f"is not UTF-8 text ({exc.reason})") from None
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise DataError(source, f"is not a complete gzip file ({exc})") from None


def count_rows(path: str | Path) -> int:
    """The number of lines after the first in ``path`` (decompressed when gzip): a cheap upper
    bound on its data rows, for progress bars (``0`` when the file cannot be read; reading
    reports that properly)."""
    try:
        with gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb") as f:
            lines = 0
            last = b"\n"
            while chunk := f.read(1 << 20):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
    except (OSError, EOFError, zlib.error):
        return 0
    if last != b"\n":
        lines += 1
    return max(0, lines - 1)
