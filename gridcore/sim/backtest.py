"""The backtest: a deterministic fold of a bot reducer and the exchange model over a market path.

Time is simulated. Events wait in a queue ordered by delivery time; a tick first delivers what
is due, then lets the exchange match it, then is handed to the bot. What crosses between the bot
and the venues, and when, is the link model's (:class:`gridcore.sim.link.Link`): commands reach
the exchange after ``latency_ms`` and their answers come back after as long again, and a
:class:`FaultPlan` (one for every venue, or one per venue) decides, from its seed, which messages
are lost, duplicated or late, which commands fail or time out and when a feed goes down; the
runner only queues the deliveries it returns. Timers fire at their time. After the last tick
the run *settles*: faults stop, the feed is up, and time advances (``settle_ms``) so that
timers, the background reconciliation round and every command in flight finish; the ledger is
then compared with the exchange's own account. The market is silent while the run settles,
or, with ``settle_quotes_ms``, calm: every symbol quoted again at its last bid and ask.

The runner reads no clock: the shell that calls it measures wall time.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from gridcore.commands import (
    Batch,
    CancelOrder,
    CancelTimer,
    Command,
    Halt,
    Level,
    Notify,
    PlaceOrder,
    StartTimer,
)
from gridcore.core import CLOCK_TIMER, State, step
from gridcore.events import (
    Event,
    FeedDisconnected,
    FeedReconnected,
    FillsReported,
    OrderFilled,
    OrderPartiallyFilled,
    PositionsReported,
    QuoteTicked,
    ReportedStatus,
    Started,
    TimerFired,
)
from gridcore.invariants import Violation, check_against_venue, check_state
from gridcore.numbers import CTX, ZERO
from gridcore.sim.exchange import SimExchange
from gridcore.sim.faults import FaultCounts, FaultPlan
from gridcore.sim.link import Link, Sent
from gridcore.strategies.grid import NeutralGrid

__all__ = ["Reducer", "Sample", "Summary", "Trace", "run_backtest"]

_EVENT, _COMMAND, _TIMER = 0, 1, 2
_MAX_VIOLATIONS = 100
_RECENT_MS = 6 * 3_600_000
_RECENT_CAP = 8_192


def _recent(seen: dict[Any, int], now: int) -> dict[Any, int]:
    """``seen`` (key -> time) without what is older than ``_RECENT_MS`` before ``now``."""
    return {k: t for k, t in seen.items() if t >= now - _RECENT_MS}


#: A bot reducer: ``step(state, event) -> (state, commands)``.
Reducer = Callable[[State[Any], Event], tuple[State[Any], list[Command]]]
_NO_FAULTS = FaultPlan()
# The largest position is measured after the events that move positions, never at plot samples,
# so asking for a plot cannot change the summary (drawdown is the kernel's own measure).
_FILL_EVENTS = frozenset({OrderFilled, OrderPartiallyFilled, FillsReported, PositionsReported})
# What a bot sends most: straight to the venue, without asking what else it might be.
_VENUE_COMMANDS = frozenset({PlaceOrder, CancelOrder, Batch})


@attrs.frozen(kw_only=True)
class Sample:
    """A point of the run for plots: mid, position, net PnL and the grid's bounds."""

    ts: int
    mid: Decimal
    position: Decimal
    pnl: Decimal
    grid_lower: Decimal | None
    grid_upper: Decimal | None
    grid_center: Decimal | None


@attrs.frozen(kw_only=True)
class Summary:
    """The numbers of a run. Money in quote, sizes in base units; ``injected`` counts the
    faults the plan injected, by kind (all zero without faults)."""

    seed: int
    faults: str
    injected: FaultCounts
    ticks: int
    events: int
    commands: int
    fills: int
    orders: int
    cancels: int
    rejections: int
    volume: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    funding: Decimal
    net_pnl: Decimal
    max_drawdown: Decimal
    max_position: Decimal
    final_position: Decimal
    recenters: int
    syncs: int
    drift_repairs: int
    halted: bool
    alerts: int
    warnings: int
    invariant_violations: int
    start_ts: int
    end_ts: int


