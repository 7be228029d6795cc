"""Seeded synthetic BTC candles for ``benchmarks/bench_core.py``.

``python benchmarks/data/make_candles.py`` (re)writes ``btc_monthly.csv``: 156 monthly OHLC bars
(13 years from 2013-01-01) of a seeded log-random walk shaped like BTC's price history, to
measure what a sparse calendar costs a backtest. ``minute_candles(path)`` writes a month of
1-minute bars (43,200 rows) the same way, on the fly. Same seed, same file, byte for byte.
"""

from __future__ import annotations

import calendar
import datetime as dt
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
MONTHLY = HERE / "btc_monthly.csv"
_START = dt.datetime(2013, 1, 1, tzinfo=dt.UTC)


def _walk(
    rng: random.Random, price: float, sigma: float, drift: float
) -> tuple[float, float, float, float]:
    close = price * pow(2.718281828, rng.gauss(drift, sigma))
    high = max(price, close) * (1 + abs(rng.gauss(0.0, sigma / 2)))
    low = min(price, close) * (1 - min(0.5, abs(rng.gauss(0.0, sigma / 2))))
    return price, high, low, close


def _rows(
    starts: list[int], rng: random.Random, price: float, sigma: float, drift: float = 0.0
) -> list[str]:
    rows = ["timestamp,open,high,low,close"]
    for ts in starts:
        o, h, low, c = _walk(rng, price, sigma, drift)
        rows.append(f"{ts},{o:.1f},{h:.1f},{low:.1f},{c:.1f}")
        price = c
    return rows


def monthly(path: Path = MONTHLY, *, seed: int = 2013, bars: int = 156) -> Path:
    """Write ``bars`` monthly candles from 2013-01 (ms timestamps) to ``path``."""
    starts = []
    year, month = _START.year, _START.month
    for _ in range(bars):
        starts.append(calendar.timegm((year, month, 1, 0, 0, 0)) * 1000)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    path.write_text("\n".join(_rows(starts, random.Random(seed), 100.0, 0.25, 0.04)) + "\n")
    return path


def minute_candles(path: Path, *, seed: int = 1, bars: int = 43_200) -> Path:
    """Write ``bars`` 1-minute candles (a 30-day month) starting 2024-01-01 to ``path``."""
    t0 = calendar.timegm((2024, 1, 1, 0, 0, 0)) * 1000
    starts = [t0 + i * 60_000 for i in range(bars)]
    path.write_text("\n".join(_rows(starts, random.Random(seed), 42_000.0, 0.0008)) + "\n")
    return path


if __name__ == "__main__":
    print(monthly())
