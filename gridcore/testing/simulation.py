"""Simulations: any bot reducer against the exchange model, under a fault plan, checked.

:func:`simulate` folds a bot and the simulated venue over a seeded market path with the backtest
runner (:func:`gridcore.sim.run_backtest`), checks the chosen invariants (default: the whole
:data:`~gridcore.invariants.CATALOGUE`) after every step, and returns the runner's
:class:`~gridcore.sim.Trace` with every violation found. The runner itself checks that every
command gets exactly one result and that no cloid is sent twice; after the run settles, the
ledger is compared with the venue's own account. With ``replay=True`` (the default) the trace is
also checked as a whole: the final state is the fold of the recorded events (recovery is a fold
of the journal) and every order's filled quantity is the sum of its distinct fills.

A :class:`Scenario` is the whole description of a run apart from the bot: market, faults, fault
seed and venue account. Its ``repr`` is valid Python, so a failing example found by hypothesis
prints as a program you can paste::

    from gridcore.testing import MarketPath, Scenario, assert_no_violations, simulate

    trace = simulate(bot, Scenario(market=MarketPath(instrument=inst, ticks=2_000)))
    assert_no_violations(trace)

A bot that trades several venues (the funding arbitrage: two) runs on a
:class:`MultiVenueScenario`: one :class:`VenueScenario` per venue, each with its own market
path, its own link fault plan (drawn from its own stream, so the venues fail independently), its
own account, funding-rate path and order refusals. The quotes of every venue's path are merged
in time order and each venue's exchange matches its own.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import attrs

from gridcore.commands import Command
from gridcore.core import State, step
from gridcore.events import Event, QuoteTicked
from gridcore.instruments import Instrument, PositionMode
from gridcore.invariants import (
    CATALOGUE,
    STATE_INVARIANTS,
    Invariant,
    StepRecord,
    Violation,
    check_step,
)
from gridcore.sim import FaultPlan, SimConfig, SimExchange, Trace, run_backtest, synthetic_path
from gridcore.sim.backtest import Reducer
from gridcore.sim.funding import FundingVenue, VenueFaults
from gridcore.testing.differential import check_replay
from gridcore.testing.liveness import LIVENESS_INVARIANT
from gridcore.testing.monitor import RunMonitor

__all__ = [
    "RUNNER_INVARIANTS",
    "InvariantViolations",
    "MarketPath",
    "MultiVenueScenario",
    "Reducer",
    "Scenario",
    "VenueScenario",
    "assert_no_violations",
    "simulate",
]

_MAX_KEPT = 100

RUNNER_INVARIANTS = (
    "every_command_gets_one_result",
    "no_cloid_sent_twice",
    "ledger_matches_venue",
    "venue_orders_known",
)
"""Invariants the runners check themselves, over the whole run (always on)."""


@attrs.frozen(kw_only=True)
class MarketPath:
    """A seeded synthetic market (a random walk of the mid in whole ticks).

    Iterating it yields the same :class:`~gridcore.events.QuoteTicked` sequence every time, so a
    path is a value: hypothesis can draw it, shrink it and print it.
    ``volatility`` is a fraction of the price per tick (``Decimal("0.0002")`` is 2 bps).

    >>> from gridcore import Instrument
    >>> inst = Instrument(venue="sim", symbol="X", tick_size=Decimal("0.1"), lot_size=Decimal(1))
    >>> len(list(MarketPath(instrument=inst, ticks=3)))
    3
    """

    instrument: Instrument
    seed: int = 1
    ticks: int = 1_000
    start_price: Decimal = Decimal(50_000)
    volatility: Decimal = Decimal("0.0002")
    spread_ticks: int = 1
    start_ts: int = 1_700_000_000_000
    interval_ms: int = 1_000

    def __attrs_post_init__(self) -> None:
        if self.ticks < 0:
            raise ValueError(f"MarketPath.ticks must be >= 0, got {self.ticks}")
        if self.spread_ticks < 1:
            raise ValueError(f"MarketPath.spread_ticks must be >= 1, got {self.spread_ticks}")
        if self.start_price <= 0:
            raise ValueError(f"MarketPath.start_price must be > 0, got {self.start_price}")
        if self.interval_ms <= 0:
            raise ValueError(f"MarketPath.interval_ms must be > 0, got {self.interval_ms}")
        if not Decimal(0) <= self.volatility < Decimal("0.1"):
            raise ValueError(
                f"MarketPath.volatility must be in [0, 0.1) per tick, got {self.volatility}"
            )

    def __iter__(self) -> Iterator[QuoteTicked]:
        return synthetic_path(
            instrument=self.instrument,
            seed=self.seed,
            ticks=self.ticks,
            start_price=self.start_price,
            volatility=self.volatility,
            spread_ticks=self.spread_ticks,
            start_ts=self.start_ts,
            interval_ms=self.interval_ms,
        )


@attrs.frozen(kw_only=True)
class Scenario:
    """Everything about a simulated run except the bot: market, faults and venue account.

    ``seed`` seeds the fault plan's draws (the market has its own seed). ``starting_balance`` is
    in quote; ``liquidity`` caps the base quantity one order fills per tick (``None``: unlimited,
    a value makes partial fills); ``leverage`` ``None`` takes the bot's risk leverage.
    ``latency_ms`` is each way between bot and venue; ``settle_ms`` how long the run goes on
    after the last quote, without faults, so that everything in flight lands.
    ``funding_interval_ms`` is how often the venue pays funding (a real venue: 8 h; the drawn
    scenarios pay it within the run). Funding payments are statements: no fault loses them.
    """

    market: MarketPath
    faults: FaultPlan = FaultPlan()
    seed: int = 0
    starting_balance: Decimal = Decimal(10_000)
    leverage: Decimal | None = None
    position_mode: PositionMode = PositionMode.ONE_WAY
    liquidity: Decimal | None = None
    latency_ms: int = 50
    settle_ms: int = 180_000
    funding_interval_ms: int = 8 * 3_600_000

    def __attrs_post_init__(self) -> None:
        if self.starting_balance <= 0:
            raise ValueError(
                f"Scenario.starting_balance must be > 0 (quote), got {self.starting_balance}"
            )
        if self.liquidity is not None and self.liquidity <= 0:
            raise ValueError(f"Scenario.liquidity must be > 0 (base units), got {self.liquidity}")
        if self.latency_ms < 0 or self.settle_ms < 0:
            raise ValueError("Scenario.latency_ms and settle_ms must be >= 0")
        if self.funding_interval_ms <= 0:
            raise ValueError(
                f"Scenario.funding_interval_ms must be > 0, got {self.funding_interval_ms}"
            )

    def exchange_for(self, bot: State[Any]) -> SimExchange:
        """A fresh simulated venue holding every instrument ``bot`` trades on the market's venue.

        Raises ``ValueError`` when the market's instrument is not configured in the bot.
        """
        venue = self.market.instrument.venue
        instruments = tuple(i for i in bot.config.instruments if i.venue == venue)
        if self.market.instrument.key not in {i.key for i in instruments}:
            raise ValueError(
                f"the market's instrument {venue}/{self.market.instrument.symbol} is not "
                f"configured in the bot; configured: "
                f"{sorted(f'{i.venue}/{i.symbol}' for i in bot.config.instruments)}"
            )
        return SimExchange(
            SimConfig(
                venue=venue,
                instruments=instruments,
                starting_balance=self.starting_balance,
                position_mode=self.position_mode,
                leverage=bot.config.risk.leverage if self.leverage is None else self.leverage,
                liquidity=self.liquidity,
                funding_interval_ms=self.funding_interval_ms,
            ),
            start_ts=self.market.start_ts,
        )


@attrs.frozen(kw_only=True)
class VenueScenario:
    """One venue of a :class:`MultiVenueScenario`: its market, its link's faults, its account.

    ``market`` is the venue's own quotes (its instrument names the venue); ``more_markets``
    quote further instruments of the same venue, each on its own path. ``faults`` is the
    link's fault plan for this venue alone (lost, late or duplicated messages, failed and timed
    out commands, feed outages), drawn from its own stream. ``funding_rates`` (``(from ts,
    rate)`` pairs, sorted) makes the venue pay that rate path and publish its coming rate (a
    funding-rate arbitrage decides on them); empty: a constant ``funding_rate``.
    ``symbol_funding_rates`` (``(symbol, path)`` pairs) gives a further symbol of
    ``more_markets`` a rate path of its own (a symbol without one is paid ``funding_rates``).
    ``refusals`` are
    the venue's own answers to opening orders (rejected, filled in part, accepted then rejected):
    the exchange model's behaviour, delivered intact by the link. The account fields are as in
    :class:`Scenario`.
    """

    market: MarketPath
    more_markets: tuple[MarketPath, ...] = ()
    faults: FaultPlan = FaultPlan()
    starting_balance: Decimal = Decimal(10_000)
    leverage: Decimal | None = None
    position_mode: PositionMode = PositionMode.ONE_WAY
    liquidity: Decimal | None = None
    funding_interval_ms: int = 8 * 3_600_000
    funding_rate: Decimal = Decimal("0.0001")
    funding_rates: tuple[tuple[int, Decimal], ...] = ()
    symbol_funding_rates: tuple[tuple[str, tuple[tuple[int, Decimal], ...]], ...] = ()
    refusals: VenueFaults = VenueFaults()

    def __attrs_post_init__(self) -> None:
        if self.starting_balance <= 0:
            raise ValueError(
                f"VenueScenario.starting_balance must be > 0 (quote), got {self.starting_balance}"
            )
        if self.liquidity is not None and self.liquidity <= 0:
            raise ValueError(
                f"VenueScenario.liquidity must be > 0 (base units), got {self.liquidity}"
            )
        if self.funding_interval_ms <= 0:
            raise ValueError(
                f"VenueScenario.funding_interval_ms must be > 0, got {self.funding_interval_ms}"
            )
        if list(self.funding_rates) != sorted(self.funding_rates):
            raise ValueError("VenueScenario.funding_rates must be sorted by time")
        symbols = {m.instrument.symbol for m in self.more_markets}
        for symbol, path in self.symbol_funding_rates:
            if symbol not in symbols:
                raise ValueError(
                    f"VenueScenario.symbol_funding_rates names {symbol!r}, which more_markets "
                    f"does not quote; quoted: {sorted(symbols)}"
                )
            if list(path) != sorted(path):
                raise ValueError(
                    f"VenueScenario.symbol_funding_rates of {symbol!r} must be sorted by time"
                )
        keys = [m.instrument.key for m in self.markets]
        if any(m.instrument.venue != self.venue for m in self.more_markets):
            raise ValueError(
                f"VenueScenario.more_markets must quote instruments of venue {self.venue!r}, "
                f"got {sorted(f'{v}/{sym}' for v, sym in keys)}: a venue of its own is a "
                f"VenueScenario of its own"
            )
        if len(set(keys)) != len(keys):
            raise ValueError("VenueScenario markets must quote distinct instruments")

    @property
    def markets(self) -> tuple[MarketPath, ...]:
        """Every market path of this venue: ``market`` first."""
        return (self.market, *self.more_markets)

    @property
    def venue(self) -> str:
        """The venue's name (its market instrument's venue)."""
        return self.market.instrument.venue

    def exchange_for(self, bot: State[Any], *, seed: int) -> SimExchange:
        """A fresh simulated venue holding every instrument ``bot`` trades on this venue
        (``seed`` draws its refusals). Raises ``ValueError`` when the market's instrument is not
        configured in the bot."""
        venue = self.venue
        instruments = tuple(i for i in bot.config.instruments if i.venue == venue)
        for market in self.markets:
            if market.instrument.key not in {i.key for i in instruments}:
                raise ValueError(
                    f"the market's instrument {venue}/{market.instrument.symbol} is not "
                    f"configured in the bot; configured: "
                    f"{sorted(f'{i.venue}/{i.symbol}' for i in bot.config.instruments)}"
                )
        config = SimConfig(
            venue=venue,
            instruments=instruments,
            starting_balance=self.starting_balance,
            asset=self.market.instrument.quote,
            position_mode=self.position_mode,
            leverage=bot.config.risk.leverage if self.leverage is None else self.leverage,
            liquidity=self.liquidity,
            funding_interval_ms=self.funding_interval_ms,
            funding_rate=self.funding_rate,
        )
        if (
            not self.funding_rates
            and not self.symbol_funding_rates
            and self.refusals == VenueFaults()
        ):
            return SimExchange(config, start_ts=self.market.start_ts)
        return FundingVenue(
            config,
            start_ts=self.market.start_ts,
            rates=self.funding_rates,
            faults=self.refusals,
            seed=seed,
            symbol_rates=dict(self.symbol_funding_rates),
        )


@attrs.frozen(kw_only=True)
class MultiVenueScenario:
    """A run on several venues: one :class:`VenueScenario` each (distinct venues).

    ``seed`` seeds every venue's fault draws (each venue forks its own stream from it);
    ``latency_ms`` and ``settle_ms`` are as in :class:`Scenario`. Its ``repr`` is valid Python.
    """

    venues: tuple[VenueScenario, ...]
    seed: int = 0
    latency_ms: int = 50
    settle_ms: int = 180_000

    def __attrs_post_init__(self) -> None:
        if not self.venues:
            raise ValueError("MultiVenueScenario.venues needs at least one VenueScenario")
        names = [v.venue for v in self.venues]
        if len(set(names)) != len(names):
            raise ValueError(
                f"MultiVenueScenario.venues must name distinct venues, got {names}: give each "
                f"market an instrument of its own venue"
            )
        if self.latency_ms < 0 or self.settle_ms < 0:
            raise ValueError("MultiVenueScenario.latency_ms and settle_ms must be >= 0")

    @property
    def start_ts(self) -> int:
        """The first quote's time."""
        return min(m.start_ts for v in self.venues for m in v.markets)

    @property
    def end_ts(self) -> int:
        """The last quote's time (about)."""
        return max(m.start_ts + m.ticks * m.interval_ms for v in self.venues for m in v.markets)

    def quotes(self) -> Iterator[QuoteTicked]:
        """Every market's quotes, merged in time order (in the order listed at equal times)."""
        paths = (iter(m) for v in self.venues for m in v.markets)
        return heapq.merge(*paths, key=lambda q: q.ts)