@attrs.frozen(kw_only=True)
class Trace:
    """What a backtest returns: the final state and exchange (``exchange`` is the first venue,
    ``exchanges`` all of them by name), the summary, samples, notices and invariant violations
    (at most 100 kept); ``events`` only when recorded."""

    state: State[Any]
    exchange: SimExchange
    summary: Summary
    samples: tuple[Sample, ...]
    notices: tuple[Notify, ...]
    violations: tuple[Violation, ...]
    events: tuple[Event, ...] | None = None
    exchanges: Mapping[str, SimExchange] = attrs.field(factory=dict)


class _Run:
    def __init__(
        self,
        state: State[Any],
        exchanges: dict[str, SimExchange],
        faults: FaultPlan | Mapping[str, FaultPlan],
        seed: int,
        latency_ms: int,
        record: bool,
        check_every_step: bool,
        reducer: Reducer,
    ) -> None:
        self.step = reducer
        self.state = state
        self.exchanges = exchanges
        self.link = Link(faults, seed=seed, latency_ms=latency_ms)
        # Without faults the link only adds its latency: schedule without asking it (the same
        # times, in the same order, as Link.send/answer/route say when no injector is enabled).
        self.quiet = self.link.quiet
        self.latency = latency_ms
        self.seed = seed
        self.check_every_step = check_every_step
        self.heap: list[tuple[int, int, int, Any]] = []
        self.seq = 0
        self.timers: dict[str, int] = {}
        self.events = 0
        self.commands = 0
        self.ticks = 0
        self.recorded: list[Event] | None = [] if record else None
        self.notices: list[Notify] = []
        self.alerts = 0
        self.warnings = 0
        self.violations: list[Violation] = []
        self.violation_count = 0
        # What was sent and answered, kept for a window of simulated time only (failure
        # `unbounded-history`): a cloid sent twice or a command answered twice is caught within
        # _RECENT_MS, far beyond any latency, delay or timeout of a run.
        self.orders_sent = 0
        self.cloids: dict[str, int] = {}
        self.answered: dict[int, int] = {}
        self.extra_results: dict[int, int] = {}
        self.answered_cap = self.cloids_cap = _RECENT_CAP
        self.samples: list[Sample] = []
        self.max_position = ZERO

    # --- plumbing --------------------------------------------------------------------------------

    def push(self, ts: int, kind: int, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (ts, self.seq, kind, payload))

    def drain(self, until: int) -> None:
        heap = self.heap
        while heap and heap[0][0] <= until:
            ts, _, kind, payload = heapq.heappop(heap)
            if kind == _EVENT:
                self.deliver(payload)
            elif kind == _COMMAND:
                command, sent = payload
                self.to_exchange(command, ts, sent)
            else:
                timer_id, version, every = payload
                if self.timers.get(timer_id) == version:
                    if every:
                        self.push(ts + every, _TIMER, payload)
                    else:
                        del self.timers[timer_id]
                    self.deliver(TimerFired(ts=ts, timer_id=timer_id))

    def violate(self, found: list[Violation]) -> None:
        self.violation_count += len(found)
        room = _MAX_VIOLATIONS - len(self.violations)
        if room > 0:
            self.violations.extend(found[:room])

    def deliver(self, event: Event) -> None:
        self.events += 1
        if self.recorded is not None:
            self.recorded.append(event)
        cid = getattr(event, "command_id", None)
        if cid is not None:
            answered = self.answered
            if cid in answered:
                self.extra_results[cid] = self.extra_results.get(cid, 1) + 1
            else:
                answered[cid] = event.ts
                if len(answered) >= self.answered_cap:
                    self.answered = _recent(answered, event.ts)
                    self.answered_cap = max(_RECENT_CAP, 2 * len(self.answered))
        before = self.state
        self.state, commands = self.step(before, event)
        if commands:
            self.execute(commands, event.ts)
        kind = type(event)
        if kind in _FILL_EVENTS:
            self.track_position()
        if not self.check_every_step or kind is QuoteTicked:
            return
        after = self.state
        b0, b1 = before.books, after.books
        r0, r1 = b0.risk, b1.risk
        # The state invariants read orders, the ledger, reservations, balances and the
        # strategy: skip the check when none of them moved (most timers).
        if (
            b1.orders is not b0.orders
            or b1.ledger is not b0.ledger
            or r1.reserved is not r0.reserved
            or r1.balances is not r0.balances
            or after.strategy is not before.strategy
        ):
            found = check_state(after)
            if found:
                self.violate(found)

    def execute(self, commands: list[Command], now: int) -> None:
        self.commands += len(commands)
        for command in commands:
            if type(command) in _VENUE_COMMANDS:
                self.send(command, now)
                continue
            match command:
                case Notify():
                    if len(self.notices) < 10_000:
                        self.notices.append(command)
                    if command.level is Level.ALERT:
                        self.alerts += 1
                    elif command.level is Level.WARNING:
                        self.warnings += 1
                case Halt():
                    pass
                case StartTimer():
                    self.timers[command.timer_id] = command.command_id
                    self.push(
                        command.fire_at,
                        _TIMER,
                        (command.timer_id, command.command_id, command.every_ms),
                    )
                case CancelTimer():
                    self.timers.pop(command.timer_id, None)
                case _:
                    self.send(command, now)

    def send(self, command: Command, now: int) -> None:
        inner = command.commands if isinstance(command, Batch) else (command,)
        for c in inner:
            if isinstance(c, PlaceOrder):
                if c.cloid in self.cloids:
                    self.violate(
                        [
                            Violation(
                                invariant="no_cloid_sent_twice",
                                ts=now,
                                detail=f"{c.cloid} sent again by command {c.command_id}",
                            )
                        ]
                    )
                else:
                    self.orders_sent += 1
                self.cloids[c.cloid] = now
                if len(self.cloids) >= self.cloids_cap:
                    self.cloids = _recent(self.cloids, now)
                    self.cloids_cap = max(_RECENT_CAP, 2 * len(self.cloids))
        if self.quiet:
            self.seq += 1
            heapq.heappush(self.heap, (now + self.latency, self.seq, _COMMAND, (command, None)))
            return
        sent = self.link.send(command, now)
        for at, event in sent.deliveries:
            self.push(at, _EVENT, event)
        if sent.arrives_at is not None:
            self.push(sent.arrives_at, _COMMAND, (command, sent))

    def to_exchange(self, command: Command, now: int, sent: Sent | None) -> None:
        """``command`` reaches its venue at ``now`` (``sent`` is ``None`` on a quiet link)."""
        venue: str = getattr(command, "venue", "")
        exchange = self.exchanges.get(venue)
        if exchange is None:
            deliveries = self.link.refused(command, now, f"no simulated venue named {venue!r}")
        elif sent is None:
            self.route(exchange.handle(command, now), now, venue)
            return
        else:
            deliveries = self.link.answer(sent, command, exchange.handle(command, now), now)
        for at, event in deliveries:
            self.push(at, _EVENT, event)

    def route(self, events: list[Event], now: int, venue: str) -> None:
        heap, push = self.heap, heapq.heappush
        if self.quiet:
            # Results after the latency, stream messages (funding included) at once.
            answered_at = now + self.latency
            for event in events:
                self.seq += 1
                at = now if getattr(event, "command_id", None) is None else answered_at
                push(heap, (at, self.seq, _EVENT, event))
            return
        for at, event in self.link.route(events, now, venue):
            self.seq += 1
            push(heap, (at, self.seq, _EVENT, event))

    def track_position(self) -> None:
        for pos in self.state.ledger.positions.values():
            if abs(pos.qty) > self.max_position:
                self.max_position = abs(pos.qty)

    def sample(self, tick: QuoteTicked) -> None:
        grid = self.state.strategy
        mid = tick.mid
        pos = ZERO
        for (v, s, _side), p in self.state.ledger.positions.items():
            if v == tick.venue and s == tick.symbol:
                pos = CTX.add(pos, p.qty)
        is_grid = isinstance(grid, NeutralGrid)
        self.samples.append(
            Sample(
                ts=tick.ts,
                mid=mid,
                position=pos,
                pnl=self.state.net_pnl(),
                grid_lower=grid.lower if is_grid and grid.center is not None else None,
                grid_upper=grid.upper if is_grid and grid.center is not None else None,
                grid_center=grid.center if is_grid else None,
            )
        )

    # --- the run ---------------------------------------------------------------------------------

    def run(
        self,
        path: Iterable[QuoteTicked],
        sample_every: int,
        settle_ms: int,
        progress: Callable[[int], None] | None,
        progress_every: int,
        settle_quotes_ms: int = 0,
    ) -> int:
        started = False
        last_ts = self.state.now
        link = self.link
        disconnects = link.disconnects
        on_ticks = {venue: ex.on_tick for venue, ex in self.exchanges.items()}
        down = link.down
        heap = self.heap
        state_step = self.step
        record = self.recorded
        check = self.check_every_step
        ticks = quotes_delivered = 0
        next_sample = sample_every or -1
        next_progress = progress_every if progress is not None else -1
        state = self.state
        lead = self.state.config.clock_lead_ms
        for tick in path:
            ts = tick.ts
            if not started:
                started = True
                self.deliver(Started(ts=ts))
                state = self.state
            elif ts - state.now > lead:
                # A gap in the data longer than the clock may jump on a venue's word: move the
                # core's clock first (what a live shell's clock does), then deliver what is due.
                if heap and heap[0][0] < ts:
                    self.drain(ts - 1)
                self.deliver(TimerFired(ts=ts, timer_id=CLOCK_TIMER))
                state = self.state
            if heap and heap[0][0] <= ts:
                self.drain(ts)
                state = self.state
            on_tick = on_ticks.get(tick.venue)
            answers = on_tick(tick) if on_tick is not None else None
            if answers:
                self.route(answers, ts, tick.venue)
                self.drain(ts)
                state = self.state
            ticks += 1
            if disconnects:
                change = link.tick(tick.venue, ts)
                if change is not None:
                    self.deliver(
                        FeedReconnected(ts=ts, venue=tick.venue)
                        if change.up
                        else FeedDisconnected(ts=ts, venue=tick.venue, reason="simulated outage")
                    )
                    state = self.state
            if not down or tick.venue not in down:
                # deliver(), inlined for the hot path: a tick rarely produces commands.
                quotes_delivered += 1
                if record is not None:
                    record.append(tick)
                state, commands = state_step(state, tick)
                self.state = state
                if commands:
                    self.execute(commands, ts)
                    state = self.state
                    if check:
                        found = check_state(state)
                        if found:
                            self.violate(found)
            else:
                link.count(tick.venue, "quotes_missed")
            if ticks == next_sample:
                next_sample += sample_every
                self.sample(tick)
            if ticks == next_progress:
                next_progress += progress_every
                assert progress is not None
                progress(ticks)
            last_ts = ts
        self.ticks = ticks
        self.events += quotes_delivered
        # Settle: no more faults, feed back up, let time pass so everything in flight lands.
        for venue in link.heal():
            self.deliver(FeedReconnected(ts=last_ts, venue=venue))
        self.quiet = link.quiet
        end = last_ts + settle_ms
        if settle_quotes_ms > 0:
            self.quote_through_settle(last_ts, end, settle_quotes_ms)
        while heap and heap[0][0] <= end:
            self.drain(heap[0][0])
        # Time is up: no timer fires any more, but what is already in flight (a request a timer
        # sent at the very end, its answer) still lands, so every command gets its result.
        self.timers.clear()
        while heap:
            self.drain(heap[0][0])
        if progress is not None:
            progress(ticks)
        return end

    def quote_through_settle(self, last_ts: int, end: int, every_ms: int) -> None:
        """A calm market through the settle window: every ``every_ms`` each venue quotes every
        symbol it has quoted again at its last bid and ask (matched by the exchange first, as a
        tick of the path is), so that a bot finishing something it started (unwinding a leg,
        re-pricing an order) has a fresh quote to price it with."""
        frozen = [q for ex in self.exchanges.values() for _, q in sorted(ex.quotes.items())]
        heap = self.heap
        at = last_ts + every_ms
        while at <= end:
            for quote in frozen:
                if heap and heap[0][0] <= at:
                    self.drain(at)
                tick = QuoteTicked.of(at, quote.venue, quote.symbol, quote.bid, quote.ask)
                answers = self.exchanges[quote.venue].on_tick(tick)
                if answers:
                    self.route(answers, at, quote.venue)
                    self.drain(at)
                self.deliver(tick)
            at += every_ms


