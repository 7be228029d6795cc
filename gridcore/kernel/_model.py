"""The kernel's values: configuration, state, intents and the strategy protocol.

Everything here is re-exported by :mod:`gridcore.core` (the public facade) and by
:mod:`gridcore`; import it from there. The rules that change these values live in the other
modules of :mod:`gridcore.kernel`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Generic, Protocol, Self, TypeVar

import attrs

from gridcore.api import ClearTimer, Desk, Modify, Refresh, SetTimer, Stimulus
from gridcore.commands import Level
from gridcore.errors import ConfigError, ContractError
from gridcore.events import BalanceReported, Event, Fill, QuoteTicked
from gridcore.instruments import Instrument, InstrumentKey, PositionSide, Side, TimeInForce
from gridcore.ledger import Ledger
from gridcore.lifecycle import Order
from gridcore.numbers import CTX, ZERO
from gridcore.plausibility import Plausibility
from gridcore.risk import RiskConfig, RiskState
from gridcore.sync import SyncPhase, VenueStatus

MAINTENANCE_TIMER = "gridcore:maintenance"
#: A timer the core never arms: a shell fires it when its own clock has moved on with nothing to
#: deliver, before a venue message stamped further ahead of the core's clock than
#: ``max_clock_lead_ms``, so that a gap in the data moves the clock (and runs the housekeeping
#: that fell due) instead of making that message look ahead of it (failure `idle-time-cost`).
CLOCK_TIMER = "gridcore:clock"


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
        """``venue`` finished reconciling (or trading resumed): rebuild from the state.

        Also called when a cause that refused an order on ``venue`` has passed by itself: the
        balance report that answers a ``stale_balance`` refusal, and the first accepted quote
        the risk gate would price from after a ``no_quote`` or ``stale_quote`` refusal of an
        order on one of its instruments (once; failure `silent-quote-refusal`). Either comes
        whether the order was submitted with a ``ref`` or without one (a refusal the strategy
        was never told of), or was a modify's increase; see :mod:`gridcore.kernel._requests`."""
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
    (:mod:`gridcore.plausibility`). ``funding_drift_tolerance`` is the fraction a funding
    payment may differ from the expected one (rate × position × mark) before it is reported as
    drift; ``funding_mark_window_ms`` how close to the payment's time the last quote must be for
    the core to price it (:mod:`gridcore.kernel._funding`); ``funding_reconcile_ms`` how much
    data time passes between the periodic rounds that also ask for funding payments (0: only
    on a start and a reconnect).
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
    funding_drift_tolerance: Decimal = Decimal("0.01")
    funding_mark_window_ms: int = 60_000
    funding_reconcile_ms: int = 3_600_000
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
    """Refused quotes per instrument: the last one, how many in a row agreed with each other, and
    the accepted quote they were refused against (a quote accepted since breaks the row; see
    :mod:`gridcore.plausibility`)."""
    desk: Desk = Desk()
    """The strategy's timers and outstanding refreshes (:mod:`gridcore.api`)."""
    maintenance_due: int = 0
    """When housekeeping runs next (:func:`gridcore.kernel._requests.housekeeping`): in the
    first step at or after it, whatever its event (a tick included)."""
    maintenance_timer: int | None = None
    """When the maintenance timer is armed to fire (``None``: disarmed). It is armed only while
    something needs time to pass with no data arriving (failure `idle-time-cost`)."""
    balance_waits: Mapping[str, int] = attrs.field(factory=dict)
    """Venues whose balance was too old for an order, with when a fresh one was asked for: the
    report that answers it tells the strategy ``on_ready`` (trading can resume)."""
    quote_waits: Mapping[InstrumentKey, int] = attrs.field(factory=dict)
    """Instruments whose quote was missing or stale for an order, with when it was refused: the
    first accepted quote the risk gate would price an order from tells the strategy
    ``on_ready`` for the instrument's venue (:func:`gridcore.kernel._requests.await_quote`)."""
    wake_at: int = 0
    """The first tick at or after this time leaves the hot path: ``maintenance_due``, or 0 while
    the timer is disarmed and a tick would make a reconciliation round owed. A tick of an
    instrument in ``quote_waits`` leaves it whatever its time. Housekeeping moves it on with
    ``maintenance_due`` as it runs; the end of the step settles it."""


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
        return pnl_by_currency(self.ledger, self.quotes, self.config)

    def orders_with_ref(self, ref: Hashable) -> list[Order]:
        """Every tracked order submitted with ``ref`` (live or done, not yet pruned), oldest
        first."""
        return sorted((o for o in self.books.orders.values() if o.ref == ref), key=_by_seq)

    def balance(self, venue: str) -> BalanceReported | None:
        """The last balance report applied for ``venue`` (its ``ts`` says how old it is)."""
        return self.risk.balances.get(venue)


