"""The reducer: ``step(state, event) -> (state, commands)`` and the event → rule table.

Each event is applied by the rules of one module, in the order :func:`dispatch` lists them
(the ``match`` with ``assert_never`` makes mypy prove every event is handled):

======================================  =======================================================
event                                   rules
======================================  =======================================================
``QuoteTicked``                         hot path in :func:`step`; :mod:`._plausible`; a
                                        quote an order was refused for: :mod:`._requests`
``Started``                             :func:`start`: housekeeping scheduled, every venue
                                        reconciles and waits for a fresh quote, timers
                                        re-armed, in-flight commands resolved like timeouts
                                        (never re-sent)
``TimerFired``                          :mod:`._intents`
any event at or after the due time      housekeeping first (:func:`._intents.housekeeping`,
                                        :mod:`._requests`), then the event; the maintenance
                                        timer is armed only while time with no data matters
                                        (:func:`._requests.schedule`)
feed, malformed, reports                :mod:`._sync`
funding rates, payments, reports        :mod:`._funding`
order answers                           :mod:`._orders`
fills                                   :mod:`._ledger`
halt, resume, flatten, balance          :mod:`._risk`
``CommandFailed``, ``CommandTimedOut``  :func:`command_failed`: error streak, then
                                        :mod:`._sync` and :mod:`._requests`, or :mod:`._orders`
======================================  =======================================================

After the event, every order change and stimulus is told to the strategy
(:func:`gridcore.kernel._intents.flush_changes`) and order commands are batched per venue
(:meth:`gridcore.kernel._tx.Tx.finish`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, assert_never

import attrs

from gridcore.api import RefreshKind, strategy_timer_id
from gridcore.commands import Command, Level, StartTimer
from gridcore.events import (
    BalanceReported,
    CancelRejected,
    CommandFailed,
    CommandTimedOut,
    Event,
    FeedDisconnected,
    FeedReconnected,
    FillsReported,
    FlattenRequested,
    FundingPaid,
    FundingRateUpdated,
    FundingReported,
    HaltRequested,
    MessageMalformed,
    ModifyRejected,
    OpenOrdersReported,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    OrderRejected,
    OrderStatusReported,
    PositionsReported,
    QuoteTicked,
    ResumeRequested,
    Started,
    TimerFired,
)
from gridcore.halts import cause_of_reason
from gridcore.instruments import InstrumentKey
from gridcore.kernel import (
    _funding,
    _intents,
    _ledger,
    _orders,
    _plausible,
    _requests,
    _risk,
    _sync,
)
from gridcore.kernel._model import (
    MAINTENANCE_TIMER,
    S,
    State,
    net_pnl,
    new_state,
    pnl_by_currency,
    with_housekeeping,
)
from gridcore.kernel._tx import Tx
from gridcore.numbers import CTX
from gridcore.plausibility import left_and_jumped
from gridcore.sync import SyncPhase

__all__ = ["SHELL_CLOCK_EVENTS", "general_step", "step"]

_SYNCED, _UNSYNCED = SyncPhase.SYNCED, SyncPhase.UNSYNCED
_MULTIPLY = CTX.multiply


#: Events the shell stamps with its own clock: they move the core's clock to their time. Every
#: other event is stamped by a venue and may move it by at most ``max_clock_lead_ms``.
SHELL_CLOCK_EVENTS = frozenset(
    {
        Started,
        TimerFired,
        HaltRequested,
        ResumeRequested,
        FlattenRequested,
        CommandFailed,
        CommandTimedOut,
        FeedDisconnected,
        FeedReconnected,
        MessageMalformed,
    }
)


def step(state: State[S], event: Event) -> tuple[State[S], list[Command]]:
    """Apply one event; return the new state and the commands to carry out, in order.

    Total: any event that could be built is absorbed (a broken contract by the *strategy* still
    raises :class:`ContractError`). See :mod:`gridcore.plausibility` for what is not believed.
    """
    if type(event) is QuoteTicked:
        if event.ts - state.now <= state.config.clock_lead_ms:
            books = state.books
            if event.ts < books.wake_at and (
                # Only the awaited instrument's quote can answer a wait (_requests.quote_answered):
                # every other quote keeps the hot path while one is awaited.
                not books.quote_waits or (event.venue, event.symbol) not in books.quote_waits
            ):
                return _tick(state, event)
            done = _housekeeping_tick(state, event)
            if done is not None:
                return done
            tx = Tx(state, event.ts)
            # The quote first: housekeeping (the strategy's heartbeat among it) then decides on
            # the market as it is now, never on the quote this one replaces.
            dispatch(tx, event)
            _housekeeping_if_due(tx)
            return _finish(tx)
    elif type(event) in SHELL_CLOCK_EVENTS or event.ts - state.now <= state.config.clock_lead_ms:
        tx = Tx(state, event.ts)
        if type(event) is TimerFired and event.timer_id == MAINTENANCE_TIMER:
            _intents.housekeeping(tx)  # the shell fires it only when housekeeping is wanted
        elif type(event) is FeedReconnected:
            # The reconnect first: it says the feed had a gap, so housekeeping (the strategy's
            # heartbeat among it) must not price an order from a quote seen before it (failure
            # `quote-from-before-a-gap`).
            dispatch(tx, event)
            _housekeeping_if_due(tx)
            return _finish(tx)
        elif type(event) is not Started:
            _housekeeping_if_due(tx)
        dispatch(tx, event)
        return _finish(tx)
    # A venue says it is far later than the core's clock: apply what it says as of the clock,
    # and never let one message move the clock (a single far-future time would otherwise make
    # every later quote, balance and fill look stale for good).
    tx = Tx(state, state.now)
    tx.notify(
        Level.WARNING,
        "clock_ahead",
        f"{type(event).__name__} stamped {event.ts} is {event.ts - state.now} ms ahead of the core's "
        f"clock {state.now}; applied as of the clock",
    )
    restamped: Any = attrs.evolve(event, ts=state.now)
    _housekeeping_if_due(tx)
    dispatch(tx, restamped)
    return _finish(tx)


def general_step(state: State[S], event: Event) -> tuple[State[S], list[Command]]:
    """:func:`step` without the quote's fast paths (:func:`_tick`, :func:`_housekeeping_tick`):
    every quote goes through the working copy. The same results as :func:`step`, slower; the
    reference those fast paths are tested against."""
    if type(event) is QuoteTicked and event.ts - state.now <= state.config.clock_lead_ms:
        tx = Tx(state, event.ts)
        dispatch(tx, event)
        _housekeeping_if_due(tx)
        return _finish(tx)
    return step(state, event)


def _housekeeping_if_due(tx: Tx[Any]) -> None:
    """Housekeeping runs in the first step at or after its due time: before the event (as a
    timer due then would have fired before it), except after a quote, so that the strategy's
    heartbeat decides on the market as it is now, and after a reconnect, so that it decides
    knowing the feed had a gap; never before ``Started`` set the first one."""
    if tx.maintenance_due and tx.now >= tx.maintenance_due:
        _intents.housekeeping(tx)


def _tick(state: State[S], tick: QuoteTicked) -> tuple[State[S], list[Command]]:
    """The hot path: store the quote and ask the strategy, unless the quote needs judging."""
    key = (tick.venue, tick.symbol)
    old = state.quotes
    last = old.get(key)
    if last is not None:
        # Only a quote that left the last spread can have jumped: two comparisons per tick,
        # then one product (gridcore.plausibility.left_and_jumped, inlined).
        bid = tick.bid
        if (
            bid > last.ask and bid > _MULTIPLY(last.ask, state.config.plausibility.max_quote_jump)
        ) or (
            tick.ask < last.bid
            and _MULTIPLY(tick.ask, state.config.plausibility.max_quote_jump) < last.bid
        ):
            tx = Tx(state, tick.ts)
            dispatch(tx, tick)
            return _finish(tx)
    elif key not in state.config.by_key:
        tx = Tx(state, tick.ts)
        dispatch(tx, tick)
        return _finish(tx)
    if len(old) == 1 and last is not None:
        quotes: Mapping[InstrumentKey, QuoteTicked] = {key: tick}
    else:
        quotes = {**old, key: tick}
    new = new_state(
        state.config,
        state.strategy,
        state.epoch,
        tick.ts if tick.ts > state.now else state.now,
        state.nonce,
        quotes,
        state.books,
    )
    decision = state.strategy.on_tick(new, tick)
    if decision is None:
        return new, []
    if _asks_nothing(decision):
        # The strategy kept or replaced itself and asked for nothing: the working copy would
        # change nothing but the strategy.
        if decision[0] is state.strategy:
            return new, []
        return new_state(
            new.config, decision[0], new.epoch, new.now, new.nonce, new.quotes, new.books
        ), []
    tx = Tx(new, tick.ts)
    tx.strategy = decision[0]
    _intents.run_intents(tx, decision[1])
    return _finish(tx)


def _asks_nothing(decision: tuple[Any, Sequence[Any]]) -> bool:
    """A strategy's answer that asks for nothing: an empty list or tuple of intents (anything
    else goes through :func:`_intents.run_intents`, which judges it)."""
    intents = decision[1]
    return not intents and (type(intents) is tuple or type(intents) is list)


def _housekeeping_tick(state: State[S], tick: QuoteTicked) -> tuple[State[S], list[Command]] | None:
    """The tick that brings housekeeping, when housekeeping has nothing to do but measure the
    drawdown and beat the strategy's heartbeat (no order needs attention, no balance is getting
    old, no reconciliation round is due, nothing to prune, the quote is plausible, the strategy
    asks for nothing and the maintenance timer stays where it is): the same new state as the
    slow path (:func:`dispatch`, :func:`_intents.housekeeping`, :func:`_finish`) without its
    working copy. ``None`` when any of that does not hold: the step is pure, so the slow path
    then starts again from ``state`` and nothing computed here is kept."""
    books = state.books
    config = state.config
    ts = tick.ts
    now = ts if ts > state.now else state.now
    due = books.maintenance_due
    key = (tick.venue, tick.symbol)
    if (
        not due
        or now < due
        or books.attention
        or books.done_orders > config.terminal_orders_kept
        or key in books.quote_waits  # the slow path looks at it (_requests.quote_answered)
    ):
        return None
    old = state.quotes
    last = old.get(key)
    if last is None or left_and_jumped(last, tick, config.plausibility.max_quote_jump):
        return None
    quotes: Mapping[InstrumentKey, QuoteTicked] = (
        {key: tick} if len(old) == 1 else {**old, key: tick}
    )
    # What _requests.maintenance would do besides the drawdown: any of it takes the slow path.
    period = config.reconcile_ms
    half_age = config.risk.max_balance_age_ms // 2
    balances = books.risk.balances
    venues = books.venues
    for venue in config.venues:
        balance = balances.get(venue)
        if balance is not None and now - balance.ts > half_age:
            return None
        vs = venues.get(venue)
        if vs is None:
            return None
        if (
            period
            and now - vs.last_reconcile >= period
            and (vs.phase is _SYNCED or (vs.phase is _UNSYNCED and vs.feed_up))
        ):
            return None
    # _requests.schedule needs the earliest round owed (its own rule, not restated here).
    owed = _requests.round_owed(config, books.ledger, venues, quotes)
    strategy = state.strategy
    epoch, nonce = state.epoch, state.nonce
    seen = new_state(config, strategy, epoch, now, nonce, quotes, books)
    decision = strategy.on_tick(seen, tick)
    if decision is not None:
        if not _asks_nothing(decision):
            return None
        strategy = decision[0]  # the heartbeat sees it, as on the slow path
    risk = books.risk
    currencies = config.currencies
    if len(currencies) == 1:
        # One settlement currency (every single-venue bot): pnl_by_currency's own measure
        # without its dict.
        currency = currencies[0]
        risk, fall = _risk.note_pnl(risk, currency, net_pnl(books.ledger, quotes), currency)
        limit = config.risk.max_drawdown
        if fall is not None and limit is not None and fall >= limit:
            return None  # the drawdown halt is the slow path's
    else:
        limit = config.risk.max_drawdown
        primary = currencies[0] if currencies else ""
        for currency, pnl in pnl_by_currency(books.ledger, quotes, config).items():
            risk, fall = _risk.note_pnl(risk, currency, pnl, primary)
            if fall is not None and limit is not None and fall >= limit:
                return None  # the drawdown halt is the slow path's
    m = config.maintenance_ms
    next_due = due + m * ((now - due) // m + 1)
    # _requests.schedule, with no order needing attention (it reads nothing the strategy's
    # heartbeat could change: a heartbeat that asks for anything takes the slow path).
    fire = None if owed is None else max(next_due, owed) + period
    if fire != books.maintenance_timer:
        return None
    wake_at = next_due if fire is not None or not period else 0
    # The heartbeat sees the books as the slow path shows them (the wake-up time moved on with
    # the due time: _requests.maintenance), the new state keeps them unless schedule settles
    # the wake-up time elsewhere.
    view_books = with_housekeeping(books, risk, next_due, next_due)
    view = new_state(config, strategy, epoch, now, nonce, quotes, view_books)
    strategy, intents = strategy.on_timer(view, MAINTENANCE_TIMER)
    if intents:
        return None
    if wake_at != next_due:
        view_books = with_housekeeping(books, risk, next_due, wake_at)
    elif strategy is view.strategy:
        return view, []
    return new_state(config, strategy, epoch, now, nonce, quotes, view_books), []


def _finish(tx: Tx[Any]) -> tuple[State[Any], list[Command]]:
    """Tell the strategy what is left to tell, then build the new state and the commands."""
    if tx.changes or tx.stimuli:
        _intents.flush_changes(tx)  # what a strategy's own intents caused on the hot path
    if tx.maintenance_due:
        _requests.schedule(tx)
    return tx.finish()


#: Events whose meaning depends on their venue (feed status, reports, funding): ignored with a
#: notice when the venue is not configured. Events about one order are matched by its cloid,
#: which the core named, and fills are checked one by one.
_VENUE_SCOPED = frozenset(
    {
        FeedDisconnected,
        FeedReconnected,
        MessageMalformed,
        FundingRateUpdated,
        FundingPaid,
        OpenOrdersReported,
        PositionsReported,
        BalanceReported,
        FillsReported,
        FundingReported,
    }
)


def dispatch(tx: Tx[Any], event: Event) -> None:
    """Apply one event with the rules of the module that owns it (see the table above)."""
    if type(event) in _VENUE_SCOPED and not _plausible.known_venue(
        tx, getattr(event, "venue", ""), type(event).__name__
    ):
        return
    match event:
        case QuoteTicked():
            if _plausible.believe_quote(tx, event):
                quotes = dict(tx.quotes)
                quotes[(event.venue, event.symbol)] = event
                tx.quotes = quotes
                decision = tx.strategy.on_tick(tx.snapshot(), event)
                if decision is not None:
                    tx.strategy = decision[0]
                    _intents.run_intents(tx, decision[1])
                if tx.quote_waits and _requests.quote_answered(tx, event):
                    # An order was refused for want of this quote (failure
                    # `silent-quote-refusal`): the strategy decides again on it.
                    _intents.flush_changes(tx)
                    _intents.tell_strategy(tx, "on_ready", event.venue)
        case Started():
            start(tx, event)
        case TimerFired():
            _intents.on_timer_fired(tx, event)
        case FeedDisconnected():
            _sync.on_feed_down(tx, event)
        case FeedReconnected():
            _sync.on_feed_up(tx, event)
        case MessageMalformed():
            _sync.on_malformed(tx, event)
        case HaltRequested():
            cause = event.cause or cause_of_reason(event.reason)
            _risk.halt(tx, cause, event.reason)
        case ResumeRequested():
            _risk.resume(tx)
        case FlattenRequested():
            _risk.flatten(tx)
        case FundingRateUpdated():
            _funding.on_rate(tx, event)
            _intents.tell_strategy(tx, "on_event", event)
            _requests.answer_refreshes(tx, event.venue, RefreshKind.FUNDING, None, event.ts)
        case FundingPaid():
            _funding.on_paid(tx, event)
        case FundingReported():
            flight = tx.resolve(event.command_id)
            _risk.ok(tx)
            _funding.on_report(tx, event, flight)
        case OrderAccepted():
            _orders.on_accepted(tx, event)
        case OrderRejected():
            _orders.on_rejected(tx, event)
        case OrderPartiallyFilled():
            _ledger.apply_fill(tx, event.fill, venue_says_done=False, venue_says_open=True)
        case OrderFilled():
            _ledger.apply_fill(tx, event.fill, venue_says_done=True)
        case OrderCanceled():
            _orders.on_canceled(tx, event)
        case CancelRejected():
            _orders.on_cancel_rejected(tx, event)
        case OrderModified():
            _orders.on_modified(tx, event)
        case ModifyRejected():
            _orders.on_modify_rejected(tx, event)
        case OrderStatusReported():
            _orders.on_status_reported(tx, event)
        case OpenOrdersReported():
            flight = tx.resolve(event.command_id)
            _risk.ok(tx)
            _sync.on_open_orders(tx, event, flight)
            _sync.sync_result(tx, event.venue, event.command_id)
            _requests.answer_refreshes(
                tx, event.venue, RefreshKind.OPEN_ORDERS, event.command_id, event.ts
            )
        case PositionsReported():
            tx.resolve(event.command_id)
            _risk.ok(tx)
            _sync.on_positions(tx, event)
            _sync.sync_result(tx, event.venue, event.command_id)
            _intents.report_to_strategy(tx, event)
            _requests.answer_refreshes(
                tx, event.venue, RefreshKind.POSITIONS, event.command_id, event.ts
            )
        case BalanceReported():
            tx.resolve(event.command_id)
            _risk.ok(tx)
            _risk.on_balance(tx, event)
            _sync.sync_result(tx, event.venue, event.command_id)
            _intents.report_to_strategy(tx, event)
            _requests.answer_refreshes(
                tx, event.venue, RefreshKind.BALANCES, event.command_id, event.ts
            )
            if _requests.balance_answered(tx, event.venue, event.ts):
                _intents.tell_strategy(tx, "on_ready", event.venue)
        case FillsReported():
            flight = tx.resolve(event.command_id)
            _risk.ok(tx)
            _sync.on_fills(tx, event, flight)
            _sync.sync_result(tx, event.venue, event.command_id)
            _requests.answer_refreshes(
                tx, event.venue, RefreshKind.FILLS, event.command_id, event.ts
            )
        case CommandFailed() | CommandTimedOut():
            command_failed(tx, event)
        case _:
            assert_never(event)
    _intents.flush_changes(tx)


def command_failed(
    tx: Tx[Any], event: CommandFailed | CommandTimedOut, *, count: bool = True
) -> None:
    """A command failed or timed out: count the error, then settle what it was for."""
    flight = tx.resolve(event.command_id)
    if isinstance(event, CommandFailed):
        reason, not_applied = event.reason, event.not_applied
    else:
        reason, not_applied = "timed out", False
    refused_funding = flight is not None and flight.kind == _funding.KIND and not_applied
    if count and not refused_funding:
        # A venue refusing a funding request keeps no funding history: a capability, not an
        # error streak (see gridcore.kernel._funding).
        _risk.error(tx, f"command {event.command_id} {reason}")
    if flight is None:
        return  # a result for a command we no longer track (duplicate or pre-recovery)
    if flight.kind == _funding.KIND:
        _funding.on_failed(tx, flight, reason, not_applied=not_applied)
    elif flight.kind in _requests.REQUEST_KINDS:
        _sync.sync_failure(tx, flight, event.command_id, reason)
        _requests.refresh_failed(tx, event.command_id, reason)
    else:
        _orders.on_command_failed(tx, flight, reason, not_applied=not_applied)


def start(tx: Tx[Any], event: Started) -> None:
    """The bot (re)starts: maintenance timer, every venue reconciles and waits for a quote newer
    than the previous run's, timers re-armed, in-flight commands resolved like timeouts (never
    re-sent)."""
    previous = sorted(tx.inflight)
    # Housekeeping runs every maintenance_ms of data time; the shell's timers died with the
    # previous run, so the maintenance timer is armed again only if something needs it.
    tx.maintenance_due = tx.now + tx.config.maintenance_ms
    tx.maintenance_timer = None
    for venue in tx.config.venues:
        # The quotes journaled by the previous run say nothing of the market now (failure
        # `quote-from-before-a-gap`): new orders wait for the venue's next quote.
        newest = _sync.newest_quote(tx, venue)
        tx.put_venue(venue, attrs.evolve(tx.venue(venue), feed_up=True, quotes_before=newest))
        _funding.on_started(tx, venue)
        _sync.begin_sync(tx, venue)
    # The shell's timers died with the previous run: arm the strategy's again.
    for name, (fire_at, every) in tx.desk.timers.items():
        tx.commands.append(
            StartTimer(
                command_id=tx.next_id(),
                timer_id=strategy_timer_id(name),
                fire_at=max(fire_at, tx.now),
                every_ms=every,
            )
        )
    # A restart: whatever was in flight when the previous run stopped has an unknown
    # outcome. Resolve it like a timeout (orders go in doubt and get a status
    # request); never send it again.
    for cid in previous:
        command_failed(tx, CommandTimedOut(ts=event.ts, command_id=cid), count=False)
    # A funding request out when the previous run stopped kept begin_sync from asking: ask now
    # that it is resolved (failure `lost-funding-payment`).
    for venue in tx.config.venues:
        _funding.ask(tx, venue)
