"""A deterministic model of a perpetual-futures venue: matching, fees, funding, margin.

The model answers the core's commands with the events a real venue would send, and turns a
market path into fills of resting orders. It has no I/O, no clock and no randomness: the same
commands and ticks always give the same events, so a backtest is a deterministic fold of the bot
reducer and this model over a market path. For speed it updates itself in place; :meth:`copy`
gives an independent model (the stateful tests branch with it).

What it models
--------------
* Resting limit orders per instrument, filled as maker at their limit price when the opposite
  side of the book trades through them (a buy rests at ``p`` and fills when the ask is ``<= p``).
  Orders that cross on arrival take liquidity at the touch and pay the taker fee.
* Partial fills: ``liquidity`` caps the base quantity one order can fill per tick.
* Rejections: unknown instrument, price off tick, size off lot, under minimum notional, wrong
  position side for the account's mode, reduce-only that would increase, post-only that would
  cross, insufficient margin, duplicate client order id.
* A cancel of a filled, canceled or unknown order is answered by ``CancelRejected``.
* One-way and hedge position modes; several instruments. Balance = starting balance + realized
  PnL − fees + funding; equity adds unrealized PnL at the last mid.
* Funding every ``funding_interval_ms`` at ``funding_rate`` on the mark (mid): longs pay when the
  rate is positive.

Memory does not grow with the length of a run (failure `unbounded-history`): like a real venue,
the model forgets what is old. It keeps the last :data:`KEEP_DONE_ORDERS` finished orders (for
status requests and duplicate client order ids; the runner catches a reused cloid over a longer
window) and the fills of the last :data:`KEEP_FILLS_MS` of simulated time, at least the last
:data:`KEEP_FILLS` (for fills-since requests). What it forgot is kept as running totals
(:attr:`SimExchange.forgotten`): the number of fills, their volume and round trips, and the
finished orders by status, so a run's summary counts every fill and order.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from decimal import Decimal

import attrs

from gridcore.commands import (
    Batch,
    CancelOrder,
    Command,
    ModifyOrder,
    PlaceOrder,
    RequestBalances,
    RequestFills,
    RequestFunding,
    RequestOpenOrders,
    RequestOrderStatus,
    RequestPositions,
)
from gridcore.events import (
    BalanceReported,
    CancelRejected,
    Event,
    Fill,
    FillsReported,
    FundingPaid,
    FundingRateUpdated,
    FundingReported,
    ModifyRejected,
    OpenOrder,
    OpenOrdersReported,
    OrderCanceled,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    OrderRejected,
    OrderStatusReported,
    PositionReport,
    PositionsReported,
    QuoteTicked,
    ReportedStatus,
    accepted_of,
    fill_of,
    stream_fill_event,
)
from gridcore.exposure import closes_exposure
from gridcore.instruments import (
    Instrument,
    PositionMode,
    PositionSide,
    Side,
    Source,
    TimeInForce,
)
from gridcore.ledger import Position
from gridcore.numbers import CTX, EXACT, ZERO
from gridcore.sim.results import TripBook

__all__ = [
    "KEEP_DONE_ORDERS",
    "KEEP_FILLS",
    "KEEP_FILLS_MS",
    "Forgotten",
    "SimConfig",
    "SimExchange",
    "SimOrder",
]

_NO_EVENTS: list[Event] = []
_MISSING = Decimal(-1)
#: Finished (filled, canceled, rejected) orders the model remembers, newest first.
KEEP_DONE_ORDERS = 4_096
#: Simulated time (ms) of fills the model remembers, and the least number it remembers.
KEEP_FILLS_MS = 24 * 3_600_000
KEEP_FILLS = 4_096
#: Forgotten fills kept as an even sample for pictures of the whole run (markers on a plot).
SAMPLE_FILLS = 4_096
_TERMINAL = (ReportedStatus.FILLED, ReportedStatus.CANCELED, ReportedStatus.REJECTED)

#: The positions a positions report was last built from (each key with the very ``Position``
#: object it held) and that report's values.
_PositionsListed = tuple[
    tuple[tuple[tuple[str, PositionSide], Position], ...], tuple[PositionReport, ...]
]


@attrs.define(kw_only=True)
class Forgotten:
    """Running totals of what the model no longer remembers: fills (count, volume in quote, and
    their round trips, carried on in :attr:`trips`) and finished orders by status."""

    fills: int = 0
    volume: Decimal = ZERO
    trips: TripBook = attrs.field(factory=TripBook)
    orders: dict[ReportedStatus, int] = attrs.field(factory=dict)
    sides: dict[Side, int] = attrs.field(factory=dict)
    """Forgotten fills by side."""
    sample: list[Fill] = attrs.field(factory=list)
    """Every ``stride``-th forgotten fill, oldest first, at most :data:`SAMPLE_FILLS` (the
    stride doubles, and the sample halves, when it is full): what a picture of a long run
    draws of the fills it no longer has."""
    stride: int = 1

    def note(self, fill: Fill) -> None:
        """Count ``fill`` as forgotten."""
        self.volume = CTX.add(self.volume, CTX.multiply(fill.qty, fill.price))
        self.trips.add(fill)
        self.sides[fill.side] = self.sides.get(fill.side, 0) + 1
        if self.fills % self.stride == 0:
            self.sample.append(fill)
            if len(self.sample) > SAMPLE_FILLS:
                del self.sample[1::2]
                self.stride *= 2
        self.fills += 1


@attrs.frozen(kw_only=True)
class SimConfig:
    """The simulated venue: its instruments, account and market mechanics."""

    venue: str = "sim"
    instruments: tuple[Instrument, ...] = ()
    starting_balance: Decimal = Decimal(10_000)
    asset: str = "USD"
    position_mode: PositionMode = PositionMode.ONE_WAY
    leverage: Decimal = Decimal(10)
    liquidity: Decimal | None = None
    funding_interval_ms: int = 8 * 3600 * 1000
    funding_rate: Decimal = Decimal("0.0001")
    reid_on_modify: bool = False
    """Give an amended order a new venue order id, as some venues do."""


@attrs.define(kw_only=True)
class SimOrder:
    """An order as the venue holds it."""

    oid: str
    cloid: str
    symbol: str
    side: Side
    position_side: PositionSide
    price: Decimal
    qty: Decimal
    tif: TimeInForce
    reduce_only: bool
    filled: Decimal = ZERO
    status: ReportedStatus = ReportedStatus.OPEN

    @classmethod
    def from_command(
        cls, cmd: PlaceOrder, *, oid: str, status: ReportedStatus = ReportedStatus.OPEN
    ) -> SimOrder:
        """The order a place command asks for, as the venue holds it."""
        return cls(
            oid=oid,
            cloid=cmd.cloid,
            symbol=cmd.symbol,
            side=cmd.side,
            position_side=cmd.position_side,
            price=cmd.price,
            qty=cmd.qty,
            tif=cmd.tif,
            reduce_only=cmd.reduce_only,
            status=status,
        )

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled


class SimExchange:
    """The venue model. ``on_tick`` matches resting orders; ``handle`` answers a command."""

    def __init__(self, config: SimConfig, *, start_ts: int = 0) -> None:
        if not config.instruments:
            raise ValueError("SimConfig.instruments is empty: the venue needs at least one")
        self.config = config
        self.instruments: dict[str, Instrument] = {i.symbol: i for i in config.instruments}
        self.cash: Decimal = config.starting_balance
        self.positions: dict[tuple[str, PositionSide], Position] = {}
        self.resting: dict[str, dict[str, SimOrder]] = {s: {} for s in self.instruments}
        self.orders: dict[str, SimOrder] = {}  # by cloid, every order ever accepted or rejected
        self.by_oid: dict[str, SimOrder] = {}
        self.fills: list[Fill] = []
        self.quotes: dict[str, QuoteTicked] = {}
        self.best_buy: dict[str, Decimal | None] = dict.fromkeys(self.instruments)
        self.best_sell: dict[str, Decimal | None] = dict.fromkeys(self.instruments)
        self.next_funding_ts = (
            start_ts - start_ts % config.funding_interval_ms + (config.funding_interval_ms)
        )
        self.funding_paid = ZERO
        self.fees_paid = ZERO
        self._oid = 0
        self._fill = 0
        self._funding = 0
        self._orders_cap = 2 * KEEP_DONE_ORDERS
        self._fills_cap = 2 * KEEP_FILLS
        self._margin_orders: dict[str, Decimal] = {}
        self._margin_total = ZERO

    @property
    def forgotten(self) -> Forgotten:
        """What the model forgot, as running totals (a model saved before it forgot anything
        starts with none)."""
        gone: Forgotten = self.__dict__.setdefault("_forgotten", Forgotten())
        return gone

    def fill_totals(self) -> tuple[int, Decimal]:
        """Every fill of the run, remembered or not: how many, and their volume (quote)."""
        gone = self.forgotten
        volume = gone.volume
        for fill in self.fills:
            volume = CTX.add(volume, CTX.multiply(fill.qty, fill.price))
        return gone.fills + len(self.fills), volume

    def fills_by_side(self, side: Side) -> int:
        """How many fills of the run were on ``side``, remembered or not."""
        kept = sum(1 for f in self.fills if f.side is side)
        return self.forgotten.sides.get(side, 0) + kept

    def fill_sample(self) -> list[Fill]:
        """The fills to draw for the whole run, oldest first: an even sample of those the model
        forgot, then every fill it still remembers."""
        return [*self.forgotten.sample, *self.fills]

    def order_count(self, status: ReportedStatus) -> int:
        """Every order of the run with ``status``, remembered or not."""
        kept = sum(1 for o in self.orders.values() if o.status is status)
        return self.forgotten.orders.get(status, 0) + kept

    def _forget(self, now: int) -> None:
        """Forget the oldest finished orders and old fills (see the module's notes)."""
        orders = self.orders
        cap = self.__dict__.get("_orders_cap", 2 * KEEP_DONE_ORDERS)
        if len(orders) >= cap:
            done = [o for o in orders.values() if o.status in _TERMINAL]
            gone = self.forgotten
            for o in done[: max(0, len(done) - KEEP_DONE_ORDERS)]:
                del orders[o.cloid]
                if self.by_oid.get(o.oid) is o:
                    del self.by_oid[o.oid]
                gone.orders[o.status] = gone.orders.get(o.status, 0) + 1
            self._orders_cap = max(2 * KEEP_DONE_ORDERS, 2 * len(orders))
        fills = self.fills
        cap = self.__dict__.get("_fills_cap", 2 * KEEP_FILLS)
        if len(fills) >= cap:
            cut = 0
            horizon = now - KEEP_FILLS_MS
            limit = len(fills) - KEEP_FILLS
            while cut < limit and fills[cut].ts < horizon:
                cut += 1
            if cut:
                gone = self.forgotten
                for fill in fills[:cut]:
                    gone.note(fill)
                del fills[:cut]
            self._fills_cap = max(2 * KEEP_FILLS, 2 * len(fills))

    @property
    def funding_history(self) -> list[FundingPaid]:
        """Every funding payment booked, oldest first (a model saved before it kept them
        starts with an empty history)."""
        history: list[FundingPaid] = self.__dict__.setdefault("_funding_history", [])
        return history

    def copy(self) -> SimExchange:
        """An independent copy (orders and positions are not shared)."""
        return copy.deepcopy(self)

    # --- account views ---------------------------------------------------------------------

    def mark(self, symbol: str) -> Decimal | None:
        q = self.quotes.get(symbol)
        return None if q is None else q.mid

    def position(self, symbol: str, side: PositionSide = PositionSide.BOTH) -> Position:
        """The venue's position (same accounting as the core's ledger)."""
        return self.positions.get((symbol, side), Position())

    def equity(self) -> Decimal:
        """Balance plus unrealized PnL at the last mids."""
        total = self.cash
        for (symbol, _side), pos in self.positions.items():
            mark = self.mark(symbol)
            if pos.qty and mark is not None:
                total = CTX.add(total, pos.unrealized(mark))
        return total

    def used_margin(self) -> Decimal:
        """Initial margin of every position (at the mark) and every resting order, in quote."""
        add, multiply = CTX.add, CTX.multiply
        notional = ZERO
        for (symbol, _side), pos in self.positions.items():
            if pos.qty:
                mark = self.mark(symbol) or pos.avg_entry
                notional = add(notional, multiply(abs(pos.qty), mark))
        # Every resting order on every placement: the remainder is SimOrder.remaining inlined.
        for book in self.resting.values():
            for o in book.values():
                if not closes_exposure(o.side, o.position_side, o.reduce_only):
                    notional = add(notional, multiply(o.qty - o.filled, o.price))
        return CTX.divide(notional, self.config.leverage)

    def _margin_book(self) -> dict[str, Decimal]:
        """cloid -> margin notional (remaining x price, exact) of each resting order that adds
        exposure, kept up to date as orders rest, fill, change and leave (rebuilt from the book
        for a model saved before it kept one)."""
        book: dict[str, Decimal] | None = self.__dict__.get("_margin_orders")
        if book is None:
            book = self._margin_orders = {}
            self._margin_total = ZERO
            for orders in self.resting.values():
                for o in orders.values():
                    self._rest(o)
        return book

    def _rest(self, order: SimOrder) -> None:
        """``order`` rests, or its remainder or price changed: count its margin notional."""
        book = self._margin_book()
        if closes_exposure(order.side, order.position_side, order.reduce_only):
            return
        old = book.get(order.cloid)
        new = EXACT.multiply(EXACT.subtract(order.qty, order.filled), order.price)
        book[order.cloid] = new
        total = self._margin_total if old is None else EXACT.subtract(self._margin_total, old)
        self._margin_total = EXACT.add(total, new)

    def _unrest(self, order: SimOrder) -> None:
        """``order`` no longer rests: its margin notional goes."""
        old = self._margin_book().pop(order.cloid, None)
        if old is not None:
            self._margin_total = EXACT.subtract(self._margin_total, old)

    def _used_margin(self) -> Decimal:
        """:meth:`used_margin` from the kept sum of the resting orders' notional: the same
        value (the sum is exact, and used when it has no more digits than gridcore's context
        keeps, so that the plain sum was exact too), without a pass over every order."""
        self._margin_book()
        total = self._margin_total
        for (symbol, _side), pos in self.positions.items():
            if pos.qty:
                mark = self.mark(symbol) or pos.avg_entry
                total = EXACT.add(total, EXACT.multiply(abs(pos.qty), mark))
        if len(total.as_tuple().digits) > CTX.prec:
            return self.used_margin()  # the plain sum may have rounded: take it as it is
        return CTX.divide(total, self.config.leverage)

    def open_orders(self) -> list[SimOrder]:
        return [o for book in self.resting.values() for o in book.values()]

    # --- market ---------------------------------------------------------------------------------

    def on_tick(self, tick: QuoteTicked) -> list[Event]:
        """Record the quote; fill resting orders it trades through; pay funding when due."""
        symbol = tick.symbol
        bb = self.best_buy.get(symbol, _MISSING)
        if bb is _MISSING:
            return _NO_EVENTS  # not an instrument of this venue
        self.quotes[symbol] = tick
        bs = self.best_sell[symbol]
        crossing = (bb is not None and tick.ask <= bb) or (bs is not None and tick.bid >= bs)
        if not crossing and tick.ts < self.next_funding_ts:
            return _NO_EVENTS
        events: list[Event] = []
        if crossing:
            for order in sorted(self.resting[symbol].values(), key=lambda o: int(o.oid)):
                if (order.side is Side.BUY and tick.ask <= order.price) or (
                    order.side is Side.SELL and tick.bid >= order.price
                ):
                    self._fill_order(order, order.price, order.remaining, True, tick.ts, events)
            self._refresh_best(symbol)
        if tick.ts >= self.next_funding_ts:
            self._pay_funding(tick.ts, events)
        return events

    def _refresh_best(self, symbol: str) -> None:
        buys = [o.price for o in self.resting[symbol].values() if o.side is Side.BUY]
        sells = [o.price for o in self.resting[symbol].values() if o.side is Side.SELL]
        self.best_buy[symbol] = max(buys) if buys else None
        self.best_sell[symbol] = min(sells) if sells else None

    def _best_with(self, order: SimOrder) -> None:
        """The best prices after ``order`` joined its book. Every other change to a book
        refreshes them in full (:meth:`_refresh_best`), so a new order can only improve its own
        side: no pass over the book on every placement."""
        symbol, price = order.symbol, order.price
        if order.side is Side.BUY:
            best = self.best_buy[symbol]
            if best is None or price > best:
                self.best_buy[symbol] = price
        else:
            best = self.best_sell[symbol]
            if best is None or price < best:
                self.best_sell[symbol] = price

    def funding_rate(self, due: int, symbol: str) -> Decimal:
        """The rate ``symbol`` is paid at the funding time ``due``: the configured constant (a
        venue with rate paths says otherwise)."""
        return self.config.funding_rate

    def _pay_funding(self, ts: int, events: list[Event]) -> None:
        interval = self.config.funding_interval_ms
        while ts >= self.next_funding_ts:
            due = self.next_funding_ts
            self._funding += 1
            for symbol in self.instruments:
                events.append(
                    FundingRateUpdated(
                        ts=ts,
                        venue=self.config.venue,
                        symbol=symbol,
                        rate=self.funding_rate(due, symbol),
                        next_funding_ts=due + interval,
                    )
                )
            for (symbol, side), pos in sorted(self.positions.items(), key=lambda kv: kv[0][0]):
                mark = self.mark(symbol)
                if not pos.qty or mark is None:
                    continue
                rate = self.funding_rate(due, symbol)
                amount = -CTX.multiply(CTX.multiply(pos.qty, mark), rate)
                self.positions[(symbol, side)] = attrs.evolve(
                    pos, funding=CTX.add(pos.funding, amount)
                )
                self.cash = CTX.add(self.cash, amount)
                self.funding_paid = CTX.add(self.funding_paid, amount)
                payment = FundingPaid(
                    ts=ts,
                    venue=self.config.venue,
                    symbol=symbol,
                    position_side=side,
                    amount=amount,
                    payment_id=f"{self._funding}:{symbol}:{side.value}",
                )
                self.funding_history.append(payment)
                events.append(payment)
            self.next_funding_ts += interval

    def _fill_order(
        self,
        order: SimOrder,
        price: Decimal,
        want: Decimal,
        maker: bool,
        ts: int,
        events: list[Event],
    ) -> None:
        instrument = self.instruments[order.symbol]
        qty = want
        if self.config.liquidity is not None:
            qty = min(qty, self.config.liquidity)
        if closes_exposure(order.side, order.position_side, order.reduce_only):
            room = self._reducible(order)
            qty = min(qty, room)
        if qty <= 0:
            if order.reduce_only:
                self._finish(
                    order, ReportedStatus.CANCELED, ts, events, "reduce-only: nothing left"
                )
            return
        fee_rate = instrument.maker_fee if maker else instrument.taker_fee
        fee = CTX.multiply(CTX.multiply(qty, price), fee_rate)
        self._fill += 1
        venue = self.config.venue
        fill = fill_of(
            ts,
            venue,
            order.symbol,
            f"{venue}-f{self._fill}",
            order.cloid,
            order.oid,
            order.side,
            order.position_side,
            price,
            qty,
            fee,
            maker,
        )
        self.fills.append(fill)
        if len(self.fills) >= self.__dict__.get("_fills_cap", 2 * KEEP_FILLS):
            self._forget(ts)
        key = (order.symbol, order.position_side)
        before = self.positions.get(key, Position())
        after = before.apply(qty if order.side is Side.BUY else -qty, price, fee)
        self.positions[key] = after
        self.cash = CTX.add(self.cash, CTX.subtract(after.realized, before.realized))
        self.cash = CTX.subtract(self.cash, fee)
        self.fees_paid = CTX.add(self.fees_paid, fee)
        order.filled = CTX.add(order.filled, qty)
        if order.remaining <= 0:
            order.status = ReportedStatus.FILLED
            if self.resting[order.symbol].pop(order.oid, None) is not None:
                self._unrest(order)
            events.append(stream_fill_event(OrderFilled, ts, fill))
        else:
            if order.oid in self.resting[order.symbol]:
                self._rest(order)  # its remainder shrank
            events.append(stream_fill_event(OrderPartiallyFilled, ts, fill))

    def _reducible(self, order: SimOrder) -> Decimal:
        pos = self.positions.get((order.symbol, order.position_side), Position()).qty
        if order.side is Side.SELL:
            return pos if pos > 0 else ZERO
        return -pos if pos < 0 else ZERO

    def _finish(
        self, order: SimOrder, status: ReportedStatus, ts: int, events: list[Event], reason: str
    ) -> None:
        order.status = status
        if self.resting[order.symbol].pop(order.oid, None) is not None:
            self._unrest(order)
        events.append(
            OrderCanceled(
                ts=ts,
                venue=self.config.venue,
                cloid=order.cloid,
                venue_order_id=order.oid,
                reason=reason,
                source=Source.STREAM,
            )
        )

    # --- commands -------------------------------------------------------------------------------

    def handle(self, command: Command, now: int) -> list[Event]:
        """The events a venue would send in answer to ``command`` at time ``now``.

        Timer, notice and halt commands are not the venue's business and get no events.
        """
        events: list[Event] = []
        venue = self.config.venue
        match command:
            case Batch():
                for inner in command.commands:
                    events.extend(self.handle(inner, now))
            case PlaceOrder():
                self._place(command, now, events)
            case CancelOrder():
                order = self.orders.get(command.cloid)
                if order is None and command.venue_order_id is not None:
                    order = self.by_oid.get(command.venue_order_id)
                if order is None or order.status is not ReportedStatus.OPEN:
                    reason = "unknown order" if order is None else f"order is {order.status.value}"
                    events.append(
                        CancelRejected(
                            ts=now,
                            venue=venue,
                            cloid=command.cloid,
                            reason=reason,
                            command_id=command.command_id,
                        )
                    )
                else:
                    order.status = ReportedStatus.CANCELED
                    if self.resting[order.symbol].pop(order.oid, None) is not None:
                        self._unrest(order)
                    self._refresh_best(order.symbol)
                    events.append(
                        OrderCanceled(
                            ts=now,
                            venue=venue,
                            cloid=order.cloid,
                            venue_order_id=order.oid,
                            reason="canceled by request",
                            source=Source.REST,
                            command_id=command.command_id,
                        )
                    )
            case ModifyOrder():
                self._modify(command, now, events)
            case RequestPositions():
                events.append(
                    PositionsReported(
                        ts=now,
                        venue=venue,
                        positions=self._positions_reported(),
                        command_id=command.command_id,
                    )
                )
            case RequestBalances():
                equity = self.equity()
                events.append(
                    BalanceReported(
                        ts=now,
                        venue=venue,
                        asset=self.config.asset,
                        equity=equity,
                        available=CTX.subtract(equity, self.used_margin()),
                        command_id=command.command_id,
                    )
                )
            case RequestOpenOrders():
                events.append(
                    OpenOrdersReported(
                        ts=now,
                        venue=venue,
                        orders=self._reported(),
                        command_id=command.command_id,
                    )
                )
            case RequestFills():
                events.append(
                    FillsReported(
                        ts=now,
                        venue=venue,
                        since=command.since,
                        fills=tuple(self._fills_since(command.since)),
                        command_id=command.command_id,
                    )
                )
            case RequestFunding():
                # The venue's funding-history endpoint: every payment booked since `since`.
                events.append(
                    FundingReported(
                        ts=now,
                        venue=venue,
                        since=command.since,
                        payments=tuple(
                            p
                            for p in self.funding_history
                            if p.ts >= command.since
                            and (command.symbol is None or p.symbol == command.symbol)
                        ),
                        command_id=command.command_id,
                    )
                )
            case RequestOrderStatus():
                order = self.orders.get(command.cloid)
                if order is None and command.venue_order_id is not None:
                    order = self.by_oid.get(command.venue_order_id)
                events.append(
                    OrderStatusReported(
                        ts=now,
                        venue=venue,
                        cloid=command.cloid,
                        status=ReportedStatus.NOT_FOUND if order is None else order.status,
                        venue_order_id=None if order is None else order.oid,
                        filled_qty=ZERO if order is None else order.filled,
                        command_id=command.command_id,
                    )
                )
            case _:
                pass  # timers, notices and halts are the shell's business
        return events

    def _modify(self, cmd: ModifyOrder, now: int, events: list[Event]) -> None:
        """Amend a resting order in place (its queue position is not modelled), or refuse."""
        order = self.orders.get(cmd.cloid)
        if order is None and cmd.venue_order_id is not None:
            order = self.by_oid.get(cmd.venue_order_id)
        instrument = self.instruments.get(cmd.symbol)
        reason = (
            "unknown order"
            if order is None
            else f"order is {order.status.value}"
            if order.status is not ReportedStatus.OPEN
            else "unknown instrument"
            if instrument is None
            else "price off tick or size off lot"
            if not (instrument.is_on_tick(cmd.price) and instrument.is_on_lot(cmd.qty))
            else "size not above the filled quantity"
            if cmd.qty <= order.filled
            else None
        )
        if order is None or reason is not None:
            events.append(
                ModifyRejected(
                    ts=now,
                    venue=self.config.venue,
                    cloid=cmd.cloid,
                    reason=f"modify refused: {reason}",
                    command_id=cmd.command_id,
                )
            )
            return
        order.price, order.qty = cmd.price, cmd.qty
        new_oid = None
        if self.config.reid_on_modify:
            self._oid += 1
            resting = self.resting[order.symbol].pop(order.oid, None)
            order.oid = new_oid = str(self._oid)
            self.by_oid[order.oid] = order
            if resting is not None:
                self.resting[order.symbol][order.oid] = resting
        if order.oid in self.resting[order.symbol]:
            self._rest(order)  # its price or size changed
        self._refresh_best(order.symbol)
        events.append(
            OrderModified(
                ts=now,
                venue=self.config.venue,
                cloid=order.cloid,
                price=order.price,
                qty=order.qty,
                command_id=cmd.command_id,
                venue_order_id=new_oid,
            )
        )

    def _fills_since(self, since: int) -> list[Fill]:
        out: list[Fill] = []
        for fill in reversed(self.fills):
            if fill.ts < since:
                break
            out.append(fill)
        out.reverse()
        return out

    def _reject(self, cmd: PlaceOrder, now: int, reason: str, events: list[Event]) -> None:
        events.append(
            OrderRejected(
                ts=now,
                venue=self.config.venue,
                cloid=cmd.cloid,
                reason=reason,
                source=Source.REST,
                command_id=cmd.command_id,
            )
        )

    def _place(self, cmd: PlaceOrder, now: int, events: list[Event]) -> None:
        if len(self.orders) >= self.__dict__.get("_orders_cap", 2 * KEEP_DONE_ORDERS) or len(
            self.fills
        ) >= self.__dict__.get("_fills_cap", 2 * KEEP_FILLS):
            self._forget(now)
        instrument = self.instruments.get(cmd.symbol)
        if instrument is None:
            self._reject(cmd, now, f"unknown instrument {cmd.symbol}", events)
            return
        if cmd.cloid in self.orders:
            self._reject(cmd, now, f"duplicate client order id {cmd.cloid}", events)
            return
        reason = self._refusal(cmd, instrument)
        quote = self.quotes.get(cmd.symbol)
        crosses = quote is not None and (
            (cmd.side is Side.BUY and cmd.price >= quote.ask)
            or (cmd.side is Side.SELL and cmd.price <= quote.bid)
        )
        if reason is None and cmd.tif is TimeInForce.POST_ONLY and crosses:
            reason = "post-only order would cross the book"
        if reason is not None:
            self.orders[cmd.cloid] = SimOrder.from_command(
                cmd, oid="0", status=ReportedStatus.REJECTED
            )
            self._reject(cmd, now, reason, events)
            return
        self._oid += 1
        order = SimOrder.from_command(cmd, oid=str(self._oid))
        self.orders[cmd.cloid] = order
        self.by_oid[order.oid] = order
        events.append(accepted_of(now, self.config.venue, cmd.cloid, order.oid, cmd.command_id))
        if crosses and quote is not None:
            touch = quote.ask if cmd.side is Side.BUY else quote.bid
            self._fill_order(order, touch, order.remaining, False, now, events)
        if order.status is ReportedStatus.OPEN:
            if cmd.tif is TimeInForce.IOC:
                self._finish(order, ReportedStatus.CANCELED, now, events, "IOC remainder")
            else:
                self.resting[cmd.symbol][order.oid] = order
                self._rest(order)
                self._best_with(order)

    def _positions_reported(self) -> tuple[PositionReport, ...]:
        """Every open position as a positions report lists it, by symbol and side. Positions
        change only with fills (each change stores a new, frozen ``Position``), and the
        reconciliation round asks every minute: while every position is the very object the
        last report was built from, that report's values are reused."""
        positions = self.positions
        last: _PositionsListed | None = self.__dict__.get("_last_positions")
        if last is not None:
            seen, reports = last
            if len(seen) == len(positions) and all(positions.get(k) is p for k, p in seen):
                return reports
        reports = tuple(
            PositionReport(
                symbol=symbol,
                position_side=side,
                qty=p.qty,
                entry_price=p.avg_entry,
            )
            for (symbol, side), p in sorted(
                positions.items(), key=lambda kv: (kv[0][0], kv[0][1].value)
            )
            if p.qty
        )
        self._last_positions = (tuple(positions.items()), reports)
        return reports

    def _reported(self) -> tuple[OpenOrder, ...]:
        """Every resting order as an open-orders report lists it, oldest first. The same orders
        are listed round after round: the value built last time is reused while every field is
        the very object it was built from (an amended or filled order gets a new one); only the
        orders of the last report are kept for that."""
        last: dict[str, OpenOrder] = self.__dict__.get("_last_reported", {})
        kept: dict[str, OpenOrder] = {}
        for o in sorted(self.open_orders(), key=lambda o: int(o.oid)):
            r = last.get(o.cloid)
            if (
                r is None
                or r.venue_order_id is not o.oid
                or r.price is not o.price
                or r.qty is not o.qty
                or r.filled_qty is not o.filled
                or r.symbol is not o.symbol
                or r.side is not o.side
                or r.position_side is not o.position_side
            ):
                r = OpenOrder(
                    cloid=o.cloid,
                    venue_order_id=o.oid,
                    symbol=o.symbol,
                    side=o.side,
                    position_side=o.position_side,
                    price=o.price,
                    qty=o.qty,
                    filled_qty=o.filled,
                )
            kept[o.cloid] = r
        self._last_reported = kept
        return tuple(kept.values())

    def _refusal(self, cmd: PlaceOrder, instrument: Instrument) -> str | None:
        if cmd.qty <= 0 or not instrument.is_on_lot(cmd.qty):
            return f"size {cmd.qty} is not a positive multiple of lot {instrument.lot_size}"
        if cmd.price <= 0 or not instrument.is_on_tick(cmd.price):
            return f"price {cmd.price} is not a positive multiple of tick {instrument.tick_size}"
        hedge = self.config.position_mode is PositionMode.HEDGE
        if hedge and cmd.position_side is PositionSide.BOTH:
            return "account is in hedge mode: position_side must be LONG or SHORT"
        if not hedge and cmd.position_side is not PositionSide.BOTH:
            return "account is in one-way mode: position_side must be BOTH"
        notional = instrument.notional(cmd.qty, cmd.price)
        if closes_exposure(cmd.side, cmd.position_side, cmd.reduce_only):
            probe = SimOrder.from_command(cmd, oid="0")
            if cmd.qty > self._reducible(probe):
                return "reduce-only order would increase the position (size exceeds position)"
            return None
        if notional < instrument.min_notional:
            return f"order value {notional} is under the minimum {instrument.min_notional}"
        need = CTX.divide(notional, self.config.leverage)
        if CTX.add(self._used_margin(), need) > self.equity():
            return "insufficient margin"
        return None

    # --- for reports and tests ------------------------------------------------------------------

    def account_positions(self) -> Mapping[tuple[str, PositionSide], Position]:
        """Every position the venue holds, flat ones included."""
        return dict(self.positions)
