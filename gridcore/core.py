"""The kernel: ``step(state, event) -> (state, commands)`` for every bot kind.

Theory of operation
-------------------
One reducer consumes one ordered stream of events, so there is nothing to lock and no
check-then-act window. Each call of :func:`step`:

1. applies the event to the order registry (:mod:`gridcore.lifecycle`), the ledger
   (:mod:`gridcore.ledger`), the risk counters (:mod:`gridcore.risk`) and the per-venue
   reconciliation state (:mod:`gridcore.sync`);
2. tells the strategy what changed (a tick, order changes, a venue becoming ready, a timer) and
   collects its *intents* (:class:`Submit`, :class:`Cancel`, :class:`Say`);
3. passes every :class:`Submit` through the risk gate, names the order (its cloid is derived
   from the state's session prefix and id counter, see :func:`cloid_prefix`), reserves its
   margin and emits the command, all in the same step;
4. returns the new state and the commands, order commands for one venue grouped in a
   :class:`~gridcore.commands.Batch`.

The strategy is a value inside the state: any attrs class implementing :class:`Strategy`.
The neutral grid (:mod:`gridcore.grid`) is one. The state is never mutated; a raise (a broken
contract) leaves the caller's state as it was.

A tick is the hot path: it stores the quote and asks the strategy whether the tick matters, and
touches nothing else.

The reducer is total: any event that can be built is absorbed without an exception escaping.
Values valid one by one but absurd in context (a clock jump, a quote or a fill far from the
market, an unknown venue) follow the rules of :mod:`gridcore.plausibility`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Generic, Protocol, Self, TypeVar, assert_never

import attrs

from gridcore.api import (
    STRATEGY_TIMER_PREFIX,
    ClearTimer,
    Desk,
    Modify,
    ModifyRefused,
    PendingRefresh,
    Refresh,
    Refreshed,
    RefreshFailed,
    RefreshKind,
    SetTimer,
    Stimulus,
    SubmitRefused,
    strategy_timer_id,
)
from gridcore.commands import (
    Batch,
    CancelOrder,
    CancelTimer,
    Command,
    Halt,
    Level,
    ModifyOrder,
    Notify,
    OrderCommand,
    PlaceOrder,
    RequestBalances,
    RequestFills,
    RequestOpenOrders,
    RequestOrderStatus,
    RequestPositions,
    StartTimer,
)
from gridcore.errors import ConfigError, ContractError
from gridcore.events import (
    BalanceReported,
    CancelRejected,
    CommandFailed,
    CommandTimedOut,
    Event,
    FeedDisconnected,
    FeedReconnected,
    Fill,
    FillsReported,
    FlattenRequested,
    FundingPaid,
    FundingRateUpdated,
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
    ReportedStatus,
    ResumeRequested,
    Started,
    TimerFired,
)
from gridcore.exposure import asset_of, closes_exposure, offsetting_orders
from gridcore.halts import POLICIES, HaltCause, cause_of_reason, stricter
from gridcore.instruments import Instrument, InstrumentKey, PositionSide, Side, TimeInForce
from gridcore.ledger import Ledger, PositionKey
from gridcore.lifecycle import Effect, Order, OrderStatus, Trigger, transition
from gridcore.numbers import CTX, ZERO, Rounding, format_money
from gridcore.plausibility import Plausibility, fill_implausible, quote_jumped
from gridcore.risk import Refusal, RiskConfig, RiskState, check_order
from gridcore.sync import SyncPhase, VenueStatus, position_drift

__all__ = [
    "MAINTENANCE_TIMER",
    "SHELL_CLOCK_EVENTS",
    "Books",
    "Cancel",
    "CoreConfig",
    "Inflight",
    "Intent",
    "OrderChange",
    "ReactiveStrategy",
    "Say",
    "State",
    "Strategy",
    "Submit",
    "cloid_prefix",
    "fill_refusal",
    "initial_state",
    "step",
]

_CANCEL_UNDER_WAY = (OrderStatus.PENDING_CANCEL, OrderStatus.CANCEL_FAILED)

MAINTENANCE_TIMER = "gridcore:maintenance"


# --- intents: what a strategy may ask of the kernel ----------------------------------------


@attrs.frozen(kw_only=True)
class Submit:
    """Ask for an order. ``qty`` in base units; the kernel names it and gates it."""

    venue: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    position_side: PositionSide = PositionSide.BOTH
    tif: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    tag: str = ""
    ref: Hashable = None
    """The strategy's own name for the order (any hashable; it must be journal-encodable in a
    live run: str, int, tuples of them, enums, registered attrs values). With a ref the kernel
    reports the new order back at once (an order change with ``before=None``) or says why it
    refused it (:class:`~gridcore.api.SubmitRefused`); every later change of the order carries
    it as ``change.after.ref``."""


@attrs.frozen(kw_only=True)
class Cancel:
    """Ask for the order named ``cloid`` to be canceled (ignored if it is already done)."""

    cloid: str


@attrs.frozen(kw_only=True)
class Say:
    """Ask for a notice to the operator."""

    level: Level
    code: str
    message: str


Intent = Submit | Cancel | Say | Modify | SetTimer | ClearTimer | Refresh
"""Everything a strategy may ask of the kernel (the last four are in :mod:`gridcore.api`)."""

#: How many rounds of "strategy reacts to what its own intents caused" one step allows before
#: the strategy is declared stuck in a loop (a pure step must end).
MAX_STRATEGY_ROUNDS = 256


@attrs.frozen(kw_only=True)
class OrderChange:
    """One order moved: ``before`` is ``None`` for a new order; ``fill`` is the fill that moved
    it, if any."""

    before: Order | None
    after: Order
    fill: Fill | None = None

    @property
    def ref(self) -> Hashable:
        """The strategy's ``ref`` for the order (``None`` when it gave none)."""
        return self.after.ref


_R = tuple[Any, Sequence[Intent]]


class Strategy(Protocol):
    """What the kernel asks of a strategy. Every method is pure and returns
    ``(new strategy, intents)``; ``view`` is the kernel state after the event was applied.

    A strategy should place orders only where ``view.can_trade(venue)`` holds: the kernel
    refuses other orders with a notice. Written as "desired orders versus live orders", it
    recovers from anything by rebuilding on :meth:`on_ready` and :meth:`on_timer`.

    One optional method completes the protocol (see ``docs/strategy-api.md``):
    ``on_stimulus(view, stimulus) -> (new strategy, intents)`` receives what is not an order
    change (:data:`gridcore.api.Stimulus`: a refused submit or modify, a refresh answered or
    failed). A strategy that submits with a ``ref``, modifies or refreshes must define it; one
    that does none of these never receives a stimulus and need not.
    """

    def on_tick(self, view: State[Self], tick: QuoteTicked) -> tuple[Self, Sequence[Intent]] | None:
        """A quote arrived. Return ``None`` when it changes nothing (the hot path)."""
        ...

    def on_changes(
        self, view: State[Self], changes: Sequence[OrderChange]
    ) -> tuple[Self, Sequence[Intent]]:
        """Orders moved (fills, acks, cancels, reports), in the order they happened."""
        ...

    def on_ready(self, view: State[Self], venue: str) -> tuple[Self, Sequence[Intent]]:
        """``venue`` finished reconciling (or trading resumed): rebuild from the state."""
        ...

    def on_timer(self, view: State[Self], timer_id: str) -> tuple[Self, Sequence[Intent]]:
        """A timer fired: one the strategy set (under the name it chose), the kernel's periodic
        maintenance heartbeat (``gridcore:maintenance``), or any other timer the shell fires."""
        ...

    def on_event(self, view: State[Self], event: Event) -> tuple[Self, Sequence[Intent]]:
        """A report the strategy may care about, after the kernel applied it: balances
        (``BalanceReported``), positions (``PositionsReported``), funding rates
        (``FundingRateUpdated``) and funding payments (``FundingPaid``)."""
        ...


class ReactiveStrategy(Strategy, Protocol):
    """A :class:`Strategy` that also takes stimuli: the protocol of a strategy that submits with
    a ``ref``, modifies or refreshes (see :mod:`gridcore.api`)."""

    def on_stimulus(self, view: State[Self], stimulus: Stimulus) -> tuple[Self, Sequence[Intent]]:
        """A submit or modify was refused, or a refresh was answered or failed."""
        ...


S = TypeVar("S", bound=Strategy)


# --- configuration and state -----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CoreConfig:
    """What the kernel needs to know besides the strategy.

    ``maintenance_ms`` is the period of the housekeeping timer (status requests for unresolved
    orders, balance refresh, drawdown check, pruning). ``fill_overlap_ms`` is how far before the
    last fill seen a reconciliation asks for fills again (dedup makes the overlap harmless);
    ``reconcile_ms`` the period of the background reconciliation round (0 disables it).
    ``plausibility`` holds the limits on what one venue message is believed
    (:mod:`gridcore.plausibility`).
    """

    instruments: tuple[Instrument, ...]
    risk: RiskConfig = RiskConfig()
    maintenance_ms: int = 5_000
    max_sync_attempts: int = 3
    fill_overlap_ms: int = 60_000
    reconcile_ms: int = 60_000
    cancel_unknown_orders: bool = True
    terminal_orders_kept: int = 64
    plausibility: Plausibility = Plausibility()
    by_key: Mapping[InstrumentKey, Instrument] = attrs.field(init=False, repr=False, eq=False)
    clock_lead_ms: int = attrs.field(init=False, repr=False, eq=False)
    """``plausibility.max_clock_lead_ms``, at hand for the hot path."""
    venues: tuple[str, ...] = attrs.field(init=False, repr=False, eq=False)
    """Every venue an instrument is configured on, in order of first appearance."""
    currencies: tuple[str, ...] = attrs.field(init=False, repr=False, eq=False)
    """Every settlement currency, in order of first appearance (the first is the one the
    one-currency figures ``RiskState.peak_pnl`` and ``worst_drawdown`` are in)."""
    venue_currency: Mapping[str, str] = attrs.field(init=False, repr=False, eq=False)
    """The settlement currency of each venue's instruments."""

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "by_key", {i.key: i for i in self.instruments})
        object.__setattr__(self, "clock_lead_ms", self.plausibility.max_clock_lead_ms)
        object.__setattr__(self, "venues", tuple(dict.fromkeys(i.venue for i in self.instruments)))
        object.__setattr__(
            self, "currencies", tuple(dict.fromkeys(i.settlement for i in self.instruments))
        )
        venue_currency: dict[str, str] = {}
        for i in self.instruments:
            first = venue_currency.setdefault(i.venue, i.settlement)
            if first != i.settlement:
                # Margin is reserved and checked per venue against one balance report: a venue
                # whose instruments settle in two currencies would add them together.
                raise ConfigError(
                    "instruments.settlement",
                    f"instruments on venue {i.venue!r} settle in {first!r} and "
                    f"{i.settlement!r}; the instruments of one venue must settle in one currency "
                    f"(configure the other currency's instruments as another venue account)",
                )
        object.__setattr__(self, "venue_currency", venue_currency)

    def instrument(self, venue: str, symbol: str) -> Instrument:
        """The configured instrument; raises :class:`ContractError` naming what is known."""
        try:
            return self.by_key[(venue, symbol)]
        except KeyError:
            raise ContractError(
                f"instrument {venue}/{symbol} is not configured; configured: "
                f"{sorted(f'{v}/{s}' for v, s in self.by_key)}"
            ) from None


