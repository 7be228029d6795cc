"""The hedge-mode averaging grid: a LONG and a SHORT ladder on one symbol (strategy kind
``hedge_grid``).

Theory of operation
-------------------
The account is in hedge mode: the LONG and the SHORT position of the symbol are separate
positions (``PositionSide.LONG`` / ``SHORT``), each with its own average entry. Each side runs
the same ladder:

* **Entry.** A flat side opens with one entry at the touch (LONG bids at the bid, SHORT offers at
  the ask). Once it holds a position it averages down (LONG) / up (SHORT) with exactly one
  pending entry, one ``step`` beyond the price of its last entry fill. The size of level ``n``
  is the *reference quantity* of that level: ``base_notional / mid × multiplier[n]`` in base
  units, computed the first time the level is needed in a cycle and kept in the strategy's
  ``reference`` table (shared by both sides) until both sides are flat again (failure
  `stale-reference-table`).
* **Take-profit.** A side holding a position has one reduce-only take-profit at its average
  entry ± ``take_profit``, sized to the whole position. Every entry fill, partial or full, resizes
  and reprices it in the same step with one ``Modify`` (the kernel replaces the order where the
  venue cannot amend); a take-profit not acknowledged yet is modified as soon as it rests.
* **A closed side.** When a take-profit fills, the cycle ends: the pending entries of *both*
  sides are canceled, a fresh positions report is asked for (one ``Refresh``, retried at most
  ``max_refreshes`` times for that cause), and nothing reopens until every cancel has resolved
  and the refresh is answered (failure `orphaned-entries`). A fill that beats a cancel is
  applied by the kernel and accounted here like any other entry fill.
* **Repricing.** A pending entry is repriced (``Modify``) when the mid has moved more than
  ``reprice_threshold`` from the mid it was priced at (failure `stale-pending-entries`).
* **Limits.** ``max_levels`` and ``max_position`` per side cap the ladder. A side whose
  unrealized loss reaches ``max_loss`` is stopped: its orders are canceled, its position is
  closed reduce-only at the touch, and it stays halted (failure `unbounded-side-loss`). More
  than ``max_stops`` stops within ``stop_window_ms``, or more than ``max_tp_failures``
  take-profit failures in a row (failure `take-profit-failures`), halt the whole strategy: no
  new entry on either side (take-profits and stops still work).
* **A quiet step.** A quote or heartbeat that finds every order where the ladder wants it asks
  for nothing and returns the strategy itself (not an equal copy): no intent, no change of state.

Everything the strategy decides it decides from the kernel's view (orders by their ``ref``, the
ledger's positions), inside one step: it keeps no order ids of its own, so a stream update that
arrives before an order's acknowledgement (failure `stream-before-ack`) is just a change of an
order the kernel already named; it keeps no state file (the journal is the state, failure
`torn-state-file`); every order passes the kernel's one risk gate (failure
`split-balance-checks`); a position close that arrives during a reconciliation is applied by the
kernel and reaches :meth:`HedgeGrid.on_changes` / :meth:`HedgeGrid.on_event` like any other
(failure `sync-drops-close`); and it never answers a report with another request (failure
`resync-loop`). ``docs/hedge-grid.md`` lists every setting and the invariants below.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Self

import attrs

from gridcore import (
    Cancel,
    ConfigError,
    CoreEnum,
    Event,
    Instrument,
    Intent,
    Level,
    Modify,
    ModifyRefused,
    Order,
    OrderChange,
    OrderStatus,
    PositionMode,
    PositionSide,
    PositionsReported,
    QuoteTicked,
    Refresh,
    Refreshed,
    RefreshFailed,
    RefreshKind,
    Rounding,
    Say,
    Side,
    State,
    Stimulus,
    Submit,
    SubmitRefused,
    TimeInForce,
)
from gridcore.config import BotConfig
from gridcore.invariants import Violation
from gridcore.numbers import add, div, exact_str, mul, relative_distance, sub
from gridcore.registry import StrategyKind, register

__all__ = [
    "HEDGE_GRID",
    "KIND",
    "HedgeGrid",
    "HedgeGridConfig",
    "SideBook",
    "SideFigures",
    "SidePhase",
    "check",
    "hedge_grid_entries_near_market",
    "hedge_grid_no_averaging_while_flat",
    "hedge_grid_orders_pass_the_gate",
    "hedge_grid_reference_cleared_when_flat",
    "hedge_grid_refreshes_bounded",
    "hedge_grid_reopens_after_cancels",
    "hedge_grid_state_is_a_value",
    "hedge_grid_take_profit_within_position",
    "order_role",
    "side_figures",
]

KIND = "hedge_grid"
REF = "hedge_grid"
"""First element of every ``ref`` this strategy gives: ``(REF, side, role, cycle, level)``."""

ONE = Decimal(1)
ZERO = Decimal(0)
SIDES = (PositionSide.LONG, PositionSide.SHORT)
_RESTING = (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)
_CANCELABLE = (OrderStatus.PENDING_NEW, OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)
#: Refusals that say "not now" rather than "this take-profit cannot be placed".
_TRANSIENT = frozenset({"not_ready", "halted", "velocity", "stale_quote", "stale_balance"})


def _fraction(name: str, value: Decimal, high: Decimal = Decimal("0.5")) -> None:
    if not ZERO < value < high:
        raise ConfigError(
            f"{KIND}.{name}", f"must be between 0 and {high} (a fraction), got {value}"
        )


def _multipliers(text: str) -> tuple[Decimal, ...]:
    parts = text.replace(",", " ").split()
    out: list[Decimal] = []
    for part in parts:
        try:
            value = Decimal(part)
        except ArithmeticError:
            value = Decimal(-1)
        if not value.is_finite() or value <= 0:
            raise ConfigError(
                f"{KIND}.level_multipliers",
                f"{part!r} is not a positive number; write the multipliers of the levels "
                'separated by spaces, for example "1 1 2 3 5"',
            )
        out.append(value)
    if not out:
        raise ConfigError(
            f"{KIND}.level_multipliers", 'is empty; write at least one multiplier, e.g. "1"'
        )
    return tuple(out)


@attrs.frozen(kw_only=True)
class HedgeGridConfig:
    """The ``[hedge_grid]`` table; ``venue`` and ``symbol`` come from ``[venue]`` and
    ``[instrument]``. Every setting has a default (an empty table gives a working bot)."""

    venue: str = "sim"
    symbol: str = "BTC-PERP"
    base_notional: Decimal = Decimal("100")  # quote value of level 0 before its multiplier
    level_multipliers: str = "1 1 2 3 5"  # the reference-quantity multiplier of each level
    max_levels: int = 5  # entry levels per side and cycle (<= number of multipliers)
    step: Decimal = Decimal("0.005")  # next level: this fraction beyond the last entry fill
    take_profit: Decimal = Decimal("0.004")  # take-profit at average entry ± this fraction
    reprice_threshold: Decimal = Decimal("0.05")  # reprice a pending entry after such a move
    max_position: Decimal | None = Decimal("0.03")  # base units per side
    max_loss: Decimal | None = Decimal("60")  # quote: unrealized loss that stops a side
    max_stops: int = 3  # more side stops than this within stop_window_ms halt the strategy
    stop_window_ms: int = 3_600_000
    max_tp_failures: int = 2  # more take-profit failures in a row halt the strategy
    max_refreshes: int = 3  # positions refreshes per closed cycle (the first and its retries)
    retry_ms: int = 5_000  # after a refused order or modify, wait this long before the next
    tag: str = "hg"

    def __attrs_post_init__(self) -> None:
        if self.base_notional <= 0:
            raise ConfigError(
                f"{KIND}.base_notional", f"must be > 0 (quote per level), got {self.base_notional}"
            )
        count = len(_multipliers(self.level_multipliers))
        if not 1 <= self.max_levels <= count:
            raise ConfigError(
                f"{KIND}.max_levels",
                f"must be between 1 and the number of level_multipliers ({count}), "
                f"got {self.max_levels}",
            )
        _fraction("step", self.step)
        _fraction("take_profit", self.take_profit)
        _fraction("reprice_threshold", self.reprice_threshold, Decimal(1))
        for name in ("max_position", "max_loss"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{KIND}.{name}", f'must be > 0 or "off", got {value}')
        for name, low in (
            ("max_stops", 0),
            ("stop_window_ms", 1),
            ("max_tp_failures", 0),
            ("max_refreshes", 1),
            ("retry_ms", 1),
        ):
            if getattr(self, name) < low:
                raise ConfigError(f"{KIND}.{name}", f"must be >= {low}, got {getattr(self, name)}")
        if not self.tag or ":" in self.tag:
            raise ConfigError(f"{KIND}.tag", f"must be non-empty and without ':', got {self.tag!r}")

    @property
    def multipliers(self) -> tuple[Decimal, ...]:
        """The multiplier of each level, parsed from ``level_multipliers``."""
        return _multipliers(self.level_multipliers)


def _reference_qty(cfg: HedgeGridConfig, level: int, mid: Decimal, inst: Instrument) -> Decimal:
    raw = mul(div(cfg.base_notional, mid), cfg.multipliers[level])
    return inst.round_qty(raw, Rounding.DOWN)


def check(config: HedgeGridConfig, bot: BotConfig) -> None:
    """Combination rules: what could never place an order is refused when the file is loaded."""
    if bot.venue.position_mode is not PositionMode.HEDGE:
        raise ConfigError(
            "venue.position_mode",
            f'is "{bot.venue.position_mode.value}"; the {KIND} strategy holds a LONG and a SHORT '
            'position at once: set venue.position_mode = "hedge"',
        )
    inst = bot.make_instrument()
    qty = _reference_qty(config, 0, bot.market.start_price, inst)
    if qty < inst.lot_size or mul(qty, bot.market.start_price) < inst.min_notional:
        raise ConfigError(
            f"{KIND}.base_notional",
            f"{config.base_notional} buys {qty} {inst.base or 'base units'} at the market's start "
            f"price {bot.market.start_price}, under instrument.lot_size {inst.lot_size} or "
            f"min_notional {inst.min_notional}; raise it",
        )
    if config.max_position is not None and qty > config.max_position:
        raise ConfigError(
            f"{KIND}.max_position",
            f"{config.max_position} is under the first entry ({qty}); raise it or lower "
            "base_notional",
        )


class SidePhase(CoreEnum):
    """Where one side of the grid is."""

    TRADING = "trading"  # entries and take-profit as the ladder says
    STOPPING = "stopping"  # loss limit hit: canceling the side's orders, closing its position
    STOPPED = "stopped"  # flat after a stop; this side opens nothing more


@attrs.frozen(kw_only=True)
class SideBook:
    """One side's ladder: its phase, how deep it has averaged this cycle (``depth`` levels with
    a fill), the price of its last entry fill (``anchor``), the mid its pending entry was priced
    at (``basis``), the take-profit target last set (``tp_target``) and its figures."""

    side: PositionSide
    phase: SidePhase = SidePhase.TRADING
    depth: int = 0
    anchor: Decimal | None = None
    basis: Decimal | None = None
    tp_target: Decimal | None = None
    entries: int = 0  # entry orders that got a fill
    max_depth: int = 0
    take_profits: int = 0
    stops: int = 0
    tp_failures: int = 0  # consecutive
    tp_failed: int = 0  # take-profit failures in all

    def flat(self) -> SideBook:
        """A new ladder for this side (figures kept)."""
        return attrs.evolve(self, depth=0, anchor=None, basis=None, tp_target=None)


def _role(order: Order, side: PositionSide | None = None) -> tuple[str, int, int] | None:
    """``(role, cycle, level)`` of one of our orders (``None`` for anyone else's)."""
    ref: Hashable = order.ref
    if not (isinstance(ref, tuple) and len(ref) == 5 and ref[0] == REF):
        return None
    if side is not None and order.position_side is not side:
        return None
    return str(ref[2]), int(ref[3]), int(ref[4])


def _ours(view: State[Any], tag: str, side: PositionSide, role: str) -> list[Order]:
    out = []
    for order in view.live_orders(f"{tag}:"):
        r = _role(order, side)
        if r is not None and r[0] == role:
            out.append(order)
    return out


def _entry_side(side: PositionSide) -> Side:
    return Side.BUY if side is PositionSide.LONG else Side.SELL


@attrs.frozen(kw_only=True)
class HedgeGrid:
    """The strategy and its state (see the module's theory of operation).

    ``cycle`` numbers the orders (tags ``<tag>:entry:<cycle>`` / ``<tag>:tp:<cycle>``) and grows
    with every take-profit fill; ``draining`` is true from a take-profit fill until every entry
    is canceled and the positions refresh answered; ``reference`` is the per-level reference
    quantity table of the cycle; ``refresh_cause`` / ``refreshes`` count the refreshes asked
    for the current cause; ``halted`` says why the whole strategy opens nothing (``""``: it
    trades); ``retry_at`` is when it may submit or modify again after a refusal.
    """

    config: HedgeGridConfig
    long: SideBook = SideBook(side=PositionSide.LONG)
    short: SideBook = SideBook(side=PositionSide.SHORT)
    cycle: int = 1
    draining: bool = False
    awaiting_refresh: bool = False
    refresh_cause: int = 0
    refreshes: int = 0
    reference: tuple[Decimal, ...] = ()
    stop_times: tuple[int, ...] = ()
    halted: str = ""
    retry_at: int = 0

    @classmethod
    def from_config(cls, config: HedgeGridConfig) -> Self:
        """A fresh strategy (no position, cycle 1) for ``config``."""
        return cls(config=config)

    # --- the Strategy protocol (every method pure) -------------------------------------------

    def on_tick(self, view: State[Self], tick: QuoteTicked) -> tuple[Self, Sequence[Intent]] | None:
        if (tick.venue, tick.symbol) != (self.config.venue, self.config.symbol):
            return None
        new, intents = self.decide(view)
        if not intents and new is self:
            return None
        return new, intents

    def on_changes(
        self, view: State[Self], changes: Sequence[OrderChange]
    ) -> tuple[Self, Sequence[Intent]]:
        s, intents = self._account(view, changes)
        new, more = s.decide(view)
        return new, [*intents, *more]

    def on_ready(self, view: State[Self], venue: str) -> tuple[Self, Sequence[Intent]]:
        return self.decide(view)

    def on_timer(self, view: State[Self], timer_id: str) -> tuple[Self, Sequence[Intent]]:
        return self.decide(view)

    def on_event(self, view: State[Self], event: Event) -> tuple[Self, Sequence[Intent]]:
        if isinstance(event, PositionsReported):
            # A close reported during a reconciliation is applied by the kernel; the ladder
            # follows it at once (failure `sync-drops-close`).
            return self.decide(view)
        return self, ()

    def on_stimulus(self, view: State[Self], stimulus: Stimulus) -> tuple[Self, Sequence[Intent]]:
        cfg = self.config
        match stimulus:
            case Refreshed():
                if stimulus.what is RefreshKind.POSITIONS and self.awaiting_refresh:
                    return attrs.evolve(self, awaiting_refresh=False).decide(view)
                return self, ()
            case RefreshFailed():
                if stimulus.what is not RefreshKind.POSITIONS or not self.awaiting_refresh:
                    return self, ()
                if self.refreshes < cfg.max_refreshes:
                    again = Refresh(venue=cfg.venue, what=RefreshKind.POSITIONS)
                    return attrs.evolve(self, refreshes=self.refreshes + 1), [again]
                note = Say(
                    level=Level.WARNING,
                    code="hedge_grid:refresh",
                    message=f"positions refresh failed {self.refreshes} times for cycle "
                    f"{self.refresh_cause}; reopening on the ledger the kernel keeps",
                )
                return attrs.evolve(self, awaiting_refresh=False), [note]
            case SubmitRefused():
                s = attrs.evolve(self, retry_at=view.now + cfg.retry_ms)
                ref = stimulus.ref
                ours = isinstance(ref, tuple) and len(ref) == 5 and ref[0] == REF
                if ours and ref[2] == "tp" and stimulus.code not in _TRANSIENT:  # type: ignore[index]
                    return s._tp_failed(view, PositionSide(ref[1]), stimulus.code)  # type: ignore[index]
                return s, ()
            case ModifyRefused():
                s = attrs.evolve(self, retry_at=view.now + cfg.retry_ms)
                order = view.orders.get(stimulus.cloid)
                role = None if order is None else _role(order)
                if order is not None and role is not None and role[0] == "entry":
                    # The entry still rests where it was priced, not at the mid its repricing
                    # noted: forget that mid, so the entry is repriced once the wait is over
                    # (failure `stale-pending-entries`).
                    s = s._with_book(attrs.evolve(s.book(order.position_side), basis=None))
                if order is not None and role is not None and role[0] == "tp":
                    s = s._with_book(attrs.evolve(s.book(order.position_side), tp_target=None))
                    if stimulus.code == "rejected":
                        return s._tp_failed(view, order.position_side, stimulus.code)
                return s, ()

    # --- bookkeeping --------------------------------------------------------------------------

    def book(self, side: PositionSide) -> SideBook:
        """The ladder of ``side`` (LONG or SHORT)."""
        return self.long if side is PositionSide.LONG else self.short

    def _with_book(self, book: SideBook) -> Self:
        if book is self.book(book.side):
            # Unchanged: the strategy itself, not an equal copy, so that a quote or heartbeat
            # that finds the ladder as desired reports nothing to do (``on_tick`` gives
            # ``None``) and the kernel keeps its state (its quote and housekeeping fast paths).
            return self
        if book.side is PositionSide.LONG:
            return attrs.evolve(self, long=book)
        return attrs.evolve(self, short=book)

    def _tp_failed(
        self, view: State[Any], side: PositionSide, code: str
    ) -> tuple[Self, list[Intent]]:
        book = self.book(side)
        book = attrs.evolve(
            book,
            tp_failures=book.tp_failures + 1,
            tp_failed=book.tp_failed + 1,
            tp_target=None,
        )
        # Wait before trying again: a venue that keeps refusing is not asked at its own pace.
        s = attrs.evolve(self._with_book(book), retry_at=view.now + self.config.retry_ms)
        if book.tp_failures > self.config.max_tp_failures and not s.halted:
            why = f"{book.tp_failures} take-profit failures in a row on {side.value} ({code})"
            return s._halt(why)
        return s, []

    def _halt(self, why: str) -> tuple[Self, list[Intent]]:
        say = Say(level=Level.ALERT, code="hedge_grid:halted", message=f"hedge grid halted: {why}")
        return attrs.evolve(self, halted=why), [say]

    def _account(
        self, view: State[Any], changes: Sequence[OrderChange]
    ) -> tuple[Self, list[Intent]]:
        """Book what the venue did to our orders: entry fills deepen the ladder, a take-profit
        fill ends the cycle, a take-profit rejection counts as a failure."""
        s = self
        intents: list[Intent] = []
        for change in changes:
            after = change.after
            role = _role(after)
            if role is None or after.position_side not in SIDES:
                continue
            kind, cycle, level = role
            book = s.book(after.position_side)
            before = change.before
            if kind == "entry" and change.fill is not None:
                first = before is None or before.filled_qty == 0
                depth = max(book.depth, level + 1 if cycle == s.cycle else 1)
                book = attrs.evolve(
                    book,
                    anchor=change.fill.price,
                    depth=depth,
                    max_depth=max(book.max_depth, depth),
                    entries=book.entries + (1 if first else 0),
                )
                s = s._with_book(book)
            elif kind == "tp":
                was = None if before is None else before.status
                if after.status is OrderStatus.FILLED and was is not OrderStatus.FILLED:
                    book = attrs.evolve(book.flat(), take_profits=book.take_profits + 1)
                    book = attrs.evolve(book, tp_failures=0)
                    s = s._with_book(book)
                    # The cycle ends: both sides' entries go (decide cancels them), a fresh
                    # positions report is asked for once, and nothing reopens before both.
                    s = attrs.evolve(
                        s,
                        cycle=s.cycle + 1,
                        draining=True,
                        awaiting_refresh=True,
                        refresh_cause=s.cycle + 1,
                        refreshes=1,
                    )
                    intents.append(Refresh(venue=s.config.venue, what=RefreshKind.POSITIONS))
                elif after.status is OrderStatus.REJECTED and was is not OrderStatus.REJECTED:
                    s, said = s._tp_failed(view, after.position_side, "rejected")
                    intents.extend(said)
        return s, intents

    # --- the decision --------------------------------------------------------------------------

    def decide(self, view: State[Self]) -> tuple[Self, list[Intent]]:
        """Desired orders against live orders, from the view alone: a reconnect, a restart or
        a drift repair reaches the ladder as a changed state, never as a special case."""
        cfg = self.config
        s = self
        intents: list[Intent] = []
        flat = True
        for side in SIDES:
            book = s.book(side)
            pos = abs(view.ledger.position(cfg.venue, cfg.symbol, side).qty)
            if pos:
                flat = False
            elif book.depth and not _ours(view, cfg.tag, side, "entry"):
                s = s._with_book(book.flat())
        if flat and len(s.reference) > 0:
            # Both sides flat: the reference quantities of the old cycle go (failure
            # `stale-reference-table`); the next entry sizes itself at today's price.
            s = attrs.evolve(s, reference=())
        if s.draining:
            live = [
                o
                for side in SIDES
                for o in _ours(view, cfg.tag, side, "entry")
                if o.status in _CANCELABLE
            ]
            intents.extend(Cancel(cloid=o.cloid) for o in live)
            waiting = any(_ours(view, cfg.tag, side, "entry") for side in SIDES)
            if not waiting and not s.awaiting_refresh:
                s = attrs.evolve(s, draining=False)
        quote = view.quotes.get((cfg.venue, cfg.symbol))
        if quote is not None and view.can_trade(cfg.venue):
            inst = view.config.instrument(cfg.venue, cfg.symbol)
            for side in SIDES:
                s, more = s._side(view, side, quote, inst)
                intents.extend(more)
        if s.halted:
            # Halted (repeated stops, take-profit failures): no entry stays out; take-profits
            # and stops still work, they only reduce exposure.
            intents.extend(
                Cancel(cloid=o.cloid)
                for side in SIDES
                for o in _ours(view, cfg.tag, side, "entry")
                if o.status in _CANCELABLE
            )
        return s, intents

    def _side(
        self, view: State[Any], side: PositionSide, quote: QuoteTicked, inst: Instrument
    ) -> tuple[Self, list[Intent]]:
        cfg = self.config
        s = self
        book = s.book(side)
        position = view.ledger.position(cfg.venue, cfg.symbol, side)
        pos = abs(position.qty)
        entries = _ours(view, cfg.tag, side, "entry")
        tps = _ours(view, cfg.tag, side, "tp")
        closes = _ours(view, cfg.tag, side, "stop")
        out: list[Intent] = []
        long = side is PositionSide.LONG
        may_send = view.now >= s.retry_at
        if (
            book.phase is SidePhase.TRADING
            and pos
            and cfg.max_loss is not None
            and position.unrealized(quote.mid) <= -cfg.max_loss
        ):
            book = attrs.evolve(book, phase=SidePhase.STOPPING, stops=book.stops + 1)
            window = view.now - cfg.stop_window_ms
            times = (*(t for t in s.stop_times if t > window), view.now)
            s = attrs.evolve(s._with_book(book), stop_times=times)
            out.append(
                Say(
                    level=Level.ALERT,
                    code="hedge_grid:stop",
                    message=f"{side.value} side loss {position.unrealized(quote.mid)} reached "
                    f"max_loss {cfg.max_loss}: closing it and halting that side",
                )
            )
            if len(times) > cfg.max_stops and not s.halted:
                s, said = s._halt(f"{len(times)} side stops within {cfg.stop_window_ms} ms")
                out.extend(said)
        if book.phase is SidePhase.STOPPED and pos:
            book = attrs.evolve(book, phase=SidePhase.STOPPING)  # a late fill: flatten it too
            s = s._with_book(book)
        if book.phase is not SidePhase.TRADING:
            out.extend(Cancel(cloid=o.cloid) for o in (*entries, *tps) if o.status in _CANCELABLE)
            if entries or tps or closes:
                return s, out
            if not pos:
                if book.phase is SidePhase.STOPPING:
                    s = s._with_book(attrs.evolve(book.flat(), phase=SidePhase.STOPPED))
                return s, out
            if may_send:
                price = (
                    inst.round_price(quote.bid, Rounding.DOWN)
                    if long
                    else inst.round_price(quote.ask, Rounding.UP)
                )
                out.append(
                    Submit(
                        venue=cfg.venue,
                        symbol=cfg.symbol,
                        side=Side.SELL if long else Side.BUY,
                        position_side=side,
                        qty=pos,
                        price=price,
                        tif=TimeInForce.IOC,
                        reduce_only=True,
                        tag=f"{cfg.tag}:stop:{s.cycle}",
                        ref=(REF, side.value, "stop", s.cycle, book.stops),
                    )
                )
            return s, out

        # --- the take-profit: one, reduce-only, sized to the whole position -------------------
        standing = [o for o in tps if o.status in _CANCELABLE]
        if not pos:
            out.extend(Cancel(cloid=o.cloid) for o in standing)
            averaging = [e for e in entries if e.status in _CANCELABLE and _level(e) > 0]
            out.extend(Cancel(cloid=e.cloid) for e in averaging)  # nothing left to average
        else:
            out.extend(Cancel(cloid=o.cloid) for o in standing[1:])
            target = (
                inst.round_price(mul(position.avg_entry, add(ONE, cfg.take_profit)), Rounding.UP)
                if long
                else inst.round_price(
                    mul(position.avg_entry, sub(ONE, cfg.take_profit)), Rounding.DOWN
                )
            )
            touch = (
                inst.round_price(quote.ask, Rounding.UP)
                if long
                else inst.round_price(quote.bid, Rounding.DOWN)
            )
            price = max(target, touch) if long else min(target, touch)
            if not tps and may_send:
                out.append(
                    Submit(
                        venue=cfg.venue,
                        symbol=cfg.symbol,
                        side=Side.SELL if long else Side.BUY,
                        position_side=side,
                        qty=pos,
                        price=price,
                        reduce_only=True,
                        tag=f"{cfg.tag}:tp:{s.cycle}",
                        ref=(REF, side.value, "tp", s.cycle, 0),
                    )
                )
                book = attrs.evolve(book, tp_target=target)
            elif standing and may_send:
                tp = standing[0]
                if (
                    tp.status in _RESTING
                    and tp.modify_to is None
                    and (tp.remaining != pos or book.tp_target != target)
                ):
                    qty = add(tp.filled_qty, pos)
                    new_price = price if book.tp_target != target else None
                    if new_price == tp.price:
                        new_price = None
                    qty_arg = None if qty == tp.qty else qty
                    if new_price is not None or qty_arg is not None:
                        out.append(Modify(cloid=tp.cloid, price=new_price, qty=qty_arg))
                    book = attrs.evolve(book, tp_target=target)
            s = s._with_book(book)

        # --- the entry: one pending order at the next level -----------------------------------
        if s.draining or s.halted or not may_send:
            return s, out
        pending = [e for e in entries if e.status in _CANCELABLE]
        if entries:
            for e in pending:
                if e.status not in _RESTING or e.modify_to is not None:
                    continue
                basis = book.basis
                if basis is None or abs(sub(quote.mid, basis)) > mul(basis, cfg.reprice_threshold):
                    fresh = s._entry_price(side, _level(e), quote, inst, book)
                    if fresh != e.price:
                        out.append(Modify(cloid=e.cloid, price=fresh))
                    book = attrs.evolve(book, basis=quote.mid)
                    s = s._with_book(book)
            return s, out
        level = book.depth if pos else 0
        if level >= cfg.max_levels:
            return s, out
        s, qty = s._reference(level, quote.mid, inst)
        if qty < inst.lot_size:
            return s, out
        if cfg.max_position is not None and add(pos, qty) > cfg.max_position:
            return s, out
        price = s._entry_price(side, level, quote, inst, book)
        out.append(
            Submit(
                venue=cfg.venue,
                symbol=cfg.symbol,
                side=_entry_side(side),
                position_side=side,
                qty=qty,
                price=price,
                tag=f"{cfg.tag}:entry:{s.cycle}",
                ref=(REF, side.value, "entry", s.cycle, level),
            )
        )
        s = s._with_book(attrs.evolve(book, basis=quote.mid))
        return s, out

    def _reference(self, level: int, mid: Decimal, inst: Instrument) -> tuple[Self, Decimal]:
        """The reference quantity of ``level``, computed once per cycle and kept."""
        table = self.reference
        while len(table) <= level:
            table = (*table, _reference_qty(self.config, len(table), mid, inst))
        s = self if table is self.reference else attrs.evolve(self, reference=table)
        return s, table[level]

    def _entry_price(
        self, side: PositionSide, level: int, quote: QuoteTicked, inst: Instrument, book: SideBook
    ) -> Decimal:
        """Level 0 at the touch; a deeper level one ``step`` beyond the last entry fill, never
        through the touch (a maker order)."""
        cfg = self.config
        if side is PositionSide.LONG:
            bid = inst.round_price(quote.bid, Rounding.DOWN)
            if level == 0 or book.anchor is None:
                return bid
            return min(inst.round_price(mul(book.anchor, sub(ONE, cfg.step)), Rounding.DOWN), bid)
        ask = inst.round_price(quote.ask, Rounding.UP)
        if level == 0 or book.anchor is None:
            return ask
        return max(inst.round_price(mul(book.anchor, add(ONE, cfg.step)), Rounding.UP), ask)

    def order_band(self, view: State[Any]) -> Decimal:
        """How far from the mid (a fraction) an entry may rest, for the catalogue's
        ``orders_within_band``: twice ``reprice_threshold`` for an entry priced at the touch
        (repriced once the mid moved past the threshold, and not during the wait after a
        refusal), and, for a side holding a position, the distance of its next level, one
        ``step`` beyond its last entry fill: an averaging entry is the ladder's next level, not
        a quote, and stays there however far the market runs towards the take-profit (a
        take-profit filled slowly in a thin book leaves it far behind until the cycle ends)."""
        cfg = self.config
        band = mul(Decimal(2), cfg.reprice_threshold)
        mid = view.mid(cfg.venue, cfg.symbol)
        if mid is None or mid <= 0:
            return band
        for side in SIDES:
            anchor = self.book(side).anchor
            if anchor is not None:
                level = add(relative_distance(anchor, mid), cfg.step)
                band = max(band, add(mul(Decimal(2), cfg.reprice_threshold), level))
        return band

    # --- figures for the backtest summary -----------------------------------------------------

    def summary_figures(self, view: State[Any]) -> Mapping[str, str]:
        """The per-side figures of :func:`side_figures` as exact strings (``--json``'s
        ``strategy_metrics``): ``<side> <figure>`` for each side, then ``cycles`` and
        ``halted``. Money is in the side's settlement currency, never added across sides of
        different currencies (both sides of one symbol settle alike)."""
        out: dict[str, str] = {}
        for f in side_figures(view):
            name = f.side.value
            out[f"{name} entries filled"] = str(f.entries)
            out[f"{name} averaging depth (max)"] = str(f.max_depth)
            out[f"{name} take-profits hit"] = str(f.take_profits)
            out[f"{name} take-profit failures"] = str(f.tp_failures)
            out[f"{name} stops"] = str(f.stops)
            out[f"{name} realized PnL"] = exact_str(f.realized)
            out[f"{name} fees"] = exact_str(f.fees)
            out[f"{name} position"] = exact_str(f.position)
            out[f"{name} average entry"] = exact_str(f.avg_entry)
            out[f"{name} currency"] = f.currency
        out["cycles"] = str(self.cycle)
        out["halted"] = self.halted or "no"
        return out


@attrs.frozen(kw_only=True)
class SideFigures:
    """What one side of a hedge grid on ``venue``/``symbol`` has done and holds, for people
    and plots.

    Counts from the strategy's :class:`SideBook`: ``entries`` (entry orders that got a fill),
    ``max_depth`` (the deepest averaging level reached in any cycle), ``take_profits`` (hit),
    ``tp_failures`` (take-profits refused or rejected, in all), ``stops``. Money from the
    kernel's ledger, in ``currency`` (the instrument's settlement currency): ``realized`` PnL,
    ``fees`` paid. ``position`` is the side's signed size (in ``base``, a SHORT is negative) at
    ``avg_entry``. ``pending_entry`` / ``pending_level`` are the price and level of the side's
    live entry of the current cycle and ``take_profit`` the price of its live take-profit
    (``None``: none out)."""

    venue: str
    symbol: str
    side: PositionSide
    phase: SidePhase
    entries: int
    max_depth: int
    take_profits: int
    tp_failures: int
    stops: int
    realized: Decimal
    fees: Decimal
    position: Decimal
    avg_entry: Decimal
    currency: str
    base: str
    pending_entry: Decimal | None
    pending_level: int | None
    take_profit: Decimal | None


def order_role(order: Order) -> str | None:
    """``"entry"``, ``"tp"`` (take-profit) or ``"stop"`` for an order of a hedge grid; ``None``
    for any other order."""
    role = _role(order)
    return None if role is None else role[0]


def side_figures(state: State[Any]) -> tuple[SideFigures, ...]:
    """The LONG then the SHORT :class:`SideFigures` of the hedge grid ``state`` runs; empty
    when its strategy is not a :class:`HedgeGrid`. The one source of the per-side figures of
    ``gridcore backtest``, ``gridcore run``'s stop summary, ``--json`` and the plot."""
    strategy = state.strategy
    if not isinstance(strategy, HedgeGrid):
        return ()
    cfg = strategy.config
    inst = state.config.instrument(cfg.venue, cfg.symbol)
    out = []
    for side in SIDES:
        book = strategy.book(side)
        pos = state.ledger.position(cfg.venue, cfg.symbol, side)
        entry: Order | None = None
        entry_level: int | None = None
        tp: Order | None = None
        for order in state.live_orders(f"{cfg.tag}:"):
            role = _role(order, side)
            if role is None or order.status not in _CANCELABLE:
                continue
            if role[0] == "entry" and role[1] == strategy.cycle:
                entry, entry_level = order, role[2]
            elif role[0] == "tp":
                tp = order
        out.append(
            SideFigures(
                venue=cfg.venue,
                symbol=cfg.symbol,
                side=side,
                phase=book.phase,
                entries=book.entries,
                max_depth=book.max_depth,
                take_profits=book.take_profits,
                tp_failures=book.tp_failed,
                stops=book.stops,
                realized=pos.realized,
                fees=pos.fees,
                position=pos.qty,
                avg_entry=pos.avg_entry,
                currency=inst.settlement,
                base=inst.base,
                pending_entry=None if entry is None else entry.price,
                pending_level=entry_level,
                take_profit=None if tp is None else tp.price,
            )
        )
    return tuple(out)


def _level(order: Order) -> int:
    role = _role(order)
    return 0 if role is None else role[2]


# --- the strategy's own invariants --------------------------------------------------------------


def _strategy(state: State[Any]) -> HedgeGrid | None:
    strategy = state.strategy
    return strategy if isinstance(strategy, HedgeGrid) else None


def _violation(name: str, state: State[Any], detail: str) -> Violation:
    return Violation(invariant=name, ts=state.now, detail=detail)


def _our_live(state: State[Any], strategy: HedgeGrid) -> list[tuple[Order, tuple[str, int, int]]]:
    out = []
    for order in state.orders.values():
        if not order.is_live:
            continue
        role = _role(order)
        if role is not None and order.tag.startswith(f"{strategy.config.tag}:"):
            out.append((order, role))
    return out


def hedge_grid_reopens_after_cancels(state: State[Any]) -> list[Violation]:
    """After a take-profit closed a side, every entry of the older cycles, on both sides, has a
    cancel out or is done, and no entry of the new cycle is live before they all resolved
    (failure `orphaned-entries`)."""
    s = _strategy(state)
    if s is None:
        return []
    live = _our_live(state, s)
    old = [(o, r) for o, r in live if r[0] == "entry" and r[1] < s.cycle]
    out = [
        _violation(
            "hedge_grid_reopens_after_cancels",
            state,
            f"entry {o.cloid} of cycle {r[1]} ({o.position_side.value}) is {o.status.name} in "
            f"cycle {s.cycle} without a cancel out",
        )
        for o, r in old
        if o.status in _CANCELABLE
    ]
    fresh = [o for o, r in live if r[0] == "entry" and r[1] >= s.cycle]
    if old and fresh:
        out.append(
            _violation(
                "hedge_grid_reopens_after_cancels",
                state,
                f"entry {fresh[0].cloid} of cycle {s.cycle} is live while {len(old)} entr(ies) "
                "of an older cycle are not resolved",
            )
        )
    return out


def hedge_grid_take_profit_within_position(state: State[Any]) -> list[Violation]:
    """Each side has at most one take-profit standing, and a resting take-profit never asks to
    close more than the side holds (failure `stream-before-ack`: the strategy tracks no order
    ids of its own, every update is matched by cloid)."""
    s = _strategy(state)
    if s is None:
        return []
    out = []
    for side in SIDES:
        pos = abs(state.ledger.position(s.config.venue, s.config.symbol, side).qty)
        tps = [
            o
            for o, r in _our_live(state, s)
            if r[0] == "tp" and o.position_side is side and o.status in _CANCELABLE
        ]
        if len(tps) > 1:
            out.append(
                _violation(
                    "hedge_grid_take_profit_within_position",
                    state,
                    f"{side.value}: {len(tps)} take-profits standing ({[o.cloid for o in tps]})",
                )
            )
        for tp in tps:
            if tp.status in _RESTING and tp.modify_to is None and tp.remaining > pos:
                out.append(
                    _violation(
                        "hedge_grid_take_profit_within_position",
                        state,
                        f"{side.value}: take-profit {tp.cloid} closes {tp.remaining} but the "
                        f"side holds {pos}",
                    )
                )
    return out


def hedge_grid_refreshes_bounded(state: State[Any]) -> list[Violation]:
    """The strategy asks for at most ``max_refreshes`` positions refreshes per cause (failure
    `resync-loop`: a report never triggers another request for the same cause)."""
    s = _strategy(state)
    if s is None or s.refreshes <= s.config.max_refreshes:
        return []
    return [
        _violation(
            "hedge_grid_refreshes_bounded",
            state,
            f"{s.refreshes} refreshes for cause {s.refresh_cause} "
            f"(max_refreshes {s.config.max_refreshes})",
        )
    ]


def hedge_grid_orders_pass_the_gate(state: State[Any]) -> list[Violation]:
    """Every live entry of the strategy holds a margin reservation of the one risk gate
    (failure `split-balance-checks`: no order path with a balance check of its own)."""
    s = _strategy(state)
    if s is None:
        return []
    return [
        _violation(
            "hedge_grid_orders_pass_the_gate",
            state,
            f"entry {o.cloid} ({o.position_side.value} {o.remaining} @ {o.price}) is live "
            "without a reservation",
        )
        for o, r in _our_live(state, s)
        if r[0] == "entry" and not o.reduce_only and o.remaining > 0 and o.reserved <= 0
    ]


def _immutable(value: object) -> bool:
    if isinstance(value, str | int | Decimal | bool | CoreEnum) or value is None:
        return True
    if isinstance(value, tuple):
        return all(_immutable(v) for v in value)
    if attrs.has(type(value)):
        params = getattr(type(value), "__attrs_attrs__", ())
        frozen = getattr(type(value), "__setattr__", None) is not object.__setattr__
        return frozen and all(_immutable(getattr(value, a.name)) for a in params)
    return False


def hedge_grid_state_is_a_value(state: State[Any]) -> list[Violation]:
    """The strategy's state is an immutable value made of tuples, numbers, strings and enums,
    so the journal's fold reproduces it exactly after a kill at any point (failure
    `torn-state-file`: no state kept, or written, outside the journal)."""
    s = _strategy(state)
    if s is None or _immutable(s):
        return []
    return [
        _violation(
            "hedge_grid_state_is_a_value",
            state,
            f"{type(s).__name__} holds a mutable value; the journal cannot reproduce it",
        )
    ]


def hedge_grid_reference_cleared_when_flat(state: State[Any]) -> list[Violation]:
    """Flat on both sides ⇒ the reference-quantity table holds at most the first level, sized
    since both became flat (failure `stale-reference-table`)."""
    s = _strategy(state)
    if s is None or len(s.reference) <= 1:
        return []
    if any(state.ledger.position(s.config.venue, s.config.symbol, side).qty for side in SIDES):
        return []
    return [
        _violation(
            "hedge_grid_reference_cleared_when_flat",
            state,
            f"both sides flat but the reference table holds {len(s.reference)} levels",
        )
    ]


def hedge_grid_entries_near_market(state: State[Any]) -> list[Violation]:
    """While the venue trades, a resting entry was priced at a mid within
    ``reprice_threshold`` of the current mid, or is being repriced (failure
    `stale-pending-entries`).

    Not judged while the strategy waits after a refusal: it then sends nothing, a repricing
    included, for ``retry_ms``, and reprices on the first quote after the wait. The exemption
    is bounded: it holds only while the latest quote predates the end of the wait, so at most
    ``retry_ms`` after the refusal plus the time to the next quote."""
    s = _strategy(state)
    if s is None or not state.can_trade(s.config.venue):
        return []
    quote = state.quotes.get((s.config.venue, s.config.symbol))
    if quote is None:
        return []
    if quote.ts < s.retry_at and s.retry_at - s.config.retry_ms <= state.now:
        return []  # waiting after a refusal (a wait longer than retry_ms is judged)
    mid = quote.mid
    out = []
    for o, r in _our_live(state, s):
        if r[0] != "entry" or o.status not in _RESTING or o.modify_to is not None:
            continue
        basis = s.book(o.position_side).basis
        if basis is None or abs(sub(mid, basis)) > mul(basis, s.config.reprice_threshold):
            out.append(
                _violation(
                    "hedge_grid_entries_near_market",
                    state,
                    f"entry {o.cloid} at {o.price} was priced at mid {basis}, the mid is {mid}",
                )
            )
    return out


def hedge_grid_no_averaging_while_flat(state: State[Any]) -> list[Violation]:
    """A side the ledger shows flat has no averaging entry (level ≥ 1) standing: a close,
    however it arrived (a take-profit fill, a report during a reconciliation), is applied to
    the ladder at once (failure `sync-drops-close`)."""
    s = _strategy(state)
    if s is None:
        return []
    out = []
    for side in SIDES:
        if state.ledger.position(s.config.venue, s.config.symbol, side).qty:
            continue
        for o, r in _our_live(state, s):
            if (
                r[0] == "entry"
                and r[2] > 0
                and o.position_side is side
                and o.status in _CANCELABLE
                and o.filled_qty == 0
            ):
                out.append(
                    _violation(
                        "hedge_grid_no_averaging_while_flat",
                        state,
                        f"{side.value} is flat but averaging entry {o.cloid} (level {r[2]}) "
                        f"is {o.status.name}",
                    )
                )
    return out


INVARIANTS = (
    hedge_grid_reopens_after_cancels,
    hedge_grid_take_profit_within_position,
    hedge_grid_refreshes_bounded,
    hedge_grid_orders_pass_the_gate,
    hedge_grid_state_is_a_value,
    hedge_grid_reference_cleared_when_flat,
    hedge_grid_entries_near_market,
    hedge_grid_no_averaging_while_flat,
)
"""The strategy's invariants, one per failure it answers (``docs/hedge-grid.md``)."""


# --- registration: `[strategy] kind = "hedge_grid"` -----------------------------------------------


def build(config: HedgeGridConfig, bot: BotConfig) -> HedgeGrid:
    """The initial strategy for a loaded configuration."""
    return HedgeGrid(config=config)


HEDGE_GRID = register(
    StrategyKind(
        name=KIND,
        config_class=HedgeGridConfig,
        strategy_class=HedgeGrid,
        build=build,
        check=check,
        codec_classes={
            f"{KIND}:{cls.__qualname__}": cls
            for cls in (HedgeGrid, HedgeGridConfig, SideBook, SidePhase)
        },
        invariants=INVARIANTS,
        summary="hedge-mode averaging grid: LONG and SHORT ladders with one take-profit each",
    )
)