def _by_seq(order: Order) -> int:
    return order.seq


def pnl_by_currency(
    ledger: Ledger, quotes: Mapping[InstrumentKey, QuoteTicked], config: CoreConfig
) -> dict[str, Decimal]:
    # Every position settles in its venue's currency (one per venue: CoreConfig checks it).
    """Net PnL per settlement currency at the given quotes (amounts in different currencies
    are never added)."""
    currencies = config.currencies
    if len(currencies) == 1:
        return {currencies[0]: net_pnl(ledger, quotes)}
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


def net_pnl(ledger: Ledger, quotes: Mapping[InstrumentKey, QuoteTicked]) -> Decimal:
    """Net PnL of every position at the given quotes, all in one currency: what
    :func:`pnl_by_currency` gives for a bot with one settlement currency (run at every
    housekeeping): the same additions in the same order as its general loop, with
    ``Position.net``, ``Position.unrealized`` and ``QuoteTicked.mid`` inlined."""
    add, subtract, multiply, divide = _ADD, _SUBTRACT, _MULTIPLY, _DIVIDE
    total = ZERO
    for (venue, symbol, _side), pos in ledger.positions.items():
        total = add(total, add(subtract(pos.realized, pos.fees), pos.funding))
        qty = pos.qty
        if qty:
            q = quotes.get((venue, symbol))
            if q is not None:
                mid = divide(add(q.bid, q.ask), _TWO)
                total = add(total, subtract(multiply(qty, mid), pos.cost))
    return total


_ADD, _SUBTRACT, _MULTIPLY, _DIVIDE = CTX.add, CTX.subtract, CTX.multiply, CTX.divide


_TWO = Decimal(2)
_NEW = object.__new__

_V = TypeVar("_V")
_KEEP: object = object()
_REPLACERS: dict[type, Any] = {}


def _replacer(cls: type) -> Any:
    """A function ``(inst, **changes) -> cls`` that builds the new value through the slots of
    ``cls`` (then ``__attrs_post_init__``, as ``__init__`` would), generated once per class the
    way attrs generates ``__init__``; ``attrs.evolve`` itself for a class where that would skip
    work ``__init__`` does (a validator, a converter, a pre-init hook, a field ``__init__``
    does not take or takes under another name, a slot that is not a field)."""
    fields = attrs.fields(cls)
    names = [f.name for f in fields]
    slots = set(getattr(cls, "__slots__", ())) - {"__weakref__"}
    if (
        slots != set(names)
        or hasattr(cls, "__attrs_pre_init__")
        or any(f.validator or f.converter or not f.init or f.alias != f.name for f in fields)
    ):
        return attrs.evolve
    scope: dict[str, Any] = {"_KEEP": _KEEP, "_NEW": _NEW, "_CLS": cls}
    lines = [f"def replace(inst, *, {', '.join(f'{n}=_KEEP' for n in names)}):"]
    lines.append("    new = _NEW(_CLS)")
    for i, name in enumerate(names):
        scope[f"_SET{i}"] = getattr(cls, name).__set__
        lines.append(f"    _SET{i}(new, inst.{name} if {name} is _KEEP else {name})")
    if hasattr(cls, "__attrs_post_init__"):
        scope["_POST"] = cls.__attrs_post_init__
        lines.append("    _POST(new)")
    lines.append("    return new")
    exec("\n".join(lines), scope)
    return scope["replace"]