@attrs.frozen(kw_only=True)
class Inflight:
    """An order or request command waiting for its terminal result."""

    kind: str
    venue: str
    cloid: str | None = None
    sent_ts: int = 0
    batch: int | None = None


@attrs.frozen(kw_only=True)
class Books:
    """The part of the state that ticks never touch: orders, ledger, risk, venues, counters.

    ``seq`` is the id counter that names orders and commands. ``attention`` holds the cloids of
    orders in doubt or cancel-failed with no status request out; ``done_orders`` counts the
    terminal orders still kept; ``live`` maps the cloid of every live order to its ``seq``, in the
    order they were named (all three maintained by the kernel so that housekeeping and strategies
    need not scan the registry, and iterate in a deterministic order).
    """

    seq: int = 0
    orders: Mapping[str, Order] = attrs.field(factory=dict)
    venue_oids: Mapping[tuple[str, str], str] = attrs.field(factory=dict)
    inflight: Mapping[int, Inflight] = attrs.field(factory=dict)
    ledger: Ledger = Ledger()
    risk: RiskState = RiskState()
    venues: Mapping[str, VenueStatus] = attrs.field(factory=dict)
    attention: frozenset[str] = frozenset()
    done_orders: int = 0
    live: Mapping[str, int] = attrs.field(factory=dict)
    suspect_quotes: Mapping[InstrumentKey, tuple[QuoteTicked, int, QuoteTicked]] = attrs.field(
        factory=dict
    )
    desk: Desk = Desk()
    """The strategy's timers and outstanding refreshes (:mod:`gridcore.api`)."""
    """Refused quotes per instrument: the last one, how many in a row agreed with each other, and
    the accepted quote they were refused against (a quote accepted since breaks the row; see
    :mod:`gridcore.plausibility`)."""


@attrs.frozen(kw_only=True)
class State(Generic[S]):
    """Everything the bot knows. Immutable; :func:`step` returns a new one.

    ``epoch`` (ms) is fixed when the bot is created; ``nonce`` is the session nonce the shell
    drew when it created the bot (0 in backtests): together they give the cloid prefix
    (:func:`cloid_prefix`) which, with the ``books.seq`` counter, names every order. ``now`` is
    the core's clock (see :mod:`gridcore.plausibility` for how events move it); ``quotes`` the
    last accepted quote per instrument. Everything else is in :class:`Books`, also readable as attributes of the
    state (``state.orders``, ``state.ledger``, ...). A tick replaces only ``now`` and ``quotes``.
    """

    config: CoreConfig
    strategy: S
    epoch: int
    now: int = 0
    nonce: int = 0
    quotes: Mapping[InstrumentKey, QuoteTicked] = attrs.field(factory=dict)
    books: Books = Books()

    @property
    def seq(self) -> int:
        """The id counter."""
        return self.books.seq

    @property
    def orders(self) -> Mapping[str, Order]:
        """Every order the core tracks, by cloid (terminal ones are pruned over time)."""
        return self.books.orders

    @property
    def venue_oids(self) -> Mapping[tuple[str, str], str]:
        """``(venue, venue order id) -> cloid``."""
        return self.books.venue_oids

    @property
    def inflight(self) -> Mapping[int, Inflight]:
        """Order and request commands awaiting their result, by command id."""
        return self.books.inflight

    @property
    def ledger(self) -> Ledger:
        """Positions and money."""
        return self.books.ledger

    @property
    def risk(self) -> RiskState:
        """The risk gate's memory."""
        return self.books.risk

    @property
    def venues(self) -> Mapping[str, VenueStatus]:
        """Per-venue feed and reconciliation status."""
        return self.books.venues

    @property
    def attention(self) -> frozenset[str]:
        """Cloids of unresolved orders with no status request out."""
        return self.books.attention

    @property
    def done_orders(self) -> int:
        """How many terminal orders are still kept."""
        return self.books.done_orders

    @property
    def live(self) -> Mapping[str, int]:
        """Cloids of every live order (to their ``seq``), oldest first."""
        return self.books.live

    @property
    def desk(self) -> Desk:
        """The strategy's timers and outstanding refreshes."""
        return self.books.desk

    # --- read-only helpers for strategies and reports ----------------------------------------

    def can_trade(self, venue: str) -> bool:
        """True when new orders on ``venue`` may leave the core."""
        vs = self.venues.get(venue)
        return (
            vs is not None and vs.feed_up and vs.phase is SyncPhase.SYNCED and not self.risk.halted
        )

    def mid(self, venue: str, symbol: str) -> Decimal | None:
        """Mid of the last quote, or ``None`` before the first."""
        q = self.quotes.get((venue, symbol))
        if q is None:
            return None
        return q.mid

    def live_orders(self, tag_prefix: str = "") -> list[Order]:
        """Live orders whose tag starts with ``tag_prefix``, oldest first."""
        orders = self.books.orders
        return [orders[c] for c in self.books.live if orders[c].tag.startswith(tag_prefix)]

    def net_pnl(self, currency: str | None = None) -> Decimal:
        """Realized − fees + funding + unrealized at the last mids, over every position that
        settles in ``currency``; ``None`` names the bot's only settlement currency. Amounts in
        different currencies are never added: a bot settling in several must name one, or
        take them all from :meth:`pnl_by_currency`."""
        currencies = self.config.currencies
        if currency is None:
            if len(currencies) > 1:
                raise ContractError(
                    f"the bot settles in {', '.join(currencies)}: name the currency "
                    f"(net_pnl('{currencies[0]}')) or use pnl_by_currency()"
                )
            if len(currencies) == 1:
                currency = currencies[0]
        return self.pnl_by_currency().get(currency or "", ZERO)

    def pnl_by_currency(self) -> dict[str, Decimal]:
        """Net PnL (realized − fees + funding + unrealized at the last mids) per settlement
        currency, in the order of :attr:`CoreConfig.currencies`."""
        return _pnl_by_currency(self.ledger, self.quotes, self.config)

    def orders_with_ref(self, ref: Hashable) -> list[Order]:
        """Every tracked order submitted with ``ref`` (live or done, not yet pruned), oldest
        first."""
        return sorted((o for o in self.books.orders.values() if o.ref == ref), key=_by_seq)

    def balance(self, venue: str) -> BalanceReported | None:
        """The last balance report applied for ``venue`` (its ``ts`` says how old it is)."""
        return self.risk.balances.get(venue)


def _by_seq(order: Order) -> int:
    return order.seq


def fill_refusal(state: State[Any], fill: Fill) -> str | None:
    """Why ``step`` would refuse to book ``fill`` in ``state`` (:mod:`gridcore.plausibility`),
    or ``None`` when it would book it (unless it is a duplicate)."""
    config = state.config
    if fill.venue not in config.venues:
        return f"venue {fill.venue!r} is not configured"
    quote = state.quotes.get((fill.venue, fill.symbol))
    if quote is not None:
        reference: Decimal | None = quote.mid
    else:
        cloid = fill.cloid if fill.cloid in state.orders else None
        if cloid is None and fill.venue_order_id is not None:
            cloid = state.venue_oids.get((fill.venue, fill.venue_order_id))
        order = state.orders.get(cloid) if cloid is not None else None
        reference = order.price if order is not None else None
    factor = config.plausibility.max_fill_deviation
    if fill_implausible(fill.price, reference, factor):
        return f"price {fill.price} is more than {factor}x from {reference}"
    return None


def _pnl_by_currency(
    ledger: Ledger, quotes: Mapping[InstrumentKey, QuoteTicked], config: CoreConfig
) -> dict[str, Decimal]:
    # Every position settles in its venue's currency (one per venue: CoreConfig checks it).
    currencies = config.currencies
    totals = dict.fromkeys(currencies, ZERO)
    single = currencies[0] if len(currencies) == 1 else None
    venue_currency = config.venue_currency
    for (venue, symbol, _side), pos in ledger.positions.items():
        currency = single or venue_currency.get(venue, "")
        total = CTX.add(totals.get(currency, ZERO), pos.net)
        if pos.qty:
            q = quotes.get((venue, symbol))
            if q is not None:
                total = CTX.add(total, pos.unrealized(q.mid))
        totals[currency] = total
    return totals


_PREFIX_MASK = (1 << 64) - 1


def cloid_prefix(epoch: int, nonce: int) -> int:
    """The 64-bit prefix of every cloid of a session: ``epoch XOR nonce``.

    A cloid is ``0x`` + 16 hex digits of the prefix + 16 hex digits of the id counter: 34
    characters of ``[0-9a-fx]``, a valid Hyperliquid cloid (128 bits) and Bybit
    ``orderLinkId`` (at most 36 of ``[A-Za-z0-9_-]``). Two sessions on the same market share the
    epoch; the shell draws a random 64-bit ``nonce`` once per journal (kept in the journal, so a
    resumed session keeps its prefix), which makes their prefixes collide with probability
    2**-64. A backtest passes a fixed nonce (0: the prefix is the epoch), so it stays
    reproducible.
    """
    return (epoch ^ nonce) & _PREFIX_MASK


