"""Two simulated venues for the funding-rate arbitrage: funding-rate paths and venue faults.

A funding-arbitrage bot needs two venues whose funding rates differ and move. This module
builds them for a backtest:

* :func:`synthetic_rates` draws a seeded, mean-reverting funding-rate path (one rate per
  funding interval) for one venue and symbol; :func:`parse_rates_csv` reads recorded rates per
  venue and symbol (``timestamp,venue,symbol,rate``, or per venue ``timestamp,venue,rate``;
  milliseconds, a fraction per interval) from text the shell read.
* :class:`FundingVenue` is the simulated exchange paying the rate in force at each funding time
  (and publishing it as ``FundingRateUpdated``), with faults of its own, drawn independently of
  the other venue's (:class:`VenueFaults`: opening orders rejected, filled in part, or accepted
  then rejected). Message loss, delays and disconnects come from the run's
  :class:`~gridcore.sim.faults.FaultPlan`, which already takes each venue's feed down on its own.
* :func:`funding_backtest` runs a ``funding_arb`` configuration on venue "a" (the configured
  ``[venue]``) and venue "b" (``[funding_arb] venue_b``): venue b's quotes follow venue a's
  market, offset by a millisecond. With several pairs (``[[funding_arb.pairs]]``) both venues
  list every pair's instrument (:func:`pair_instruments`), each symbol has its own funding path,
  and every further pair's quotes follow the same market scaled to its ``sim_start_price``
  (:func:`pair_quotes`), a millisecond apart.

Pure like the rest of :mod:`gridcore.sim`: no file is read here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

import attrs

from gridcore.commands import Command, PlaceOrder
from gridcore.config import BotConfig
from gridcore.core import State, initial_state
from gridcore.events import (
    Event,
    FundingRateUpdated,
    OrderAccepted,
    OrderRejected,
    QuoteTicked,
    ReportedStatus,
)
from gridcore.instruments import Instrument, Source
from gridcore.numbers import CTX, Rounding
from gridcore.sim.backtest import Trace, run_backtest
from gridcore.sim.exchange import SimConfig, SimExchange, SimOrder
from gridcore.sim.faults import FaultPlan
from gridcore.sim.market import synthetic_path
from gridcore.sim.rng import SplitMix64

__all__ = [
    "FundingVenue",
    "RatePath",
    "RatesKey",
    "VenueFaults",
    "funding_backtest",
    "handles",
    "make_bot",
    "pair_instruments",
    "pair_quotes",
    "pair_scales",
    "parse_rates_csv",
    "synthetic_rates",
]

KIND = "funding_arb"
RatePath = Sequence[tuple[int, Decimal]]
"""``(from ts in ms, rate per interval)``, sorted by time: the rate in force from then on."""

_RATE_STEP = Decimal("0.00000001")


def handles(config: BotConfig) -> bool:
    """True when ``config`` runs the funding-rate arbitrage (two venues)."""
    return config.strategy.kind == KIND


def synthetic_rates(
    *,
    seed: int,
    start_ts: int,
    intervals: int,
    interval_ms: int,
    mean: Decimal,
    volatility: Decimal,
    reversion: Decimal = Decimal("0.2"),
) -> list[tuple[int, Decimal]]:
    """A seeded mean-reverting path: ``r' = r + reversion * (mean - r) + volatility * z``,
    one rate per funding interval, starting at ``mean``.

    >>> synthetic_rates(seed=1, start_ts=0, intervals=2, interval_ms=10, mean=Decimal("0.0001"),
    ...                 volatility=Decimal(0))
    [(0, Decimal('0.00010000')), (10, Decimal('0.00010000'))]
    """
    if intervals < 0 or interval_ms <= 0:
        raise ValueError("intervals must be >= 0 and interval_ms > 0")
    rng = SplitMix64(seed)
    rate = mean
    out: list[tuple[int, Decimal]] = []
    for k in range(intervals):
        out.append((start_ts + k * interval_ms, rate.quantize(_RATE_STEP)))
        r = rng.next()
        # Irwin-Hall of four 16-bit uniforms, centered and scaled: close to a standard normal.
        z = Decimal(
            (r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48) - 2 * 0xFFFF
        ) / Decimal(37_837)
        rate = CTX.add(
            rate,
            CTX.add(CTX.multiply(reversion, CTX.subtract(mean, rate)), CTX.multiply(volatility, z)),
        )
    return out


class RatesError(ValueError):
    """A funding-rate CSV that cannot be read; the message names the line."""


RatesKey = str | tuple[str, str]
"""A venue name (its rates apply to every symbol of the venue without rates of its own) or
``(venue, symbol)``."""

_HEADERS = (["timestamp", "venue", "rate"], ["timestamp", "venue", "symbol", "rate"])


def parse_rates_csv(text: str) -> dict[RatesKey, list[tuple[int, Decimal]]]:
    """Funding rates from CSV text, sorted by time: with a header ``timestamp,venue,symbol,rate``
    per ``(venue, symbol)``, with the older ``timestamp,venue,rate`` per venue (every symbol of
    the venue then follows the same rates). Timestamps are ms since the epoch, rates a fraction
    per interval."""
    lines = [line.strip() for line in text.splitlines()]
    header = [h.strip() for h in lines[0].split(",")] if lines else []
    if header not in _HEADERS:
        raise RatesError(
            'funding rates CSV: the first line must be "timestamp,venue,symbol,rate" (or, '
            'for rates per venue, "timestamp,venue,rate")'
        )
    width = len(header)
    out: dict[RatesKey, list[tuple[int, Decimal]]] = {}
    for n, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != width:
            raise RatesError(f"funding rates CSV line {n}: want {width} cells, got {len(cells)}")
        try:
            ts = int(cells[0])
            rate = Decimal(cells[-1])
        except (ValueError, InvalidOperation):
            raise RatesError(
                f"funding rates CSV line {n}: timestamp must be whole milliseconds and rate a "
                f"decimal, got {cells[0]!r}, {cells[-1]!r}"
            ) from None
        if not rate.is_finite() or abs(rate) >= 1:
            raise RatesError(f"funding rates CSV line {n}: rate {rate} is not a fraction")
        if width == 4 and not cells[2]:
            raise RatesError(f"funding rates CSV line {n}: the symbol is empty")
        key: RatesKey = (cells[1], cells[2]) if width == 4 else cells[1]
        out.setdefault(key, []).append((ts, rate))
    for key in out:
        out[key].sort()
    return out


@attrs.frozen(kw_only=True)
class VenueFaults:
    """Faults of one venue, in parts per million of opening orders: rejected outright,
    filled only in part (the rest of the immediate-or-cancel order canceled), or accepted and
    then rejected. Reduce-only orders (rollbacks and closes) are never hit: what is tested is how
    the bot reacts to a failed leg, not a venue that refuses to let it out.

    ``refuse_orders`` names opening orders by their number at this venue (1 is the first
    opening order it receives): those are rejected outright whatever the rates draw, so a
    short run is sure to see the refusal a rare rate might never make."""

    reject_ppm: int = 0
    partial_ppm: int = 0
    late_reject_ppm: int = 0
    refuse_orders: tuple[int, ...] = ()


class FundingVenue(SimExchange):
    """A simulated venue paying the funding rate of ``rates`` in force at each funding time,
    with its own :class:`VenueFaults` drawn from its own seed; a venue of several pairs pays
    each further symbol at its own path (``symbol_rates``)."""

    # A venue saved before venues had several symbols unpickles without it: none.
    symbol_rates: Mapping[str, tuple[tuple[int, Decimal], ...]] = MappingProxyType({})
    # A venue saved before refusals by number unpickles without its count: none seen.
    opening_orders = 0

    def __init__(
        self,
        config: SimConfig,
        *,
        start_ts: int = 0,
        rates: RatePath = (),
        faults: VenueFaults = VenueFaults(),
        seed: int = 0,
        publish_ms: int = 60_000,
        symbol_rates: Mapping[str, RatePath] | None = None,
    ) -> None:
        super().__init__(config, start_ts=start_ts)
        self.rates = tuple(rates)
        # Rates of the venue's other symbols (a venue of several pairs): symbol -> path.
        self.symbol_rates = {k: tuple(v) for k, v in (symbol_rates or {}).items()}
        self.venue_faults = faults
        self.rng = SplitMix64(seed)
        self.injected: dict[str, int] = {"reject": 0, "partial": 0, "late_reject": 0}
        self.rejections: list[str] = []  # the reason of every order this venue rejected
        self.publish_ms = publish_ms
        self.next_publish = start_ts

    def on_tick(self, tick: QuoteTicked) -> list[Event]:
        """As the base venue; besides, publish the rate of the coming funding every
        ``publish_ms`` (venues push their predicted rate between payments)."""
        events = super().on_tick(tick)
        if tick.ts < self.next_publish or tick.symbol not in self.instruments:
            return events
        self.next_publish = tick.ts + self.publish_ms
        events = list(events)
        for symbol in self.instruments:
            events.append(
                FundingRateUpdated(
                    ts=tick.ts,
                    venue=self.config.venue,
                    symbol=symbol,
                    rate=self.rate_at(self.next_funding_ts, symbol),
                    next_funding_ts=self.next_funding_ts,
                )
            )
        return events

    def _reject(self, cmd: PlaceOrder, now: int, reason: str, events: list[Event]) -> None:
        self.rejections.append(reason)
        super()._reject(cmd, now, reason, events)

    def rate_at(self, ts: int, symbol: str | None = None) -> Decimal:
        """The rate of ``symbol`` (the venue's first) in force at ``ts`` (before the path
        starts: the configured constant, or the path's first rate for another symbol)."""
        path = self.symbol_rates.get(symbol, self.rates) if symbol is not None else self.rates
        rate = self.config.funding_rate if path is self.rates or not path else path[0][1]
        for start, value in path:
            if start > ts:
                break
            rate = value
        return rate

    def funding_rate(self, due: int, symbol: str) -> Decimal:
        """Each symbol at its own path's rate (with one path, the base class's constant, which
        :meth:`_pay_funding` sets interval by interval)."""
        if self.symbol_rates:
            return self.rate_at(due, symbol)
        return self.config.funding_rate

    def _pay_funding(self, ts: int, events: list[Event]) -> None:
        if self.symbol_rates:
            super()._pay_funding(ts, events)
            return
        while ts >= self.next_funding_ts:
            rate = self.rate_at(self.next_funding_ts)
            if rate != self.config.funding_rate:
                self.config = attrs.evolve(self.config, funding_rate=rate)
            # The base class pays every interval up to ts at one rate: hand it one at a time.
            super()._pay_funding(self.next_funding_ts, events)

    def handle(self, command: Command, now: int) -> list[Event]:
        f = self.venue_faults
        if isinstance(command, PlaceOrder) and not command.reduce_only:
            if command.cloid not in self.orders:  # a resent order keeps its number
                self.opening_orders += 1
                if self.opening_orders in f.refuse_orders:
                    self.injected["reject"] += 1
                    return self._refuse(command, now, "simulated rejection (injected)")
            if self.rng.chance(f.reject_ppm):
                self.injected["reject"] += 1
                return self._refuse(command, now, "simulated rejection (injected)")
            if self.rng.chance(f.late_reject_ppm):
                self.injected["late_reject"] += 1
                return self._accept_then_reject(command, now)
            if self.rng.chance(f.partial_ppm):
                self.injected["partial"] += 1
                half = self.instruments[command.symbol].round_qty(
                    CTX.divide(command.qty, Decimal(2)), Rounding.DOWN
                )
                if half > 0:
                    saved = self.config
                    self.config = attrs.evolve(saved, liquidity=half)
                    try:
                        return super().handle(command, now)
                    finally:
                        self.config = saved
        return super().handle(command, now)

    def _refuse(self, cmd: PlaceOrder, now: int, reason: str) -> list[Event]:
        if cmd.cloid in self.orders:
            return super().handle(cmd, now)  # a duplicate: the base class answers it
        self.orders[cmd.cloid] = SimOrder.from_command(cmd, oid="0", status=ReportedStatus.REJECTED)
        events: list[Event] = []
        self._reject(cmd, now, reason, events)
        return events

    def _accept_then_reject(self, cmd: PlaceOrder, now: int) -> list[Event]:
        if cmd.cloid in self.orders:
            return super().handle(cmd, now)
        self._oid += 1
        order = SimOrder.from_command(cmd, oid=str(self._oid), status=ReportedStatus.REJECTED)
        self.orders[cmd.cloid] = order
        self.by_oid[order.oid] = order
        return [
            OrderAccepted(
                ts=now,
                venue=self.config.venue,
                cloid=cmd.cloid,
                venue_order_id=order.oid,
                source=Source.REST,
                command_id=cmd.command_id,
            ),
            OrderRejected(
                ts=now,
                venue=self.config.venue,
                cloid=cmd.cloid,
                reason="simulated rejection after acceptance",
                source=Source.STREAM,
            ),
        ]


def make_bot(config: BotConfig, *, epoch: int, nonce: int = 0) -> State[Any]:
    """A fresh ``funding_arb`` bot: the kernel trades every pair's instruments on both
    venues."""
    instruments = tuple(i for pair in pair_instruments(config) for i in pair)
    core = attrs.evolve(config.make_core_config(), instruments=instruments)
    return initial_state(core, config.make_strategy(), epoch=epoch, nonce=nonce)


def second_instrument(config: BotConfig) -> Instrument:
    """Venue b's instrument of the first pair, from the ``[funding_arb]`` table."""
    s = config.settings
    return Instrument(
        venue=s.venue_b,
        symbol=s.symbol_b,
        tick_size=s.tick_size_b,
        lot_size=s.lot_size_b,
        min_notional=s.min_notional_b,
        maker_fee=s.maker_fee_b,
        taker_fee=s.taker_fee_b,
        base=config.instrument.base,
        quote=config.instrument.quote,
    )


def pair_instruments(config: BotConfig) -> tuple[tuple[Instrument, Instrument], ...]:
    """Every pair's instruments ``(on venue a, on venue b)``, the first pair first; a field a
    ``[[funding_arb.pairs]]`` table leaves out takes the first pair's value on that venue."""
    first_a, first_b = config.make_instrument(), second_instrument(config)
    out = [(first_a, first_b)]
    for p in config.settings.pairs:
        made = []
        for key, first in (("a", first_a), ("b", first_b)):

            def got(name: str, default: Any, key: str = key, p: Any = p) -> Any:
                value = getattr(p, f"{name}_{key}")
                return default if value is None or value == "" else value

            made.append(
                Instrument(
                    venue=first.venue,
                    symbol=getattr(p, f"symbol_{key}"),
                    tick_size=got("tick_size", first.tick_size),
                    lot_size=got("lot_size", first.lot_size),
                    min_notional=got("min_notional", first.min_notional),
                    maker_fee=got("maker_fee", first.maker_fee),
                    taker_fee=got("taker_fee", first.taker_fee),
                    base=p.base or p.symbol_b,
                    quote=first.quote,
                    settlement=got("settlement", first.settlement),
                )
            )
        out.append((made[0], made[1]))
    return tuple(out)


def _scaled(q: QuoteTicked, inst: Instrument, scale: Decimal, ts: int) -> QuoteTicked:
    """Quote ``q`` scaled by ``scale`` onto ``inst`` (its tick, outward: bid down, ask up)."""
    bid, ask = q.bid, q.ask
    if scale != 1:
        bid, ask = CTX.multiply(bid, scale), CTX.multiply(ask, scale)
    return QuoteTicked(
        ts=ts,
        venue=inst.venue,
        symbol=inst.symbol,
        bid=inst.round_price(bid, Rounding.DOWN),
        ask=inst.round_price(ask, Rounding.UP),
    )


def pair_scales(config: BotConfig) -> tuple[Decimal, ...]:
    """Per pair, the factor from the ``[market]`` price to the pair's (``sim_start_price``
    over ``market.start_price``; 1 for the first pair)."""
    start = config.market.start_price
    out = [Decimal(1)]
    for p in config.settings.pairs:
        price = start if p.sim_start_price is None else p.sim_start_price
        out.append(CTX.divide(price, start))
    return tuple(out)


def pair_quotes(
    q: QuoteTicked,
    pairs: Sequence[tuple[Instrument, Instrument]],
    scales: Sequence[Decimal],
    *,
    step_ms: int = 1,
) -> Iterator[QuoteTicked]:
    """Venue a's first-pair quote ``q`` as every venue quotes every pair: venue b's first
    pair ``step_ms`` later, then each further pair on venue a and venue b, ``step_ms`` apart
    (``step_ms=0``: all at ``q``'s time)."""
    yield q
    for n, ((a, b), scale) in enumerate(zip(pairs, scales, strict=True)):
        if n:
            yield _scaled(q, a, scale, q.ts + 2 * n * step_ms)
        yield _scaled(q, b, scale, q.ts + (2 * n + 1) * step_ms)


def _mirror(
    path: Iterable[QuoteTicked],
    pairs: Sequence[tuple[Instrument, Instrument]],
    scales: Sequence[Decimal],
) -> Iterator[QuoteTicked]:
    """Venue a's quotes, each followed a millisecond later by venue b's (its own tick), and by
    every further pair's on both venues (scaled to the pair's price), a millisecond apart."""
    for q in path:
        yield from pair_quotes(q, pairs, scales)


def _rate_path(
    rates: Mapping[RatesKey, RatePath] | None, venue: str, symbol: str
) -> RatePath | None:
    """The recorded rates of ``symbol`` on ``venue``: its own, else the venue's."""
    if not rates:
        return None
    found = rates.get((venue, symbol))
    return found if found is not None else rates.get(venue)


def venues(
    config: BotConfig,
    *,
    start_ts: int,
    intervals: int,
    seed: int,
    rates: Mapping[RatesKey, RatePath] | None = None,
    faults: Mapping[str, VenueFaults] | None = None,
) -> tuple[FundingVenue, FundingVenue]:
    """Venue a and venue b, each quoting every pair's symbol, with the configured (or given)
    funding-rate paths (one per symbol) and faults."""
    s = config.settings
    v = config.venue
    pairs = pair_instruments(config)
    out = []
    for n, (interval, mean) in enumerate(
        ((s.funding_interval_ms, s.sim_rate_a), (s.funding_interval_ms_b, s.sim_rate_b))
    ):
        paths: list[RatePath] = []
        for k, pair in enumerate(pairs):
            inst = pair[n]
            path = _rate_path(rates, inst.venue, inst.symbol)
            if path is None:
                extra = s.pairs[k - 1] if k else None
                own = getattr(extra, f"sim_rate_{'ab'[n]}", None) if extra is not None else None
                path = synthetic_rates(
                    # The first pair keeps the seeds of a one-pair run.
                    seed=seed * 2 + n + 1 + 7_919 * k,
                    start_ts=start_ts,
                    intervals=max(1, intervals * (s.funding_interval_ms // interval) + 2),
                    interval_ms=interval,
                    mean=mean if own is None else own,
                    volatility=s.sim_rate_volatility,
                )
            paths.append(path)
        first = pairs[0][n]
        out.append(
            FundingVenue(
                SimConfig(
                    venue=first.venue,
                    instruments=tuple(pair[n] for pair in pairs),
                    starting_balance=v.starting_balance,
                    asset=config.instrument.quote,
                    position_mode=v.position_mode,
                    leverage=v.leverage,
                    liquidity=v.liquidity,
                    funding_interval_ms=interval,
                    funding_rate=mean,
                ),
                start_ts=start_ts,
                rates=paths[0],
                symbol_rates={
                    pair[n].symbol: path for pair, path in zip(pairs[1:], paths[1:], strict=True)
                },
                faults=(faults or {}).get(first.venue, VenueFaults()),
                seed=seed * 7919 + n,
            )
        )
    return out[0], out[1]


def funding_backtest(
    config: BotConfig,
    *,
    seed: int | None = None,
    ticks: int | None = None,
    faults: FaultPlan | Mapping[str, FaultPlan] | None = None,
    path: Iterable[QuoteTicked] | None = None,
    start_ts: int | None = None,
    rates: Mapping[RatesKey, RatePath] | None = None,
    venue_faults: Mapping[str, VenueFaults] | None = None,
    state: Any = None,
    exchanges: Sequence[SimExchange] | None = None,
    **options: Any,
) -> Trace:
    """Run a ``funding_arb`` configuration on two simulated venues.

    ``rates`` (``(venue, symbol)`` or a venue name → rate path) replaces the synthetic paths; ``venue_faults`` (venue
    name → :class:`VenueFaults`) adds each venue's own faults (default: the ``sim_*`` fault rates
    of the ``[funding_arb]`` table). ``state`` and ``exchanges`` continue an earlier run (a
    restart with positions open). ``options`` go to :func:`~gridcore.sim.run_backtest`.
    """
    m = config.market
    seed = m.seed if seed is None else seed
    if path is None:
        ticks = m.ticks if ticks is None else ticks
        start_ts = m.start_ts if start_ts is None else start_ts
        path = synthetic_path(
            instrument=config.make_instrument(),
            seed=seed,
            ticks=ticks,
            start_price=m.start_price,
            volatility=m.volatility,
            spread_ticks=m.spread_ticks,
            start_ts=start_ts,
            interval_ms=m.interval_ms,
        )
        span = ticks * m.interval_ms
    else:
        path = list(path)
        start_ts = path[0].ts if path and start_ts is None else (start_ts or m.start_ts)
        span = (path[-1].ts - path[0].ts) if path else 0
    s = config.settings
    if venue_faults is None:
        f = VenueFaults(
            reject_ppm=s.sim_reject_ppm,
            partial_ppm=s.sim_partial_ppm,
            late_reject_ppm=s.sim_late_reject_ppm,
        )
        venue_faults = {config.venue.name: f, s.venue_b: f}
    if exchanges is None:
        exchanges = venues(
            config,
            start_ts=start_ts,
            intervals=span // s.funding_interval_ms + 2,
            seed=seed,
            rates=rates,
            faults=venue_faults,
        )
    if state is None:
        state = make_bot(config, epoch=start_ts)
    progress: Callable[[int], None] | None = options.pop("progress", None)
    return run_backtest(
        state,
        list(exchanges),
        _mirror(path, pair_instruments(config), pair_scales(config)),
        faults=faults or FaultPlan(),
        seed=seed,
        progress=progress,
        **options,
    )
