"""The neutral grid: buy levels below a center, sell levels above, one level apart.

Theory of operation
-------------------
Levels sit at ``center + i × step`` for ``i`` in ``-levels .. +levels``. One level, the
*pivot*, is empty; levels below it hold buys and levels above it hold sells. When a buy fills,
the pivot moves down to it and a sell appears one level up; when a sell fills, a buy appears one
level down. The total stays ``2 × levels`` orders.

The pivot is derived from the position, not counted from fill events: starting from
``base_position`` at the center, each fully filled buy level adds its size. So fills that
arrive late, twice or out of order, or the repair of a drifted position, all give the grid the
position it must reflect (failure `fill-during-rebuild`: grid orders always match the position they were computed
from, because both are read from one state in one step).

Every rebuild is a minimal diff computed inside one step: desired orders (from center, step,
pivot and inventory limits) against live orders, keyed by ``(side, price)``. Live orders that
match are kept, including partially filled ones; the rest are canceled; missing levels are
placed. A level whose order is being canceled is left empty until the cancel resolves, and an
order in doubt or whose cancel failed still holds its level, so the grid never doubles a level.

Spacing has a floor no tightening can cross (failure `spacing-collapse`): ``max(tick, round-trip maker fee
+ one tick, min_spacing)``, rounded up to the tick. Buys are rounded down and sells up, so bids
stay strictly below asks. When the price leaves the grid the center moves, snapped to the old
lattice where the step is unchanged so that the diff keeps the levels that still fit.

:func:`pivot_for` and :func:`grid_levels` compute the same rules from plain values (what
:class:`NeutralGrid` does through a :class:`Lattice`), for tools and property tests that check
the grid's shape without running a bot. Like every strategy, this module imports only the
public API (``tests/unit/test_layering.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Self

import attrs

from gridcore.commands import Level
from gridcore.core import Cancel, Intent, OrderChange, Say, State, Submit
from gridcore.errors import ConfigError
from gridcore.events import Event, QuoteTicked
from gridcore.instruments import Instrument, PositionSide, Side, TimeInForce
from gridcore.lifecycle import OrderStatus
from gridcore.numbers import CTX, ONE, ZERO, Rounding
from gridcore.risk import Refusal, check_order, predates_feed

if TYPE_CHECKING:
    from gridcore.invariants import Violation

__all__ = [
    "GridConfig",
    "GridLevel",
    "Lattice",
    "NeutralGrid",
    "compute_spacing",
    "grid_levels",
    "pivot_for",
]

_TWO = Decimal(2)
#: Base units per level when neither ``order_qty`` nor ``order_notional`` is given.
DEFAULT_ORDER_QTY = Decimal("0.002")
_WAITING = frozenset({OrderStatus.PENDING_CANCEL, OrderStatus.CANCEL_FAILED, OrderStatus.IN_DOUBT})
_PENDING_CANCEL, _CANCEL_FAILED, _IN_DOUBT = (
    OrderStatus.PENDING_CANCEL,
    OrderStatus.CANCEL_FAILED,
    OrderStatus.IN_DOUBT,
)
_BUY, _SELL = Side.BUY, Side.SELL


def _default_order_qty(config: GridConfig) -> Decimal | None:
    return DEFAULT_ORDER_QTY if config.order_notional is None else None


@attrs.frozen(kw_only=True)
class GridConfig:
    """How the neutral grid trades.

    ``levels`` per side (1-100); ``spacing`` between levels as a fraction of the center price
    (0 < spacing < 0.5); ``min_spacing`` an absolute floor in quote. Size per level is exactly
    one of ``order_qty`` (base units) or ``order_notional`` (quote): giving ``order_notional``
    unsets the default ``order_qty``. ``max_inventory`` caps the position (base units) the grid
    may build on either side; it is off only when ``None`` is passed explicitly.

    The defaults are the documented ones (``docs/configuration.md``), the same that an empty
    configuration file gives: a class default that differs from the file's would silently
    change the bot a user gets depending on how it was built.
    """

    venue: str = "sim"
    symbol: str = "BTC-PERP"
    levels: int = 5
    spacing: Decimal = Decimal("0.002")
    min_spacing: Decimal = ZERO
    order_notional: Decimal | None = None
    order_qty: Decimal | None = attrs.field(
        default=attrs.Factory(_default_order_qty, takes_self=True)
    )
    max_inventory: Decimal | None = Decimal("0.02")
    position_side: PositionSide = PositionSide.BOTH
    tag: str = "grid"

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.levels <= 100:
            raise ConfigError("grid.levels", f"must be between 1 and 100, got {self.levels}")
        if not ZERO < self.spacing < Decimal("0.5"):
            raise ConfigError(
                "grid.spacing",
                f"must be a fraction of the price between 0 and 0.5 (exclusive), got {self.spacing}",
            )
        if self.min_spacing < 0:
            raise ConfigError("grid.min_spacing", f"must be >= 0 (quote), got {self.min_spacing}")
        if (self.order_qty is None) == (self.order_notional is None):
            raise ConfigError(
                "grid.order_qty",
                "set exactly one of order_qty (base units) and order_notional (quote)",
            )
        if self.order_qty is not None and self.order_qty <= 0:
            raise ConfigError("grid.order_qty", f"must be > 0 (base units), got {self.order_qty}")
        if self.order_notional is not None and self.order_notional <= 0:
            raise ConfigError(
                "grid.order_notional", f"must be > 0 (quote), got {self.order_notional}"
            )
        if self.max_inventory is not None and self.max_inventory <= 0:
            raise ConfigError(
                "grid.max_inventory",
                f"must be > 0 (base units), got {self.max_inventory}; to let the grid build any "
                'position write "off" (None in Python)',
            )
        if not self.tag or ":" in self.tag:
            raise ConfigError("grid.tag", f"must be non-empty and without ':', got {self.tag!r}")


def compute_spacing(
    price: Decimal,
    instrument: Instrument,
    *,
    spacing: Decimal,
    min_spacing: Decimal = ZERO,
    tightening: Decimal = ZERO,
) -> Decimal:
    """The step between levels (quote), a whole number of ticks, never under the floor.

    ``tightening`` (0 to 1) shrinks the configured spacing, as loss-drift logic might; whatever
    it is, the result is at least ``max(tick, price × 2 × maker fee + tick, min_spacing)``.
    """
    raw = CTX.multiply(CTX.multiply(price, spacing), CTX.subtract(ONE, max(ZERO, tightening)))
    fee_floor = CTX.add(
        CTX.multiply(CTX.multiply(price, _TWO), max(instrument.maker_fee, ZERO)),
        instrument.tick_size,
    )
    floor = max(instrument.tick_size, fee_floor, min_spacing)
    return instrument.round_price(max(raw, floor), Rounding.UP)


@attrs.frozen(kw_only=True)
class GridLevel:
    """One desired order: level index (0 is the center), side, price and base quantity."""

    index: int
    side: Side
    price: Decimal
    qty: Decimal


def _level_qty(config: GridConfig, instrument: Instrument, price: Decimal) -> Decimal:
    if config.order_qty is not None:
        return config.order_qty
    assert config.order_notional is not None
    return instrument.qty_for_notional(config.order_notional, price)


@attrs.frozen(kw_only=True)
class Lattice:
    """Every level of one centered grid, computed once per (re)centering.

    Index ``k`` of each tuple is level ``k - levels``. ``buy_prices`` are rounded down to the
    tick and ``sell_prices`` up (identical when center and step are on the tick, as the grid
    makes them); ``sizes`` are base quantities (0 for a level at or below zero price).
    """

    levels: int
    buy_prices: tuple[Decimal, ...]
    sell_prices: tuple[Decimal, ...]
    sizes: tuple[Decimal, ...]

    @classmethod
    def build(
        cls, *, center: Decimal, step: Decimal, config: GridConfig, instrument: Instrument
    ) -> Lattice:
        """The lattice of ``config.levels`` levels a side around ``center``."""
        n = config.levels
        buys, sells, sizes = [], [], []
        for i in range(-n, n + 1):
            raw = CTX.add(center, CTX.multiply(Decimal(i), step))
            buy = instrument.round_price(raw, Rounding.DOWN)
            sell = instrument.round_price(raw, Rounding.UP)
            buys.append(buy)
            sells.append(sell)
            sizes.append(_level_qty(config, instrument, buy) if buy > 0 else ZERO)
        return cls(levels=n, buy_prices=tuple(buys), sell_prices=tuple(sells), sizes=tuple(sizes))

    def pivot(self, delta: Decimal) -> int:
        """The empty level for a position ``delta`` (base) away from the base position: each
        fully filled level on the side the position grew moves it one level."""
        if not delta:
            return 0
        direction = -1 if delta > 0 else 1  # bought: the pivot moved down
        need = abs(delta)
        cum = ZERO
        k = 0
        n = self.levels
        for j in range(1, n + 1):
            size = self.sizes[n + direction * j]
            if size <= 0:
                break
            cum = CTX.add(cum, size)
            if cum > need:
                break
            k = j
        return direction * k

    def desired(
        self, *, pivot: int, position: Decimal, max_inventory: Decimal | None
    ) -> list[GridLevel]:
        """Buys below the pivot and sells above, nearest first, within the inventory limit."""
        return [
            GridLevel(index=i, side=side, price=price, qty=qty)
            for i, side, price, qty in self._walk(pivot, position, max_inventory)
        ]

    def shape(
        self, *, pivot: int, position: Decimal, max_inventory: Decimal | None
    ) -> tuple[int, int]:
        """``(pivot, number of desired orders)``: when it is unchanged, so is the desired set."""
        return pivot, len(self._walk(pivot, position, max_inventory))

    def _walk(
        self, pivot: int, position: Decimal, max_inventory: Decimal | None
    ) -> tuple[tuple[int, Side, Decimal, Decimal], ...]:
        """The desired levels as ``(index, side, price, qty)``, nearest first (see
        :meth:`desired`).

        The grid walks them after every fill, and a neutral grid's position keeps coming back to
        the same few values: the walks of the lattice walked last are kept by their arguments.
        A walk reads the position only through comparisons of sums with it, so two equal
        positions written differently (``0.02`` and ``0.020``) have the same walk."""
        memo = _MEMO[0]
        if memo[0] is not self:
            memo = _MEMO[0] = (self, {})
        walks = memo[1]
        key = (pivot, position, max_inventory)
        out: tuple[tuple[int, Side, Decimal, Decimal], ...] | None = walks.get(key)
        if out is None:
            if len(walks) >= _WALKS_KEPT:
                walks.clear()
            out = walks[key] = tuple(self._walk_levels(pivot, position, max_inventory))
        return out

    def _walk_levels(
        self, pivot: int, position: Decimal, max_inventory: Decimal | None
    ) -> list[tuple[int, Side, Decimal, Decimal]]:
        # A list built in one loop, not a generator.
        n = self.levels
        add = CTX.add
        sizes = self.sizes
        out: list[tuple[int, Side, Decimal, Decimal]] = []
        prices = self.buy_prices
        cum = ZERO
        buy, sell = Side.BUY, Side.SELL
        for i in range(pivot - 1, -n - 1, -1):
            price, qty = prices[i + n], sizes[i + n]
            if price <= 0:
                break
            if qty <= 0:
                continue
            cum = add(cum, qty)
            if max_inventory is not None and add(position, cum) > max_inventory:
                break
            out.append((i, buy, price, qty))
        prices = self.sell_prices
        cum = ZERO
        for i in range(pivot + 1, n + 1):
            price, qty = prices[i + n], sizes[i + n]
            if qty <= 0:
                continue
            cum = add(cum, qty)
            if max_inventory is not None and CTX.subtract(position, cum) < -max_inventory:
                break
            out.append((i, sell, price, qty))
        return out


# The lattice walked last and its walks by (pivot, position, max_inventory): a memo of a pure
# function (a lattice is immutable and kept alive here, so ``is`` cannot confuse two of them),
# bounded so that a position drifting through many values cannot grow it. One tuple, replaced
# whole and read once per call: a caller always gets its own lattice's walks.
_Memo = tuple[
    "Lattice | None",
    dict[tuple[int, Decimal, "Decimal | None"], tuple[tuple[int, Side, Decimal, Decimal], ...]],
]
_MEMO: list[_Memo] = [(None, {})]
_WALKS_KEPT = 64


def pivot_for(
    delta: Decimal, center: Decimal, step: Decimal, config: GridConfig, instrument: Instrument
) -> int:
    """The empty level for a position ``delta`` (base) away from the grid's base position."""
    lattice = Lattice.build(center=center, step=step, config=config, instrument=instrument)
    return lattice.pivot(delta)


