"""Reading recorded quotes from CSV (``shells.csvdata``): both formats, rounding, every error."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridcore.events import TS_MAX, QuoteTicked
from gridcore.instruments import Instrument
from gridcore.shells.csvdata import (
    INTEGER_UNITS,
    ISO_8601,
    DataError,
    count_rows,
    open_quotes,
    parse_timestamp,
    read_quotes,
)

INSTRUMENT = Instrument(
    venue="sim", symbol="BTC-PERP", tick_size=Decimal("0.1"), lot_size=Decimal("0.001")
)
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def quotes(text: str, *, limit: int | None = None) -> list[QuoteTicked]:
    return list(
        read_quotes(
            text.splitlines(keepends=True), instrument=INSTRUMENT, source="d.csv", limit=limit
        )
    )


def error(text: str) -> str:
    with pytest.raises(DataError) as info:
        quotes(text)
    return str(info.value)


# --- timestamps ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1704067200000", T0),
        (" 1704067200123 ", T0 + 123),
        ("2024-01-01T00:00:00Z", T0),
        ("2024-01-01T00:00:00.250Z", T0 + 250),
        ("2024-01-01 02:00:00+02:00", T0),
        ("2024-01-01T00:00:00.999999+00:00", T0 + 999),  # sub-millisecond digits truncated
        ("1704067200", T0),  # 10 digits: seconds
        ("1704067200123456", T0 + 123),  # 16 digits: microseconds, truncated
        ("1704067200123456789", T0 + 123),  # 19 digits: nanoseconds, truncated
        ("1000000000", 1_000_000_000_000),  # the first second of each unit's range
        ("9999999999999", 9_999_999_999_999),  # the last millisecond of the range
    ],
)
def test_timestamps_in_s_ms_us_ns_or_iso_with_timezone(text: str, ms: int) -> None:
    assert parse_timestamp(text) == ms


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("170406720000", "170406720000 is ambiguous: an integer timestamp's unit is read from"),
        ("17040672000000", "17040672000000 is ambiguous"),
        ("170406720000000000", "170406720000000000 is ambiguous"),
        ("17040672000000000000", "17040672000000000000 is ambiguous"),
        ("999999999", "999999999 is ambiguous"),
        (
            "0",
            "0 is ambiguous: an integer timestamp's unit is read from its length, and 1 digit fits",
        ),
        ("2024-01-01T00:00:00", "has no timezone; add one"),
        ("yesterday", "is neither an integer timestamp nor ISO 8601"),
        ("1704067200000.0", "is neither an integer timestamp nor ISO 8601"),
        ("", "empty"),
    ],
)
def test_bad_timestamps_say_what_is_accepted(text: str, says: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_timestamp(text)
    assert says in str(info.value)


# --- the two formats ----------------------------------------------------------------------------


def test_bid_ask_rows_become_quotes_of_the_instrument() -> None:
    got = quotes(f"timestamp,bid,ask\n{T0},100.1,100.3\n{T0 + 1000},100.2,100.3\n")
    assert got == [
        QuoteTicked(
            ts=T0, venue="sim", symbol="BTC-PERP", bid=Decimal("100.1"), ask=Decimal("100.3")
        ),
        QuoteTicked(
            ts=T0 + 1000, venue="sim", symbol="BTC-PERP", bid=Decimal("100.2"), ask=Decimal("100.3")
        ),
    ]


def test_price_only_gives_ask_one_tick_above() -> None:
    got = quotes("timestamp,price\n2024-01-01T00:00:00Z,250\n2024-01-01T00:00:01Z,250.5\n")
    assert [(q.ts, q.bid, q.ask) for q in got] == [
        (T0, Decimal("250"), Decimal("250.1")),
        (T0 + 1000, Decimal("250.5"), Decimal("250.6")),
    ]


def test_off_tick_prices_round_outward_bid_down_ask_up() -> None:
    (q,) = quotes(f"timestamp,bid,ask\n{T0},100.06,100.14\n")
    assert (q.bid, q.ask) == (Decimal("100.0"), Decimal("100.2"))
    (p,) = quotes(f"timestamp,price\n{T0},100.09\n")
    assert (p.bid, p.ask) == (Decimal("100.0"), Decimal("100.1"))


def test_header_is_matched_loosely_and_other_columns_ignored() -> None:
    got = quotes(f"Volume, ASK ,Timestamp,Bid,Note\n7,100.2,{T0},100.1,hello\n")
    assert [(q.ts, q.bid, q.ask) for q in got] == [(T0, Decimal("100.1"), Decimal("100.2"))]


def test_bid_and_ask_win_over_price() -> None:
    (q,) = quotes(f"timestamp,price,bid,ask\n{T0},500,100.1,100.2\n")
    assert (q.bid, q.ask) == (Decimal("100.1"), Decimal("100.2"))


def test_price_is_used_when_only_one_of_bid_and_ask_is_there() -> None:
    (q,) = quotes(f"timestamp,bid,price\n{T0},1,100.1\n")
    assert (q.bid, q.ask) == (Decimal("100.1"), Decimal("100.2"))


def test_blank_lines_are_skipped_and_line_numbers_stay_physical() -> None:
    text = f"\ntimestamp,price\n\n{T0},100\n\n{T0 + 1},abc\n"
    assert error(text) == "d.csv:6: price: 'abc' is not a number"


def test_limit_stops_after_that_many_quotes() -> None:
    rows = "".join(f"{T0 + i},100\n" for i in range(10))
    assert [q.ts for q in quotes("timestamp,price\n" + rows, limit=3)] == [T0, T0 + 1, T0 + 2]


def test_a_bad_row_after_the_limit_is_never_read() -> None:
    assert len(quotes(f"timestamp,price\n{T0},100\n{T0 + 1},oops\n", limit=1)) == 1


def test_reading_is_lazy_rows_are_parsed_as_asked() -> None:
    it = read_quotes(
        iter(["timestamp,price\n", f"{T0},100\n", "broken,row\n"]),
        instrument=INSTRUMENT,
        source="d.csv",
    )
    assert next(it).ts == T0
    with pytest.raises(DataError, match=r"^d\.csv:3: timestamp: "):
        next(it)


# --- errors name file, line and column ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"timestamp,bid,ask\n{T0},abc,1\n", "d.csv:2: bid: 'abc' is not a number"),
        (f"timestamp,bid,ask\n{T0},100,\n", "d.csv:2: ask: is empty; every row needs a value here"),
        (f"timestamp,bid,ask\n{T0},100,nan\n", "d.csv:2: ask: 'nan' is not a finite number"),
        (f"timestamp,price\n{T0},-5\n", "d.csv:2: price: must be > 0, got -5"),
        (f"timestamp,price\n{T0},0.04\n", "d.csv:2: price: 0.04 rounds down to 0 at tick size 0.1"),
        (f"timestamp,price\n{T0},1e30\n", "d.csv:2: price: 1e30 is too large to be a price"),
        (f"timestamp,bid,ask\n{T0},101,100\n", "d.csv:2: ask: 100 is not above the bid 101"),
        (f"timestamp,bid,ask\n{T0},100,100\n", "d.csv:2: ask: 100 is not above the bid 100"),
        (
            f"timestamp,price\n{T0},1\n{T0},2\n",
            f"d.csv:3: timestamp: {T0} is not after the previous row's {T0}; "
            "timestamps must strictly increase",
        ),
        (
            f"timestamp,price\n{T0 + 5},1\n{T0},2\n",
            f"d.csv:3: timestamp: {T0} is not after the previous row's {T0 + 5}; "
            "timestamps must strictly increase",
        ),
        (
            "timestamp,price\n1704067200,1\n1704067201000,2\n",
            "d.csv:3: timestamp: 1704067201000 is in milliseconds but line 2 is in seconds; "
            "write every timestamp of the file in one unit",
        ),
        (
            f"timestamp,price\n{T0},1\n2024-01-01T00:00:01Z,2\n",
            "d.csv:3: timestamp: 2024-01-01T00:00:01Z is in ISO 8601 but line 2 is in "
            "milliseconds; write every timestamp of the file in one unit",
        ),
        (f"timestamp,bid,ask\n{T0},100\n", "d.csv:2: has 2 columns, the header needs at least 3"),
        ("", "d.csv: is empty; it needs a header row and at least one data row"),
        ("\n\n", "d.csv: is empty; it needs a header row and at least one data row"),
        ("timestamp,price\n", "d.csv:1: has a header but no data rows"),
    ],
)
def test_row_errors(text: str, message: str) -> None:
    assert error(text) == message


def test_missing_header_is_named() -> None:
    assert error(f"{T0},100.1,100.2\n").startswith("d.csv:1: no header row; the first line")


def test_header_without_timestamp_is_named() -> None:
    assert error("time,bid,ask\n1,2,3\n") == (
        "d.csv:1: no 'timestamp' column in the header (found: time, bid, ask); "
        "expected timestamp plus bid and ask, or timestamp plus price"
    )


def test_header_without_prices_is_named() -> None:
    assert error("timestamp,volume\n1,2\n") == (
        "d.csv:1: no price columns in the header (found: timestamp, volume); "
        "expected bid and ask, or price"
    )


def test_header_with_bid_but_no_ask_is_named() -> None:
    assert error("timestamp,bid\n1,2\n") == (
        "d.csv:1: the header has bid but no ask column; give both bid and ask, or a price column"
    )


def test_data_error_carries_where() -> None:
    with pytest.raises(DataError) as info:
        quotes(f"timestamp,bid,ask\n{T0},1,x\n")
    assert (info.value.source, info.value.line, info.value.column) == ("d.csv", 2, "ask")


# --- files --------------------------------------------------------------------------------------


def test_open_quotes_reads_a_file_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_bytes(b"\xef\xbb\xbftimestamp,price\r\n" + f"{T0},100\r\n{T0 + 1},101\r\n".encode())
    got = list(open_quotes(path, instrument=INSTRUMENT))
    assert [(q.ts, q.bid) for q in got] == [(T0, Decimal("100")), (T0 + 1, Decimal("101"))]


def test_open_quotes_names_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=r"nope\.csv: no such file$"):
        open_quotes(path, instrument=INSTRUMENT)


def test_open_quotes_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a directory, not a CSV file"):
        open_quotes(tmp_path, instrument=INSTRUMENT)


def test_open_quotes_refuses_binary(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_bytes(b"timestamp,price\n\xff\xfe\x00\x01\n")
    with pytest.raises(DataError, match=r"q\.csv: is not UTF-8 text"):
        list(open_quotes(path, instrument=INSTRUMENT))


def test_count_rows_counts_lines_after_the_header(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text("timestamp,price\n1,2\n3,4\n5,6")  # no final newline
    assert count_rows(path) == 3
    path.write_text("timestamp,price\n1,2\n")
    assert count_rows(path) == 1
    assert count_rows(tmp_path / "missing.csv") == 0


# --- round trip ---------------------------------------------------------------------------------

prices = st.integers(min_value=1, max_value=10**9).map(lambda units: units * INSTRUMENT.tick_size)


@given(
    rows=st.lists(
        st.tuples(st.integers(min_value=1, max_value=10**6), prices, st.integers(1, 50)),
        min_size=1,
        max_size=30,
    ),
    iso=st.booleans(),
)
def test_quotes_written_as_csv_read_back_exactly(
    rows: list[tuple[int, Decimal, int]], iso: bool
) -> None:
    ts = T0
    expected = []
    lines = ["timestamp,bid,ask\n"]
    for gap, bid, spread in rows:
        ts += gap
        ask = bid + spread * INSTRUMENT.tick_size
        expected.append(QuoteTicked(ts=ts, venue="sim", symbol="BTC-PERP", bid=bid, ask=ask))
        stamp = (
            (EPOCH + dt.timedelta(milliseconds=ts)).isoformat(timespec="milliseconds")
            if iso
            else str(ts)
        )
        lines.append(f"{stamp},{bid},{ask}\n")
    got = list(read_quotes(lines, instrument=INSTRUMENT, source="rt.csv"))
    assert got == expected


# --- timestamp units ----------------------------------------------------------------------------


def test_the_units_cover_the_same_dates_and_never_overlap() -> None:
    spans = [(10 ** (d - 1) * ns, 10**d * ns) for _, d, ns in INTEGER_UNITS]
    assert len(set(spans)) == 1  # 2001-09-09 .. 2286-11-20 in every unit
    lows = [10 ** (d - 1) for _, d, _ in INTEGER_UNITS]
    highs = [10**d for _, d, _ in INTEGER_UNITS]
    assert all(high <= low for high, low in zip(highs, lows[1:], strict=False))


@pytest.mark.parametrize(
    ("stamp", "unit"),
    [
        ("1704067200", "seconds"),
        ("1704067200000", "milliseconds"),
        ("1704067200000000", "microseconds"),
        ("1704067200000000000", "nanoseconds"),
        ("2024-01-01T00:00:00Z", ISO_8601),
    ],
)
def test_the_detected_unit_is_reported(stamp: str, unit: str) -> None:
    got = read_quotes(
        ["timestamp,price\n", f"{stamp},100\n"], instrument=INSTRUMENT, source="d.csv"
    )
    assert got.timestamp_unit is None  # nothing read yet
    assert next(got).ts == T0
    assert got.timestamp_unit == unit


def test_sub_millisecond_rows_that_share_a_millisecond_are_kept_in_order() -> None:
    # Microsecond data often has several quotes in one millisecond; they increase as written.
    us = T0 * 1000
    got = quotes(f"timestamp,price\n{us + 1},100\n{us + 900},101\n{us + 1500},102\n")
    assert [(q.ts, q.bid) for q in got] == [
        (T0, Decimal("100")),
        (T0, Decimal("101")),
        (T0 + 1, Decimal("102")),
    ]


def test_sub_millisecond_rows_must_still_increase_as_written() -> None:
    us = T0 * 1000
    assert error(f"timestamp,price\n{us + 900},100\n{us + 1},101\n") == (
        f"d.csv:3: timestamp: {us + 1} is not after the previous row's {us + 900}; "
        "timestamps must strictly increase"
    )


UNIT_NS = {name: ns for name, _, ns in INTEGER_UNITS}


@given(
    gaps=st.lists(st.integers(min_value=1, max_value=3_600), min_size=1, max_size=30),
    # Within the times an event accepts (2001-09-09 .. 2100, see gridcore.events.TS_MAX), with
    # room for the gaps; a later time is refused with its line (tested above).
    start=st.integers(min_value=1_000_000_000, max_value=TS_MAX // 1000 - 30 * 3_600 - 1),
    data=st.data(),
)
def test_the_same_quotes_in_s_ms_us_and_ns_give_the_same_events(
    gaps: list[int], start: int, data: st.DataObject
) -> None:
    """A file is read the same whatever unit it was written in; no unit is taken for another."""
    seconds = [start]
    for gap in gaps:
        seconds.append(seconds[-1] + gap)
    bids = data.draw(st.lists(prices, min_size=len(seconds), max_size=len(seconds)))
    parsed = {}
    for unit, ns in UNIT_NS.items():
        scale = 1_000_000_000 // ns
        lines = ["timestamp,price\n"] + [
            f"{s * scale},{bid}\n" for s, bid in zip(seconds, bids, strict=True)
        ]
        reader = read_quotes(lines, instrument=INSTRUMENT, source=f"{unit}.csv")
        parsed[unit] = list(reader)
        assert reader.timestamp_unit == unit
    assert [q.ts for q in parsed["seconds"]] == [s * 1000 for s in seconds]
    assert parsed["seconds"] == parsed["milliseconds"] == parsed["microseconds"]
    assert parsed["microseconds"] == parsed["nanoseconds"]
