"""Real bots the harness must pass: the neutral grid and a small take-profit strategy.

:class:`TakeProfitBot` exercises what the neutral grid never does: closing orders sized from
the position, and take-profits that end a cycle. It follows the tagging convention of
:func:`gridcore.invariants.no_entry_left_after_take_profit` (``<tag>:entry:<n>`` and
``<tag>:tp:<n>``). Two switches turn it into the broken twins of ``broken.py``; both default to
the correct behaviour.

Cycle: flat, it places one buy below and one sell above the mid (entries). When an entry
fills, it keeps a reduce-only take-profit of exactly the position's base quantity on the other
side. When the take-profit fills (or the position is flat again), the cycle ends: every order
of the cycle is canceled, on both sides (failure `orphaned-entries`), and the next cycle's entries are placed
only once those cancels have resolved. Entries left far from the market are repriced.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Self

import attrs

from gridcore import (
    Cancel,
    Event,
    Intent,
    Order,
    OrderChange,
    OrderStatus,
    QuoteTicked,
    Rounding,
    Side,
    State,
    Submit,
)
from gridcore.config import BotConfig, load_config
from gridcore.core import CoreConfig, initial_state
from gridcore.grid import NeutralGrid
from gridcore.invariants import TAKE_PROFIT_TAG
from gridcore.numbers import CTX, ONE, ZERO
from gridcore.risk import RiskConfig

__all__ = [
    "EPOCH",
    "TakeProfitBot",
    "TakeProfitConfig",
    "grid_bot",
    "grid_config",
    "take_profit_bot",
    "take_profit_core_config",
]

EPOCH = 1_700_000_000_000
_RESTING = (OrderStatus.PENDING_NEW, OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)
_TWO = Decimal(2)


@attrs.frozen(kw_only=True)
class TakeProfitConfig:
    """Sizes in base units; offsets are fractions of a price.

    ``close_in_notional`` sizes the take-profit in quote (its notional) instead of base units:
    the broken twin of failure `rollback-in-quote`. ``cancel_entries_on_close=False`` leaves the other side's
    entries open after a take-profit: the broken twin of failure `orphaned-entries`.
    ``reprice_entries=False`` never withdraws an entry the market moved away from (its
    declared band stays the same): the broken twin of failure `stale-pending-entries`.
    """

    venue: str = "sim"
    symbol: str = "BTC-PERP"
    qty: Decimal = Decimal("0.002")
    entry_offset: Decimal = Decimal("0.001")
    take_profit: Decimal = Decimal("0.0005")
    reprice: Decimal = Decimal("0.003")
    tag: str = "tp"
    close_in_notional: bool = False
    cancel_entries_on_close: bool = True
    reprice_entries: bool = True


def _role(order: Order, tag: str) -> tuple[str, int] | None:
    m = TAKE_PROFIT_TAG.match(order.tag)
    if m is None or m["bot"] != tag:
        return None
    return m["role"], int(m["cycle"])


@attrs.frozen(kw_only=True)
class TakeProfitBot:
    """A cycle-based entry / take-profit strategy (a :class:`gridcore.Strategy`)."""

    config: TakeProfitConfig = TakeProfitConfig()
    cycle: int = 0
    entered: bool = False
    anchor: Decimal | None = None
    closes: int = 0

    def on_tick(self, view: State[Self], tick: QuoteTicked) -> tuple[Self, Sequence[Intent]] | None:
        if tick.symbol != self.config.symbol or not view.can_trade(self.config.venue):
            return None
        new, intents = self.decide(view)
        if not intents and new == self:
            return None
        return new, intents

    def on_changes(
        self, view: State[Self], changes: Sequence[OrderChange]
    ) -> tuple[Self, Sequence[Intent]]:
        return self.decide(view)

    def on_ready(self, view: State[Self], venue: str) -> tuple[Self, Sequence[Intent]]:
        return self.decide(view)

    def on_timer(self, view: State[Self], timer_id: str) -> tuple[Self, Sequence[Intent]]:
        return self.decide(view)

    def on_event(self, view: State[Self], event: Event) -> tuple[Self, Sequence[Intent]]:
        return self, ()

    def order_band(self, view: State[Self]) -> Decimal:
        """Entries rest within their offset plus the repricing threshold of the mid (and half a
        percent for rounding and the move of one quote)."""
        cfg = self.config
        return CTX.add(CTX.add(cfg.entry_offset, cfg.reprice), Decimal("0.005"))

    # --- the strategy -----------------------------------------------------------------------

    def decide(self, view: State[Self]) -> tuple[Self, Sequence[Intent]]:
        """Desired orders against live ones. Cancels go out whatever the venue's phase (they
        are how a cycle ends); new orders only when the venue can trade."""
        cfg = self.config
        mine: list[tuple[str, int, Order]] = []
        tp_filled = False
        for order in view.orders.values():
            role = _role(order, cfg.tag)
            if role is None:
                continue
            if role == ("tp", self.cycle) and order.status is OrderStatus.FILLED:
                tp_filled = True
            if order.is_live:
                mine.append((role[0], role[1], order))
        pos = view.ledger.position(cfg.venue, cfg.symbol).qty
        if tp_filled or (self.entered and not pos):
            # The cycle is over: cancel what is left of it, both sides (failure `orphaned-entries`).
            closing = [
                Cancel(cloid=o.cloid)
                for role, _, o in mine
                if o.status in _RESTING and (cfg.cancel_entries_on_close or role == "tp")
            ]
            return attrs.evolve(
                self, cycle=self.cycle + 1, entered=False, anchor=None, closes=self.closes + 1
            ), closing
        old = [o for _, cycle, o in mine if cycle < self.cycle]
        if old:
            # Reopen only after the old cycle's cancels resolve; one that failed and turned out
            # to rest is canceled again.
            return self, [Cancel(cloid=o.cloid) for o in old if o.status in _RESTING]
        quote = view.quotes.get((cfg.venue, cfg.symbol))
        if quote is None:
            return self, ()
        instrument = view.config.instrument(cfg.venue, cfg.symbol)
        can_place = view.can_trade(cfg.venue)
        current = [(role, o) for role, cycle, o in mine if cycle == self.cycle]
        if pos:
            bot = self if self.entered else attrs.evolve(self, entered=True)
            return bot, bot._take_profit(view, current, pos, quote, can_place)
        entries = [o for role, o in current if role == "entry"]
        mid = CTX.divide(CTX.add(quote.bid, quote.ask), _TWO)
        if entries:
            # Repriced once the mid moved ``reprice`` from where the entries were placed. An
            # entry whose withdrawal failed (its cancel refused or timed out, then the venue
            # reported it open) comes back with no anchor: it is judged by its own distance
            # from the mid, its offset plus the threshold.
            far = CTX.add(cfg.entry_offset, cfg.reprice)
            moved = (
                abs(CTX.divide(CTX.subtract(mid, self.anchor), self.anchor))
                if self.anchor is not None
                else ZERO
            )
            stale = [
                o
                for o in entries
                if o.status in _RESTING
                and (moved > cfg.reprice or abs(CTX.divide(CTX.subtract(o.price, mid), mid)) > far)
            ]
            if cfg.reprice_entries and stale:
                return attrs.evolve(self, anchor=None), [Cancel(cloid=o.cloid) for o in stale]
            return self, ()
        if not can_place:
            return self, ()
        below = CTX.multiply(mid, CTX.subtract(ONE, cfg.entry_offset))
        above = CTX.multiply(mid, CTX.add(ONE, cfg.entry_offset))
        tag = f"{cfg.tag}:entry:{self.cycle}"
        return attrs.evolve(self, anchor=mid), [
            Submit(
                venue=cfg.venue,
                symbol=cfg.symbol,
                side=Side.BUY,
                qty=cfg.qty,
                price=instrument.round_price(below, Rounding.DOWN),
                tag=tag,
            ),
            Submit(
                venue=cfg.venue,
                symbol=cfg.symbol,
                side=Side.SELL,
                qty=cfg.qty,
                price=instrument.round_price(above, Rounding.UP),
                tag=tag,
            ),
        ]

    def _take_profit(
        self,
        view: State[Self],
        current: list[tuple[str, Order]],
        pos: Decimal,
        quote: QuoteTicked,
        can_place: bool,
    ) -> list[Intent]:
        cfg = self.config
        instrument = view.config.instrument(cfg.venue, cfg.symbol)
        side = Side.SELL if pos > 0 else Side.BUY
        size = abs(pos)
        if cfg.close_in_notional:
            # The broken twin: the close sized in quote, as in failure `rollback-in-quote`.
            size = instrument.round_qty(CTX.multiply(size, quote.bid))
        mid = quote.mid
        stale: list[Intent] = [
            Cancel(cloid=o.cloid)
            for role, o in current
            if role == "entry"
            and o.status in _RESTING
            and cfg.reprice_entries
            and abs(CTX.divide(CTX.subtract(o.price, mid), mid)) > cfg.reprice
        ]
        if stale:
            # An entry the market left behind while the position is open: withdraw it.
            return stale
        tps = [o for role, o in current if role == "tp"]
        wrong = [o for o in tps if o.side is not side or o.remaining != size]
        if wrong:
            # Resize: cancel, and place again only once the old close is gone, so that two
            # closes never add up to more than the position.
            return [Cancel(cloid=o.cloid) for o in wrong if o.status in _RESTING]
        if tps or not can_place:
            return []
        pos_entry = view.ledger.position(cfg.venue, cfg.symbol).avg_entry
        if side is Side.SELL:
            target = CTX.multiply(pos_entry, CTX.add(ONE, cfg.take_profit))
            price = max(instrument.round_price(target, Rounding.UP), quote.ask)
        else:
            target = CTX.multiply(pos_entry, CTX.subtract(ONE, cfg.take_profit))
            price = min(instrument.round_price(target, Rounding.DOWN), quote.bid)
        if price <= ZERO:
            return []
        return [
            Submit(
                venue=cfg.venue,
                symbol=cfg.symbol,
                side=side,
                qty=size,
                price=price,
                reduce_only=True,
                tag=f"{cfg.tag}:tp:{self.cycle}",
            )
        ]


# --- ready-made bots ------------------------------------------------------------------------


def grid_config(
    *,
    order_qty: str = "0.002",
    levels: int = 3,
    max_order_notional: str = "1000",
    max_position: str = "0.05",
    reconcile_ms: int = 60_000,
    max_sync_attempts: int = 3,
) -> BotConfig:
    """A lively neutral grid: tick 1 on a 50,000 market, levels 0.1 % apart (quantities in
    base units, notionals in quote, as strings)."""
    return load_config(
        f"""
