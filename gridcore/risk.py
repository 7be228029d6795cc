"""The risk gate: the one place every order of every strategy passes before it leaves the core.

Theory of operation
-------------------
A strategy proposes an order; :func:`check_order` either refuses it (the order never leaves the
core and a notice says why) or returns the margin to reserve for it. The check and the
reservation happen in the same step, so there is no window in which two orders can both see the
same free balance (failure `stale-balance`, `shared-mutable-state`). A reservation is released when its order reaches
a terminal status, whatever the path (fill, cancel, reject, failed command: failure `unreleased-funds`).

Free margin on a venue = equity of its last balance report − margin of open positions at the
last mid (``|qty| × mid / leverage``) − reservations of every live order on that venue. Equity
is used, not the venue's "available", because the core budgets open orders itself.

Checks, in order: trading not halted (closing orders exempt); price on tick, size on lot and
positive; a quote for the instrument no older than ``max_quote_age_ms`` and seen since its
venue's feed last came up (``quotes_before``: failure `quote-from-before-a-gap`); aggressive orders (IOC,
or a limit through the touch) within ``slippage_cap`` of the mid (default 50 bps, failure
`unsafe-defaults` / `stale-quote`); minimum notional (closing orders exempt); maximum order
notional; maximum position per position key including every live order that adds to it (closing
orders exempt); order rate (velocity) over a sliding window; a balance report no older than
``max_balance_age_ms`` and no overdraft (closing orders exempt: they reserve no margin).

A *closing* order is one :func:`gridcore.exposure.closes_exposure` says can only reduce its
position: reduce-only, or in hedge mode a sell on LONG / a buy on SHORT. While halted, and while
its venue reconciles (the kernel still requires the venue's feed to be up), a closing order is
checked for exactly: tick and lot, a fresh quote, the slippage cap on aggressive prices, the
maximum order notional and the order rate. Everything else is waived, so a rollback or a
flatten is never refused by the halt or the reconciliation it follows.

Exposure is per position key ``(venue, symbol, position_side)``: in hedge mode the LONG and the
SHORT position of one instrument never net, and a sell on the LONG side is a close, never new
short exposure (:func:`position_exposure`).

The drawdown halt and the error-streak breaker live in the kernel (:mod:`gridcore.core`), driven
by :class:`RiskState`'s counters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

import attrs

from gridcore.errors import ConfigError
from gridcore.events import BalanceReported, QuoteTicked
from gridcore.exposure import closes_exposure, signed
from gridcore.halts import POLICIES, HaltCause, cause_of_reason
from gridcore.instruments import Instrument, PositionSide, Side, TimeInForce
from gridcore.ledger import Ledger
from gridcore.lifecycle import Order, OrderStatus
from gridcore.numbers import CTX, ZERO, format_money, relative_distance

__all__ = [
    "QUOTE_CAUSES",
    "Refusal",
    "RiskConfig",
    "RiskState",
    "check_order",
    "free_margin",
    "position_exposure",
    "predates_feed",
    "quote_refusal",
]


@attrs.frozen(kw_only=True)
class RiskConfig:
    """Limits of the risk gate. Quantities in base units, notionals and money in quote.

    Defaults are the safe, documented ones (``docs/configuration.md``), the same an empty
    configuration file gives: max position 0.03, max order notional 1000, drawdown halt at
    1000, 50 bps slippage cap, quotes at most 10 s old, balances at most 5 min old. A limit is
    off only when ``None`` is passed for it explicitly (``"off"`` in a configuration file):
    leaving a key out never removes a limit. ``leverage`` defaults to the venue's default (10)
    and must be the venue's leverage, which :class:`~gridcore.config.BotConfig` enforces.
    """

    max_position: Decimal | None = Decimal("0.03")
    max_order_notional: Decimal | None = Decimal(1000)
    leverage: Decimal = Decimal(10)
    slippage_cap: Decimal = Decimal("0.005")
    max_orders_per_window: int = 100
    velocity_window_ms: int = 10_000
    max_drawdown: Decimal | None = Decimal(1000)
    max_error_streak: int = 8
    max_quote_age_ms: int = 10_000
    max_balance_age_ms: int = 300_000

    def __attrs_post_init__(self) -> None:
        for name in ("max_position", "max_order_notional", "max_drawdown"):
            limit = getattr(self, name)
            if limit is not None and limit <= 0:
                raise ConfigError(
                    f"risk.{name}",
                    f'must be > 0, got {limit}; to switch the limit off write "off" '
                    "(None in Python)",
                )
        if self.leverage <= 0:
            raise ConfigError("risk.leverage", f"must be > 0, got {self.leverage}")
        if not ZERO < self.slippage_cap <= Decimal("0.1"):
            raise ConfigError(
                "risk.slippage_cap",
                f"must be in (0, 0.1] (a fraction), got {self.slippage_cap}",
            )
        for name in (
            "max_orders_per_window",
            "velocity_window_ms",
            "max_error_streak",
            "max_quote_age_ms",
            "max_balance_age_ms",
        ):
            value = getattr(self, name)
            if value <= 0:
                raise ConfigError(f"risk.{name}", f"must be > 0, got {value}")


@attrs.frozen(kw_only=True)
class RiskState:
    """What the gate and the breakers remember.

    ``reserved`` is the total margin held per venue by live orders; ``recent_orders`` the
    timestamps of placements inside the velocity window; ``peak_pnl`` the best net PnL (realized
    − fees + funding + unrealized) seen, for the drawdown halt, and ``worst_drawdown`` the largest
    fall from a peak measured so far (on fills, funding and the maintenance timer). ``error_streak`` counts failed
    order/request commands in a row, each order of a batch on its own. ``last_error_batch`` is
    no longer used (kept so that older snapshots still load).

    PnL is kept per settlement currency and never added across currencies: ``peaks`` and
    ``drawdowns`` hold, per currency, the peak of net PnL and the worst fall from it;
    ``peak_pnl`` and ``worst_drawdown`` are the same figures for the first currency of the
    configuration (the only one of a one-currency bot), kept for summaries and older snapshots.

    ``halt_cause`` says why trading is halted (``None`` when it is not); ``halt_reason`` says it
    for people. A state saved before causes existed carries only the reason: its cause is
    derived from that text when it loads (:func:`gridcore.halts.cause_of_reason`).
    """

    balances: Mapping[str, BalanceReported] = attrs.field(factory=dict)
    reserved: Mapping[str, Decimal] = attrs.field(factory=dict)
    recent_orders: tuple[int, ...] = ()
    error_streak: int = 0
    peak_pnl: Decimal = ZERO
    worst_drawdown: Decimal = ZERO
    halted: bool = False
    halt_reason: str = ""
    last_refusal: str = ""
    last_error_batch: int | None = None
    halt_cause: HaltCause | None = None
    peaks: Mapping[str, Decimal] = attrs.field(factory=dict)
    drawdowns: Mapping[str, Decimal] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if self.halted and self.halt_cause is None:
            object.__setattr__(self, "halt_cause", cause_of_reason(self.halt_reason))

    @property
    def resumes_on_restart(self) -> bool:
        """True when starting the bot again lifts the halt (:data:`gridcore.halts.POLICIES`);
        a shell that starts a halted bot asks this, and sends a resume when it says so."""
        return self.halted and POLICIES[self.halt_cause or HaltCause.OPERATOR].restart_resumes


@attrs.frozen(kw_only=True)
class Refusal:
    """Why an order was refused: ``code`` is stable (for metrics), ``message`` for people."""

    code: str
    message: str


def free_margin(
    venue: str,
    risk: RiskState,
    ledger: Ledger,
    quotes: Mapping[tuple[str, str], QuoteTicked],
    leverage: Decimal,
) -> Decimal | None:
    """Free margin on ``venue`` (quote), or ``None`` before the first balance report."""
    balance = risk.balances.get(venue)
    if balance is None:
        return None
    used = ZERO
    for (v, symbol, _side), pos in ledger.positions.items():
        if v != venue or not pos.qty:
            continue
        q = quotes.get((v, symbol))
        mark = q.mid if q is not None else pos.avg_entry
        used = CTX.add(used, CTX.divide(CTX.multiply(abs(pos.qty), mark), leverage))
    return CTX.subtract(CTX.subtract(balance.equity, used), risk.reserved.get(venue, ZERO))


def position_exposure(
    orders: Iterable[Order],
    ledger: Ledger,
    instrument: Instrument,
    position_side: PositionSide,
    side: Side,
) -> Decimal:
    """The exposure of one position key as the gate counts it for ``max_position``: the
    position ``(venue, symbol, position_side)`` plus the remainder of every live order on that
    key and ``side`` that adds to it, and the fills still missing of orders the venue says are
    filled (their fills are on their way: the position will grow by them). Closing orders
    (:func:`~gridcore.exposure.closes_exposure`) are not counted, and in hedge mode the LONG and
    SHORT positions of an instrument are separate keys: they never net."""
    total = ledger.position(instrument.venue, instrument.symbol, position_side).qty
    venue, symbol = instrument.venue, instrument.symbol
    if closes_exposure(side, position_side, False):
        return total  # every order of this side closes the key: none adds to it
    add = CTX.add
    buy = side is Side.BUY
    for o in orders:
        # Cheapest tests first (all of them are plain reads): most orders are on the other
        # side or done. The status test is Order.is_live inlined (it runs for every order of
        # the registry on every order placed).
        if o.side is not side or o.position_side is not position_side:
            continue
        s = o.status
        if s is _FILLED:
            if not o.filled_qty < o.qty:
                continue
        elif s is _CANCELED or s is _REJECTED:
            continue
        if o.symbol == symbol and o.venue == venue and not o.reduce_only:
            # signed(side, o.remaining), inlined with the very same operations (two calls per
            # counted order otherwise).
            rest = o.qty - o.filled_qty
            if not rest > 0:
                rest = Decimal(0)
            total = add(total, rest if buy else -rest)
    return total


_FILLED, _CANCELED, _REJECTED = OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED


def predates_feed(quote: QuoteTicked, quotes_before: int) -> bool:
    """True when ``quote`` was seen before its venue's feed last came up (``quotes_before``,
    :attr:`gridcore.sync.VenueStatus.quotes_before`): it prices no new order (failure
    `quote-from-before-a-gap`)."""
    return quote.ts <= quotes_before


#: The refusal codes whose cause passes by itself: the venue's next fresh quote makes the same
#: order acceptable (see :func:`quote_refusal`).
QUOTE_CAUSES = frozenset({"no_quote", "stale_quote"})


def quote_refusal(
    config: RiskConfig,
    instrument: Instrument,
    quote: QuoteTicked | None,
    now: int,
    quotes_before: int,
) -> Refusal | None:
    """Why the gate refuses to price an order on ``instrument`` from ``quote`` (its last one,
    ``None`` before the first) at ``now``: ``no_quote``, or ``stale_quote`` for a quote older
    than ``max_quote_age_ms`` or seen before the venue's feed last came up
    (:func:`predates_feed`); ``None`` when the quote may price one. Both causes pass by
    themselves (:data:`QUOTE_CAUSES`): the kernel tells a strategy refused for one when the
    first quote this accepts arrives (failure `silent-quote-refusal`)."""
    if quote is None:
        return Refusal(code="no_quote", message=f"no quote yet for {instrument.symbol}")
    age = now - quote.ts
    if age > config.max_quote_age_ms:
        return Refusal(
            code="stale_quote",
            message=f"last quote for {instrument.symbol} is {age} ms old "
            f"(max {config.max_quote_age_ms} ms)",
        )
    if predates_feed(quote, quotes_before):
        return Refusal(
            code="stale_quote",
            message=f"last quote for {instrument.symbol} was seen before {instrument.venue}'s "
            f"feed came up (a start or a reconnect); waiting for a fresh one",
        )
    return None


def check_order(
    *,
    config: RiskConfig,
    risk: RiskState,
    ledger: Ledger,
    orders: Iterable[Order],
    quotes: Mapping[tuple[str, str], QuoteTicked],
    instrument: Instrument,
    side: Side,
    qty: Decimal,
    price: Decimal,
    tif: TimeInForce,
    reduce_only: bool,
    now: int,
    position_side: PositionSide = PositionSide.BOTH,
    quotes_before: int = -1,
) -> Refusal | Decimal:
    """Refuse the order, or return the margin (quote) to reserve for it (zero for a closing
    order, which needs none). ``quotes_before`` is the venue time of the newest quote seen
    before the venue's feed last came up: a quote no newer than it is refused like a stale
    one, however young."""
    closing = closes_exposure(side, position_side, reduce_only)
    if risk.halted and not closing:
        return Refusal(
            code="halted",
            message=f"trading is halted ({risk.halt_reason}); only reduce-only or closing "
            f"orders pass",
        )
    if qty <= 0 or not instrument.is_on_lot(qty):
        return Refusal(
            code="bad_qty",
            message=f"qty {qty} must be positive and a multiple of lot {instrument.lot_size}",
        )
    if price <= 0 or not instrument.is_on_tick(price):
        return Refusal(
            code="bad_price",
            message=f"price {price} must be positive and a multiple of tick {instrument.tick_size}",
        )
    quote = quotes.get(instrument.key)
    stale = quote_refusal(config, instrument, quote, now, quotes_before)
    if stale is not None:
        return stale
    assert quote is not None  # quote_refusal refuses a missing quote
    aggressive = (
        tif is TimeInForce.IOC
        or (side is Side.BUY and price >= quote.ask)
        or (side is Side.SELL and price <= quote.bid)
    )
    if aggressive:
        mid = quote.mid
        deviation = relative_distance(price, mid)
        if deviation > config.slippage_cap:
            return Refusal(
                code="price_band",
                message=f"aggressive {side.value} at {price} is {deviation:.4%} from mid {mid} "
                f"(cap {config.slippage_cap:.2%})",
            )
    notional = instrument.notional(qty, price)
    if not closing and notional < instrument.min_notional:
        return Refusal(
            code="min_notional",
            message=f"order value {notional} is under the minimum {instrument.min_notional}",
        )
    if config.max_order_notional is not None and notional > config.max_order_notional:
        return Refusal(
            code="max_order_notional",
            message=f"order value {notional} exceeds max_order_notional {config.max_order_notional}",
        )
    if config.max_position is not None and not closing:
        projected = CTX.add(
            position_exposure(orders, ledger, instrument, position_side, side), signed(side, qty)
        )
        if abs(projected) > config.max_position:
            return Refusal(
                code="max_position",
                message=f"position with live orders would reach {projected} "
                f"(max_position {config.max_position})",
            )
    recent = sum(1 for t in risk.recent_orders if t > now - config.velocity_window_ms)
    if recent >= config.max_orders_per_window:
        return Refusal(
            code="velocity",
            message=f"{recent} orders in the last {config.velocity_window_ms} ms "
            f"(max {config.max_orders_per_window})",
        )
    if closing:
        return ZERO
    balance = risk.balances.get(instrument.venue)
    if balance is None:
        return Refusal(code="no_balance", message=f"no balance report yet for {instrument.venue}")
    balance_age = now - balance.ts
    if balance_age > config.max_balance_age_ms:
        return Refusal(
            code="stale_balance",
            message=f"balance report for {instrument.venue} is {balance_age} ms old "
            f"(max {config.max_balance_age_ms} ms)",
        )
    reserve = CTX.add(
        CTX.divide(notional, config.leverage),
        CTX.multiply(notional, max(instrument.taker_fee, instrument.maker_fee, ZERO)),
    )
    free = free_margin(instrument.venue, risk, ledger, quotes, config.leverage)
    assert free is not None  # balance checked above
    if reserve > free:
        return Refusal(
            code="insufficient_margin",
            message=f"order needs {format_money(reserve, instrument.settlement)} "
            f"{instrument.settlement} margin, {format_money(free, instrument.settlement)} free "
            f"on {instrument.venue}",
        )
    return reserve