def run_backtest(
    state: State[Any],
    exchange: SimExchange | Sequence[SimExchange],
    path: Iterable[QuoteTicked],
    *,
    faults: FaultPlan | Mapping[str, FaultPlan] = _NO_FAULTS,
    seed: int = 0,
    latency_ms: int = 50,
    settle_ms: int = 180_000,
    settle_quotes_ms: int = 0,
    sample_every: int = 0,
    record_events: bool = False,
    check_every_step: bool = True,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 10_000,
    reducer: Reducer = step,
) -> Trace:
    """Fold ``state`` (any bot) and ``exchange`` over ``path`` under ``faults``.

    ``exchange`` is one simulated venue or several (a funding-arbitrage bot trades two): ticks
    and commands are routed by venue name. ``faults`` is one plan for every venue (one draw
    stream) or a mapping ``venue -> plan`` (each venue its own plan and draw stream, so two
    venues fail independently; a venue not named has none); see :mod:`gridcore.sim.link`.

    ``sample_every`` takes a :class:`Sample` every that many ticks (0: none). With
    ``check_every_step`` every state invariant is checked after each step that is not a plain
    tick; the ledger is compared with the exchange at the end either way. ``progress`` is
    called with the number of ticks done every ``progress_every`` ticks. ``reducer`` is the bot's
    step function (gridcore's :func:`~gridcore.core.step` unless you bring your own).

    After the last tick the run settles for ``settle_ms``: faults stop and every feed is up.
    The market is silent then, unless ``settle_quotes_ms`` > 0: each venue then quotes every
    symbol again at its last bid and ask that often (a calm market), as a venue whose feed is
    up does; the property harness settles so, for a bot may need a fresh quote to finish
    what it started (a quote from before the feed came back prices nothing).
    """
    if latency_ms < 0 or settle_ms < 0 or settle_quotes_ms < 0:
        raise ValueError("latency_ms, settle_ms and settle_quotes_ms must be >= 0")
    venues = [exchange] if isinstance(exchange, SimExchange) else list(exchange)
    if not venues:
        raise ValueError("run_backtest needs at least one SimExchange")
    exchanges = {ex.config.venue: ex for ex in venues}
    if len(exchanges) != len(venues):
        raise ValueError("two simulated venues share a name; give each SimConfig its own venue")
    run = _Run(state, exchanges, faults, seed, latency_ms, record_events, check_every_step, reducer)
    end = run.run(path, sample_every, settle_ms, progress, max(1, progress_every), settle_quotes_ms)
    final = run.state
    run.violate(check_state(final))
    for ex in venues:
        run.violate(check_against_venue(final, ex))
    for cid, flight in final.inflight.items():
        run.violate(
            [
                Violation(
                    invariant="every_command_gets_one_result",
                    ts=final.now,
                    detail=f"command {cid} ({flight.kind}) has no result after settling",
                )
            ]
        )
    for cid, count in sorted(run.extra_results.items()):
        if count > 1:
            run.violate(
                [
                    Violation(
                        invariant="every_command_gets_one_result",
                        ts=final.now,
                        detail=f"command {cid} got {count} results",
                    )
                ]
            )
    run.track_position()
    totals = final.ledger.totals()
    net = final.net_pnl()
    unrealized = CTX.subtract(net, totals.net)
    final_position = ZERO
    for pos in final.ledger.positions.values():
        final_position = CTX.add(final_position, pos.qty)
    orders = run.orders_sent
    volume = ZERO
    fills = cancels = rejections = 0
    for ex in venues:
        count, traded = ex.fill_totals()  # forgotten fills and orders included
        volume = CTX.add(volume, traded)
        fills += count
        cancels += ex.order_count(ReportedStatus.CANCELED)
        rejections += ex.order_count(ReportedStatus.REJECTED)
    grid = final.strategy
    summary = Summary(
        seed=run.seed,
        faults=run.link.name,
        injected=run.link.counts(),
        ticks=run.ticks,
        events=run.events,
        commands=run.commands,
        fills=fills,
        orders=orders,
        cancels=cancels,
        rejections=rejections,
        volume=volume,
        realized_pnl=totals.realized,
        unrealized_pnl=unrealized,
        fees=totals.fees,
        funding=totals.funding,
        net_pnl=net,
        max_drawdown=final.risk.worst_drawdown,
        max_position=run.max_position,
        final_position=final_position,
        recenters=grid.recenters if isinstance(grid, NeutralGrid) else 0,
        syncs=sum(v.syncs for v in final.venues.values()),
        drift_repairs=final.ledger.drift_repairs,
        halted=final.risk.halted,
        alerts=run.alerts,
        warnings=run.warnings,
        invariant_violations=run.violation_count,
        start_ts=final.epoch,
        end_ts=end,
    )
    return Trace(
        state=final,
        exchange=venues[0],
        exchanges=exchanges,
        summary=summary,
        samples=tuple(run.samples),
        notices=tuple(run.notices),
        violations=tuple(run.violations),
        events=None if run.recorded is None else tuple(run.recorded),
    )
