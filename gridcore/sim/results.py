"""The figures people expect from a backtest: return, drawdown in %, round trips, Sharpe.

Pure: functions of an equity curve and a list of fills, plus :class:`Recorder`, a reducer
wrapper that notes the curve while a backtest runs (it only reads the states the reducer
returns, so the run it observes is the run it would have been without it).

Money is ``Decimal`` and exact: the equity curve is the starting balance plus the kernel's net
PnL (realized − fees + funding + unrealized at the last mid). A round trip's fees are the fees of
the fills it matched, split pro rata by quantity when a fill is matched in parts (a division, to
the 40 significant digits of :data:`~gridcore.numbers.CTX`). Ratios and percentages are
rounded half-even to :data:`RATIO_PLACES` decimal places; ``None`` where a ratio is undefined
(no losing trip for the profit factor, fewer than two daily returns for Sharpe).

Definitions (documented for users in ``docs/backtest.md``, "Results"):

* **return %** = net PnL ÷ starting balance × 100.
* **max drawdown %** = the largest fall of equity from its running peak, as a percentage of
  that peak; **its duration** is the longest time equity stayed below a previous peak (from the
  peak to the first point back at or above it, or to the end of the run).
* **round trips** pair each closing fill with the opening fills it closes, first in first out,
  per instrument and position side; a trip's PnL is its price difference times its size less its
  fees. **Win rate** = winning trips ÷ trips; **profit factor** = Σ winning trips' PnL ÷ |Σ losing
  trips' PnL|.
* **Sharpe (daily)** = mean ÷ sample standard deviation of the daily returns × √365 (crypto
  trades every day), risk-free rate 0; **Sortino (daily)** = mean ÷ downside deviation
  (√(Σ min(r, 0)² ÷ n)) × √365. A daily return is the equity at the end of a UTC day over the
  equity at the end of the previous one (the starting balance before the first day) − 1; the
  first and last days are partial when the run starts or ends inside them.
* **fee share** = fees ÷ gross trading PnL (realized PnL before fees) × 100, when that is
  positive: the part of what trading earned that fees took.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

import attrs

from gridcore.core import State, step
from gridcore.events import (
    Event,
    FeedDisconnected,
    FeedReconnected,
    Fill,
    FillsReported,
    FundingPaid,
    OrderFilled,
    OrderPartiallyFilled,
    PositionsReported,
    QuoteTicked,
    ResumeRequested,
    TimerFired,
)
from gridcore.instruments import Side
from gridcore.numbers import CTX, ZERO

__all__ = [
    "DAY_MS",
    "RATIO_PLACES",
    "Drawdown",
    "Outage",
    "Recorder",
    "Results",
    "RoundTrip",
    "TripBook",
    "TripStats",
    "daily_returns",
    "drawdown",
    "percent",
    "results",
    "round_trips",
    "sharpe",
    "sortino",
    "trip_stats",
]

DAY_MS = 86_400_000
#: Decimal places of ratios and percentages (half-even).
RATIO_PLACES = 4
_Q = Decimal(1).scaleb(-RATIO_PLACES)
_HUNDRED = Decimal(100)
_DAYS_PER_YEAR = Decimal(365)
# Events after which the kernel measures its drawdown (fills, funding, positions, the
# maintenance timer, a resume): the curve is noted at the same moments, so the drawdown it
# shows in % is the one the kernel's ``max_drawdown`` measures in quote.
_MEASURED = frozenset(
    {
        OrderFilled,
        OrderPartiallyFilled,
        FillsReported,
        PositionsReported,
        FundingPaid,
        TimerFired,
        ResumeRequested,
    }
)


def _round(value: Decimal) -> Decimal:
    return value.quantize(_Q, context=CTX)


def percent(part: Decimal, whole: Decimal) -> Decimal | None:
    """``part ÷ whole × 100`` rounded to :data:`RATIO_PLACES` places; ``None`` when ``whole``
    is 0."""
    if not whole:
        return None
    return _round(CTX.multiply(CTX.divide(part, whole), _HUNDRED))


# --- drawdown ------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Drawdown:
    """The worst falls of an equity curve: ``max_fall`` in quote, ``max_pct`` in % of the peak
    it fell from (the two may come from different episodes), ``duration_ms`` the longest time
    spent below a previous peak."""

    max_fall: Decimal
    max_pct: Decimal
    duration_ms: int


def drawdown(curve: Sequence[tuple[int, Decimal]], *, end_ts: int | None = None) -> Drawdown:
    """Drawdown figures of ``curve``, ``(ts, equity)`` points in time order; a curve still below
    its peak at the end is underwater until ``end_ts`` (default: its last point).

    >>> drawdown([(0, Decimal(100)), (1, Decimal(80)), (3, Decimal(100))])
    Drawdown(max_fall=Decimal('20'), max_pct=Decimal('20.0000'), duration_ms=3)
    """
    if not curve:
        return Drawdown(max_fall=ZERO, max_pct=_round(ZERO), duration_ms=0)
    peak_ts, peak = curve[0]
    fall_max = pct_max = ZERO
    longest = 0
    underwater = False
    for ts, equity in curve:
        if equity >= peak:
            if underwater:
                longest = max(longest, ts - peak_ts)
                underwater = False
            if equity > peak or not underwater:
                peak_ts, peak = ts, equity
            continue
        underwater = True
        fall = CTX.subtract(peak, equity)
        fall_max = max(fall_max, fall)
        if peak > 0:
            pct_max = max(pct_max, CTX.divide(fall, peak))
    if underwater:
        last = curve[-1][0] if end_ts is None else max(end_ts, curve[-1][0])
        longest = max(longest, last - peak_ts)
    return Drawdown(
        max_fall=fall_max, max_pct=_round(CTX.multiply(pct_max, _HUNDRED)), duration_ms=longest
    )


# --- round trips ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RoundTrip:
    """A position opened and closed: ``qty`` base units, ``long`` when it was bought first;
    ``gross`` is (exit − entry) × qty (× −1 short), ``fees`` the matched share of both fills'
    fees, ``pnl`` = gross − fees."""

    venue: str
    symbol: str
    long: bool
    qty: Decimal
    entry_price: Decimal
    exit_price: Decimal
    entry_ts: int
    exit_ts: int
    gross: Decimal
    fees: Decimal

    @property
    def pnl(self) -> Decimal:
        """Net PnL of the trip (quote)."""
        return CTX.subtract(self.gross, self.fees)


@attrs.define
class _Lot:
    qty: Decimal  # left open, base units
    fill: Fill


def _fee_share(fill: Fill, qty: Decimal) -> Decimal:
    if qty == fill.qty:
        return fill.fee
    return CTX.divide(CTX.multiply(fill.fee, qty), fill.qty)


def round_trips(fills: Iterable[Fill]) -> list[RoundTrip]:
    """Pair closing fills with the opening fills they close, first in first out, per venue,
    symbol and position side; in the order the trips closed. Open lots at the end make no trip."""
    trips: list[RoundTrip] = []
    book = TripBook(on_trip=trips.append)
    for fill in fills:
        book.add(fill)
    return trips


class TripBook:
    """:func:`round_trips` one fill at a time, keeping only the open lots and the running
    figures of :func:`trip_stats` (so that memory does not grow with the number of trips);
    ``on_trip`` is called with every trip as it closes."""

    def __init__(self, on_trip: Callable[[RoundTrip], object] | None = None) -> None:
        self.books: dict[tuple[str, str, str], tuple[bool, deque[_Lot]]] = {}
        self.on_trip = on_trip
        self.trips = self.wins = self.losses = 0
        self.gross_profit = ZERO
        self.gross_loss = ZERO

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TripBook) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def _key(self) -> tuple[object, ...]:
        lots = {
            k: (long, [(lot.qty, lot.fill) for lot in q]) for k, (long, q) in self.books.items()
        }
        return (lots, self.trips, self.wins, self.losses, self.gross_profit, self.gross_loss)

    def copy(self) -> TripBook:
        """An independent copy (without ``on_trip``)."""
        other = TripBook()
        other.books = {
            k: (long, deque(_Lot(lot.qty, lot.fill) for lot in q))
            for k, (long, q) in self.books.items()
        }
        other.trips, other.wins, other.losses = self.trips, self.wins, self.losses
        other.gross_profit, other.gross_loss = self.gross_profit, self.gross_loss
        return other

    def stats(self) -> TripStats:
        """The :class:`TripStats` of every trip closed so far."""
        trips, wins = self.trips, self.wins
        loss = self.gross_loss
        return TripStats(
            trips=trips,
            wins=wins,
            losses=self.losses,
            gross_profit=self.gross_profit,
            gross_loss=loss,
            win_rate=_round(CTX.divide(Decimal(wins), Decimal(trips))) if trips else None,
            profit_factor=_round(CTX.divide(self.gross_profit, loss)) if loss else None,
        )

    def _closed(self, trip: RoundTrip) -> None:
        self.trips += 1
        pnl = trip.pnl
        if pnl > 0:
            self.wins += 1
            self.gross_profit = CTX.add(self.gross_profit, pnl)
        elif pnl < 0:
            self.losses += 1
            self.gross_loss = CTX.subtract(self.gross_loss, pnl)
        if self.on_trip is not None:
            self.on_trip(trip)

    def add(self, fill: Fill) -> None:
        """Book one fill (fills come in time order)."""
        books = self.books
        key = (fill.venue, fill.symbol, fill.position_side.value)
        buy = fill.side is Side.BUY
        long, lots = books.get(key, (buy, deque()))
        if not lots:
            long = buy
        if buy == long:
            lots.append(_Lot(fill.qty, fill))
            books[key] = (long, lots)
            return
        left = fill.qty
        while left > 0 and lots:
            lot = lots[0]
            qty = min(left, lot.qty)
            opened = lot.fill
            diff = CTX.subtract(fill.price, opened.price)
            gross = CTX.multiply(diff if long else -diff, qty)
            fees = CTX.add(_fee_share(opened, qty), _fee_share(fill, qty))
            self._closed(
                RoundTrip(
                    venue=fill.venue,
                    symbol=fill.symbol,
                    long=long,
                    qty=qty,
                    entry_price=opened.price,
                    exit_price=fill.price,
                    entry_ts=opened.ts,
                    exit_ts=fill.ts,
                    gross=gross,
                    fees=fees,
                )
            )
            left = CTX.subtract(left, qty)
            lot.qty = CTX.subtract(lot.qty, qty)
            if not lot.qty:
                lots.popleft()
        if left > 0:
            # The fill closed everything and opened the other way with the rest.
            rest = attrs.evolve(fill, qty=left, fee=_fee_share(fill, left))
            lots.append(_Lot(left, rest))
            long = buy
        books[key] = (long, lots)


@attrs.frozen(kw_only=True)
class TripStats:
    """Counts and ratios of round trips (``win_rate`` a fraction in [0, 1])."""

    trips: int
    wins: int
    losses: int
    gross_profit: Decimal
    gross_loss: Decimal
    win_rate: Decimal | None
    profit_factor: Decimal | None


def trip_stats(trips: Sequence[RoundTrip]) -> TripStats:
    """Wins (PnL > 0), losses (PnL < 0; a trip at exactly 0 is neither), win rate and profit
    factor; ``gross_loss`` is positive."""
    wins = losses = 0
    profit = loss = ZERO
    for trip in trips:
        pnl = trip.pnl
        if pnl > 0:
            wins += 1
            profit = CTX.add(profit, pnl)
        elif pnl < 0:
            losses += 1
            loss = CTX.subtract(loss, pnl)
    return TripStats(
        trips=len(trips),
        wins=wins,
        losses=losses,
        gross_profit=profit,
        gross_loss=loss,
        win_rate=_round(CTX.divide(Decimal(wins), Decimal(len(trips)))) if trips else None,
        profit_factor=_round(CTX.divide(profit, loss)) if loss else None,
    )


# --- daily returns -------------------------------------------------------------------------------


def daily_returns(
    curve: Sequence[tuple[int, Decimal]], *, start_ts: int, end_ts: int, start_equity: Decimal
) -> list[Decimal]:
    """One return per UTC day from ``start_ts``'s day to ``end_ts``'s: the equity at the day's
    end (the last point of ``curve`` before it; the previous day's when the day has none) over
    the previous day's end (``start_equity`` before the first day) − 1. Exact quotients to the
    context's precision; a day after one ending at equity ≤ 0 ends the list."""
    first_day, last_day = start_ts // DAY_MS, max(end_ts, start_ts) // DAY_MS
    out: list[Decimal] = []
    prev = start_equity
    equity = start_equity
    i = 0
    for day in range(first_day, last_day + 1):
        end = (day + 1) * DAY_MS
        while i < len(curve) and curve[i][0] < end:
            equity = curve[i][1]
            i += 1
        if prev <= 0:
            break
        out.append(CTX.subtract(CTX.divide(equity, prev), Decimal(1)))
        prev = equity
    return out


def _mean(values: Sequence[Decimal]) -> Decimal:
    return CTX.divide(sum(values, ZERO), Decimal(len(values)))


def sharpe(returns: Sequence[Decimal]) -> Decimal | None:
    """Annualized Sharpe ratio of daily ``returns`` (risk-free 0, √365); ``None`` with fewer
    than two returns or none that differ."""
    n = len(returns)
    if n < 2:
        return None
    mean = _mean(returns)
    var = CTX.divide(
        sum((CTX.power(CTX.subtract(r, mean), 2) for r in returns), ZERO), Decimal(n - 1)
    )
    if not var:
        return None
    return _round(CTX.multiply(CTX.divide(mean, CTX.sqrt(var)), CTX.sqrt(_DAYS_PER_YEAR)))


def sortino(returns: Sequence[Decimal]) -> Decimal | None:
    """Annualized Sortino ratio of daily ``returns`` (target 0, √365); ``None`` with fewer than
    two returns or no losing day."""
    n = len(returns)
    if n < 2:
        return None
    down = CTX.divide(sum((CTX.power(r, 2) for r in returns if r < 0), ZERO), Decimal(n))
    if not down:
        return None
    return _round(
        CTX.multiply(CTX.divide(_mean(returns), CTX.sqrt(down)), CTX.sqrt(_DAYS_PER_YEAR))
    )


# --- recording a run -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Outage:
    """A feed outage the bot saw: from ``start`` to ``end`` (ms; ``None``: still down at the
    end of the run)."""

    venue: str
    start: int
    end: int | None


class Recorder:
    """Wraps a reducer (default :func:`gridcore.core.step`) and notes, while a backtest runs,
    the net PnL curve (at the moments the kernel measures drawdown, a point only when the value
    changed), the first and last quote, and the feed outages. Pass it as ``reducer=``."""

    def __init__(self, reducer: Any = step) -> None:
        self._reducer = reducer
        self.pnl: list[tuple[int, Decimal]] = []
        """``(ts, net PnL)`` points, in time order: the curve with the points left out that
        neither :func:`drawdown` nor :func:`daily_returns` can tell from it, whatever the
        starting balance (see :meth:`_note`), so that it grows with days and drawdown episodes,
        not with events (failure `unbounded-history`)."""
        self._peak = ZERO  # drawdown()'s running peak, in PnL (the curve starts at 0)
        self._under = False  # the last point is below the peak
        self._recovery = False  # the last point is the first back at or above the peak
        self._low = ZERO  # the lowest point of the current episode below the peak
        self.first_quote: QuoteTicked | None = None
        self.last_quote: QuoteTicked | None = None
        self.first_quotes: dict[tuple[str, str], QuoteTicked] = {}
        """``(venue, symbol)`` -> that instrument's first quote (a run of several assets
        reports each asset's market on its own)."""
        self.last_quotes: dict[tuple[str, str], QuoteTicked] = {}
        self.max_qty: dict[tuple[str, str], Decimal] = {}
        """``(venue, symbol)`` -> the largest position held (base units, absolute)."""
        self.outages: list[Outage] = []
        self._down: dict[str, int] = {}

    def __call__(self, state: State[Any], event: Event) -> tuple[State[Any], list[Any]]:
        after, commands = self._reducer(state, event)
        kind = type(event)
        due = state.books.maintenance_due
        if due and event.ts >= due and after.books.maintenance_due != due:
            # Housekeeping (the drawdown check) ran in this step: after a quote (on the new
            # mark), before any other event (on the state as it was). Note the curve there, as
            # the kernel measured it.
            pnl = after.net_pnl() if kind is QuoteTicked else state.net_pnl()
            if not self.pnl or self.pnl[-1][1] != pnl:
                self._note(event.ts, pnl)
        if kind is QuoteTicked:
            assert isinstance(event, QuoteTicked)
            if self.first_quote is None:
                self.first_quote = event
            self.last_quote = event
            key = (event.venue, event.symbol)
            if key not in self.first_quotes:
                self.first_quotes[key] = event
            self.last_quotes[key] = event
        elif kind in _MEASURED:
            positions = after.ledger.positions
            if positions is not state.ledger.positions:
                for (venue, symbol, _), pos in positions.items():
                    size = abs(pos.qty)
                    if size > self.max_qty.get((venue, symbol), ZERO):
                        self.max_qty[(venue, symbol)] = size
            pnl = after.net_pnl()
            if not self.pnl or self.pnl[-1][1] != pnl:
                self._note(event.ts, pnl)
        elif isinstance(event, FeedDisconnected):
            self._down.setdefault(event.venue, event.ts)
        elif isinstance(event, FeedReconnected):
            start = self._down.pop(event.venue, None)
            if start is not None:
                self.outages.append(Outage(venue=event.venue, start=start, end=event.ts))
        return after, commands

    def _note(self, ts: int, pnl: Decimal) -> None:
        """Add a point, first dropping the last one if nothing can tell it is gone: not the
        last of its UTC day (:func:`daily_returns`), not the lowest of its episode below the
        peak, not the first back at or above the peak nor the last before a fall
        (:func:`drawdown`: falls are the same in PnL and equity, and the deepest point of an
        episode has both its largest fall and its largest % fall, whatever the balance)."""
        points = self.pnl
        under = pnl < self._peak
        if points:
            last_ts, last = points[-1]
            if last_ts // DAY_MS == ts // DAY_MS:
                if self._under:
                    # The episode's lowest point so far is kept; a shallower one is not.
                    if last > self._low or (under and pnl <= last):
                        points.pop()
                elif not self._recovery and not under:
                    points.pop()  # between the first and the last point at or above the peak
        if under:
            self._low = pnl if not self._under or pnl < self._low else self._low
            self._recovery = False
        else:
            self._recovery = self._under
            self._peak = pnl
        self._under = under
        points.append((ts, pnl))

    def all_outages(self) -> list[Outage]:
        """Finished outages and, last, those still open."""
        still = [Outage(venue=v, start=s, end=None) for v, s in sorted(self._down.items())]
        return [*self.outages, *still]

    def equity(self, starting_balance: Decimal, start_ts: int) -> list[tuple[int, Decimal]]:
        """The equity curve: ``(start_ts, starting_balance)`` then balance + net PnL."""
        return [(start_ts, starting_balance)] + [
            (ts, CTX.add(starting_balance, pnl)) for ts, pnl in self.pnl
        ]


# --- the results of a run ------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Results:
    """Figures of a run beyond :class:`~gridcore.sim.Summary` (see the module's definitions).
    Money in quote, exact; ratios and percentages rounded to :data:`RATIO_PLACES` places."""

    starting_balance: Decimal
    end_equity: Decimal
    return_pct: Decimal | None
    max_drawdown_pct: Decimal
    max_drawdown_duration_ms: int
    round_trips: int
    wins: int
    losses: int
    win_rate: Decimal | None
    profit_factor: Decimal | None
    gross_profit: Decimal
    gross_loss: Decimal
    days: int
    sharpe_daily: Decimal | None
    sortino_daily: Decimal | None
    fee_share_pct: Decimal | None
    outages: int
    outage_ms: int


def results(
    *,
    starting_balance: Decimal,
    net_pnl: Decimal,
    realized_pnl: Decimal,
    fees: Decimal,
    curve: Sequence[tuple[int, Decimal]],
    fills: Iterable[Fill],
    start_ts: int,
    end_ts: int,
    outages: Sequence[Outage] = (),
    trips: TripBook | None = None,
) -> Results:
    """The :class:`Results` of a run: ``curve`` is its equity curve (``(ts, equity)``, starting
    with the starting balance), ``fills`` the venue's executions in time order; ``trips`` the
    round trips of the fills before them (what a venue model forgot, see
    :attr:`gridcore.sim.SimExchange.forgotten`), carried on by ``fills``."""
    end_equity = CTX.add(starting_balance, net_pnl)
    dd = drawdown(curve, end_ts=end_ts)
    book = TripBook() if trips is None else trips.copy()
    for fill in fills:
        book.add(fill)
    stats = book.stats()
    returns = daily_returns(curve, start_ts=start_ts, end_ts=end_ts, start_equity=starting_balance)
    return Results(
        starting_balance=starting_balance,
        end_equity=end_equity,
        return_pct=percent(net_pnl, starting_balance),
        max_drawdown_pct=dd.max_pct,
        max_drawdown_duration_ms=dd.duration_ms,
        round_trips=stats.trips,
        wins=stats.wins,
        losses=stats.losses,
        win_rate=stats.win_rate,
        profit_factor=stats.profit_factor,
        gross_profit=stats.gross_profit,
        gross_loss=stats.gross_loss,
        days=len(returns),
        sharpe_daily=sharpe(returns),
        sortino_daily=sortino(returns),
        fee_share_pct=percent(fees, realized_pnl) if realized_pnl > 0 else None,
        outages=len(outages),
        outage_ms=sum((o.end if o.end is not None else end_ts) - o.start for o in outages),
    )
