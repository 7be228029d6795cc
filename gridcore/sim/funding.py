"""Two simulated venues for the funding-rate arbitrage: funding-rate paths and venue faults.

A funding-arbitrage bot needs two venues whose funding rates differ and move. This module
builds them for a backtest:

* :func:`synthetic_rates` draws a seeded, mean-reverting funding-rate path (one rate per
  funding interval) for one venue; :func:`parse_rates_csv` reads recorded rates per venue
  (``timestamp,venue,rate``, milliseconds, a fraction per interval) from text the shell read.
* :class:`FundingVenue` is the simulated exchange paying the rate in force at each funding time
  (and publishing it as ``FundingRateUpdated``), with faults of its own, drawn independently of
  the other venue's (:class:`VenueFaults`: opening orders rejected, filled in part, or accepted
  then rejected). Message loss, delays and disconnects come from the run's
  :class:`~gridcore.sim.faults.FaultPlan`, which already takes each venue's feed down on its own.
* :func:`funding_backtest` runs a ``funding_arb`` configuration on venue "a" (the configured
  ``[venue]``) and venue "b" (``[funding_arb] venue_b``): venue b's quotes follow venue a's
  market, offset by a millisecond.

Pure like the rest of :mod:`gridcore.sim`: no file is read here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
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
    "VenueFaults",
    "funding_backtest",
    "handles",
    "make_bot",
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


def parse_rates_csv(text: str) -> dict[str, list[tuple[int, Decimal]]]:
    """Funding rates per venue from CSV text with a header ``timestamp,venue,rate``
    (timestamp in ms since the epoch, rate a fraction per interval), sorted by time."""
    lines = [line.strip() for line in text.splitlines()]
    if not lines or [h.strip() for h in lines[0].split(",")] != ["timestamp", "venue", "rate"]:
        raise RatesError('funding rates CSV: the first line must be "timestamp,venue,rate"')
    out: dict[str, list[tuple[int, Decimal]]] = {}
    for n, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != 3:
            raise RatesError(f"funding rates CSV line {n}: want 3 cells, got {len(cells)}")
        try:
            ts = int(cells[0])
            rate = Decimal(cells[2])
        except (ValueError, InvalidOperation):
            raise RatesError(
                f"funding rates CSV line {n}: timestamp must be whole milliseconds and rate a "
                f"decimal, got {cells[0]!r}, {cells[2]!r}"
            ) from None
        if not rate.is_finite() or abs(rate) >= 1:
            raise RatesError(f"funding rates CSV line {n}: rate {rate} is not a fraction")
        out.setdefault(cells[1], []).append((ts, rate))
    for venue in out:
        out[venue].sort()
    return out


@attrs.frozen(kw_only=True)
class VenueFaults:
    """Faults of one venue, in parts per million of opening orders: rejected outright,
    filled only in part (the rest of the immediate-or-cancel order canceled), or accepted and
    then rejected. Reduce-only orders (rollbacks and closes) are never hit: what is tested is how
    the bot reacts to a failed leg, not a venue that refuses to let it out."""

    reject_ppm: int = 0
    partial_ppm: int = 0
    late_reject_ppm: int = 0


class FundingVenue(SimExchange):
    """A simulated venue paying the funding rate of ``rates`` in force at each funding time,
    with its own :class:`VenueFaults` drawn from its own seed."""

    def __init__(
        self,
        config: SimConfig,
        *,
        start_ts: int = 0,
        rates: RatePath = (),
        faults: VenueFaults = VenueFaults(),
        seed: int = 0,
        publish_ms: int = 60_000,
    ) -> None:
        super().__init__(config, start_ts=start_ts)
        self.rates = tuple(rates)
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
                    rate=self.rate_at(self.next_funding_ts),
                    next_funding_ts=self.next_funding_ts,
                )
            )
        return events

    def _reject(self, cmd: PlaceOrder, now: int, reason: str, events: list[Event]) -> None:
        self.rejections.append(reason)
        super()._reject(cmd, now, reason, events)

    def rate_at(self, ts: int) -> Decimal:
        """The rate in force at ``ts`` (the configured constant before the path starts)."""
        rate = self.config.funding_rate
        for start, value in self.rates:
            if start > ts:
                break
            rate = value
        return rate

    def _pay_funding(self, ts: int, events: list[Event]) -> None:
        while ts >= self.next_funding_ts:
            rate = self.rate_at(self.next_funding_ts)
            if rate != self.config.funding_rate:
                self.config = attrs.evolve(self.config, funding_rate=rate)
            # The base class pays every interval up to ts at one rate: hand it one at a time.
            super()._pay_funding(self.next_funding_ts, events)

    def handle(self, command: Command, now: int) -> list[Event]:
        f = self.venue_faults
        if isinstance(command, PlaceOrder) and not command.reduce_only:
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
    """A fresh ``funding_arb`` bot: the kernel trades venue a's and venue b's instruments."""
    core = attrs.evolve(
        config.make_core_config(), instruments=(config.make_instrument(), second_instrument(config))
    )
    return initial_state(core, config.make_strategy(), epoch=epoch, nonce=nonce)


def second_instrument(config: BotConfig) -> Instrument:
    """Venue b's instrument, from the ``[funding_arb]`` table."""
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


