"""CSV market data: prices that round to nothing at the tick, rows the CSV reader cannot parse,
files that cannot be opened and arguments out of range are refused with a ``DataError`` (or a
``ValueError`` for a bad argument) naming the file, line and column."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from gridcore.instruments import Instrument
from gridcore.shells.csvdata import CANDLE_QUOTES, DataError, open_quotes, read_quotes

INSTRUMENT = Instrument(
    venue="sim", symbol="BTC-PERP", tick_size=Decimal("0.1"), lot_size=Decimal("0.001")
)


def _error(text: str, *, bar_ms: int | None = None) -> str:
    rows = read_quotes(
        text.splitlines(keepends=True), instrument=INSTRUMENT, source="d.csv", bar_ms=bar_ms
    )
    with pytest.raises(DataError) as info:
        list(rows)
    return str(info.value)


def test_a_bid_that_rounds_down_to_zero_at_the_tick_is_refused() -> None:
    message = _error("timestamp,bid,ask\n1700000000000,0.05,0.5\n")
    assert message == "d.csv:2: bid: 0.05 rounds down to 0 at tick size 0.1"


def test_a_candle_price_that_rounds_down_to_zero_is_refused() -> None:
    message = _error(
        "timestamp,open,high,low,close\n1700000000000,0.2,0.3,0.05,0.2\n", bar_ms=60_000
    )
    assert message == "d.csv:2: open: 0.05 rounds down to 0 at tick size 0.1"


def test_a_row_the_csv_reader_cannot_parse_is_named() -> None:
    huge = "1" * 200_000  # beyond the CSV reader's field size limit
    message = _error(f'timestamp,bid,ask\n1700000000000,"{huge}",2\n')
    assert message.startswith("d.csv")
    assert "not valid CSV" in message


@pytest.mark.parametrize(
    ("limit", "bar_ms", "message"),
    [
        (-1, None, "limit must be >= 0, got -1"),
        (None, CANDLE_QUOTES - 1, f"bar_ms must be >= {CANDLE_QUOTES}, got {CANDLE_QUOTES - 1}"),
    ],
)
def test_arguments_out_of_range_are_refused(
    limit: int | None, bar_ms: int | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        read_quotes([], instrument=INSTRUMENT, source="d.csv", limit=limit, bar_ms=bar_ms)


def test_a_file_that_cannot_be_opened_is_named(tmp_path: Path) -> None:
    path = tmp_path / ("x" * 300 + ".csv")  # longer than a file name may be
    with pytest.raises(DataError, match="cannot be read: File name too long") as info:
        open_quotes(path, instrument=INSTRUMENT)
    assert str(info.value).startswith(str(path))