_MAX_BURST = 20_000


_MAX_OVERRUN_MS = 120_000
"""How long after the settle window a run may go on landing what is in flight."""


class _Runaway(Exception):
    def __init__(self, event: Event, *, overrun: bool = False) -> None:
        super().__init__(repr(event))
        self.event = event
        self.overrun = overrun


class InvariantViolations(AssertionError):
    """Raised by :func:`assert_no_violations`; ``violations`` holds what was found."""

    def __init__(self, message: str, violations: Sequence[Violation]) -> None:
        super().__init__(message)
        self.violations = tuple(violations)


def simulate(
    bot: State[Any],
    scenario: Scenario | MultiVenueScenario,
    *,
    reducer: Reducer = step,
    invariants: Sequence[Invariant] = CATALOGUE,
    check_ticks: bool = False,
    replay: bool = True,
    working: Callable[[State[Any]], str | None] | None = None,
) -> Trace:
    """Run ``bot`` (a fresh state) with ``reducer`` against the simulated venue of ``scenario``
    (or the venues of a :class:`MultiVenueScenario`).

    After the last quote the run settles for the scenario's ``settle_ms``: faults stop, every
    feed is up, and the market is calm (every symbol quoted again at its last bid and ask at
    the market's interval), so that the bot can finish what it started with fresh quotes.

    ``invariants`` are checked after every step that is not a plain tick (every tick too with
    ``check_ticks``) and on the final state; the runner's own invariants
    (:data:`RUNNER_INVARIANTS`) always are. With ``replay`` the recorded events are folded again
    from ``bot`` (the final state must be that fold) and every order's fills are summed. The
    returned trace's ``violations`` holds the first 100 found, ``summary.invariant_violations``
    counts them all; its ``events`` are the recorded events (``None`` without ``replay``). A bot
    that never lets time pass (more than 20,000 events at one instant: a message loop), or that
    still talks to the venue two minutes after the settle window, cannot return a trace:
    :class:`InvariantViolations` is raised instead (``bot_quiesces``).

    Besides the catalogue, a running record of the run (:class:`~gridcore.testing.RunMonitor`)
    checks the fills of every order ever tracked, that no order rests at any venue while the
    core holds it done or unknown (beyond a bounded in-flight window) and that order churn stays
    proportionate to the market's events, and that a reconnect recovers every fill its venue
    made before it (each venue of a :class:`MultiVenueScenario` judged on its own).

    ``working`` (off by default) is a liveness check (:mod:`gridcore.testing.liveness`): a
    predicate asked of the final state, after the settle (feeds up, fresh quotes, the
    heartbeat run); a reason why the bot is not working is reported as the invariant
    ``bot_keeps_working``.

    >>> from gridcore.sim import make_bot
    >>> from gridcore.config import load_config
    >>> config = load_config()
    >>> market = MarketPath(instrument=config.make_instrument(), ticks=500)
    >>> trace = simulate(make_bot(config, epoch=market.start_ts), Scenario(market=market))
    >>> trace.violations
    ()
    """
    exchanges: list[SimExchange]
    path: Iterable[QuoteTicked]
    faults: FaultPlan | dict[str, FaultPlan]
    if isinstance(scenario, MultiVenueScenario):
        start_ts, end_ts = scenario.start_ts, scenario.end_ts
        exchanges = [
            v.exchange_for(bot, seed=scenario.seed * 7919 + n)
            for n, v in enumerate(scenario.venues)
        ]
        path = scenario.quotes()
        faults = {v.venue: v.faults for v in scenario.venues}
        quote_every = min(v.market.interval_ms for v in scenario.venues)
    else:
        market = scenario.market
        start_ts = market.start_ts
        end_ts = market.start_ts + market.ticks * market.interval_ms
        exchanges = [scenario.exchange_for(bot)]
        path = market
        faults = scenario.faults
        quote_every = market.interval_ms
    if bot.now > start_ts:
        raise ValueError(
            f"the bot's clock ({bot.now}) is after the market's first quote "
            f"({start_ts}): pass a fresh bot whose epoch is at or before it"
        )
    selected = tuple(invariants)
    found: list[Violation] = []
    count = 0
    burst = [0, 0]  # events at the current timestamp, and that timestamp

    deadline = end_ts + scenario.settle_ms + _MAX_OVERRUN_MS
    # The monitor judges every venue on its own: resting orders at each, and a reconnect
    # against the fills of the venue that came back.
    by_venue = {ex.config.venue: ex for ex in exchanges}

    def checked(state: State[Any], event: Event) -> tuple[State[Any], list[Command]]:
        nonlocal count
        if event.ts > deadline:
            raise _Runaway(event, overrun=True)
        if event.ts == burst[1]:
            burst[0] += 1
            if burst[0] > _MAX_BURST:
                raise _Runaway(event)
        else:
            burst[0], burst[1] = 1, event.ts
        after, commands = reducer(state, event)
        if check_ticks or commands or type(event) is not QuoteTicked:
            record = StepRecord(before=state, event=event, after=after, commands=tuple(commands))
            violations = check_step(record, selected)
            monitor.step(record)
            if type(event) is not QuoteTicked:
                violations.extend(monitor.venue(after, by_venue, event.ts))
            if violations:
                count += len(violations)
                found.extend(violations[: max(0, _MAX_KEPT - len(found))])
        else:
            monitor.step(StepRecord(before=state, event=event, after=after))
        return after, commands

    monitor = RunMonitor(bot, exchanges=by_venue)
    try:
        trace = run_backtest(
            bot,
            exchanges,
            path,
            faults=faults,
            seed=scenario.seed,
            latency_ms=scenario.latency_ms,
            settle_ms=scenario.settle_ms,
            settle_quotes_ms=quote_every,
            record_events=replay,
            check_every_step=False,
            reducer=checked,
        )
    except _Runaway as runaway:
        violation = Violation(
            invariant="bot_quiesces",
            ts=runaway.event.ts,
            detail=(
                f"still talking {_MAX_OVERRUN_MS} ms after the settle window: the bot and the "
                f"venue answer each other in a loop (the run was stopped there)"
                if runaway.overrun
                else f"more than {_MAX_BURST} events at one instant: the bot and the venue "
                f"answer each other in a loop (the run was stopped there)"
            ),
            event=runaway.event,
        )
        raise InvariantViolations(
            f"bot_quiesces at ts={violation.ts}: {violation.detail}\n"
            f"      event: {runaway.event!r}\n  scenario: {scenario!r}",
            [*found[:_MAX_KEPT], violation],
        ) from None
    state_names = {f.__name__ for f in STATE_INVARIANTS}
    extra = [v for v in trace.violations if v.invariant not in state_names]
    for invariant in selected:
        if invariant.state_check is not None:
            extra.extend(invariant.state_check(trace.state))
    extra.extend(monitor.finish(trace.state))
    if working is not None:
        reason = working(trace.state)
        if reason is not None:
            extra.append(Violation(invariant=LIVENESS_INVARIANT, ts=trace.state.now, detail=reason))
    if replay:
        extra.extend(check_replay(bot, trace, reducer=reducer))
    seen = {(v.invariant, v.detail) for v in found}
    for v in extra:
        if (v.invariant, v.detail) not in seen:
            seen.add((v.invariant, v.detail))
            count += 1
            if len(found) < _MAX_KEPT:
                found.append(v)
    found.sort(key=lambda v: v.ts)
    return attrs.evolve(
        trace,
        violations=tuple(found),
        summary=attrs.evolve(trace.summary, invariant_violations=count),
    )


def assert_no_violations(trace: Trace, *, limit: int = 10) -> None:
    """Raise :class:`InvariantViolations` (an ``AssertionError``) when ``trace`` broke any
    invariant; the message lists the first ``limit`` violations with the event of each step,
    whose ``repr`` is a valid Python expression you can paste into a unit test."""
    if not trace.violations:
        return
    s = trace.summary
    lines = [
        f"{s.invariant_violations} invariant violation(s) "
        f"(fault plan {s.faults!r}, fault seed {s.seed}, {s.ticks} ticks, {s.events} events):"
    ]
    for v in trace.violations[:limit]:
        lines.append(f"  - {v.invariant} at ts={v.ts}: {v.detail}")
        if v.event is not None:
            lines.append(f"      event: {v.event!r}")
    if len(trace.violations) > limit:
        lines.append(f"  ... and {s.invariant_violations - limit} more")
    raise InvariantViolations("\n".join(lines), trace.violations)
