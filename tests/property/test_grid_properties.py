"""Grid geometry: spacing never under its floor, levels never self-cross (failure `spacing-collapse`).

A grid bot's loss-drift tightening could shrink the spacing to half and below until buy and sell
levels met (self-trading) or sat inside the round-trip fee. Here the floor is
``max(tick, 2 × maker fee × price + tick, min_spacing)`` whatever the tightening, the step is a
whole number of ticks, buys are rounded down and sells up, and the pivot level stays empty.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import assume, given
from hypothesis import strategies as st

from gridcore import Instrument, Side
from gridcore.grid import GridConfig, compute_spacing, grid_levels, pivot_for
from gridcore.numbers import CTX
from tests.unit.helpers import SYMBOL, VENUE

TICKS = st.sampled_from([Decimal(t) for t in ("0.0001", "0.01", "0.1", "0.5", "1", "5")])
LOTS = st.sampled_from([Decimal(t) for t in ("0.00001", "0.001", "0.1", "1")])


@st.composite
def instruments(draw: st.DrawFn) -> Instrument:
    return Instrument(
        venue=VENUE,
        symbol=SYMBOL,
        tick_size=draw(TICKS),
        lot_size=draw(LOTS),
        maker_fee=Decimal(draw(st.integers(min_value=-5, max_value=20))) / 10_000,
        taker_fee=Decimal(draw(st.integers(min_value=0, max_value=20))) / 10_000,
    )


def on_tick_price(instrument: Instrument, ticks: int) -> Decimal:
    return CTX.multiply(Decimal(ticks), instrument.tick_size)


FRACTIONS = st.integers(min_value=1, max_value=4_999).map(lambda n: Decimal(n) / 10_000)
TIGHTENING = st.one_of(
    st.integers(min_value=0, max_value=9_999).map(lambda n: Decimal(n) / 10_000),
    st.just(Decimal("0.999999999")),
    st.just(Decimal("0.5")),
)


def floor_of(price: Decimal, instrument: Instrument, min_spacing: Decimal) -> Decimal:
    fee_floor = 2 * instrument.maker_fee * price + instrument.tick_size
    return max(instrument.tick_size, fee_floor, min_spacing)


@given(
    instrument=instruments(),
    price_ticks=st.integers(min_value=1, max_value=10**8),
    spacing=FRACTIONS,
    min_spacing=st.integers(min_value=0, max_value=10_000).map(lambda n: Decimal(n) / 100),
    tightening=TIGHTENING,
)
def test_spacing_never_under_its_floor_and_on_tick(
    instrument: Instrument,
    price_ticks: int,
    spacing: Decimal,
    min_spacing: Decimal,
    tightening: Decimal,
) -> None:
    """Failure `spacing-collapse`: no tightening in [0, 1) takes the step under the floor."""
    price = on_tick_price(instrument, price_ticks)
    step = compute_spacing(
        price, instrument, spacing=spacing, min_spacing=min_spacing, tightening=tightening
    )
    assert step >= floor_of(price, instrument, min_spacing)
    assert step >= instrument.tick_size
    assert instrument.is_on_tick(step)


@given(instrument=instruments(), price_ticks=st.integers(min_value=1, max_value=10**8))
def test_spacing_is_never_wider_than_needed(instrument: Instrument, price_ticks: int) -> None:
    """The floor is a floor, not a replacement: untightened spacing above it is kept (up to one
    tick of rounding)."""
    price = on_tick_price(instrument, price_ticks)
    spacing = Decimal("0.01")
    step = compute_spacing(price, instrument, spacing=spacing)
    wanted = max(price * spacing, floor_of(price, instrument, Decimal(0)))
    assert wanted <= step < wanted + instrument.tick_size


@st.composite
def grids(draw: st.DrawFn) -> tuple[Instrument, GridConfig, Decimal, Decimal]:
    """An instrument, a grid configuration, a center and a step as the grid computes them."""
    instrument = draw(instruments())
    sized_by_qty = draw(st.booleans())
    lot = instrument.lot_size
    config = GridConfig(
        venue=VENUE,
        symbol=SYMBOL,
        levels=draw(st.integers(min_value=1, max_value=30)),
        spacing=draw(FRACTIONS),
        min_spacing=Decimal(draw(st.integers(min_value=0, max_value=500))) / 10,
        order_qty=lot * draw(st.integers(min_value=1, max_value=50)) if sized_by_qty else None,
        order_notional=None
        if sized_by_qty
        else Decimal(draw(st.integers(min_value=1, max_value=5_000))),
        max_inventory=draw(
            st.one_of(
                st.none(), st.integers(min_value=1, max_value=500).map(lambda n: Decimal(n) * lot)
            )
        ),
    )
    center_ticks = draw(st.integers(min_value=1, max_value=10**7))
    center = on_tick_price(instrument, center_ticks)
    if draw(st.booleans()):
        # Off the tick grid: grid_levels is public and must round safely whatever it is given.
        center = center + instrument.tick_size / 3
    tightening = draw(TIGHTENING)
    step = compute_spacing(
        center,
        instrument,
        spacing=config.spacing,
        min_spacing=config.min_spacing,
        tightening=tightening,
    )
    return instrument, config, center, step


@given(grid=grids(), data=st.data())
def test_levels_never_self_cross_and_sit_on_tick(
    grid: tuple[Instrument, GridConfig, Decimal, Decimal], data: st.DataObject
) -> None:
    """Failure `spacing-collapse`: every buy strictly below every sell, whatever the pivot and position;
    every price on the tick grid and positive; no two orders on one price."""
    instrument, config, center, step = grid
    pivot = data.draw(st.integers(min_value=-config.levels, max_value=config.levels))
    position = Decimal(data.draw(st.integers(min_value=-500, max_value=500))) * instrument.lot_size
    levels = grid_levels(
        center=center,
        step=step,
        pivot=pivot,
        position=position,
        config=config,
        instrument=instrument,
    )
    buys = [lv.price for lv in levels if lv.side is Side.BUY]
    sells = [lv.price for lv in levels if lv.side is Side.SELL]
    if buys and sells:
        assert max(buys) < min(sells)
    for lv in levels:
        assert lv.price > 0
        assert instrument.is_on_tick(lv.price)
        assert lv.qty > 0
        assert instrument.is_on_lot(lv.qty)
        assert -config.levels <= lv.index <= config.levels
        assert lv.index != pivot
        assert (lv.side is Side.BUY) == (lv.index < pivot)
    assert len({lv.price for lv in levels}) == len(levels)
    assert len(levels) <= 2 * config.levels


@given(grid=grids(), data=st.data())
def test_levels_respect_the_inventory_limit(
    grid: tuple[Instrument, GridConfig, Decimal, Decimal], data: st.DataObject
) -> None:
    """Filling every buy (or every sell) never takes the position past ``max_inventory``."""
    instrument, config, center, step = grid
    assume(config.max_inventory is not None)
    assert config.max_inventory is not None
    limit = config.max_inventory
    # Drawn inside the limit directly (not filtered), so no health check can reject the run.
    lots = int(limit / instrument.lot_size)
    position = (
        Decimal(data.draw(st.integers(min_value=-lots, max_value=lots))) * instrument.lot_size
    )
    pivot = data.draw(st.integers(min_value=-config.levels, max_value=config.levels))
    levels = grid_levels(
        center=center,
        step=step,
        pivot=pivot,
        position=position,
        config=config,
        instrument=instrument,
    )
    bought = sum((lv.qty for lv in levels if lv.side is Side.BUY), Decimal(0))
    sold = sum((lv.qty for lv in levels if lv.side is Side.SELL), Decimal(0))
    assert position + bought <= limit
    assert position - sold >= -limit


@given(grid=grids(), data=st.data())
def test_pivot_stays_inside_the_grid_and_follows_the_position(
    grid: tuple[Instrument, GridConfig, Decimal, Decimal], data: st.DataObject
) -> None:
    """Failure `fill-during-rebuild`: the pivot is read from the position. Bought ⇒ pivot at or below the
    center, sold ⇒ at or above, flat ⇒ the center; never outside the levels."""
    instrument, config, center, step = grid
    delta = Decimal(data.draw(st.integers(min_value=-10_000, max_value=10_000))) * (
        instrument.lot_size
    )
    pivot = pivot_for(delta, center, step, config, instrument)
    assert -config.levels <= pivot <= config.levels
    if delta > 0:
        assert pivot <= 0
    elif delta < 0:
        assert pivot >= 0
    else:
        assert pivot == 0
