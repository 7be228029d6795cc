"""Market paths: seeded synthetic quotes, and validation of recorded ones.

The synthetic market is a random walk of the mid in whole ticks with roughly normal steps whose
size is ``volatility`` (a fraction of the price per tick, e.g. ``0.0002``); it uses integer
arithmetic only, so a seed gives the same path on every machine. The spread is a whole number of
ticks.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from gridcore.events import MAX_MAGNITUDE, TS_MAX, TS_MIN, QuoteTicked
from gridcore.instruments import Instrument
from gridcore.numbers import CTX, Rounding
from gridcore.sim.rng import SplitMix64

__all__ = ["synthetic_path"]

_PPM = 1_000_000
_UNIT = 1 << 16
_DEN = _PPM * _UNIT * 1000
_HALF = _DEN // 2
_CACHE_LIMIT = 4_096
_MASK = (1 << 64) - 1
_GOLDEN, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


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
    # SplitMix64 (gridcore.sim.rng), inlined: one call fewer per quote, same numbers.
    z_state = SplitMix64(seed).state
    tick_size = instrument.tick_size
    price = int(CTX.divide(instrument.round_price(start_price, Rounding.NEAREST), tick_size))
    vol_ppm = int(CTX.multiply(volatility, Decimal(_PPM)))
    # Prices in ticks -> Decimal, so a walk that revisits a price builds it once; cleared when
    # full, so that memory does not grow with the length of the path (failure
    # `unbounded-history`).
    cache: dict[int, Decimal] = {}
    venue, symbol = instrument.venue, instrument.symbol
    ts = start_ts
    end_ts = start_ts + (ticks - 1) * interval_ms
    if ticks and not (min(start_ts, end_ts) >= TS_MIN and max(start_ts, end_ts) < TS_MAX):
        raise ValueError(
            f"the path's timestamps ({start_ts} to {end_ts}) leave [{TS_MIN}, {TS_MAX}); "
            f"choose another start_ts, interval_ms or number of ticks"
        )
    new = object.__new__
    set_ts = QuoteTicked.ts.__set__  # type: ignore[attr-defined]
    set_venue = QuoteTicked.venue.__set__  # type: ignore[attr-defined]
    set_symbol = QuoteTicked.symbol.__set__  # type: ignore[attr-defined]
    set_bid = QuoteTicked.bid.__set__  # type: ignore[attr-defined]
    set_ask = QuoteTicked.ask.__set__  # type: ignore[attr-defined]
    multiply, to_decimal, limit = CTX.multiply, Decimal, MAX_MAGNITUDE
    golden, mask, mix1, mix2, low16 = _GOLDEN, _MASK, _MIX1, _MIX2, 0xFFFF
    # price * vol_ppm * z * 1732 over _DEN, rounded half up: the constant factors once.
    scale, half, den, centre = vol_ppm * 1732, _HALF, _DEN, 2 * _UNIT
    get = cache.get
    for _ in range(ticks):
        bid = get(price)
        if bid is None:
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            bid = cache[price] = multiply(to_decimal(price), tick_size)
        ask_units = price + spread_ticks
        ask = get(ask_units)
        if ask is None:
            ask = cache[ask_units] = multiply(to_decimal(ask_units), tick_size)
            if ask > limit:  # the walk ran away: let QuoteTicked say what is wrong
                QuoteTicked(ts=ts, venue=venue, symbol=symbol, bid=bid, ask=ask)
        # Valid by construction (0 < bid < ask, ts in range: the arguments were checked above),
        # so built without the per-quote validation of QuoteTicked's __init__.
        quote = new(QuoteTicked)
        set_ts(quote, ts)
        set_venue(quote, venue)
        set_symbol(quote, symbol)
        set_bid(quote, bid)
        set_ask(quote, ask)
        yield quote
        # Irwin-Hall: four 16-bit uniforms from one draw; their centered sum times sqrt(3)
        # (1732/1000) is close to a standard normal. Rounded to the nearest tick, not floored,
        # so the walk has no drift.
        z_state = (z_state + golden) & mask
        r = ((z_state ^ (z_state >> 30)) * mix1) & mask
        r = ((r ^ (r >> 27)) * mix2) & mask
        r ^= r >> 31
        z = (r & low16) + ((r >> 16) & low16) + ((r >> 32) & low16) + (r >> 48) - centre
        price += (price * scale * z + half) // den
        if price < 1:
            price = 1
        ts += interval_ms
