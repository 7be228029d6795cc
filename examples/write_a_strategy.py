"""Write a strategy and register it: a small mean-reversion maker with a take-profit.

``docs/architecture.md`` ("Write and register a strategy") walks through this file. The
strategy keeps an exponential moving average of the mid. When the market dips more than
``entry_band`` under it, the strategy bids ``order_qty`` at the best bid (a maker order); once
filled it offers the whole position back, reduce-only, ``take_profit`` above its entry, or
sells it at the bid (immediate-or-cancel) once the mid falls ``stop_loss`` under the entry. An
entry the market walks away from (the mid back above the average) is canceled. One cycle at a
time.

It is written only against gridcore's public API and registers itself as strategy kind
``mean_reversion`` when imported. ``write_a_strategy.toml`` beside it names this module, so the
command line imports it (with this directory on ``PYTHONPATH``)::

    PYTHONPATH=examples gridcore backtest --config examples/write_a_strategy.toml
    PYTHONPATH=examples gridcore run --journal mr.db --config examples/write_a_strategy.toml \\
        --duration 60 --speed max
    PYTHONPATH=examples gridcore inspect mr.db

``tests/e2e/test_write_a_strategy.py`` runs exactly that, and proves the strategy with the
harness (every invariant of the catalogue plus this kind's own, under injected faults).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Self

import attrs

from gridcore import (
    Cancel,
    ConfigError,
    Event,
    Instrument,
    Intent,
    OrderChange,
    PositionMode,
    QuoteTicked,
    Rounding,
    Side,
    State,
    Submit,
    TimeInForce,
)
from gridcore.config import BotConfig
from gridcore.invariants import Violation
from gridcore.numbers import add, div, mul, round_to_step, sub
from gridcore.registry import StrategyKind, register

KIND = "mean_reversion"
ONE = Decimal(1)


@attrs.frozen(kw_only=True)
class MeanReversionConfig:
    """The ``[mean_reversion]`` table. ``venue`` and ``symbol`` come from ``[venue]`` and
    ``[instrument]``; every other setting has a default, so an empty table works."""

    venue: str = "sim"
    symbol: str = "BTC-PERP"
    order_qty: Decimal = Decimal("0.002")  # base units per cycle
    window: int = 60  # ticks the moving average spans (its weight is 2 / (window + 1))
    entry_band: Decimal = Decimal("0.001")  # dip under the average, as a fraction, to bid
    take_profit: Decimal = Decimal("0.002")  # sell this fraction above the entry price
    stop_loss: Decimal | None = Decimal("0.005")  # sell at the bid this fraction under entry
    tag: str = "mr"

    def __attrs_post_init__(self) -> None:
        # Errors name the field as <table>.<setting>, like every table of the configuration.
        if self.order_qty <= 0:
            raise ConfigError(
                f"{KIND}.order_qty", f"must be > 0 (base units), got {self.order_qty}"
            )
        if not 2 <= self.window <= 100_000:
            raise ConfigError(f"{KIND}.window", f"must be between 2 and 100000, got {self.window}")
        for name in ("entry_band", "take_profit", "stop_loss"):
            value = getattr(self, name)
            if value is not None and not Decimal(0) < value < Decimal("0.5"):
                raise ConfigError(f"{KIND}.{name}", f"must be between 0 and 0.5, got {value}")
        if not self.tag or ":" in self.tag:
            raise ConfigError(f"{KIND}.tag", f"must be non-empty and without ':', got {self.tag!r}")


def check(config: MeanReversionConfig, bot: BotConfig) -> None:
    """Combination rules: what could never trade is refused when the file is loaded."""
    if bot.venue.position_mode is not PositionMode.ONE_WAY:
        # The strategy buys and sells one net position; on a hedge-mode account its sells
        # would need a position side it does not track.
        raise ConfigError(
            "venue.position_mode",
            f'is "{bot.venue.position_mode.value}"; the {KIND} strategy trades one net '
            'position: set venue.position_mode = "one_way"',
        )
    lot = bot.instrument.lot_size
    if round_to_step(config.order_qty, lot, Rounding.DOWN) != config.order_qty:
        raise ConfigError(
            f"{KIND}.order_qty",
            f"{config.order_qty} is not a whole multiple of instrument.lot_size {lot}",
        )
    limit = bot.risk.max_position
    if limit is not None and config.order_qty > limit:
        raise ConfigError(
            f"{KIND}.order_qty",
            f"{config.order_qty} is larger than risk.max_position {limit}; lower it",
        )


@attrs.frozen(kw_only=True)
class MeanReversion:
    """The strategy and its state: the configuration, the moving average (``None`` before the
    first quote) and the number of the current cycle (it names the orders' tags)."""

    config: MeanReversionConfig
    average: Decimal | None = None
    cycle: int = 0

    # --- the Strategy protocol (every method pure) -------------------------------------------

    def on_tick(self, view: State[Self], tick: QuoteTicked) -> tuple[Self, Sequence[Intent]] | None:
        if (tick.venue, tick.symbol) != (self.config.venue, self.config.symbol):
            return None
        moved = attrs.evolve(self, average=self._averaged(tick.mid, self._instrument(view)))
        return moved.decide(view)

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

    # --- the decision --------------------------------------------------------------------------

    def _instrument(self, view: State[Any]) -> Instrument:
        return view.config.instrument(self.config.venue, self.config.symbol)

    def _averaged(self, mid: Decimal, instrument: Instrument) -> Decimal:
        if self.average is None:
            return mid
        # gridcore.numbers does the arithmetic in one fixed context (never the thread's own).
        weight = div(Decimal(2), Decimal(self.config.window + 1))
        value = add(self.average, mul(weight, sub(mid, self.average)))
        # Kept at a hundredth of a tick: bounded in size, the same on every machine.
        return round_to_step(value, div(instrument.tick_size, Decimal(100)), Rounding.NEAREST)

    def decide(self, view: State[Self]) -> tuple[Self, Sequence[Intent]]:
        """Desired orders against live orders, from the state alone: so it also recovers from
        anything (a reconnect, a restart) by being asked again."""
        cfg = self.config
        quote = view.quotes.get((cfg.venue, cfg.symbol))
        if quote is None or self.average is None or not view.can_trade(cfg.venue):
            return self, ()
        instrument = self._instrument(view)
        live = view.live_orders(f"{cfg.tag}:")
        entries = [o for o in live if o.tag.startswith(f"{cfg.tag}:entry:")]
        exits = [o for o in live if not o.tag.startswith(f"{cfg.tag}:entry:")]
        position = view.ledger.position(cfg.venue, cfg.symbol).qty
        if position > 0:
            # In position: offer exactly what we hold (base units), reduce-only: take the
            # profit above the entry, or cut the loss at the bid once the stop is crossed.
            entry = view.ledger.position(cfg.venue, cfg.symbol).avg_entry
            stop = cfg.stop_loss is not None and quote.mid <= mul(entry, sub(ONE, cfg.stop_loss))
            stale = [
                o
                for o in exits
                if o.qty - o.filled_qty != position or (stop and o.tag.startswith(f"{cfg.tag}:tp:"))
            ]
            if entries or stale:  # what is left of the entry, an exit of the wrong size or kind
                return self, [Cancel(cloid=o.cloid) for o in (*entries, *stale)]
            if exits:
                return self, ()
            if stop:
                price = instrument.round_price(quote.bid, Rounding.DOWN)
                cut = Submit(venue=cfg.venue, symbol=cfg.symbol, side=Side.SELL, qty=position,
                             price=price, tif=TimeInForce.IOC, reduce_only=True,
                             tag=f"{cfg.tag}:stop:{self.cycle}")  # fmt: skip
                return self, [cut]
            target = instrument.round_price(mul(entry, add(ONE, cfg.take_profit)), Rounding.UP)
            price = max(target, instrument.round_price(quote.ask, Rounding.UP))
            tp = Submit(venue=cfg.venue, symbol=cfg.symbol, side=Side.SELL, qty=position,
                        price=price, reduce_only=True, tag=f"{cfg.tag}:tp:{self.cycle}")  # fmt: skip
            return self, [tp]
        if position < 0 or exits:
            # Short (only a venue correction can do that) or flat with an exit still live:
            # cancel our orders and wait; nothing here adds exposure.
            return self, [Cancel(cloid=o.cloid) for o in live]
        if entries:
            # Flat with an entry out: cancel it once the market is back above the average.
            if quote.mid >= self.average:
                return self, [Cancel(cloid=o.cloid) for o in entries]
            return self, ()
        if quote.mid < mul(self.average, sub(ONE, cfg.entry_band)):
            price = instrument.round_price(quote.bid, Rounding.DOWN)
            bid = Submit(venue=cfg.venue, symbol=cfg.symbol, side=Side.BUY, qty=cfg.order_qty,
                         price=price, tag=f"{cfg.tag}:entry:{self.cycle + 1}")  # fmt: skip
            return attrs.evolve(self, cycle=self.cycle + 1), [bid]
        return self, ()


# --- the strategy's own invariant ---------------------------------------------------------------


def one_cycle_at_a_time(state: State[Any]) -> list[Violation]:
    """At most one live entry order, and never an entry and a take-profit live at once (a new
    cycle starts only when the last one is closed)."""
    strategy = state.strategy
    if not isinstance(strategy, MeanReversion):
        return []
    tag = strategy.config.tag
    live = [o for o in state.orders.values() if o.is_live and o.tag.startswith(f"{tag}:")]
    entries = [o.cloid for o in live if o.tag.startswith(f"{tag}:entry:")]
    cycles = {o.tag.rsplit(":", 1)[-1] for o in live}
    if len(entries) > 1 or len(cycles) > 1:
        detail = f"live entries {entries}, live cycles {sorted(cycles)}"
        return [Violation(invariant="one_cycle_at_a_time", ts=state.now, detail=detail)]
    return []


# --- registration: what makes `[strategy] kind = "mean_reversion"` work ----------------------


def build(config: MeanReversionConfig, bot: BotConfig) -> MeanReversion:
    """The initial strategy for a loaded configuration."""
    return MeanReversion(config=config)


MEAN_REVERSION = register(
    StrategyKind(
        name=KIND,
        config_class=MeanReversionConfig,
        strategy_class=MeanReversion,
        build=build,
        check=check,
        invariants=(one_cycle_at_a_time,),
        summary="mean reversion: bid the dips under a moving average, take profit above entry",
    )
)