def _mirror(path: Iterable[QuoteTicked], other: Instrument) -> Iterator[QuoteTicked]:
    """Venue a's quotes, each followed a millisecond later by venue b's (its own tick)."""
    for q in path:
        yield q
        yield QuoteTicked(
            ts=q.ts + 1,
            venue=other.venue,
            symbol=other.symbol,
            bid=other.round_price(q.bid, Rounding.DOWN),
            ask=other.round_price(q.ask, Rounding.UP),
        )


def venues(
    config: BotConfig,
    *,
    start_ts: int,
    intervals: int,
    seed: int,
    rates: Mapping[str, RatePath] | None = None,
    faults: Mapping[str, VenueFaults] | None = None,
) -> tuple[FundingVenue, FundingVenue]:
    """Venue a and venue b, with the configured (or given) funding-rate paths and faults."""
    s = config.settings
    v = config.venue
    out = []
    for n, (inst, interval, mean) in enumerate(
        (
            (config.make_instrument(), s.funding_interval_ms, s.sim_rate_a),
            (second_instrument(config), s.funding_interval_ms_b, s.sim_rate_b),
        )
    ):
        path = (rates or {}).get(inst.venue)
        if path is None:
            path = synthetic_rates(
                seed=seed * 2 + n + 1,
                start_ts=start_ts,
                intervals=max(1, intervals * (s.funding_interval_ms // interval) + 2),
                interval_ms=interval,
                mean=mean,
                volatility=s.sim_rate_volatility,
            )
        out.append(
            FundingVenue(
                SimConfig(
                    venue=inst.venue,
                    instruments=(inst,),
                    starting_balance=v.starting_balance,
                    asset=config.instrument.quote,
                    position_mode=v.position_mode,
                    leverage=v.leverage,
                    liquidity=v.liquidity,
                    funding_interval_ms=interval,
                    funding_rate=mean,
                ),
                start_ts=start_ts,
                rates=path,
                faults=(faults or {}).get(inst.venue, VenueFaults()),
                seed=seed * 7919 + n,
            )
        )
    return out[0], out[1]


def funding_backtest(
    config: BotConfig,
    *,
    seed: int | None = None,
    ticks: int | None = None,
    faults: FaultPlan | None = None,
    path: Iterable[QuoteTicked] | None = None,
    start_ts: int | None = None,
    rates: Mapping[str, RatePath] | None = None,
    venue_faults: Mapping[str, VenueFaults] | None = None,
    state: Any = None,
    exchanges: Sequence[SimExchange] | None = None,
    **options: Any,
) -> Trace:
    """Run a ``funding_arb`` configuration on two simulated venues.

    ``rates`` (venue name → rate path) replaces the synthetic paths; ``venue_faults`` (venue
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
    other = second_instrument(config)
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
        _mirror(path, other),
        faults=faults or FaultPlan(),
        seed=seed,
        progress=progress,
        **options,
    )