def replace(inst: _V, **changes: Any) -> _V:
    """``attrs.evolve(inst, **changes)`` for the kernel's hot paths: the same value, without
    ``evolve``'s introspection of every field on every call (about a third of its cost)."""
    cls = type(inst)
    try:
        build = _REPLACERS[cls]
    except KeyError:
        build = _REPLACERS[cls] = _replacer(cls)
    new: _V = build(inst, **changes)
    return new


_STATE_SETTERS = tuple(getattr(State, f.name).__set__ for f in attrs.fields(State))
_BOOKS_SETTERS = tuple(getattr(Books, f.name).__set__ for f in attrs.fields(Books))
(
    _SET_CONFIG,
    _SET_STRATEGY,
    _SET_EPOCH,
    _SET_NOW,
    _SET_NONCE,
    _SET_QUOTES,
    _SET_BOOKS,
) = _STATE_SETTERS
(
    _SET_B0,
    _SET_B1,
    _SET_B2,
    _SET_B3,
    _SET_B4,
    _SET_B5,
    _SET_B6,
    _SET_B7,
    _SET_B8,
    _SET_B9,
    _SET_B10,
    _SET_B11,
    _SET_B12,
    _SET_B13,
    _SET_B14,
    _SET_B15,
    _SET_B16,
) = _BOOKS_SETTERS


def new_state(
    config: CoreConfig,
    strategy: S,
    epoch: int,
    now: int,
    nonce: int,
    quotes: Mapping[InstrumentKey, QuoteTicked],
    books: Books,
) -> State[S]:
    """``State(config=..., ...)`` for the reducer's hot paths: the same value, built through the
    slots without the generated ``__init__``'s keyword handling (a State is built for nearly
    every tick). The fields are in :class:`State`'s order."""
    state: State[S] = _NEW(State)
    _SET_CONFIG(state, config)
    _SET_STRATEGY(state, strategy)
    _SET_EPOCH(state, epoch)
    _SET_NOW(state, now)
    _SET_NONCE(state, nonce)
    _SET_QUOTES(state, quotes)
    _SET_BOOKS(state, books)
    return state


def new_books(
    seq: int,
    orders: Mapping[str, Order],
    venue_oids: Mapping[tuple[str, str], str],
    inflight: Mapping[int, Inflight],
    ledger: Ledger,
    risk: RiskState,
    venues: Mapping[str, VenueStatus],
    attention: frozenset[str],
    done_orders: int,
    live: Mapping[str, int],
    suspect_quotes: Mapping[InstrumentKey, tuple[QuoteTicked, int, QuoteTicked]],
    desk: Desk,
    maintenance_due: int,
    maintenance_timer: int | None,
    balance_waits: Mapping[str, int],
    quote_waits: Mapping[InstrumentKey, int],
    wake_at: int,
) -> Books:
    """``Books(...)`` from every field's value in :class:`Books`'s order, for the hot paths
    (see :func:`new_state`)."""
    books: Books = _NEW(Books)
    _SET_B0(books, seq)
    _SET_B1(books, orders)
    _SET_B2(books, venue_oids)
    _SET_B3(books, inflight)
    _SET_B4(books, ledger)
    _SET_B5(books, risk)
    _SET_B6(books, venues)
    _SET_B7(books, attention)
    _SET_B8(books, done_orders)
    _SET_B9(books, live)
    _SET_B10(books, suspect_quotes)
    _SET_B11(books, desk)
    _SET_B12(books, maintenance_due)
    _SET_B13(books, maintenance_timer)
    _SET_B14(books, balance_waits)
    _SET_B15(books, quote_waits)
    _SET_B16(books, wake_at)
    return books


def with_housekeeping(b: Books, risk: RiskState, maintenance_due: int, wake_at: int) -> Books:
    """``b`` with the fields a housekeeping that asks for nothing changes replaced (the same
    value as ``attrs.evolve`` gives, through :func:`new_books`)."""
    return new_books(
        b.seq,
        b.orders,
        b.venue_oids,
        b.inflight,
        b.ledger,
        risk,
        b.venues,
        b.attention,
        b.done_orders,
        b.live,
        b.suspect_quotes,
        b.desk,
        maintenance_due,
        b.maintenance_timer,
        b.balance_waits,
        b.quote_waits,
        wake_at,
    )


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
