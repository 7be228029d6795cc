"""A stateful test factory: any reducer against the exchange model, driven by hypothesis.

Theory of operation
-------------------
:func:`make_state_machine` returns a :class:`~hypothesis.stateful.RuleBasedStateMachine` class
that plays the part of the shell and the network between a bot and the simulated venue. Time is
the machine's own; nothing happens unless a rule says so:

* ``tick`` — time passes by one quote interval, due timers fire, the mid moves a bounded number
  of ticks; the venue matches its book (its stream messages wait in the *inbox*) and the bot
  gets the quote.
* ``deliver`` / ``deliver_all`` — a waiting venue message reaches the bot (any one of them when
  reordering is a fault in play: stream updates before REST acks, late reports, ...).
* ``send`` / ``send_all`` — the oldest command the bot emitted reaches the venue; its answers
  join the inbox.
* fault rules, each enabled by a :class:`Fault`: a stream message lost (a lost REST answer
  becomes a timeout, as a shell reports it) or duplicated (a report, such as an order's status,
  arrives again as a copy the venue pushed); a command failing before the venue
  sees it, or timing out after the venue did (or did not) act on it; the bot's next new order
  refused by the venue or failing before it, whenever it is sent (``refuse``: a failure in the
  middle of trading, where the bot's orders are); the feed going down (stream messages in flight
  are lost) and coming back; time passing without quotes.
* ``start`` (once, first) — a fresh venue whose liquidity (partial fills: one to three depths
  the venue goes through quote by quote; in some examples the last lot of the largest resting
  order always waits for a later quote, so orders rest nearly filled) and funding interval are
  drawn; the bot starts, gets
  its first quote, and the market opens with a stretch of trading (as ``trade``), so that
  every example trades.
* ``trade`` — the market runs for up to 60 quotes while the network works (every command
  carried, every message delivered after each quote): fills, partial fills and funding happen.
  With ``DISCONNECT`` in play, about two stretches in five have an outage: the feed goes down at
  one quote and comes back some quotes later (or stays down past the stretch), so orders fill
  while the bot hears nothing of it, and the reconnect must recover those fills.
  Moves scale with the instrument's tick and the strategy's spacing, and some are gaps. With
  ``REORDER`` in play, in half the stretches the venue's answers to requests overtake its
  stream, as a REST reply often outruns the websocket: a cancel the venue refuses because the
  order has just filled reaches the bot before that fill does.
* ``restart`` — the bot's process restarts from its journal; words in flight are lost.
* ``settle`` — the network heals: the feed reconnects (which starts a reconciliation), every
  command and message is carried, timers run for a while; then the bot must agree with the venue
  (positions, money, resting orders), every command must have had exactly one result, and the
  state must be the fold of every event delivered so far. **Every example ends with a settle**
  (the machine's teardown), so bot and venue are compared whatever rules were drawn, together
  with the running record's whole-run checks (:class:`~gridcore.testing.RunMonitor`).
  With a ``working`` predicate (a liveness check, off by default), the teardown then goes on
  with fresh quotes and the heartbeat, and once more after the venue canceled every order
  while the feed was down, and the bot must still be trading (``bot_keeps_working``). Only
  the teardown asks it: a check at every ``settle`` would more than double a search's time.

What a rule's fault turns into is the link model's, shared with the backtest and the paper
venue (:mod:`gridcore.sim.link`): the faults are the one vocabulary :class:`Fault` (the kinds a
:class:`~gridcore.sim.FaultPlan` gives rates to; ``plan.kinds`` selects the same ones here), a
command's fate is a :class:`~gridcore.sim.link.Fate` and :func:`~gridcore.sim.link.carry` says
what the bot hears of it; only *which* fault happens *when* is hypothesis's choice here.

Every event the bot receives is one step, and every step is checked against the invariant
catalogue (:data:`~gridcore.invariants.CATALOGUE` or your selection) and, when asked, for
determinism (the same input state and event give the same output, so a reducer with hidden
inputs or one that mutates its input is caught). The machine's ``@invariant`` fails the example
on the first violation; hypothesis then shrinks the rule sequence and prints it as a program.

Usage::

    from gridcore.testing import make_state_machine

    GridMachine = make_state_machine(initial_state=make_bot(config, epoch=EPOCH))
    TestGrid = GridMachine.TestCase
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from decimal import Decimal
from typing import Any

import attrs
from hypothesis import settings as Settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gridcore.commands import (
    CancelOrder,
    CancelTimer,
    Command,
    Halt,
    Notify,
    PlaceOrder,
    StartTimer,
)
from gridcore.core import State, step
from gridcore.events import (
    BalanceReported,
    Event,
    FeedDisconnected,
    FeedReconnected,
    FillsReported,
    FundingPaid,
    OpenOrdersReported,
    OrderRejected,
    OrderStatusReported,
    PositionsReported,
    QuoteTicked,
    Started,
    TimerFired,
)
from gridcore.instruments import Instrument, Source
from gridcore.invariants import (
    CATALOGUE,
    Invariant,
    StepRecord,
    Violation,
    check_against_venue,
    check_step,
)
from gridcore.numbers import CTX, Rounding
from gridcore.sim import SimConfig, SimExchange
from gridcore.sim.backtest import Reducer
from gridcore.sim.faults import ALL_FAULTS, Fault
from gridcore.sim.link import Fate, carry, failures, lost_answer
from gridcore.sim.link import inner as _inner
from gridcore.sim.link import is_result as _is_result
from gridcore.testing.differential import replay
from gridcore.testing.liveness import LIVENESS_INVARIANT
from gridcore.testing.monitor import RunMonitor

__all__ = ["ALL_FAULTS", "Fault", "make_state_machine"]


_REPORTS = (
    OrderStatusReported,
    FillsReported,
    OpenOrdersReported,
    PositionsReported,
    BalanceReported,
)


def _copyable(event: Event) -> bool:
    """A stream message, or a report (which a venue may also push on its own)."""
    return _is_result(event) is None or isinstance(event, _REPORTS)


def _default_exchange(
    state: State[Any],
) -> Callable[[Decimal | None, int], SimExchange]:
    venue = state.config.venues[0] if state.config.venues else "sim"
    instruments = tuple(i for i in state.config.instruments if i.venue == venue)

    def build(
        liquidity: Decimal | None = None, funding_interval_ms: int = 8 * 3_600_000
    ) -> SimExchange:
        return SimExchange(
            SimConfig(
                venue=venue,
                instruments=instruments,
                leverage=state.config.risk.leverage,
                liquidity=liquidity,
                funding_interval_ms=funding_interval_ms,
            ),
            start_ts=state.now,
        )

    return build


_VENUE_OWN = 2**63 - 1
"""The command id of what the venue does on its own (no bot sent it; its answers are dropped)."""

_DEFAULT_MOVE = Decimal("0.002")
"""Largest ordinary move per quote, as a fraction of the price, for a strategy that declares
no spacing."""


def _move_ticks(state: State[Any], inst: Instrument, price: Decimal) -> int:
    """Ticks of the largest ordinary move: two of the strategy's level steps (its
    ``config.spacing``, a fraction of the price) when it has one, else 0.2 % of the price;
    never fewer than 20 ticks."""
    spacing = getattr(getattr(state.strategy, "config", None), "spacing", None)
    fraction = CTX.multiply(Decimal(2), spacing) if isinstance(spacing, Decimal) else _DEFAULT_MOVE
    ticks = CTX.divide(CTX.multiply(price, fraction), inst.tick_size)
    return max(20, int(ticks.to_integral_value(rounding=Rounding.UP.value, context=CTX)))


def make_state_machine(
    *,
    initial_state: State[Any],
    reducer: Reducer = step,
    exchange: Callable[[], SimExchange] | None = None,
    instrument: Instrument | None = None,
    start_price: Decimal = Decimal(50_000),
    max_move_ticks: int | None = None,
    gap_factor: int = 10,
    liquidity: st.SearchStrategy[Decimal | None] | None = None,
    funding_interval_ms: st.SearchStrategy[int] = st.sampled_from([10_000, 30_000, 5_000]),
    tick_interval_ms: int = 1_000,
    faults: Collection[Fault] = ALL_FAULTS,
    invariants: Sequence[Invariant] = CATALOGUE,
    check_determinism: bool = True,
    settle_ms: int | None = None,
    working: Callable[[State[Any]], str | None] | None = None,
    settings: Settings | None = None,
    name: str = "BotMachine",
) -> type[RuleBasedStateMachine]:
    """A :class:`~hypothesis.stateful.RuleBasedStateMachine` driving ``reducer`` from
    ``initial_state`` against a fresh simulated venue per example, with ``faults``, checking
    ``invariants`` after every step (see the module documentation for the rules).

    ``exchange`` builds the venue (default: the bot's first venue and its instruments, one-way,
    the bot's leverage, fills per order and quote capped by one to three draws of ``liquidity``
    taken in turn, quote by quote (default: :func:`~gridcore.testing.strategies.liquidities`,
    1-100 lots or unlimited; in some examples one lot short of the largest resting order's
    remainder, so that orders wait with their last lot open), funding every
    ``funding_interval_ms`` (drawn)). Quotes move on
    ``instrument`` (default: the first one of that venue) from ``start_price`` by at most
    ``max_move_ticks`` ticks every ``tick_interval_ms`` (default: two of the strategy's level
    steps, ``config.spacing``, or 0.2 % of the price; at least 20 ticks), and, one quote in ten,
    gaps by up to ``gap_factor`` times that.
    ``settle_ms`` is how long ``settle`` lets timers run (default: two reconciliation periods
    plus two maintenance periods).

    ``working`` (off by default) is a liveness check: a predicate over the settled state that
    returns why the bot is not working (a ``str``), or ``None``. Safety checks cannot see a
    bot that has stopped trading (failure `grid-idle-after-refusal`); with ``working``, the
    teardown goes on after the network healed: the market quotes again at its current price
    every ``tick_interval_ms`` for two maintenance periods (the strategy's heartbeat runs
    between fresh quotes), everything in flight is carried, and the predicate is asked; then
    the venue cancels every resting order while the feed is down, the feed comes back, the
    reconnect's reconciliation is carried, the same quotes follow and the predicate is asked
    again. A reason fails the example as the invariant ``bot_keeps_working``. The predicate
    decides itself when it has nothing to say (a halted bot, a venue not ready):
    :func:`~gridcore.testing.grid_is_working` is the neutral grid's. ``settings`` become the
    test case's hypothesis settings
    (default: the loaded profile). Use the returned class's ``TestCase`` as a test::

        TestMyBot = make_state_machine(initial_state=my_bot()).TestCase

    A failure prints the shortest rule sequence found, as a program, with the violation and
    the event that broke it (its ``repr`` is valid Python).
    """
    if max_move_ticks is not None and max_move_ticks < 0:
        raise InvalidArgument(f"max_move_ticks={max_move_ticks} must be >= 0")
    if gap_factor < 1:
        raise InvalidArgument(f"gap_factor={gap_factor} must be >= 1")
    if tick_interval_ms <= 0:
        raise InvalidArgument(f"tick_interval_ms={tick_interval_ms} must be > 0")
    if start_price <= 0:
        raise InvalidArgument(f"start_price={start_price} must be > 0")
    unknown = set(faults) - ALL_FAULTS
    if unknown:
        raise InvalidArgument(f"faults must be Fault members, got {sorted(map(repr, unknown))}")
    default_exchange = _default_exchange(initial_state)

    def build_exchange(liquidity: Decimal | None, funding_ms: int) -> SimExchange:
        if exchange is not None:
            return exchange()
        return default_exchange(liquidity, funding_ms)

    probe = build_exchange(None, 8 * 3_600_000)
    venue = probe.config.venue
    inst = instrument or probe.config.instruments[0]
    if inst.symbol not in probe.instruments:
        raise InvalidArgument(f"instrument {inst.symbol} is not listed by the venue {venue}")
    cfg = initial_state.config
    if settle_ms is None:
        settle_ms = 2 * max(cfg.reconcile_ms, cfg.maintenance_ms) + 2 * cfg.maintenance_ms
    selected = tuple(invariants)
    enabled = frozenset(faults)
    start_units = int(CTX.divide(inst.round_price(start_price, Rounding.NEAREST), inst.tick_size))
    horizon = settle_ms
    if max_move_ticks is None:
        max_move_ticks = _move_ticks(initial_state, inst, start_price)
    small = st.integers(min_value=-max_move_ticks, max_value=max_move_ticks)
    gap = max_move_ticks * gap_factor
    gaps = st.integers(min_value=-gap, max_value=gap)
    # One quote in ten at most is a gap: gaps withdraw and re-place whole books, and a search
    # also needs stretches of ordinary moves for cycles (an entry, then its take-profit) to
    # complete. Shrinks towards ordinary moves.
    moves = (
        small
        if gap_factor == 1
        else st.integers(min_value=0, max_value=9).flatmap(lambda k: gaps if k == 9 else small)
    )
    drawn_liquidity: st.SearchStrategy[Decimal | None]
    if liquidity is None:
        from gridcore.testing.strategies import liquidities

        drawn_liquidity = liquidities(instrument=inst)
    else:
        drawn_liquidity = liquidity

    class _Machine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.state: State[Any] = initial_state
            self.exchange = probe
            self.now = initial_state.now
            self.units = max(1, start_units)
            self.inbox: list[Event] = []
            self.outbox: list[Command] = []
            self.timers: dict[str, tuple[int, int | None]] = {}
            self.feed_up = True
            self.violations: list[Violation] = []
            self.results: dict[int, int] = {}
            self.expected: set[int] = set()
            self.cloids: set[str] = set()
            self.log: list[Event] = []
            self.monitor = RunMonitor(initial_state)
            self.settled = False
            self.depths: list[Decimal | None] = []
            self.last_lot_later = False
            self.quotes = 0
            self.answers_first = False
            self.refusals: list[bool] = []

        @initialize(
            liquidity=st.lists(drawn_liquidity, min_size=1, max_size=3),
            funding_interval_ms=funding_interval_ms,
            opening=st.lists(moves, min_size=1, max_size=60),
            answers_first=st.booleans(),
            last_lot_later=st.booleans(),
        )
        def start(
            self,
            liquidity: list[Decimal | None],
            funding_interval_ms: int,
            opening: list[int],
            answers_first: bool,
            last_lot_later: bool = False,
        ) -> None:
            """A fresh venue (fills per order and quote capped at ``liquidity`` base units, one
            value after the other, quote by quote: the depth changes; with ``last_lot_later``,
            never the last lot of the largest resting order in the quote that fills the rest
            of it: orders wait nearly filled; funding every ``funding_interval_ms``); the bot
            starts, gets its first quote, and the market opens with ``len(opening)`` quotes of
            trading (every example trades; as ``trade`` with ``answers_first``)."""
            self.exchange = build_exchange(liquidity[0], funding_interval_ms)
            self.last_lot_later = last_lot_later
            if exchange is None and (len(liquidity) > 1 or last_lot_later):
                self.depths = liquidity
            self.deliver(Started(ts=self.now))
            self.tick(move=0)
            if self.pump():
                self.trade(opening, answers_first)

        # --- plumbing ------------------------------------------------------------------------

        def deliver(self, event: Event) -> None:
            cid = _is_result(event)
            if cid is not None:
                count = self.results.get(cid, 0) + 1
                self.results[cid] = count
                if count > 1:
                    self.violate(
                        "every_command_gets_one_result", f"command {cid} got {count} results", event
                    )
            before = self.state
            after, commands = reducer(before, event)
            if check_determinism:
                again, commands_again = reducer(before, event)
                if again != after or commands_again != commands:
                    self.violate(
                        "reducer_is_deterministic",
                        "the same state and event gave a different "
                        f"{'state' if again != after else 'command list'} on a second call "
                        "(hidden input, or the input state was mutated)",
                        event,
                    )
            self.log.append(event)
            self.state = after
            record = StepRecord(before=before, event=event, after=after, commands=tuple(commands))
            self.violations.extend(check_step(record, selected))
            self.monitor.step(record)
            for command in commands:
                self.emit(command, event)

        def emit(self, command: Command, cause: Event) -> None:
            if isinstance(command, StartTimer):
                self.timers[command.timer_id] = (command.fire_at, command.every_ms)
            elif isinstance(command, CancelTimer):
                self.timers.pop(command.timer_id, None)
            elif isinstance(command, Notify | Halt):
                return
            else:
                for inner in _inner(command):
                    self.expected.add(inner.command_id)
                    if isinstance(inner, PlaceOrder):
                        if inner.cloid in self.cloids:
                            self.violate("no_cloid_sent_twice", f"{inner.cloid} sent again", cause)
                        self.cloids.add(inner.cloid)
                self.outbox.append(command)

        def violate(self, name: str, detail: str, event: Event | None = None) -> None:
            self.violations.append(
                Violation(invariant=name, ts=self.now, detail=detail, event=event)
            )

        def route(self, events: list[Event]) -> None:
            for event in events:
                if isinstance(event, FundingPaid) or _is_result(event) is not None or self.feed_up:
                    self.inbox.append(event)
                # else: a stream message while the feed is down is lost

        def feed_down(self) -> None:
            """The feed goes down: stream messages in flight are lost (answers to requests and
            funding statements are not), and the bot hears of it."""
            self.feed_up = False
            self.inbox = [
                e for e in self.inbox if _is_result(e) is not None or isinstance(e, FundingPaid)
            ]
            self.deliver(FeedDisconnected(ts=self.now, venue=venue, reason="simulated"))

        def feed_back(self) -> None:
            """The feed comes back, and the bot hears of it."""
            self.feed_up = True
            self.deliver(FeedReconnected(ts=self.now, venue=venue))

        def reconciled(self) -> bool:
            """Carry everything the reconnect started; then the ledger must be back at the
            venue's truth: the reconnect's reconciliation alone must recover what the bot missed,
            before any periodic round or a later request could mend it (failure
            `missed-fills-on-reconnect`). False when the bot and the venue answer each other in
            a loop."""
            quiet = self.pump()
            for v in check_against_venue(self.state, self.exchange):
                self.violations.append(
                    attrs.evolve(
                        v, detail=f"right after the reconnect's reconciliation: {v.detail}"
                    )
                )
            return quiet

        def short_of_last_lot(self, depth: Decimal | None) -> Decimal:
            """``depth`` capped one lot short of the largest resting order's remainder: a
            quote that fills it leaves its last lot for a later one."""
            largest = max(
                (o.remaining for o in self.exchange.open_orders() if o.symbol == inst.symbol),
                default=inst.lot_size,
            )
            cap = max(inst.lot_size, largest - inst.lot_size)
            return cap if depth is None else min(depth, cap)

        def fire_timers(self) -> None:
            while True:
                due = sorted((at, tid) for tid, (at, _) in self.timers.items() if at <= self.now)
                if not due:
                    return
                at, tid = due[0]
                every = self.timers[tid][1]
                if every:
                    self.timers[tid] = (at + every, every)
                else:
                    del self.timers[tid]
                self.deliver(TimerFired(ts=max(at, self.state.now), timer_id=tid))

        def send_one(self) -> None:
            command = self.outbox.pop(0)
            if not self.refusals or not any(isinstance(c, PlaceOrder) for c in _inner(command)):
                answers = self.exchange.handle(command, self.now)
                self.route(carry(Fate.DELIVERED, command, answers, self.now))
                return
            events: list[Event] = []
            for inner in _inner(command):
                if self.refusals and isinstance(inner, PlaceOrder):
                    if self.refusals.pop(0):
                        events.append(
                            OrderRejected(
                                ts=self.now,
                                venue=venue,
                                cloid=inner.cloid,
                                reason="simulated refusal",
                                source=Source.REST,
                                command_id=inner.command_id,
                            )
                        )
                    else:
                        events.extend(failures(inner, self.now))
                else:
                    events.extend(self.exchange.handle(inner, self.now))
            self.route(events)

        def next_message(self) -> Event:
            if self.answers_first:
                for i, event in enumerate(self.inbox):
                    if _is_result(event) is not None:
                        return self.inbox.pop(i)
            return self.inbox.pop(0)

        def pump(self) -> bool:
            """Carry every command and message, in order, without letting time pass; False
            when the bot and the venue answer each other in a loop."""
            for _ in range(10_000):
                if self.outbox:
                    self.send_one()
                elif self.inbox:
                    self.deliver(self.next_message())
                else:
                    return True
            self.violate("bot_quiesces", "10000 messages without time passing: a message loop")
            return False

        # --- rules ---------------------------------------------------------------------------

        @rule(move=moves)
        def tick(self, move: int) -> None:
            """One quote interval passes and the mid moves by ``move`` ticks (an ordinary move
            or a gap)."""
            self.now += tick_interval_ms
            self.fire_timers()
            self.units = max(1, self.units + move)
            bid = CTX.multiply(Decimal(self.units), inst.tick_size)
            quote = QuoteTicked(
                ts=self.now, venue=venue, symbol=inst.symbol, bid=bid, ask=bid + inst.tick_size
            )
            if self.depths:
                depth = self.depths[self.quotes % len(self.depths)]
                if self.last_lot_later:
                    depth = self.short_of_last_lot(depth)
                self.exchange.config = attrs.evolve(self.exchange.config, liquidity=depth)
            self.quotes += 1
            self.route(self.exchange.on_tick(quote))
            if self.feed_up:
                self.deliver(quote)

        def trade(
            self, moves: list[int], answers_first: bool, outage: tuple[int, int] | None = None
        ) -> None:
            """The market runs for ``len(moves)`` quotes while the network works: after each
            quote every command is carried and every message delivered, in order, or, when
            ``answers_first`` (and reordering is a fault in play), with the answers to requests
            ahead of the stream messages waiting (a refused cancel reaches the bot before the
            fill that made it fail). With an ``outage`` ``(i, n)`` (when feed outages are a
            fault in play) the feed goes down before quote ``i`` (of the stretch, modulo its
            length; if the feed is up then) and comes back ``n`` quotes later, or stays down
            past the stretch's end (a ``reconnect`` or the settle brings it back): the venue's
            stream messages in that window are lost, and the orders resting there fill
            unheard. When it comes back within the stretch, the bot must agree with the venue
            once the reconnect's reconciliation is carried, before the next quote (as on
            ``settle``)."""
            self.answers_first = answers_first and Fault.REORDER in enabled
            down = up = -1
            if outage is not None:
                down = outage[0] % len(moves)
                up = down + outage[1]
            went_down = False
            try:
                for i, move in enumerate(moves):
                    if i == down and self.feed_up:
                        went_down = True
                        self.feed_down()
                    elif i == up and went_down and not self.feed_up:
                        self.feed_back()
                        if not self.reconciled():
                            return
                    self.tick(move)
                    if not self.pump():
                        return
            finally:
                self.answers_first = False

        # A stretch of trading draws an outage of the feed only when outages are in play (the
        # draws of a machine without them stay as they were); about two in five have
        # one, so fills while the feed is down, and the reconnect after them, are drawn by
        # design.
        if Fault.DISCONNECT in enabled:
            trade = rule(
                moves=st.lists(moves, min_size=1, max_size=60),
                answers_first=st.booleans(),
                outage=st.none()
                | st.tuples(
                    st.integers(min_value=0, max_value=59), st.integers(min_value=1, max_value=60)
                ),
            )(trade)
        else:
            trade = rule(
                moves=st.lists(moves, min_size=1, max_size=60), answers_first=st.booleans()
            )(trade)

        @precondition(lambda self: bool(self.inbox))
        @rule(pick=st.integers(min_value=0, max_value=1_000))
        def deliver_one(self, pick: int) -> None:
            """A waiting venue message reaches the bot (any of them when reordering)."""
            i = pick % len(self.inbox) if Fault.REORDER in enabled else 0
            self.deliver(self.inbox.pop(i))

        @precondition(lambda self: bool(self.inbox))
        @rule()
        def deliver_all(self) -> None:
            """Every waiting venue message reaches the bot, in order."""
            while self.inbox:
                self.deliver(self.inbox.pop(0))

        @precondition(lambda self: bool(self.outbox))
        @rule()
        def send(self) -> None:
            """The oldest command reaches the venue."""
            self.send_one()

        @precondition(lambda self: bool(self.outbox))
        @rule()
        def send_all(self) -> None:
            """Every command reaches the venue, in order."""
            while self.outbox:
                self.send_one()

        @rule()
        def settle(self) -> None:
            """The network heals; then the bot must agree with the venue."""
            self.heal()

        def keeps_working(self) -> None:
            """With a ``working`` predicate, after the network healed: the bot must be working
            once fresh quotes came and its heartbeat ran; and again after the venue canceled
            every resting order while the feed was down, the feed came back and the
            reconnect's reconciliation was carried (failure `grid-idle-after-refusal`: a bot
            that learned its orders were gone before any fresh quote)."""
            if working is None or self.violations:
                return  # off, or failing already: the example fails as it is
            if not self.quoted_until_working():
                return
            self.feed_down()
            for order in self.exchange.open_orders():
                # The venue's own cancel (a cancel-on-disconnect, an operator, a restart that
                # canceled on exit): its messages are lost with the feed.
                cancel = CancelOrder(
                    command_id=_VENUE_OWN, venue=venue, symbol=order.symbol, cloid=order.cloid
                )
                self.exchange.handle(cancel, self.now)
            self.feed_back()
            if self.reconciled():
                self.quoted_until_working()

        def quoted_until_working(self) -> bool:
            """The market quotes at its current price every quote interval for two
            maintenance periods (the strategy's heartbeat runs between fresh quotes), all in
            flight carried after each quote; then the ``working`` predicate must give no
            reason. False when the example fails already."""
            assert working is not None
            end = self.now + 2 * cfg.maintenance_ms
            quoted = 0
            while quoted < 2 or self.now < end:
                self.tick(move=0)
                quoted += 1
                if not self.pump():
                    return False
            reason = working(self.state)
            if reason is not None:
                self.violate(LIVENESS_INVARIANT, reason)
            return not self.violations

        def heal(self) -> None:
            # Everything in flight lands first: with nothing between them, an order the venue
            # rests must be live in the core, before any reconciliation could re-adopt it.
            if not self.pump():
                return
            self.violations.extend(self.monitor.quiescent(self.state, self.exchange))
            if not self.feed_up:
                self.feed_up = True
            self.deliver(FeedReconnected(ts=self.now, venue=venue))
            self.reconciled()
            end = self.now + horizon
            while True:
                if not self.pump() or len(self.violations) > 100:
                    return  # a loop, or failing already: the example fails as it is
                pending = [at for at, _ in self.timers.values() if at <= end]
                if not pending:
                    break
                self.now = max(self.now, min(pending))
                self.fire_timers()
            self.pump()
            self.now = end
            self.violations.extend(check_against_venue(self.state, self.exchange))
            for cid in sorted(self.expected):
                if self.results.get(cid, 0) != 1:
                    self.violate(
                        "every_command_gets_one_result",
                        f"command {cid} has {self.results.get(cid, 0)} results after settling",
                    )
            for cid, flight in sorted(self.state.inflight.items()):
                self.violate(
                    "every_command_gets_one_result",
                    f"the bot still waits for command {cid} ({flight.kind}) after settling",
                )
            folded, _ = replay(initial_state, self.log, reducer=reducer)
            if folded != self.state:
                self.violate(
                    "replay_gives_same_state",
                    f"folding the {len(self.log)} delivered events again gives a different state",
                )

        def teardown(self) -> None:
            """Every example ends settled: the bot must agree with the venue, and the whole-run
            checks (fills of every order ever seen, churn) must hold."""
            if self.settled or not self.log:
                return
            self.settled = True
            self.heal()
            self.keeps_working()
            self.violations.extend(self.monitor.finish(self.state))
            self.no_violation()

        if Fault.DROP in enabled:

            @precondition(lambda self: bool(self.inbox))
            @rule(pick=st.integers(min_value=0, max_value=1_000))
            def drop(self, pick: int) -> None:
                """A waiting message is lost (a lost REST answer reaches the bot as a timeout)."""
                event = self.inbox.pop(pick % len(self.inbox))
                # A statement (funding) and the shell's own verdicts are never lost.
                heard = lost_answer(event, self.now)
                if heard is not None:
                    self.inbox.append(heard)

        if Fault.DUPLICATE in enabled:

            @precondition(lambda self: any(_copyable(e) for e in self.inbox))
            @rule(pick=st.integers(min_value=0, max_value=1_000))
            def duplicate(self, pick: int) -> None:
                """A waiting stream message is delivered twice; a waiting report (order status,
                fills, open orders, positions, balance) arrives once more as a copy the venue
                pushed on its own (no request named: each request still gets one answer)."""
                copyable = [e for e in self.inbox if _copyable(e)]
                event = copyable[pick % len(copyable)]
                if isinstance(event, _REPORTS) and event.command_id is not None:
                    event = attrs.evolve(event, command_id=None)
                self.inbox.append(event)

        if Fault.REST_ERROR in enabled:

            @precondition(lambda self: bool(self.outbox))
            @rule()
            def fail(self) -> None:
                """The oldest command fails before the venue sees it."""
                command = self.outbox.pop(0)
                self.inbox.extend(carry(Fate.REST_ERROR, command, None, self.now))

            @precondition(lambda self: len(self.refusals) < 3)
            @rule(rejected=st.booleans())
            def refuse(self, rejected: bool) -> None:
                """The bot's next new order, whenever it is sent (in the middle of a trade too),
                is refused by the venue (``rejected``) or fails before the venue sees it."""
                self.refusals.append(rejected)

        if Fault.TIMEOUT in enabled:

            @precondition(lambda self: bool(self.outbox))
            @rule(applied=st.booleans())
            def time_out(self, applied: bool) -> None:
                """The oldest command times out; the venue carried it out when ``applied``."""
                command = self.outbox.pop(0)
                if applied:
                    answers = self.exchange.handle(command, self.now)
                    self.route(carry(Fate.TIMEOUT_APPLIED, command, answers, self.now))
                else:
                    self.route(carry(Fate.TIMEOUT_LOST, command, None, self.now))

        if Fault.DISCONNECT in enabled:

            @precondition(lambda self: self.feed_up)
            @rule()
            def disconnect(self) -> None:
                """The feed goes down: stream messages in flight are lost."""
                self.feed_down()

            @precondition(lambda self: not self.feed_up)
            @rule()
            def reconnect(self) -> None:
                """The feed comes back."""
                self.feed_back()

        if Fault.STALL in enabled:

            @rule(ms=st.integers(min_value=1, max_value=30_000))
            def stall(self, ms: int) -> None:
                """``ms`` pass without a quote; due timers fire."""
                self.now += ms
                self.fire_timers()

        if Fault.RESTART in enabled:

            @rule(applied=st.booleans())
            def restart(self, applied: bool) -> None:
                """The bot's process stops and starts again from its journal: commands not yet
                sent are lost (or reached the venue just before, when ``applied``), answers and
                stream messages on their way are lost, timers are gone; the new process folds
                the journal and starts (which resolves everything that was in flight)."""
                for command in self.outbox:
                    if applied:
                        self.exchange.handle(command, self.now)
                self.outbox = []
                self.inbox = [e for e in self.inbox if isinstance(e, FundingPaid)]
                self.timers = {}
                for cid in self.state.inflight:
                    self.expected.discard(cid)
                self.feed_up = True
                self.deliver(Started(ts=self.now))

        @invariant()
        def no_violation(self) -> None:
            """Every invariant held at every step so far."""
            if not self.settled:
                self.violations.extend(self.monitor.venue(self.state, self.exchange, self.now))
            if self.violations:
                lines = [f"{len(self.violations)} invariant violation(s):"]
                for v in self.violations[:10]:
                    lines.append(f"  - {v.invariant} at ts={v.ts}: {v.detail}")
                    if v.event is not None:
                        lines.append(f"      event: {v.event!r}")
                raise AssertionError("\n".join(lines))

    _Machine.__name__ = _Machine.__qualname__ = name
    if settings is not None:
        _Machine.TestCase.settings = settings
    return _Machine