def grid_levels(
    *,
    center: Decimal,
    step: Decimal,
    pivot: int,
    position: Decimal,
    config: GridConfig,
    instrument: Instrument,
) -> list[GridLevel]:
    """Desired orders: buys below the pivot, sells above, within the inventory limit."""
    lattice = Lattice.build(center=center, step=step, config=config, instrument=instrument)
    return lattice.desired(pivot=pivot, position=position, max_inventory=config.max_inventory)


@attrs.frozen(kw_only=True)
class NeutralGrid:
    """The neutral grid strategy and its state (a :class:`~gridcore.core.Strategy`).

    ``center`` is ``None`` until the first build; ``lower``/``upper`` are the outermost level
    prices (leaving them re-centers); ``base_position`` the position when the grid was centered.
    ``dirty`` is True when the last rebuild could not place every level (retried on the
    maintenance timer). ``lattice`` caches the level prices and sizes of the current center;
    ``shape`` is the pivot and the number of desired orders of the last rebuild.
    """

    config: GridConfig
    center: Decimal | None = None
    step: Decimal = ZERO
    base_position: Decimal = ZERO
    lower: Decimal = ZERO
    upper: Decimal = ZERO
    recenters: int = 0
    dirty: bool = False
    lattice: Lattice | None = None
    shape: tuple[int, int] = (0, 0)

    def metrics(self) -> Mapping[str, Decimal]:
        """What an operator watches of the grid (exported by ``gridcore run --metrics-port``):
        ``levels`` a side, ``step`` (quote), ``center``, ``lower`` and ``upper`` bounds (absent
        before the first build), ``recenters``, ``desired_orders`` and ``pivot`` (the empty
        level: the position moved it this many levels from the center)."""
        values = {
            "levels": Decimal(self.config.levels),
            "recenters": Decimal(self.recenters),
            "pivot": Decimal(self.shape[0]),
            "desired_orders": Decimal(self.shape[1]),
        }
        if self.center is not None:
            values.update(center=self.center, step=self.step, lower=self.lower, upper=self.upper)
        return values

    # --- Strategy protocol ---------------------------------------------------------------

    def on_tick(self, view: State[Self], tick: QuoteTicked) -> tuple[Self, Sequence[Intent]] | None:
        if self.center is not None and tick.bid <= self.upper and tick.ask >= self.lower:
            return None  # the hot path: a tick that leaves the grid where it is
        cfg = self.config
        if tick.symbol != cfg.symbol or tick.venue != cfg.venue or not view.can_trade(cfg.venue):
            return None
        return self._rebuild(view, recenter=True)

    def on_changes(
        self, view: State[Self], changes: Sequence[OrderChange]
    ) -> tuple[Self, Sequence[Intent]]:
        prefix = self.config.tag + ":"
        filled = False
        for change in changes:
            if not change.after.tag.startswith(prefix):
                continue
            before = change.before
            if not change.after.is_live or (before is not None and before.status in _WAITING):
                return self._rebuild(view, recenter=False)
            filled = filled or change.fill is not None
        if filled and self.lattice is not None:
            # A fill that leaves its order resting changes the grid only when it moves the
            # pivot or the inventory limit's cut: look before paying for a rebuild.
            cfg = self.config
            position = view.ledger.position(cfg.venue, cfg.symbol, cfg.position_side).qty
            pivot = self.lattice.pivot(CTX.subtract(position, self.base_position))
            now = self.lattice.shape(
                pivot=pivot, position=position, max_inventory=cfg.max_inventory
            )
            if now != self.shape:
                return self._rebuild(view, recenter=False)
        return self, ()

    def on_ready(self, view: State[Self], venue: str) -> tuple[Self, Sequence[Intent]]:
        if venue != self.config.venue:
            return self, ()
        return self._rebuild(view, recenter=True)

    def on_timer(self, view: State[Self], timer_id: str) -> tuple[Self, Sequence[Intent]]:
        if self.dirty:
            return self._rebuild(view, recenter=True)
        return self, ()

    def on_event(self, view: State[Self], event: Event) -> tuple[Self, Sequence[Intent]]:
        return self, ()

    # --- hooks for the harness (optional parts of the protocol) -----------------------------

    def invariants(self, view: State[Any]) -> Sequence[Violation]:
        """The grid's own promises: levels never cross and the spacing keeps its floor. A
        strategy that contains a grid returns these from its own ``invariants`` hook."""
        from gridcore.invariants import grid_checks  # the catalogue imports this module

        return grid_checks(view, self)

    def order_band(self, view: State[Any]) -> Decimal:
        """How far from the mid (a fraction) a level may rest: the grid spans ``levels`` steps
        on each side of its center and recenters once the price leaves it; two spans and 2 %
        leave room for a price that moved while the venue was reconciling."""
        spacing = self.config.spacing
        if self.center is not None and self.center > 0:
            spacing = max(spacing, CTX.divide(self.step, self.center))
        span = CTX.multiply(CTX.multiply(_TWO, Decimal(self.config.levels)), spacing)
        return CTX.add(CTX.multiply(_TWO, span), Decimal("0.02"))

    def idle_reason(self, view: State[Any]) -> str | None:
        """Why the grid is not working although it should be, or ``None`` (a liveness check,
        :func:`gridcore.testing.grid_is_working`).

        The grid must be working when nothing halts trading, its venue is ready (feed up,
        reconciled), its newest quote is fresh (seen since the feed last came up, and no older
        than the risk gate's ``max_quote_age_ms``) and lies inside the grid's bounds; it is not
        asked otherwise. Working, it has a live order on every side it trades: a side whose
        nearest desired level (after the position limit ``max_inventory``) the risk gate would
        let through now has at least one live order; a side the limits close (the position
        at ``max_position``, say) owes none. A grid never built although a fresh quote came is
        not working either. Ask it of a settled state: after fresh quotes and the heartbeat
        (the grid retries an unfinished rebuild there)."""
        cfg = self.config
        venue, symbol = cfg.venue, cfg.symbol
        if view.risk.halted or not view.can_trade(venue):
            return None
        quote = view.quotes.get((venue, symbol))
        quotes_before = view.venues[venue].quotes_before
        if quote is None or predates_feed(quote, quotes_before):
            return None
        if view.now - quote.ts > view.config.risk.max_quote_age_ms:
            return None
        at = f"the quote {quote.bid}/{quote.ask} at ts={quote.ts}"
        if self.center is None or self.lattice is None:
            return f"no grid built although {at} is fresh and nothing halts trading"
        if quote.bid > self.upper or quote.ask < self.lower:
            return None
        prefix = cfg.tag + ":"
        orders = view.orders
        sides = {
            orders[c].side
            for c in view.live
            if orders[c].venue == venue
            and orders[c].symbol == symbol
            and orders[c].tag.startswith(prefix)
        }
        position = view.ledger.position(venue, symbol, cfg.position_side).qty
        pivot = self.lattice.pivot(CTX.subtract(position, self.base_position))
        instrument = view.config.instrument(venue, symbol)
        for index, side, price, qty in self.lattice._walk(pivot, position, cfg.max_inventory):
            if side in sides:
                continue
            sides.add(side)  # only the nearest level of a side is asked
            verdict = check_order(
                config=view.config.risk,
                risk=view.risk,
                ledger=view.ledger,
                orders=orders.values(),
                quotes=view.quotes,
                instrument=instrument,
                side=side,
                qty=qty,
                price=price,
                tif=TimeInForce.GTC,
                reduce_only=False,
                now=view.now,
                position_side=cfg.position_side,
                quotes_before=quotes_before,
            )
            if not isinstance(verdict, Refusal):
                return (
                    f"no live {side.value} order although its level {index} ({qty} at {price}) "
                    f"would pass the risk gate, {at} lies inside the grid's bounds "
                    f"[{self.lower}, {self.upper}], its venue is ready and nothing halts trading"
                )
        return None

    # --- the grid ----------------------------------------------------------------------------

    def _rebuild(self, view: State[Self], *, recenter: bool) -> tuple[Self, Sequence[Intent]]:
        cfg = self.config
        if not view.can_trade(cfg.venue):
            return self, ()
        instrument = view.config.instrument(cfg.venue, cfg.symbol)
        quote = view.quotes.get((cfg.venue, cfg.symbol))
        position = view.ledger.position(cfg.venue, cfg.symbol, cfg.position_side).qty
        grid = self
        notes: list[Intent] = []
        if quote is None or predates_feed(quote, view.venues[cfg.venue].quotes_before):
            # No quote yet, or only one from before the venue's feed last came up (a start or a
            # reconnect), which the risk gate refuses to price an order with (failure
            # `quote-from-before-a-gap`): every level would be refused, silently, and a quote
            # inside the grid's bounds brings no rebuild. Retried on the heartbeat instead
            # (failure `grid-idle-after-refusal`).
            return attrs.evolve(self, dirty=True), ()
        if self.center is None or (recenter and (quote.bid > self.upper or quote.ask < self.lower)):
            grid = self._centered(quote, instrument, position)
            if self.center is not None:
                notes.append(
                    Say(
                        level=Level.INFO,
                        code="grid_recentered",
                        message=f"price left the grid: center {self.center} -> {grid.center}",
                    )
                )
        lattice = grid.lattice
        assert lattice is not None
        pivot = lattice.pivot(CTX.subtract(position, grid.base_position))
        # The levels as (index, side, price, qty): compared, not kept, so no GridLevel each.
        desired = lattice._walk(pivot, position, cfg.max_inventory)
        shape = (pivot, len(desired))
        prefix = cfg.tag + ":"
        venue, symbol = cfg.venue, cfg.symbol
        # Live orders by level. An order being canceled still holds its level (no doubling)
        # until the cancel resolves; one in doubt or whose cancel failed may rest, so it counts
        # as the level's order.
        active: dict[tuple[Side, Decimal], list[str]] = {}
        canceling: set[tuple[Side, Decimal]] = set()
        top_buy: Decimal | None = None
        low_sell: Decimal | None = None
        orders = view.orders
        for cloid in view.live:
            order = orders[cloid]
            if order.venue != venue or order.symbol != symbol or not order.tag.startswith(prefix):
                continue
            status = order.status
            key = (order.side, order.price)
            if status is _PENDING_CANCEL:
                canceling.add(key)
                continue
            if status is _CANCEL_FAILED or status is _IN_DOUBT:
                if order.side is _BUY:
                    top_buy = order.price if top_buy is None else max(top_buy, order.price)
                else:
                    low_sell = order.price if low_sell is None else min(low_sell, order.price)
            held = active.get(key)
            if held is None:
                active[key] = [cloid]
            else:
                held.append(cloid)
        wanted = {(side, price): (index, side, price, qty) for index, side, price, qty in desired}
        intents: list[Intent] = notes
        for key, cloids in active.items():
            if key in wanted:
                for extra in cloids[1:]:
                    intents.append(Cancel(cloid=extra))
            else:
                for cloid in cloids:
                    intents.append(Cancel(cloid=cloid))
        dirty = False
        position_side = cfg.position_side
        for key, (index, side, price, qty) in wanted.items():
            if key in active:
                continue
            if key in canceling:
                dirty = True
                continue
            # An order of the old lattice that may still rest (in doubt, or its cancel failed)
            # must not be crossed by a new level: bids stay below asks at the venue too.
            if (side is _BUY and low_sell is not None and price >= low_sell) or (
                side is _SELL and top_buy is not None and price <= top_buy
            ):
                dirty = True
                continue
            intents.append(
                Submit(
                    venue=venue,
                    symbol=symbol,
                    side=side,
                    qty=qty,
                    price=price,
                    position_side=position_side,
                    tag=f"{prefix}{index}",
                )
            )
        if dirty != grid.dirty or shape != grid.shape:
            grid = grid._reshaped(dirty, shape)
        return grid, intents

    def _reshaped(self, dirty: bool, shape: tuple[int, int]) -> Self:
        """``attrs.evolve(self, dirty=dirty, shape=shape)``, built directly for a plain
        :class:`NeutralGrid` (a rebuild after every fill moves its shape; ``evolve``
        introspects every field on each call)."""
        cls = type(self)
        if cls is not NeutralGrid:
            return attrs.evolve(self, dirty=dirty, shape=shape)
        return cls(
            config=self.config,
            center=self.center,
            step=self.step,
            base_position=self.base_position,
            lower=self.lower,
            upper=self.upper,
            recenters=self.recenters,
            dirty=dirty,
            lattice=self.lattice,
            shape=shape,
        )

    def _centered(self, quote: QuoteTicked, instrument: Instrument, position: Decimal) -> Self:
        cfg = self.config
        mid = quote.mid
        step = compute_spacing(mid, instrument, spacing=cfg.spacing, min_spacing=cfg.min_spacing)
        if self.center is not None and step == self.step:
            # Stay on the old lattice so the diff keeps every level that still fits.
            k = CTX.divide(CTX.subtract(mid, self.center), step).to_integral_value(
                rounding=Rounding.NEAREST.value, context=CTX
            )
            center = CTX.add(self.center, CTX.multiply(k, step))
        else:
            center = instrument.round_price(mid, Rounding.NEAREST)
        n = Decimal(cfg.levels)
        lower = instrument.round_price(CTX.subtract(center, CTX.multiply(n, step)), Rounding.DOWN)
        upper = instrument.round_price(CTX.add(center, CTX.multiply(n, step)), Rounding.UP)
        return attrs.evolve(
            self,
            center=center,
            step=step,
            base_position=position,
            lower=lower,
            upper=upper,
            recenters=self.recenters + (self.center is not None),
            lattice=Lattice.build(center=center, step=step, config=cfg, instrument=instrument),
        )
