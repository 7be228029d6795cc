"""The other market-data formats of ``--data``: candles, trades, Tardis-style quotes, gzip."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridcore.events import QuoteTicked
from gridcore.instruments import Instrument
from gridcore.shells.csvdata import (
    CANDLE_QUOTES,
    DataError,
    candle_path,
    count_rows,
    open_quotes,
    read_quotes,
)

INSTRUMENT = Instrument(
    venue="sim", symbol="BTC-PERP", tick_size=Decimal("0.1"), lot_size=Decimal("0.001")
)
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
S0 = T0 // 1000
D = Decimal


def read(text: str, **kw: int) -> list[QuoteTicked]:
    return list(
        read_quotes(text.splitlines(keepends=True), instrument=INSTRUMENT, source="d.csv", **kw)
    )


def error(text: str, **kw: int) -> str:
    with pytest.raises(DataError) as info:
        read(text, **kw)
    return str(info.value)


def bids(qs: list[QuoteTicked]) -> list[Decimal]:
    return [q.bid for q in qs]


# --- candles ------------------------------------------------------------------------------------


def test_an_up_bar_goes_open_low_high_close_spread_over_the_bar() -> None:
    text = (
        "Timestamp,Open,High,Low,Close,Volume\n"
        f"{S0},100,105,99,104,12\n"
        f"{S0 + 60},104,106,100,101,3\n"
    )
    got = read(text)
    assert len(got) == 2 * CANDLE_QUOTES
    assert bids(got[:4]) == [D("100"), D("99"), D("105"), D("104")]
    assert bids(got[4:]) == [D("104"), D("106"), D("100"), D("101")]  # down bar: high first
    assert [q.ts - T0 for q in got] == [0, 15_000, 30_000, 45_000, 60_000, 75_000, 90_000, 105_000]
    assert all(q.ask == q.bid + INSTRUMENT.tick_size for q in got)


def test_a_flat_bar_counts_as_up() -> None:
    assert bids(read(f"timestamp,open,high,low,close\n{T0},100,101,99,100\n", bar_ms=1000)) == [
        D("100"),
        D("99"),
        D("101"),
        D("100"),
    ]


def test_the_last_bar_takes_the_previous_length_and_bar_ms_overrides() -> None:
    text = f"timestamp,open,high,low,close\n{T0},1,1,1,1\n{T0 + 400},1,1,1,1\n"
    assert [q.ts - T0 for q in read(text)] == [0, 100, 200, 300, 400, 500, 600, 700]
    assert [q.ts - T0 for q in read(text, bar_ms=40)][4:] == [400, 410, 420, 430]


def test_a_single_candle_needs_bar_ms() -> None:
    assert "pass --bar-ms" in error(f"timestamp,open,high,low,close\n{T0},1,2,1,2\n")


def test_bar_ms_longer_than_the_gap_is_refused() -> None:
    text = f"timestamp,open,high,low,close\n{T0},1,1,1,1\n{T0 + 400},1,1,1,1\n"
    assert error(text, bar_ms=500) == (
        "d.csv:3: timestamp: this bar starts 400 ms after the one on line 2, sooner than "
        "--bar-ms 500; check --bar-ms"
    )


def test_bars_too_short_to_spread_are_refused() -> None:
    text = f"timestamp,open,high,low,close\n{T0},1,1,1,1\n{T0 + 3},1,1,1,1\n"
    assert "too short" in error(text)


@pytest.mark.parametrize(
    ("row", "says"),
    [
        ("100,99,98,99", "d.csv:2: high: 99 is below the bar's open 100"),
        ("100,105,101,104", "d.csv:2: low: 101 is above the bar's open 100"),
        ("100,105,abc,104", "d.csv:2: low: 'abc' is not a number"),
    ],
)
def test_impossible_bars_are_refused_naming_the_column(row: str, says: str) -> None:
    assert error(f"timestamp,open,high,low,close\n{T0},{row}\n", bar_ms=1000).startswith(says)


def test_limit_counts_bars() -> None:
    text = "timestamp,open,high,low,close\n" + "".join(
        f"{T0 + i * 60_000},1,1,1,1\n" for i in range(5)
    )
    assert len(read(text, limit=2)) == 2 * CANDLE_QUOTES


prices = st.integers(min_value=1, max_value=10**7).map(lambda n: D(n) / 10)


@given(a=prices, b=prices, c=prices, d=prices)
def test_a_candle_path_starts_at_open_ends_at_close_and_visits_the_range(
    a: Decimal, b: Decimal, c: Decimal, d: Decimal
) -> None:
    low, open_, close, high = sorted((a, b, c, d))
    for o, cl in ((open_, close), (close, open_)):
        path = candle_path(o, high, low, cl)
        assert path[0] == o
        assert path[-1] == cl
        assert high in path
        assert low in path
        assert all(low <= p <= high for p in path)
        got = read(f"timestamp,open,high,low,close\n{T0},{o},{high},{low},{cl}\n", bar_ms=60_000)
        assert bids(got) == list(path)  # tick-aligned prices pass through unchanged


# --- trades -------------------------------------------------------------------------------------


def test_trades_become_one_quote_each_and_may_share_a_time() -> None:
    text = f"timestamp,price,qty,side\n{T0},100.05,1,buy\n{T0},100.2,2,sell\n{T0 + 5},99,1,buy\n"
    got = read(text)
    assert [(q.ts, q.bid, q.ask) for q in got] == [
        (T0, D("100.0"), D("100.1")),
        (T0, D("100.2"), D("100.3")),
        (T0 + 5, D("99"), D("99.1")),
    ]


def test_trades_must_not_go_back_in_time() -> None:
    text = f"timestamp,price,size\n{T0 + 5},100,1\n{T0},100,1\n"
    assert "timestamps must not decrease" in error(text)


# --- Tardis-style quotes ------------------------------------------------------------------------


TARDIS = "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount\n"


def test_tardis_quotes_read_bid_price_and_ask_price_in_microseconds() -> None:
    us = T0 * 1000
    text = TARDIS + f"binance,BTCUSDT,{us + 1500},{us + 2000},3,100.2,100.1,4\n"
    text += f"binance,BTCUSDT,{us + 1500},{us + 2100},3,100.3,100.1,4\n"
    got = read(text)
    assert [(q.ts, q.bid, q.ask) for q in got] == [
        (T0 + 1, D("100.1"), D("100.2")),
        (T0 + 1, D("100.1"), D("100.3")),
    ]


def test_tardis_crossed_quote_is_refused_naming_ask_price() -> None:
    assert error(TARDIS + f"b,s,{T0 * 1000},{T0 * 1000},1,100,100.1,1\n") == (
        "d.csv:2: ask_price: 100 is not above the bid 100.1"
    )


# --- header precedence and ambiguity ------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "row", "bid"),
    [
        ("bid,ask,bid_price,ask_price,open,high,low,close,price", "1,2,3,4,5,6,5,6,9", D(1)),
        ("bid_price,ask_price,open,high,low,close,price", "3,4,5,6,5,6,9", D(3)),
        ("open,high,low,close,price", "5,6,5,6,9", D(5)),
    ],
)
def test_formats_are_chosen_in_documented_order(header: str, row: str, bid: Decimal) -> None:
    got = read(f"timestamp,{header}\n{T0},{row}\n", bar_ms=1000)
    assert got[0].bid == bid


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ("open,close,price", "the header has open, close but no high, low"),
        ("open,high,low", "candles need all of open, high, low and close"),
        ("bid,ask_price", "the header mixes bid and ask_price"),
        ("bid_price,volume", "the header has bid_price but no ask_price column"),
    ],
)
def test_ambiguous_headers_are_refused_naming_the_columns(header: str, says: str) -> None:
    assert says in error(f"timestamp,{header}\n{T0},1,2,3\n")


# --- gzip ---------------------------------------------------------------------------------------


def test_a_gzip_file_is_read_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "q.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("timestamp,bid,ask\n" + "".join(f"{T0 + i},100,100.1\n" for i in range(3)))
    quotes = open_quotes(path, instrument=INSTRUMENT)
    assert [q.ts for q in quotes] == [T0, T0 + 1, T0 + 2]
    assert quotes.format == "bid/ask quotes"
    assert count_rows(path) == 3


def test_a_truncated_gzip_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "q.csv.gz"
    data = gzip.compress(
        ("timestamp,price\n" + "".join(f"{T0 + i},100\n" for i in range(5000))).encode()
    )
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"q\.csv\.gz: is not a complete gzip file"):
        list(open_quotes(path, instrument=INSTRUMENT))


def test_a_gzip_file_streams_quotes_before_its_broken_end(tmp_path: Path) -> None:
    """Rows come out as they are decompressed: a damaged end is met only when reached."""
    path = tmp_path / "q.csv.gz"
    body = "timestamp,price\n" + "".join(f"{T0 + i},100\n" for i in range(200_000))
    data = gzip.compress(body.encode())
    path.write_bytes(data[: len(data) * 3 // 4])
    quotes = open_quotes(path, instrument=INSTRUMENT)
    first = [next(quotes) for _ in range(1000)]
    assert [q.ts for q in first] == [T0 + i for i in range(1000)]
    with pytest.raises(DataError, match="not a complete gzip file"):
        for _ in quotes:
            pass