[instrument]
tick_size = "1"
lot_size = "0.001"
min_notional = "10"

[grid]
levels = {levels}
spacing = "0.001"
order_qty = "{order_qty}"
max_inventory = "off"

[risk]
max_position = "{max_position}"
max_order_notional = "{max_order_notional}"
max_drawdown = "off"

[core]
reconcile_ms = {reconcile_ms}
max_sync_attempts = {max_sync_attempts}
""",
        source="tests/harness/bots.py",
    )


def grid_bot(config: BotConfig | None = None, *, epoch: int = EPOCH) -> State[NeutralGrid]:
    """A fresh neutral-grid bot."""
    cfg = config or grid_config()
    return initial_state(cfg.make_core_config(), NeutralGrid(config=cfg.grid), epoch=epoch)


def take_profit_core_config(
    *, reconcile_ms: int = 60_000, max_sync_attempts: int = 3
) -> CoreConfig:
    """The kernel configuration the take-profit bot runs with: the grid's instrument, and a
    risk gate with the safe defaults but no ``max_order_notional`` (that limit would refuse a
    close sized in quote before it left the core, hiding what the harness must find)."""
    cfg = grid_config()
    return attrs.evolve(
        cfg.make_core_config(),
        risk=RiskConfig(
            leverage=cfg.venue.leverage,
            max_position=Decimal("0.05"),
            max_order_notional=None,
            max_drawdown=None,
        ),
        reconcile_ms=reconcile_ms,
        max_sync_attempts=max_sync_attempts,
    )


def take_profit_bot(
    config: TakeProfitConfig | None = None, *, epoch: int = EPOCH, max_sync_attempts: int = 3
) -> State[TakeProfitBot]:
    """A fresh take-profit bot (the correct one unless ``config`` breaks it)."""
    return initial_state(
        take_profit_core_config(max_sync_attempts=max_sync_attempts),
        TakeProfitBot(config=config or TakeProfitConfig()),
        epoch=epoch,
    )
