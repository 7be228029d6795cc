"""Market paths: seeded synthetic quotes, and validation of recorded ones.

The synthetic market is a random walk of the mid in whole ticks with roughly normal steps whose
size is ``volatility`` (a fraction of the price per tick, e.g. ``0.0002``); it uses integer
arithmetic only, so a seed gives the same path on every machine. The spread is a whole number of
ticks.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from gridcore.events import QuoteTicked
from gridcore.instruments import Instrument
from gridcore.numbers import CTX, Rounding
from gridcore.sim.rng import SplitMix64

__all__ = ["synthetic_path"]

_PPM = 1_000_000
_UNIT = 1 << 16
_DEN = _PPM * _UNIT * 1000
_HALF = _DEN // 2
_CACHE_LIMIT = 4_096


def synthetic_path(
    *,
    instrument: Instrument,
    seed: int = 1,
    ticks: int = 86_400,
    start_price: Decimal = Decimal(50_000),
    volatility: Decimal = Decimal("0.0002"),
    spread_ticks: int = 1,
    start_ts: int = 1_700_000_000_000,
    interval_ms: int = 1_000,
) -> Iterator[QuoteTicked]:
    """Yield ``ticks`` quotes, one every ``interval_ms``, starting at ``start_ts``.

    >>> from gridcore.instruments import Instrument
    >>> inst = Instrument(venue="sim", symbol="X", tick_size=Decimal("0.1"), lot_size=Decimal("1"))
    >>> [q.bid for q in synthetic_path(instrument=inst, ticks=2, start_price=Decimal(100))]
    [Decimal('100.0'), Decimal('100.0')]
    """
    if ticks < 0:
        raise ValueError(f"ticks must be >= 0, got {ticks}")
    if spread_ticks < 1:
        raise ValueError(f"spread_ticks must be >= 1, got {spread_ticks}")
    if start_price <= 0:
        raise ValueError(f"start_price must be > 0, got {start_price}")
    rng = SplitMix64(seed)
    tick_size = instrument.tick_size
    price = int(CTX.divide(instrument.round_price(start_price, Rounding.NEAREST), tick_size))
    vol_ppm = int(CTX.multiply(volatility, Decimal(_PPM)))
    # Prices in ticks -> Decimal, so a walk that revisits a price builds it once; cleared when
    # full, so that memory does not grow with the length of the path (failure
    # `unbounded-history`).
    cache: dict[int, Decimal] = {}
    venue, symbol = instrument.venue, instrument.symbol
    ts = start_ts
    for _ in range(ticks):
        bid_units = price
        ask_units = price + spread_ticks
        bid = cache.get(bid_units)
        if bid is None:
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            bid = cache[bid_units] = CTX.multiply(Decimal(bid_units), tick_size)
        ask = cache.get(ask_units)
        if ask is None:
            ask = cache[ask_units] = CTX.multiply(Decimal(ask_units), tick_size)
        yield QuoteTicked(ts=ts, venue=venue, symbol=symbol, bid=bid, ask=ask)
        # Irwin-Hall: four 16-bit uniforms from one draw; their centered sum times sqrt(3)
        # (1732/1000) is close to a standard normal. Rounded to the nearest tick, not floored,
        # so the walk has no drift.
        r = rng.next()
        z = (r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48) - 2 * _UNIT
        num = price * vol_ppm * z * 1732
        price = max(1, price + (num + _HALF) // _DEN)
        ts += interval_ms