def initial_state(config: CoreConfig, strategy: S, *, epoch: int, nonce: int = 0) -> State[S]:
    """A fresh bot. ``epoch`` (ms) is the creation time; ``nonce`` (0 to 2**64 - 1) the session
    nonce the shell drew when it created the bot (see :func:`cloid_prefix`); a restarted bot
    recovers its state (epoch and nonce included) from the journal instead."""
    if type(epoch) is not int or epoch < 0:
        raise ContractError(f"epoch must be an integer >= 0 ms, got {epoch!r}")
    if type(nonce) is not int or not 0 <= nonce <= _PREFIX_MASK:
        raise ContractError(
            f"nonce must be an integer in [0, 2**64), got {nonce!r}; draw it with "
            f"int.from_bytes(os.urandom(8)) in the shell"
        )
    return State(
        config=config,
        strategy=strategy,
        epoch=epoch,
        nonce=nonce,
        now=epoch,
        books=Books(venues={v: VenueStatus() for v in config.venues}),
    )


# --- the reducer ------------------------------------------------------------------------------


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
            return _tick(state, event)
    elif type(event) in SHELL_CLOCK_EVENTS or event.ts - state.now <= state.config.clock_lead_ms:
        tx = _Tx(state, event.ts)
        tx.dispatch(event)
        return tx.finish()
    # A venue says it is far later than the core's clock: apply what it says as of the clock,
    # and never let one message move the clock (a single far-future time would otherwise make
    # every later quote, balance and fill look stale for good).
    tx = _Tx(state, state.now)
    tx.notify(
        Level.WARNING,
        "clock_ahead",
        f"{type(event).__name__} stamped {event.ts} is {event.ts - state.now} ms ahead of the core's "
        f"clock {state.now}; applied as of the clock",
    )
    restamped: Any = attrs.evolve(event, ts=state.now)
    tx.dispatch(restamped)
    return tx.finish()


def _tick(state: State[S], tick: QuoteTicked) -> tuple[State[S], list[Command]]:
    key = (tick.venue, tick.symbol)
    old = state.quotes
    last = old.get(key)
    if last is not None:
        # Only a quote that left the last spread can have jumped: two comparisons per tick.
        if (tick.bid > last.ask or tick.ask < last.bid) and quote_jumped(
            last.bid, last.ask, tick.bid, tick.ask, state.config.plausibility.max_quote_jump
        ):
            tx = _Tx(state, tick.ts)
            tx.dispatch(tick)
            return tx.finish()
    elif key not in state.config.by_key:
        tx = _Tx(state, tick.ts)
        tx.dispatch(tick)
        return tx.finish()
    if len(old) == 1 and last is not None:
        quotes: Mapping[InstrumentKey, QuoteTicked] = {key: tick}
    else:
        quotes = {**old, key: tick}
    new = State(
        config=state.config,
        strategy=state.strategy,
        epoch=state.epoch,
        now=tick.ts if tick.ts > state.now else state.now,
        nonce=state.nonce,
        quotes=quotes,
        books=state.books,
    )
    decision = state.strategy.on_tick(new, tick)
    if decision is None:
        return new, []
    tx = _Tx(new, tick.ts)
    tx.strategy = decision[0]
    tx.run_intents(decision[1])
    return tx.finish()


_REPORTED_TRIGGER = {
    ReportedStatus.OPEN: Trigger.REPORT_OPEN,
    ReportedStatus.FILLED: Trigger.REPORT_FILLED,
    ReportedStatus.CANCELED: Trigger.REPORT_CANCELED,
    ReportedStatus.REJECTED: Trigger.REPORT_REJECTED,
    ReportedStatus.NOT_FOUND: Trigger.REPORT_NOT_FOUND,
}

_REQUEST_KINDS = ("fills", "open_orders", "positions", "balances")

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
    }
)


class _Tx(Generic[S]):
    """The working copy of one step. Private: it lives for one call of :func:`step` and is
    built from (never writes to) the input state."""

    __slots__ = (
        "_inflight_copied",
        "_last",
        "_oids_copied",
        "_orders_copied",
        "_venues_copied",
        "attention",
        "base",
        "changes",
        "commands",
        "config",
        "desk",
        "done_orders",
        "inflight",
        "ledger",
        "live",
        "now",
        "order_commands",
        "orders",
        "quotes",
        "risk",
        "seq",
        "stimuli",
        "strategy",
        "suspect_quotes",
        "venue_oids",
        "venues",
    )

    def __init__(self, state: State[S], ts: int) -> None:
        self.base = state
        books = state.books
        self.config = state.config
        self.now = ts if ts > state.now else state.now
        self.seq = books.seq
        self.strategy: S = state.strategy
        self.orders: dict[str, Order] | Mapping[str, Order] = books.orders
        self.venue_oids: dict[tuple[str, str], str] | Mapping[tuple[str, str], str] = (
            books.venue_oids
        )
        self.inflight: dict[int, Inflight] | Mapping[int, Inflight] = books.inflight
        self.ledger = books.ledger
        self.risk = books.risk
        self.venues: dict[str, VenueStatus] | Mapping[str, VenueStatus] = books.venues
        self.quotes = state.quotes
        self.attention = books.attention
        self.done_orders = books.done_orders
        self.live = books.live
        self.suspect_quotes = books.suspect_quotes
        self.desk = books.desk
        self.stimuli: list[Stimulus] = []
        self.commands: list[Command] = []
        self.order_commands: dict[str, list[OrderCommand]] = {}
        self.changes: list[OrderChange] = []
        self._orders_copied = False
        self._oids_copied = False
        self._inflight_copied = False
        self._venues_copied = False
        self._last = state

    # --- building blocks -----------------------------------------------------------------------

    def next_id(self) -> int:
        self.seq += 1
        return self.seq

    def snapshot(self) -> State[S]:
        """The state as of now, reusing the last snapshot (or its books) when nothing moved."""
        last = self._last
        b = last.books
        if (
            self.seq == b.seq
            and self.orders is b.orders
            and self.venue_oids is b.venue_oids
            and self.inflight is b.inflight
            and self.ledger is b.ledger
            and self.risk is b.risk
            and self.venues is b.venues
            and self.attention is b.attention
            and self.done_orders == b.done_orders
            and self.live is b.live
            and self.suspect_quotes is b.suspect_quotes
            and self.desk is b.desk
        ):
            if (
                self.strategy is last.strategy
                and self.now == last.now
                and self.quotes is last.quotes
            ):
                return last
            books = b
        else:
            books = Books(
                seq=self.seq,
                orders=self.orders,
                venue_oids=self.venue_oids,
                inflight=self.inflight,
                ledger=self.ledger,
                risk=self.risk,
                venues=self.venues,
                attention=self.attention,
                done_orders=self.done_orders,
                live=self.live,
                suspect_quotes=self.suspect_quotes,
                desk=self.desk,
            )
        self._last = State(
            config=self.config,
            strategy=self.strategy,
            epoch=self.base.epoch,
            now=self.now,
            nonce=self.base.nonce,
            quotes=self.quotes,
            books=books,
        )
        return self._last

    def finish(self) -> tuple[State[S], list[Command]]:
        if self.changes or self.stimuli:
            self.flush_changes()  # what a strategy's own intents caused on the hot path
        commands = self.commands
        for venue, cmds in self.order_commands.items():
            if len(cmds) == 1:
                commands.append(cmds[0])
            else:
                batch = Batch(command_id=self.next_id(), venue=venue, commands=tuple(cmds))
                commands.append(batch)
                for cmd in cmds:
                    flight = self.inflight[cmd.command_id]
                    self.track(cmd.command_id, attrs.evolve(flight, batch=batch.command_id))
        return self.snapshot(), commands

    def put_order(self, order: Order) -> None:
        old = self.orders.get(order.cloid)
        if old is None or old.is_live != order.is_live:
            self.done_orders += (0 if order.is_live else 1) - (
                0 if old is None or old.is_live else 1
            )
            if order.is_live:
                self.live = {**self.live, order.cloid: order.seq}
            else:
                self.live = {c: q for c, q in self.live.items() if c != order.cloid}
        status = order.status
        needs = (
            status is OrderStatus.IN_DOUBT or status is OrderStatus.CANCEL_FAILED
        ) and not order.status_requested
        if needs != (order.cloid in self.attention):
            self.attention = (
                self.attention | {order.cloid} if needs else self.attention - {order.cloid}
            )
        if not self._orders_copied:
            self.orders = dict(self.orders)
            self._orders_copied = True
        assert isinstance(self.orders, dict)
        self.orders[order.cloid] = order
        if order.venue_order_id is not None:
            key = (order.venue, order.venue_order_id)
            if self.venue_oids.get(key) != order.cloid:
                if not self._oids_copied:
                    self.venue_oids = dict(self.venue_oids)
                    self._oids_copied = True
                assert isinstance(self.venue_oids, dict)
                self.venue_oids[key] = order.cloid

    def drop_orders(self, cloids: Iterable[str]) -> None:
        orders = dict(self.orders)
        oids = dict(self.venue_oids)
        for cloid in cloids:
            order = orders.pop(cloid)
            if not order.is_live:
                self.done_orders -= 1
            if order.venue_order_id is not None:
                oids.pop((order.venue, order.venue_order_id), None)
        self.orders, self.venue_oids = orders, oids
        self._orders_copied = self._oids_copied = True

    def track(self, command_id: int, flight: Inflight) -> None:
        if not self._inflight_copied:
            self.inflight = dict(self.inflight)
            self._inflight_copied = True
        assert isinstance(self.inflight, dict)
        self.inflight[command_id] = flight

    def resolve(self, command_id: int | None) -> Inflight | None:
        if command_id is None or command_id not in self.inflight:
            return None
        if not self._inflight_copied:
            self.inflight = dict(self.inflight)
            self._inflight_copied = True
        assert isinstance(self.inflight, dict)
        return self.inflight.pop(command_id)

    def venue(self, name: str) -> VenueStatus:
        return self.venues.get(name) or VenueStatus()

    def put_venue(self, name: str, status: VenueStatus) -> None:
        if not self._venues_copied:
            self.venues = dict(self.venues)
            self._venues_copied = True
        assert isinstance(self.venues, dict)
        self.venues[name] = status

    def notify(self, level: Level, code: str, message: str) -> None:
        self.commands.append(
            Notify(command_id=self.next_id(), level=level, code=code, message=message)
        )

    def find(self, venue: str, cloid: str | None, venue_order_id: str | None) -> Order | None:
        if cloid is not None:
            order = self.orders.get(cloid)
            if order is not None:
                return order
        if venue_order_id is not None:
            found = self.venue_oids.get((venue, venue_order_id))
            if found is not None:
                return self.orders.get(found)
        return None

    # --- order lifecycle ---------------------------------------------------------------------------

    def move(
        self,
        order: Order,
        trigger: Trigger,
        *,
        fill: Fill | None = None,
        detail: str = "",
        quiet: bool = False,
        **updates: Any,
    ) -> Order:
        """Apply ``trigger`` (and field ``updates``) to ``order``; record the change."""
        before = self.orders.get(order.cloid)
        changed = {k: v for k, v in updates.items() if getattr(order, k) != v}
        filled = changed.get("filled_qty", order.filled_qty)
        target, effect = transition(order, trigger, filled_qty=filled)
        if target is order.status and not changed and effect is Effect.NONE and order is before:
            return order  # nothing moved: a repeated ack or a report that agrees
        reserved = changed.pop("reserved", order.reserved)
        if target.is_terminal and reserved:
            self.release(order.venue, reserved)
            reserved = ZERO
        after = attrs.evolve(
            order, **changed, status=target, updated_ts=self.now, reserved=reserved
        )
        self.put_order(after)
        if not quiet and (before is None or before != after):
            self.changes.append(OrderChange(before=before, after=after, fill=fill))
        if effect is Effect.ANOMALY:
            self.notify(
                Level.WARNING,
                "order_anomaly",
                f"order {order.cloid}: {trigger.name} while {order.status.name}"
                f"{f' ({detail})' if detail else ''}; venue status requested",
            )
        if effect is not Effect.NONE and after.is_live:
            self.request_status(after)
        elif effect is not Effect.NONE:
            self.request_once("fills", order.venue)
        return after

    def release(self, venue: str, amount: Decimal) -> None:
        reserved = dict(self.risk.reserved)
        left = CTX.subtract(reserved.get(venue, ZERO), amount)
        reserved[venue] = left if left > 0 else ZERO
        self.risk = attrs.evolve(self.risk, reserved=reserved)

    def request_status(self, order: Order) -> None:
        if self.orders[order.cloid].status_requested:
            return
        cid = self.next_id()
        self.put_order(attrs.evolve(self.orders[order.cloid], status_requested=True))
        self.commands.append(
            RequestOrderStatus(
                command_id=cid,
                venue=order.venue,
                symbol=order.symbol,
                cloid=order.cloid,
                venue_order_id=order.venue_order_id,
            )
        )
        self.track(
            cid, Inflight(kind="status", venue=order.venue, cloid=order.cloid, sent_ts=self.now)
        )

    def fills_since(self, venue: str) -> int:
        """Where a fills request starts: before the last fill seen and before the previous
        answered request, by the overlap (see :mod:`gridcore.sync`)."""
        checked = self.venue(venue).fills_checked
        last = self.ledger.last_fill_ts.get(venue, self.base.epoch)
        start = min(last, checked) if checked >= 0 else last
        return max(start - self.config.fill_overlap_ms, 0)

    def request_once(self, kind: str, venue: str) -> int | None:
        """Send a ``kind`` request to ``venue`` unless one is out already."""
        for flight in self.inflight.values():
            if flight.kind == kind and flight.venue == venue:
                return None
        return self.request(kind, venue)

    def request(self, kind: str, venue: str) -> int:
        cid = self.next_id()
        cmd: Command
        if kind == "fills":
            cmd = RequestFills(command_id=cid, venue=venue, since=self.fills_since(venue))
        elif kind == "open_orders":
            cmd = RequestOpenOrders(command_id=cid, venue=venue)
        elif kind == "positions":
            cmd = RequestPositions(command_id=cid, venue=venue)
        elif kind == "balances":
            cmd = RequestBalances(command_id=cid, venue=venue)
        else:  # pragma: no cover - internal contract
            raise ContractError(f"unknown request kind {kind!r}")
        self.commands.append(cmd)
        self.track(cid, Inflight(kind=kind, venue=venue, sent_ts=self.now))
        return cid

    def apply_fill(self, fill: Fill, venue_says_done: bool) -> None:
        # Keep in step with fill_refusal, which the invariant catalogue asks.
        if not self.known_venue(fill.venue, f"fill {fill.fill_id}"):
            return
        rules = self.config.plausibility
        if fill.ts - self.now > rules.max_clock_lead_ms:
            # The fill's time feeds "fills since" requests and the dedup watermark: a far-future
            # one would make every later fill look already seen. Book it as of the clock.
            self.notify(
                Level.WARNING,
                "clock_ahead",
                f"fill {fill.fill_id} stamped {fill.ts} is ahead of the core's clock {self.now}; "
                f"booked as of the clock",
            )
            fill = attrs.evolve(fill, ts=self.now)
        if self.ledger.has_seen(fill):
            return  # applied already: a replayed or duplicated fill changes nothing (`double-counted-fill`)
        order = self.find(fill.venue, fill.cloid, fill.venue_order_id)
        quote = self.quotes.get((fill.venue, fill.symbol))
        reference = quote.mid if quote is not None else order.price if order is not None else None
        if fill_implausible(fill.price, reference, rules.max_fill_deviation):
            # Booking it would poison average entry, PnL and the drawdown check: stop trading,
            # say so, and let reconciliation settle the position with the venue's report.
            self.notify(
                Level.ALERT,
                "implausible_fill",
                f"fill {fill.fill_id} ({fill.side.value} {fill.qty} {fill.venue}/{fill.symbol} @ "
                f"{fill.price}) is more than {rules.max_fill_deviation}x from {reference}; not "
                f"booked",
            )
            self.halt(
                HaltCause.POISON,
                f"implausible fill {fill.fill_id} @ {fill.price} (reference {reference})",
            )
            self.request_once("fills", fill.venue)
            self.request_once("positions", fill.venue)
            return
        ledger = self.ledger.apply_fill(fill)
        if ledger is None:  # pragma: no cover - has_seen said no
            return
        self.ledger = ledger
        if order is None:
            self.notify(
                Level.WARNING,
                "unknown_fill",
                f"fill {fill.fill_id} ({fill.side.value} {fill.qty} {fill.symbol} @ {fill.price}) "
                f"for an order the core does not track; applied to the ledger",
            )
            self.check_drawdown()
            return
        filled = CTX.add(order.filled_qty, fill.qty)
        complete = filled >= order.qty
        if filled > order.qty:
            self.notify(
                Level.ALERT,
                "overfill",
                f"order {order.cloid} filled {filled} of {order.qty}; applied as reported",
            )
        trigger = Trigger.FILL_COMPLETE if complete or venue_says_done else Trigger.FILL_PARTIAL
        vo = order.venue_order_id or fill.venue_order_id
        self.move(order, trigger, fill=fill, filled_qty=filled, venue_order_id=vo)
        if venue_says_done and not complete:
            # The venue says done but fills are missing here: fetch them (`missed-fills-on-reconnect`).
            self.request_once("fills", order.venue)
        self.check_drawdown()

    # --- risk --------------------------------------------------------------------------------------

    def check_drawdown(self) -> None:
        """Track, per settlement currency, the peak of net PnL and the worst fall from it; halt
        when the fall in any one currency reaches ``max_drawdown`` (in that currency: amounts
        in different currencies are never added)."""
        limit = self.config.risk.max_drawdown
        primary = self.config.currencies[0] if self.config.currencies else ""
        for currency, pnl in _pnl_by_currency(self.ledger, self.quotes, self.config).items():
            risk = self.risk
            peak = risk.peaks.get(currency)
            if peak is None:  # a state saved before currencies kept only the first one's
                peak = risk.peak_pnl if currency == primary else ZERO
            if pnl > peak:
                self.risk = attrs.evolve(
                    risk,
                    peaks={**risk.peaks, currency: pnl},
                    peak_pnl=pnl if currency == primary else risk.peak_pnl,
                )
                continue
            fall = CTX.subtract(peak, pnl)
            worst = risk.drawdowns.get(currency)
            if worst is None:
                worst = risk.worst_drawdown if currency == primary else ZERO
            if fall > worst:
                self.risk = attrs.evolve(
                    risk,
                    drawdowns={**risk.drawdowns, currency: fall},
                    worst_drawdown=fall if currency == primary else risk.worst_drawdown,
                )
            if limit is not None and fall >= limit and self.may_halt():
                self.halt(
                    HaltCause.DRAWDOWN,
                    f"drawdown {format_money(fall, currency)} {currency} reached max_drawdown "
                    f"{format_money(limit, currency)} {currency}",
                )

    def error(self, what: str) -> None:
        # One per failed order/request command, batched or not: how a shell groups orders into
        # requests must not change when the breaker trips.
        streak = self.risk.error_streak + 1
        self.risk = attrs.evolve(self.risk, error_streak=streak)
        if streak >= self.config.risk.max_error_streak and self.may_halt():
            self.halt(HaltCause.ERROR_STREAK, f"{streak} errors in a row (last: {what})")

    def ok(self) -> None:
        if self.risk.error_streak:
            self.risk = attrs.evolve(self.risk, error_streak=0)

    def may_halt(self) -> bool:
        """True when a breaker that trips now must halt: trading is not halted, or is halted
        for a cause a restart would lift (the stricter cause then replaces it)."""
        return not self.risk.halted or self.risk.resumes_on_restart

    def halt(self, cause: HaltCause, reason: str) -> None:
        """Stop adding exposure (see :mod:`gridcore.halts`): record why, cancel the orders that
        could add exposure, keep the ones that close or offset it."""
        risk = self.risk
        if risk.halted:
            current = risk.halt_cause
            if current is not None and current is not cause and stricter(current, cause):
                self.risk = attrs.evolve(risk, halt_cause=cause, halt_reason=reason)
                self.notify(Level.ALERT, "halted", f"still halted, now for: {reason}")
            if POLICIES[cause].cancels_every_order:
                self.cancel_all(every=True)
            return
        self.risk = attrs.evolve(risk, halted=True, halt_reason=reason, halt_cause=cause)
        every = POLICIES[cause].cancels_every_order
        self.commands.append(Halt(command_id=self.next_id(), reason=reason))
        # The notice is named and placed before the cancels, and says what they left.
        notice_id, at = self.next_id(), len(self.commands)
        kept = self.cancel_all(every=every)
        text = f"trading halted: {reason}; open orders canceled"
        if kept:
            text += f" except {kept} that close or offset exposure"
        self.commands.insert(
            at, Notify(command_id=notice_id, level=Level.ALERT, code="halted", message=text)
        )

    def cancel_all(self, *, every: bool = False) -> int:
        """Cancel every live order that could add exposure (``every``: every live order), and
        say how many live orders were kept. Closing orders (reduce-only, or a hedge-mode close)
        and orders that offset a held position (a hedge leg) stay: canceling them would leave
        more risk, not less (:mod:`gridcore.exposure`)."""
        adding: list[Order] = []
        kept = 0
        for cloid in self.live:
            order = self.orders[cloid]
            if order.status is OrderStatus.PENDING_CANCEL:
                continue
            if every or not closes_exposure(order.side, order.position_side, order.reduce_only):
                adding.append(order)
            else:
                kept += 1
        if every or not adding:
            for order in adding:
                self.cancel(order.cloid)
            return kept
        by_key = self.config.by_key
        assets = {key: asset_of(i) for key, i in by_key.items()}
        holdings: dict[str, Decimal] = {}
        for (venue, symbol, _side), pos in self.ledger.positions.items():
            asset = assets.get((venue, symbol))
            if asset is not None and pos.qty:
                holdings[asset] = CTX.add(holdings.get(asset, ZERO), pos.qty)
        keep = offsetting_orders(
            (
                (o.cloid, (o.venue, o.symbol), o.side, o.remaining)
                for o in adding
                if o.position_side is PositionSide.BOTH
            ),
            holdings,
            assets,
        )
        for order in adding:
            if order.cloid not in keep:
                self.cancel(order.cloid)
        return kept + len(keep)

    # --- intents -----------------------------------------------------------------------------------

    def run_intents(self, intents: Sequence[Intent]) -> None:
        for intent in intents:
            if type(intent) is Submit:
                if intent.ref is not None:
                    self.needs_stimuli(intent)
                self.submit(intent)
            elif type(intent) is Cancel:
                self.cancel(intent.cloid)
            elif type(intent) is Say:
                self.notify(intent.level, intent.code, intent.message)
            elif type(intent) is Modify:
                self.needs_stimuli(intent)
                self.modify(intent)
            elif type(intent) is SetTimer:
                self.set_timer(intent)
            elif type(intent) is ClearTimer:
                self.clear_timer(intent.name)
            elif type(intent) is Refresh:
                self.needs_stimuli(intent)
                self.refresh(intent)
            else:
                raise ContractError(f"a strategy returned {intent!r}, which is not an Intent")

    def needs_stimuli(self, intent: Intent) -> None:
        if not callable(getattr(self.strategy, "on_stimulus", None)):
            raise ContractError(
                f"{type(self.strategy).__name__} returned {intent!r}, whose outcome may arrive "
                f"as a stimulus, but has no on_stimulus(view, stimulus) method; define it "
                f"(see docs/strategy-api.md) so that a refusal is never lost"
            )

    def modify(self, intent: Modify) -> None:
        """A strategy's modify: checked, gated for any size increase, sent through the table."""
        order = self.orders.get(intent.cloid)
        ref = order.ref if order is not None else None

        def refused(code: str, message: str) -> None:
            self.stimuli.append(
                ModifyRefused(cloid=intent.cloid, ref=ref, code=code, message=message)
            )

        if order is None or order.status not in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED):
            where = "unknown" if order is None else order.status.value
            refused("not_modifiable", f"order {intent.cloid} is {where}; only a resting order")
            return
        if order.modify_to is not None:
            refused("not_modifiable", f"order {intent.cloid} has a modify out already")
            return
        price = order.price if intent.price is None else intent.price
        qty = order.qty if intent.qty is None else intent.qty
        if price == order.price and qty == order.qty:
            refused("no_change", f"order {intent.cloid} is already {qty} @ {price}")
            return
        if qty <= order.filled_qty:
            refused(
                "bad_qty",
                f"new size {qty} must exceed what is filled ({order.filled_qty}); cancel instead",
            )
            return
        vs = self.venue(order.venue)
        if not (vs.feed_up and vs.phase is SyncPhase.SYNCED):
            refused("not_ready", f"{order.venue} is {vs.phase.value}, feed up: {vs.feed_up}")
            return
        if self.risk.halted and not order.reduce_only:
            # A halt adds no exposure: only orders that can only reduce it may still be moved.
            refused("halted", f"trading is halted ({self.risk.halt_reason})")
            return
        instrument = self.config.instrument(order.venue, order.symbol)
        if not instrument.is_on_tick(price) or not instrument.is_on_lot(qty):
            refused(
                "bad_values",
                f"{qty} @ {price} is off the lot {instrument.lot_size} or tick "
                f"{instrument.tick_size}",
            )
            return
        extra = ZERO
        increase = qty - order.qty
        if increase > 0:
            # The increase is a new order as far as risk goes: same gate, same reservation.
            verdict = check_order(
                config=self.config.risk,
                risk=self.risk,
                ledger=self.ledger,
                orders=self.orders.values(),
                quotes=self.quotes,
                instrument=instrument,
                side=order.side,
                qty=increase,
                price=price,
                tif=order.tif,
                reduce_only=order.reduce_only,
                now=self.now,
            )
            if isinstance(verdict, Refusal):
                refused(verdict.code, verdict.message)
                if verdict.code == "stale_balance":
                    self.request_once("balances", order.venue)
                return
            extra = verdict
            if extra:
                reserved = dict(self.risk.reserved)
                reserved[order.venue] = CTX.add(reserved.get(order.venue, ZERO), extra)
                self.risk = attrs.evolve(self.risk, reserved=reserved)
        cid = self.next_id()
        self.move(
            order,
            Trigger.MODIFY_SENT,
            quiet=True,
            modify_to=(price, qty),
            modify_reserved=extra,
            reserved=CTX.add(order.reserved, extra),
        )
        self.order_commands.setdefault(order.venue, []).append(
            ModifyOrder(
                command_id=cid,
                venue=order.venue,
                symbol=order.symbol,
                cloid=order.cloid,
                venue_order_id=order.venue_order_id,
                price=price,
                qty=qty,
            )
        )
        self.track(
            cid, Inflight(kind="modify", venue=order.venue, cloid=order.cloid, sent_ts=self.now)
        )

    def modify_failed(self, order: Order, code: str, reason: str, *, release: bool = True) -> None:
        """The modify out for ``order`` did not happen (or, ``release=False``, may have: then the
        reservation of its increase is kept until the order ends)."""
        if order.modify_to is None:
            return
        price, qty = order.modify_to
        # Give back what the increase reserved (a terminal order released everything already).
        extra = min(order.modify_reserved, order.reserved) if release else ZERO
        if extra:
            self.release(order.venue, extra)
        self.move(
            order,
            Trigger.MODIFY_REJECTED,
            quiet=True,
            modify_to=None,
            modify_reserved=ZERO,
            reserved=CTX.subtract(order.reserved, extra),
        )
        self.stimuli.append(
            ModifyRefused(
                cloid=order.cloid,
                ref=order.ref,
                code=code,
                message=f"modify of {order.cloid} to {qty} @ {price}: {reason}",
            )
        )

    def set_timer(self, intent: SetTimer) -> None:
        if intent.every_ms is not None and intent.every_ms <= 0:
            raise ContractError(f"{intent!r}: every_ms must be > 0 ms or None")
        self.desk = attrs.evolve(
            self.desk, timers={**self.desk.timers, intent.name: (intent.fire_at, intent.every_ms)}
        )
        self.commands.append(
            StartTimer(
                command_id=self.next_id(),
                timer_id=strategy_timer_id(intent.name),
                fire_at=intent.fire_at,
                every_ms=intent.every_ms,
            )
        )

    def clear_timer(self, name: str) -> None:
        if name not in self.desk.timers:
            return
        timers = {k: v for k, v in self.desk.timers.items() if k != name}
        self.desk = attrs.evolve(self.desk, timers=timers)
        self.commands.append(
            CancelTimer(command_id=self.next_id(), timer_id=strategy_timer_id(name))
        )

    def strategy_timer(self, name: str, ts: int) -> None:
        armed = self.desk.timers.get(name)
        if armed is None:
            return  # cleared while the fire was on its way (or not ours): never delivered
        fire_at, every = armed
        if every is None:
            timers = {k: v for k, v in self.desk.timers.items() if k != name}
        else:
            timers = {**self.desk.timers, name: (max(fire_at, ts) + every, every)}
        self.desk = attrs.evolve(self.desk, timers=timers)
        self.tell_strategy("on_timer", name)

    def refresh(self, intent: Refresh) -> None:
        if intent.venue not in self.config.venues:
            self.stimuli.append(
                RefreshFailed(
                    venue=intent.venue,
                    what=intent.what,
                    asked_ts=self.now,
                    reason=f"venue {intent.venue!r} is not configured",
                )
            )
            return
        # Always a new request: one already out may have been answered at the venue before
        # this decision was made, and only a report newer than the request may answer it.
        cid = (
            None
            if intent.what is RefreshKind.FUNDING
            else self.request(intent.what.value, intent.venue)
        )
        pending = PendingRefresh(
            venue=intent.venue, what=intent.what, asked_ts=self.now, command_id=cid
        )
        self.desk = attrs.evolve(self.desk, refreshes=(*self.desk.refreshes, pending))

    def answer_refreshes(
        self, venue: str, what: RefreshKind, command_id: int | None, report_ts: int
    ) -> None:
        if not self.desk.refreshes:
            return
        self.desk, done = self.desk.answered(venue, what, command_id, report_ts)
        for p in done:
            self.stimuli.append(
                Refreshed(venue=venue, what=what, asked_ts=p.asked_ts, report_ts=report_ts)
            )

    def report_to_strategy(self, event: Event) -> None:
        self.tell_strategy("on_event", event)

    def refuse(self, code: str, message: str) -> None:
        text = f"order refused ({code}): {message}"
        if self.risk.last_refusal != text:
            self.notify(Level.WARNING, f"refused:{code}", text)
            self.risk = attrs.evolve(self.risk, last_refusal=text)

    def submit(self, intent: Submit) -> str | None:
        instrument = self.config.instrument(intent.venue, intent.symbol)
        vs = self.venue(intent.venue)
        # A venue that reconciles still takes closing orders (they cannot add exposure, whatever
        # the reconciliation finds); a venue whose feed is down takes none.
        if not vs.feed_up or (
            vs.phase is not SyncPhase.SYNCED
            and not closes_exposure(intent.side, intent.position_side, intent.reduce_only)
        ):
            self.refuse("not_ready", f"{intent.venue} is {vs.phase.value}, feed up: {vs.feed_up}")
            if intent.ref is not None:
                self.submit_refused(
                    intent,
                    "not_ready",
                    f"{intent.venue} is {vs.phase.value}, feed up: {vs.feed_up}",
                )
            return None
        verdict = check_order(
            config=self.config.risk,
            risk=self.risk,
            ledger=self.ledger,
            orders=self.orders.values(),
            quotes=self.quotes,
            instrument=instrument,
            side=intent.side,
            qty=intent.qty,
            price=intent.price,
            tif=intent.tif,
            reduce_only=intent.reduce_only,
            now=self.now,
            position_side=intent.position_side,
        )
        if isinstance(verdict, Refusal):
            self.refuse(verdict.code, verdict.message)
            if intent.ref is not None:
                self.submit_refused(intent, verdict.code, verdict.message)
            if verdict.code == "stale_balance":
                self.request_once("balances", intent.venue)
            return None
        cid = self.next_id()
        cloid = f"0x{cloid_prefix(self.base.epoch, self.base.nonce):016x}{cid:016x}"
        order = Order(
            cloid=cloid,
            venue=intent.venue,
            symbol=intent.symbol,
            side=intent.side,
            position_side=intent.position_side,
            qty=intent.qty,
            price=intent.price,
            tif=intent.tif,
            reduce_only=intent.reduce_only,
            status=OrderStatus.PENDING_NEW,
            created_ts=self.now,
            updated_ts=self.now,
            tag=intent.tag,
            reserved=verdict,
            seq=cid,
            ref=intent.ref,
        )
        self.put_order(order)
        if intent.ref is not None:
            # Tell the strategy the cloid it got, in this very step.
            self.changes.append(OrderChange(before=None, after=order))
        if verdict:
            reserved = dict(self.risk.reserved)
            reserved[intent.venue] = CTX.add(reserved.get(intent.venue, ZERO), verdict)
            self.risk = attrs.evolve(self.risk, reserved=reserved)
        window_start = self.now - self.config.risk.velocity_window_ms
        recent = (*tuple(t for t in self.risk.recent_orders if t > window_start), self.now)
        self.risk = attrs.evolve(self.risk, recent_orders=recent, last_refusal="")
        self.order_commands.setdefault(intent.venue, []).append(
            PlaceOrder(
                command_id=cid,
                venue=intent.venue,
                symbol=intent.symbol,
                cloid=cloid,
                side=intent.side,
                position_side=intent.position_side,
                qty=intent.qty,
                price=intent.price,
                tif=intent.tif,
                reduce_only=intent.reduce_only,
            )
        )
        self.track(cid, Inflight(kind="place", venue=intent.venue, cloid=cloid, sent_ts=self.now))
        return cloid

    def submit_refused(self, intent: Submit, code: str, message: str) -> None:
        self.stimuli.append(
            SubmitRefused(
                ref=intent.ref, venue=intent.venue, symbol=intent.symbol, code=code, message=message
            )
        )

    def cancel(self, cloid: str) -> None:
        order = self.orders.get(cloid)
        # A cancel already on its way, or one the venue refused (its status request is what
        # resolves the order), is not sent again: a venue that refuses at once would otherwise
        # be asked again and again within one instant (failure `resync-loop`).
        if order is None or not order.is_live or order.status in _CANCEL_UNDER_WAY:
            return
        cid = self.next_id()
        self.move(order, Trigger.CANCEL_SENT, quiet=True)
        self.order_commands.setdefault(order.venue, []).append(
            CancelOrder(
                command_id=cid,
                venue=order.venue,
                symbol=order.symbol,
                cloid=cloid,
                venue_order_id=order.venue_order_id,
            )
        )
        self.track(cid, Inflight(kind="cancel", venue=order.venue, cloid=cloid, sent_ts=self.now))

    # --- strategy calls ----------------------------------------------------------------------------

    def tell_strategy(self, call: str, arg: object) -> None:
        view = self.snapshot()
        method = getattr(self.strategy, call)
        new, intents = method(view, arg)
        self.strategy = new
        if intents:
            self.run_intents(intents)

    def flush_changes(self) -> None:
        # What the strategy asked for itself (a cancel sent, a new order without a ref) is not
        # reported back to it; everything the venue or the kernel did is, in order, and so is
        # every stimulus (refusals, refresh answers).
        rounds = 0
        while self.changes or self.stimuli:
            rounds += 1
            if rounds > MAX_STRATEGY_ROUNDS:
                raise ContractError(
                    f"{type(self.strategy).__name__} kept answering what its own intents caused "
                    f"for {MAX_STRATEGY_ROUNDS} rounds in one step (a resubmit-on-refusal "
                    f"loop?); wait for a timer or the next event before trying again"
                )
            if self.changes:
                changes, self.changes = self.changes, []
                self.tell_strategy("on_changes", tuple(changes))
            else:
                stimulus = self.stimuli.pop(0)
                self.tell_strategy("on_stimulus", stimulus)

    # --- sync ----------------------------------------------------------------------------------

    def begin_sync(self, venue: str) -> None:
        vs = self.venue(venue)
        pending = frozenset(self.request(kind, venue) for kind in _REQUEST_KINDS)
        self.put_venue(
            venue,
            attrs.evolve(
                vs,
                phase=SyncPhase.SYNCING,
                pending=pending,
                attempts=0,
                syncs=vs.syncs + 1,
                last_reconcile=self.now,
            ),
        )

    def sync_result(self, venue: str, command_id: int | None) -> None:
        vs = self.venue(venue)
        if command_id is None or command_id not in vs.pending:
            return
        pending = vs.pending - {command_id}
        self.put_venue(venue, attrs.evolve(vs, pending=pending))
        if not pending and vs.phase is SyncPhase.SYNCING:
            # A completed round closes its cause: the next cause gets its own attempts.
            self.put_venue(
                venue, attrs.evolve(vs, pending=pending, phase=SyncPhase.SYNCED, attempts=0)
            )
            self.notify(Level.INFO, "synced", f"{venue} reconciled")
            self.flush_changes()
            self.tell_strategy("on_ready", venue)

    def sync_failure(self, flight: Inflight, command_id: int, reason: str) -> None:
        vs = self.venue(flight.venue)
        if command_id not in vs.pending:
            return
        if vs.attempts >= self.config.max_sync_attempts:
            # Give up this round (bounded: failure `resync-loop`) and say so; the venue is UNSYNCED, so
            # the next cause (a reconnect, the periodic round, a resume) starts a fresh one.
            self.put_venue(
                flight.venue, attrs.evolve(vs, pending=frozenset(), phase=SyncPhase.UNSYNCED)
            )
            self.halt(
                HaltCause.UNRECONCILED,
                f"{flight.venue} could not be reconciled: {flight.kind} request failed "
                f"{vs.attempts + 1} times (last: {reason})",
            )
            return
        again = self.request(flight.kind, flight.venue)
        self.put_venue(
            flight.venue,
            attrs.evolve(
                vs, pending=(vs.pending - {command_id}) | {again}, attempts=vs.attempts + 1
            ),
        )

    def on_positions(self, report: PositionsReported) -> None:
        venue = report.venue
        foreign = [p for p in report.positions if (venue, p.symbol) not in self.config.by_key]
        if foreign:
            # Not ours to reconcile: comparing them would "repair" a position the bot cannot
            # trade. (A fill on such an instrument is booked and reported as unknown_fill.)
            self.notify(
                Level.INFO,
                "foreign_position",
                f"{venue}: positions on instruments not configured, left alone: "
                + ", ".join(f"{p.symbol} {p.position_side.value} {p.qty}" for p in foreign),
            )
            report = attrs.evolve(
                report,
                positions=tuple(
                    p for p in report.positions if (venue, p.symbol) in self.config.by_key
                ),
            )
        for p in report.positions:
            key = (venue, p.symbol, p.position_side)
            held = self.ledger.positions.get(key)
            if held is not None and held.qty == p.qty and held.avg_entry != p.entry_price:
                self.ledger = self.ledger.realign(key, p.entry_price)
        drift = position_drift(venue, self.ledger, report, self.config.by_key)
        vs = self.venue(venue)
        if not drift:
            if vs.drift:
                # The drift was explained (a fill arrived): its re-checks no longer count.
                attempts = 0 if vs.phase is SyncPhase.SYNCED else vs.attempts
                self.put_venue(venue, attrs.evolve(vs, drift={}, attempts=attempts))
            return
        by_key = {(venue, p.symbol, p.position_side): p for p in report.positions}
        unconfirmed: dict[PositionKey, tuple[Decimal, int, int]] = {}
        count = self.ledger.fill_count
        for key, diff in sorted(drift.items(), key=lambda kv: (kv[0][1], kv[0][2].value)):
            seen = vs.drift.get(key)
            same = seen is not None and seen[0] == diff and seen[1] == count
            # Confirmed: the same difference, no fill applied since, and a fills request sent
            # after it was first seen has been answered (a fill on its way explains a drift
            # until then; adopting early would count that fill twice).
            confirmed = same and seen is not None and vs.fills_checked >= seen[2]
            if confirmed:
                reported = by_key.get(key)
                qty = reported.qty if reported is not None else ZERO
                entry = reported.entry_price if reported is not None else ZERO
                ours = self.ledger.position(*key).qty
                self.ledger = self.ledger.adopt(key, qty, entry)
                self.notify(
                    Level.ALERT,
                    "position_drift_repaired",
                    f"{key[0]}/{key[1]} {key[2].value}: ledger had {ours}, venue has {qty}; "
                    f"adopted the venue's position",
                )
            else:
                first_seen = seen[2] if same and seen is not None else self.now
                unconfirmed[key] = (diff, count, first_seen)
        if not unconfirmed:
            self.put_venue(venue, attrs.evolve(self.venue(venue), drift={}))
            self.check_drawdown()
            return
        vs = self.venue(venue)
        described = ", ".join(f"{k[1]} {k[2].value} {d}" for k, (d, _, _) in unconfirmed.items())
        in_flight = {f.kind for f in self.inflight.values() if f.venue == venue}
        extra: set[int] = set()
        attempts = vs.attempts
        if "fills" in in_flight:
            # The fill that explains the difference may be in that answer: wait for it, and
            # make sure a positions request follows it to look again. Not a new attempt.
            if "positions" not in in_flight:
                extra.add(self.request("positions", venue))
        elif attempts < self.config.max_sync_attempts:
            extra = {self.request("fills", venue), self.request("positions", venue)}
            attempts += 1
        else:
            # Never adopt a difference a fill on its way may explain (that fill would then be
            # counted twice); stop and say so. The next cause starts a fresh round.
            self.put_venue(
                venue,
                attrs.evolve(vs, drift=unconfirmed, phase=SyncPhase.UNSYNCED, pending=frozenset()),
            )
            self.halt(
                HaltCause.UNRECONCILED,
                f"{venue}: positions differ from the ledger by {described} after "
                f"{attempts} re-checks",
            )
            return
        self.notify(
            Level.WARNING,
            "position_drift",
            f"{venue}: positions differ from the ledger by {described}; "
            f"re-checking fills and positions",
        )
        self.put_venue(
            venue,
            attrs.evolve(
                vs,
                drift=unconfirmed,
                phase=SyncPhase.SYNCING,
                pending=vs.pending | extra,
                attempts=attempts,
            ),
        )

    def on_open_orders(self, report: OpenOrdersReported, flight: Inflight | None) -> None:
        venue = report.venue
        listed: set[str] = set()
        for reported in report.orders:
            order = self.find(venue, reported.cloid, reported.venue_order_id)
            if order is None:
                self.adopt_unknown(venue, reported)
                continue
            listed.add(order.cloid)
            if not order.is_live and report.ts <= order.updated_ts:
                continue  # taken before the order ended: stale, not news
            if reported.filled_qty > order.filled_qty:
                self.request_once("fills", venue)
            self.move(order, Trigger.REPORT_OPEN, venue_order_id=reported.venue_order_id)
        if report.command_id is None or flight is None:
            return  # a pushed snapshot: we cannot tell which of our orders it predates
        asked_at = report.command_id
        for cloid, seq in list(self.live.items()):
            if seq < asked_at and cloid not in listed:
                order = self.orders[cloid]
                if order.venue == venue:
                    self.move(order, Trigger.MISSING_FROM_OPEN)

    def adopt_unknown(self, venue: str, reported: Any) -> None:
        known = (venue, reported.symbol) in self.config.by_key
        if not (known and self.config.cancel_unknown_orders):
            self.notify(
                Level.INFO,
                "foreign_order",
                f"{venue}: order {reported.venue_order_id} ({reported.symbol}) is not ours; left alone",
            )
            return
        cloid = reported.cloid or f"{venue}:{reported.venue_order_id}"
        order = Order(
            cloid=cloid,
            venue=venue,
            symbol=reported.symbol,
            side=reported.side,
            position_side=reported.position_side,
            qty=reported.qty,
            price=reported.price,
            tif=TimeInForce.GTC,
            reduce_only=False,
            status=OrderStatus.OPEN,
            created_ts=self.now,
            updated_ts=self.now,
            tag="orphan",
            filled_qty=reported.filled_qty,
            venue_order_id=reported.venue_order_id,
            seq=self.seq,
        )
        self.put_order(order)
        self.notify(
            Level.WARNING,
            "orphan_order",
            f"{venue}: resting order {cloid} on {reported.symbol} is unknown to the core; canceling",
        )
        self.cancel(cloid)

    # --- events ------------------------------------------------------------------------------------

    def believe_quote(self, tick: QuoteTicked) -> bool:
        """Whether to store ``tick`` and show it to the strategy (:mod:`gridcore.plausibility`)."""
        key = (tick.venue, tick.symbol)
        if key not in self.config.by_key:
            self.notify(
                Level.INFO,
                "unknown_instrument",
                f"quote for {tick.venue}/{tick.symbol}, which is not configured; ignored",
            )
            return False
        rules = self.config.plausibility
        suspects = self.suspect_quotes
        last = self.quotes.get(key)
        if last is None or not quote_jumped(
            last.bid, last.ask, tick.bid, tick.ask, rules.max_quote_jump
        ):
            return True
        seen = suspects.get(key)
        agreeing = (
            seen is not None
            and seen[2] is last  # in a row: nothing accepted since
            and not quote_jumped(seen[0].bid, seen[0].ask, tick.bid, tick.ask, rules.max_quote_jump)
        )
        count = seen[1] + 1 if seen is not None and agreeing else 1
        if count >= rules.quote_confirmations:
            self.suspect_quotes = {k: v for k, v in suspects.items() if k != key}
            self.notify(
                Level.ALERT,
                "quote_jump_accepted",
                f"{tick.venue}/{tick.symbol}: {count} quotes in a row agree on {tick.bid}/"
                f"{tick.ask}, more than {rules.max_quote_jump}x from the last accepted "
                f"{last.bid}/{last.ask}; the market moved, accepted",
            )
            return True
        self.suspect_quotes = {**suspects, key: (tick, count, last)}
        self.notify(
            Level.WARNING,
            "implausible_quote",
            f"{tick.venue}/{tick.symbol}: quote {tick.bid}/{tick.ask} at {tick.ts} is more than "
            f"{rules.max_quote_jump}x from the last accepted {last.bid}/{last.ask}; refused "
            f"({count} of {rules.quote_confirmations} needed to believe it)",
        )
        return False

    def known_venue(self, venue: str, what: str) -> bool:
        if venue in self.config.venues:
            return True
        self.notify(
            Level.WARNING,
            "unknown_venue",
            f"{what} from venue {venue!r}, which is not configured "
            f"({', '.join(self.config.venues)}); ignored",
        )
        return False

    def dispatch(self, event: Event) -> None:
        if type(event) in _VENUE_SCOPED and not self.known_venue(
            getattr(event, "venue", ""), type(event).__name__
        ):
            return
        match event:
            case QuoteTicked():
                if self.believe_quote(event):
                    quotes = dict(self.quotes)
                    quotes[(event.venue, event.symbol)] = event
                    self.quotes = quotes
                    decision = self.strategy.on_tick(self.snapshot(), event)
                    if decision is not None:
                        self.strategy = decision[0]
                        self.run_intents(decision[1])
            case Started():
                previous = sorted(self.inflight)
                self.commands.append(
                    StartTimer(
                        command_id=self.next_id(),
                        timer_id=MAINTENANCE_TIMER,
                        fire_at=self.now + self.config.maintenance_ms,
                        every_ms=self.config.maintenance_ms,
                    )
                )
                for venue in self.config.venues:
                    self.put_venue(venue, attrs.evolve(self.venue(venue), feed_up=True))
                    self.begin_sync(venue)
                # The shell's timers died with the previous run: arm the strategy's again.
                for name, (fire_at, every) in self.desk.timers.items():
                    self.commands.append(
                        StartTimer(
                            command_id=self.next_id(),
                            timer_id=strategy_timer_id(name),
                            fire_at=max(fire_at, self.now),
                            every_ms=every,
                        )
                    )
                # A restart: whatever was in flight when the previous run stopped has an unknown
                # outcome. Resolve it like a timeout (orders go in doubt and get a status
                # request); never send it again.
                for cid in previous:
                    self.command_failed(CommandTimedOut(ts=event.ts, command_id=cid), count=False)
            case TimerFired():
                if event.timer_id.startswith(STRATEGY_TIMER_PREFIX):
                    self.strategy_timer(event.timer_id[len(STRATEGY_TIMER_PREFIX) :], event.ts)
                else:
                    if event.timer_id == MAINTENANCE_TIMER:
                        self.maintenance()
                    self.tell_strategy("on_timer", event.timer_id)
            case FeedDisconnected():
                self.put_venue(event.venue, attrs.evolve(self.venue(event.venue), feed_up=False))
                self.notify(Level.WARNING, "feed_down", f"{event.venue} feed down: {event.reason}")
            case FeedReconnected():
                vs = self.venue(event.venue)
                self.put_venue(event.venue, attrs.evolve(vs, feed_up=True))
                if vs.phase is SyncPhase.SYNCING and vs.pending:
                    # Already reconciling: the requests out may predate the gap this reconnect
                    # closes, so one more fills request joins the round. A reconnect is a cause
                    # from outside, so this cannot loop on itself (failure `resync-loop`).
                    again = self.request("fills", event.venue)
                    self.put_venue(
                        event.venue,
                        attrs.evolve(vs, feed_up=True, pending=vs.pending | {again}),
                    )
                else:
                    self.begin_sync(event.venue)
            case MessageMalformed():
                self.notify(
                    Level.WARNING,
                    "malformed_message",
                    f"{event.venue}: unreadable {event.source.value} message ({event.detail}); "
                    f"reconciling in case it mattered",
                )
                self.error("malformed message")
                if self.venue(event.venue).phase is SyncPhase.SYNCED:
                    self.begin_sync(event.venue)
            case HaltRequested():
                cause = event.cause or cause_of_reason(event.reason)
                self.halt(cause, event.reason)
            case ResumeRequested():
                self.resume()
            case FlattenRequested():
                self.flatten()
            case FundingRateUpdated():
                self.tell_strategy("on_event", event)
                self.answer_refreshes(event.venue, RefreshKind.FUNDING, None, event.ts)
            case FundingPaid():
                ledger = self.ledger.apply_funding(
                    event.venue,
                    event.symbol,
                    event.position_side,
                    event.amount,
                    event.payment_id,
                    event.ts,
                )
                if ledger is not None:
                    self.ledger = ledger
                    self.check_drawdown()
                    self.tell_strategy("on_event", event)
            case OrderAccepted():
                self.resolve(event.command_id)
                self.ok()
                order = self.find(event.venue, event.cloid, event.venue_order_id)
                if order is None:
                    self.notify(Level.INFO, "unknown_order", f"ack for unknown order {event.cloid}")
                else:
                    self.move(order, Trigger.ACCEPTED, venue_order_id=event.venue_order_id)
            case OrderRejected():
                self.resolve(event.command_id)
                self.error(f"order rejected: {event.reason}")
                order = self.find(event.venue, event.cloid, None)
                if order is not None:
                    self.notify(
                        Level.WARNING,
                        "order_rejected",
                        f"{event.venue} rejected {event.cloid}: {event.reason}",
                    )
                    self.move(order, Trigger.REJECTED, detail=event.reason)
            case OrderPartiallyFilled():
                self.apply_fill(event.fill, venue_says_done=False)
            case OrderFilled():
                self.apply_fill(event.fill, venue_says_done=True)
            case OrderCanceled():
                self.resolve(event.command_id)
                order = self.find(event.venue, event.cloid, event.venue_order_id)
                if order is not None:
                    self.move(order, Trigger.CANCELED)
            case CancelRejected():
                self.resolve(event.command_id)
                order = self.find(event.venue, event.cloid, None)
                if order is not None:
                    self.move(order, Trigger.CANCEL_REJECTED, detail=event.reason)
            case OrderModified():
                flight = self.resolve(event.command_id)
                order = self.find(event.venue, event.cloid, None)
                asked = flight is not None and flight.kind == "modify"
                if order is None or not order.is_live:
                    pass
                elif asked and order.modify_to == (event.price, event.qty):
                    self.ok()
                    self.move(
                        order,
                        Trigger.MODIFIED,
                        price=event.price,
                        qty=event.qty,
                        modify_to=None,
                        modify_reserved=ZERO,
                        venue_order_id=event.venue_order_id or order.venue_order_id,
                    )
                elif not asked or event.qty <= order.filled_qty:
                    # An amendment the core did not ask for is no longer the order the
                    # strategy decided (it may cross the grid), and one below what is filled
                    # would leave a live order with nothing remaining: neither is believed.
                    # The order is canceled (which only reduces exposure) and its status asked.
                    self.notify(
                        Level.WARNING,
                        "order_anomaly",
                        f"order {order.cloid}: {'unrequested ' if not asked else ''}amendment to "
                        f"{event.qty} @ {event.price} (filled {order.filled_qty}); not applied, "
                        f"canceling",
                    )
                    self.cancel(order.cloid)
                else:
                    # Asked for, but not the values asked: the venue is the truth.
                    self.ok()
                    self.move(
                        order,
                        Trigger.MODIFIED,
                        price=event.price,
                        qty=event.qty,
                        modify_to=None,
                        modify_reserved=ZERO,
                        venue_order_id=event.venue_order_id or order.venue_order_id,
                    )
            case ModifyRejected():
                self.resolve(event.command_id)
                order = self.find(event.venue, event.cloid, None)
                if order is not None:
                    self.modify_failed(order, "rejected", f"{event.venue} refused: {event.reason}")
            case OrderStatusReported():
                self.resolve(event.command_id)
                self.ok()
                order = self.find(event.venue, event.cloid, event.venue_order_id)
                if order is not None and not (not order.is_live and event.ts <= order.updated_ts):
                    if event.filled_qty > order.filled_qty:
                        self.request_once("fills", event.venue)
                    self.move(
                        order,
                        _REPORTED_TRIGGER[event.status],
                        status_requested=False,
                        venue_order_id=order.venue_order_id or event.venue_order_id,
                    )
            case OpenOrdersReported():
                flight = self.resolve(event.command_id)
                self.ok()
                self.on_open_orders(event, flight)
                self.sync_result(event.venue, event.command_id)
                self.answer_refreshes(
                    event.venue, RefreshKind.OPEN_ORDERS, event.command_id, event.ts
                )
            case PositionsReported():
                self.resolve(event.command_id)
                self.ok()
                self.on_positions(event)
                self.sync_result(event.venue, event.command_id)
                self.report_to_strategy(event)
                self.answer_refreshes(
                    event.venue, RefreshKind.POSITIONS, event.command_id, event.ts
                )
            case BalanceReported():
                self.resolve(event.command_id)
                self.ok()
                balances = dict(self.risk.balances)
                balances[event.venue] = event
                self.risk = attrs.evolve(self.risk, balances=balances)
                reserved = self.risk.reserved.get(event.venue, ZERO)
                if reserved > event.equity and self.may_halt():
                    # The account no longer covers what open orders hold (a loss, a transfer
                    # out, or a bad report): stop adding exposure and cancel what rests.
                    self.halt(
                        HaltCause.MARGIN,
                        f"{event.venue} equity {event.equity} is below the {reserved} reserved "
                        f"by open orders",
                    )
                self.sync_result(event.venue, event.command_id)
                self.report_to_strategy(event)
                self.answer_refreshes(event.venue, RefreshKind.BALANCES, event.command_id, event.ts)
            case FillsReported():
                flight = self.resolve(event.command_id)
                self.ok()
                if flight is not None:
                    vs = self.venue(event.venue)
                    if flight.sent_ts > vs.fills_checked:
                        self.put_venue(event.venue, attrs.evolve(vs, fills_checked=flight.sent_ts))
                # In time order; within one millisecond, in the venue's own order (the sort is
                # stable), because fill ids need not sort the way the venue executed them.
                for fill in sorted(event.fills, key=lambda f: f.ts):
                    self.apply_fill(fill, venue_says_done=False)
                self.sync_result(event.venue, event.command_id)
                self.answer_refreshes(event.venue, RefreshKind.FILLS, event.command_id, event.ts)
            case CommandFailed() | CommandTimedOut():
                self.command_failed(event)
            case _:
                assert_never(event)
        self.flush_changes()

    def command_failed(self, event: CommandFailed | CommandTimedOut, *, count: bool = True) -> None:
        flight = self.resolve(event.command_id)
        if isinstance(event, CommandFailed):
            reason, not_applied = event.reason, event.not_applied
        else:
            reason, not_applied = "timed out", False
        if count:
            self.error(f"command {event.command_id} {reason}")
        if flight is None:
            return  # a result for a command we no longer track (duplicate or pre-recovery)
        order = self.orders.get(flight.cloid) if flight.cloid is not None else None
        if flight.kind == "place" and order is not None:
            self.move(
                order,
                Trigger.PLACE_FAILED if not_applied else Trigger.PLACE_UNCERTAIN,
                detail=reason,
            )
        elif flight.kind == "modify" and order is not None:
            if not_applied:
                self.modify_failed(order, "rejected", f"failed, not applied: {reason}")
            elif order.modify_to is not None:
                # Its size at the venue is unknown now: never guess, take it off the book.
                self.modify_failed(
                    order, "uncertain", f"outcome unknown ({reason}); canceling", release=False
                )
                self.cancel(order.cloid)
        elif flight.kind == "cancel" and order is not None:
            if order.is_live:
                self.move(order, Trigger.CANCEL_UNCERTAIN, detail=reason)
        elif flight.kind == "status" and order is not None:
            # Let maintenance ask again rather than hammering a failing venue now.
            self.put_order(attrs.evolve(order, status_requested=False))
        elif flight.kind in _REQUEST_KINDS:
            self.sync_failure(flight, event.command_id, reason)
            if self.desk.refreshes:
                self.desk, failed = self.desk.failed(event.command_id)
                for p in failed:
                    self.stimuli.append(
                        RefreshFailed(
                            venue=p.venue, what=p.what, asked_ts=p.asked_ts, reason=reason
                        )
                    )

    def resume(self) -> None:
        """Lift a halt as its cause's policy says (:data:`gridcore.halts.POLICIES`)."""
        risk = self.risk
        if not risk.halted:
            return
        policy = POLICIES[risk.halt_cause or HaltCause.OPERATOR]
        risk = attrs.evolve(risk, halted=False, halt_reason="", halt_cause=None, error_streak=0)
        if policy.resume_rearms_drawdown:
            pnls = _pnl_by_currency(self.ledger, self.quotes, self.config)
            primary = self.config.currencies[0] if self.config.currencies else ""
            risk = attrs.evolve(risk, peaks=pnls, peak_pnl=pnls.get(primary, ZERO))
        self.risk = risk
        self.notify(Level.INFO, "resumed", "trading resumed by the operator")
        for venue in self.config.venues:
            self.begin_sync(venue)

    def flatten(self) -> None:
        self.halt(HaltCause.FLATTEN, "flatten requested")
        for (venue, symbol, side), pos in sorted(
            self.ledger.positions.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2].value)
        ):
            if not pos.qty:
                continue
            instrument = self.config.by_key.get((venue, symbol))
            if instrument is None:
                # Without the instrument's filters no valid close can be built; the stop must
                # still close everything else, so say it loudly and carry on.
                self.notify(
                    Level.ALERT,
                    "flatten_blocked",
                    f"{venue}/{symbol} {side.value} position {pos.qty} is on an instrument the "
                    f"bot is not configured for; close it by hand",
                )
                continue
            quote = self.quotes.get((venue, symbol))
            if quote is None:
                self.notify(Level.ALERT, "flatten_blocked", f"no quote for {venue}/{symbol}")
                continue
            mid = quote.mid
            band = CTX.multiply(mid, self.config.risk.slippage_cap)
            close_side = Side.SELL if pos.qty > 0 else Side.BUY
            if close_side is Side.SELL:
                price = instrument.round_price(CTX.subtract(mid, band), Rounding.UP)
            else:
                price = instrument.round_price(CTX.add(mid, band), Rounding.DOWN)
            # Close exactly the ledger's base quantity, reduce-only (failure `rollback-in-quote`).
            self.submit(
                Submit(
                    venue=venue,
                    symbol=symbol,
                    side=close_side,
                    qty=abs(pos.qty),
                    price=price,
                    position_side=side,
                    tif=TimeInForce.IOC,
                    reduce_only=True,
                    tag="flatten",
                )
            )

    def maintenance(self) -> None:
        # The maintenance timer is periodic (started once, on Started): nothing to re-arm.
        # No order stays unresolved without a status request (failure `leaked-cancel`).
        for cloid in sorted(self.attention):
            self.request_status(self.orders[cloid])
        half_age = self.config.risk.max_balance_age_ms // 2
        for venue in self.config.venues:
            balance = self.risk.balances.get(venue)
            if balance is not None and self.now - balance.ts > half_age:
                self.request_once("balances", venue)
            vs = self.venue(venue)
            due = (
                self.config.reconcile_ms
                and self.now - vs.last_reconcile >= self.config.reconcile_ms
            )
            if due and vs.phase is SyncPhase.UNSYNCED and vs.feed_up:
                # A round that gave up is tried again once per period, never in a loop.
                self.begin_sync(venue)
            elif due and vs.phase is SyncPhase.SYNCED:
                # Background round: catches stream messages lost without a disconnect.
                self.put_venue(venue, attrs.evolve(vs, last_reconcile=self.now))
                self.request_once("fills", venue)
                self.request("open_orders", venue)
                self.request("positions", venue)
        self.check_drawdown()
        kept = self.config.terminal_orders_kept
        if self.done_orders > kept:
            # Prune down to half the allowance so that pruning (a copy) is rare.
            finished = sorted(
                (o for o in self.orders.values() if not o.is_live),
                key=lambda o: (o.updated_ts, o.seq),
            )
            self.drop_orders(o.cloid for o in finished[: self.done_orders - kept // 2])
