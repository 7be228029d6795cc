"""Hypothesis strategies for gridcore: instruments, configurations, markets, faults, events.

Written in Hypothesis's own API style: keyword-only arguments, strategies as arguments (never
"a value or a strategy"), ``min_*``/``max_*`` names for bounds, arguments validated when the
strategy is built (``InvalidArgument`` naming the argument). Every value drawn has a ``repr``
that is valid Python, so a falsifying example prints as code you can paste into a test.

>>> from hypothesis import given
>>> from gridcore.testing import strategies as gst
>>> @given(scenario=gst.scenarios(market=gst.market_paths(instrument=gst.instruments())))
... def test_my_bot(scenario): ...
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.strategies import SearchStrategy

from gridcore.core import MAINTENANCE_TIMER, CoreConfig
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
    FundingPaid,
    MessageMalformed,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    OrderStatusReported,
    PositionReport,
    PositionsReported,
    QuoteTicked,
    ReportedStatus,
    Started,
    TimerFired,
)
from gridcore.grid import GridConfig
from gridcore.instruments import Instrument, PositionMode, PositionSide, Side
from gridcore.numbers import CTX
from gridcore.risk import RiskConfig
from gridcore.sim import PROFILES, FaultPlan
from gridcore.sim.funding import VenueFaults, synthetic_rates
from gridcore.testing.simulation import MarketPath, MultiVenueScenario, Scenario, VenueScenario

__all__ = [
    "FAULT_KINDS",
    "core_configs",
    "event_streams",
    "fault_plans",
    "fault_profiles",
    "grid_configs",
    "instruments",
    "kernel_cloids",
    "liquidities",
    "market_paths",
    "multi_venue_scenarios",
    "risk_configs",
    "scenarios",
    "venue_refusals",
]

FAULT_KINDS = frozenset(
    {
        "drop",
        "duplicate",
        "ack_delay",
        "rest_error",
        "timeout_applied",
        "timeout_lost",
        "disconnect",
    }
)
"""The fault kinds :func:`fault_plans` can switch on (the rate fields of
:class:`~gridcore.sim.FaultPlan`, without ``_ppm``)."""

_EPOCH = 1_700_000_000_000


def _check_bounds(name: str, min_value: int, max_value: int, floor: int = 0) -> None:
    if min_value < floor:
        raise InvalidArgument(f"min_{name}={min_value} must be >= {floor}")
    if max_value < min_value:
        raise InvalidArgument(f"max_{name}={max_value} must be >= min_{name}={min_value}")


def _require_strategy(name: str, value: object) -> None:
    if not isinstance(value, SearchStrategy):
        raise InvalidArgument(
            f"{name}={value!r} must be a SearchStrategy; wrap a fixed value in st.just(...)"
        )


# Defaults of the strategies below (module-level: a strategy is an immutable value).
_INSTRUMENTS_VENUE: SearchStrategy[str] = st.just("sim")
_INSTRUMENTS_SYMBOL: SearchStrategy[str] = st.just("TEST-PERP")
_INSTRUMENTS_TICK_SIZE: SearchStrategy[Decimal] = st.sampled_from(
    [Decimal("0.1"), Decimal("0.01"), Decimal("0.5"), Decimal(1)]
)
_INSTRUMENTS_LOT_SIZE: SearchStrategy[Decimal] = st.sampled_from(
    [Decimal("0.001"), Decimal("0.01"), Decimal("0.0001")]
)
_INSTRUMENTS_MIN_NOTIONAL: SearchStrategy[Decimal] = st.sampled_from(
    [Decimal(0), Decimal(5), Decimal(10)]
)
_INSTRUMENTS_MAKER_FEE: SearchStrategy[Decimal] = st.sampled_from(
    [Decimal("0.0002"), Decimal(0), Decimal("-0.0001"), Decimal("0.0005")]
)
_INSTRUMENTS_TAKER_FEE: SearchStrategy[Decimal] = st.sampled_from(
    [Decimal("0.0005"), Decimal(0), Decimal("0.001")]
)
_RISK_CONFIGS_LEVERAGE: SearchStrategy[Decimal] = st.sampled_from(
    [Decimal(10), Decimal(5), Decimal(1)]
)
# Limits: the documented default first (what a user runs; examples shrink to it), then off.
_SAFE_RISK = RiskConfig()
_RISK_CONFIGS_MAX_POSITION: SearchStrategy[Decimal | None] = st.sampled_from(
    [_SAFE_RISK.max_position, None]
)
_RISK_CONFIGS_MAX_ORDER_NOTIONAL: SearchStrategy[Decimal | None] = st.sampled_from(
    [_SAFE_RISK.max_order_notional, None]
)
_RISK_CONFIGS_SLIPPAGE_CAP: SearchStrategy[Decimal] = st.just(Decimal("0.005"))
_RISK_CONFIGS_MAX_DRAWDOWN: SearchStrategy[Decimal | None] = st.sampled_from(
    [_SAFE_RISK.max_drawdown, None]
)
_RISK_CONFIGS_MAX_QUOTE_AGE_MS: SearchStrategy[int] = st.just(10_000)
_CORE_CONFIGS_RISK: SearchStrategy[RiskConfig] = st.just(RiskConfig())
_CORE_CONFIGS_MAINTENANCE_MS: SearchStrategy[int] = st.sampled_from([5_000, 2_000, 10_000])
_CORE_CONFIGS_RECONCILE_MS: SearchStrategy[int] = st.sampled_from([60_000, 20_000, 0])
_CORE_CONFIGS_MAX_SYNC_ATTEMPTS: SearchStrategy[int] = st.integers(min_value=1, max_value=5)
_GRID_CONFIGS_LEVELS: SearchStrategy[int] = st.integers(min_value=1, max_value=8)
_GRID_CONFIGS_SPACING: SearchStrategy[Decimal] = st.sampled_from(
    [Decimal("0.001"), Decimal("0.002"), Decimal("0.004"), Decimal("0.0001")]
)
_GRID_CONFIGS_ORDER_NOTIONAL: SearchStrategy[Decimal] = st.sampled_from(
    [Decimal(50), Decimal(100), Decimal(250)]
)
_GRID_CONFIGS_MAX_INVENTORY: SearchStrategy[Decimal | None] = st.sampled_from(
    [GridConfig().max_inventory, None]
)
_MARKET_PATHS_START_PRICE: SearchStrategy[Decimal] = st.just(Decimal(50_000))
_MARKET_PATHS_VOLATILITY: SearchStrategy[Decimal] = st.sampled_from(
    [Decimal("0.001"), Decimal("0.0005"), Decimal("0.002"), Decimal("0.0002")]
)
_MARKET_PATHS_SPREAD_TICKS: SearchStrategy[int] = st.integers(min_value=1, max_value=3)
_MARKET_PATHS_INTERVAL_MS: SearchStrategy[int] = st.just(1_000)
_MARKET_PATHS_START_TS: SearchStrategy[int] = st.just(_EPOCH)
_SCENARIOS_SEED: SearchStrategy[int] = st.integers(min_value=0, max_value=2**32 - 1)
_SCENARIOS_STARTING_BALANCE: SearchStrategy[Decimal] = st.just(Decimal(10_000))
_SCENARIOS_LIQUIDITY: SearchStrategy[Decimal | None] = st.none()
"""A marker: the default draws liquidity in lots of the market's instrument (see
:func:`scenarios`)."""
_SCENARIOS_FUNDING_INTERVAL_MS: SearchStrategy[int] = st.sampled_from([60_000, 20_000, 300_000])
_SCENARIOS_POSITION_MODE: SearchStrategy[PositionMode] = st.just(PositionMode.ONE_WAY)
_SCENARIOS_LATENCY_MS: SearchStrategy[int] = st.sampled_from([50, 0, 500, 1_500])
_SCENARIOS_SETTLE_MS: SearchStrategy[int] = st.just(180_000)
_EVENT_STREAMS_START_PRICE: SearchStrategy[Decimal] = st.just(Decimal(50_000))


# --- instruments and configurations --------------------------------------------------------------


def instruments(
    *,
    venue: SearchStrategy[str] = _INSTRUMENTS_VENUE,
    symbol: SearchStrategy[str] = _INSTRUMENTS_SYMBOL,
    tick_size: SearchStrategy[Decimal] = _INSTRUMENTS_TICK_SIZE,
    lot_size: SearchStrategy[Decimal] = _INSTRUMENTS_LOT_SIZE,
    min_notional: SearchStrategy[Decimal] = _INSTRUMENTS_MIN_NOTIONAL,
    maker_fee: SearchStrategy[Decimal] = _INSTRUMENTS_MAKER_FEE,
    taker_fee: SearchStrategy[Decimal] = _INSTRUMENTS_TAKER_FEE,
) -> SearchStrategy[Instrument]:
    """Perpetual instruments with exchange filters (tick, lot, minimum notional, fees).

    >>> instruments(tick_size=st.just(Decimal("0.01"))).example()  # doctest: +SKIP
    Instrument(venue='sim', symbol='TEST-PERP', tick_size=Decimal('0.01'), ...)
    """
    for name, value in (
        ("venue", venue),
        ("symbol", symbol),
        ("tick_size", tick_size),
        ("lot_size", lot_size),
        ("min_notional", min_notional),
        ("maker_fee", maker_fee),
        ("taker_fee", taker_fee),
    ):
        _require_strategy(name, value)
    return st.builds(
        Instrument,
        venue=venue,
        symbol=symbol,
        tick_size=tick_size,
        lot_size=lot_size,
        min_notional=min_notional,
        maker_fee=maker_fee,
        taker_fee=taker_fee,
    )


def risk_configs(
    *,
    leverage: SearchStrategy[Decimal] = _RISK_CONFIGS_LEVERAGE,
    max_position: SearchStrategy[Decimal | None] = _RISK_CONFIGS_MAX_POSITION,
    max_order_notional: SearchStrategy[Decimal | None] = _RISK_CONFIGS_MAX_ORDER_NOTIONAL,
    slippage_cap: SearchStrategy[Decimal] = _RISK_CONFIGS_SLIPPAGE_CAP,
    max_drawdown: SearchStrategy[Decimal | None] = _RISK_CONFIGS_MAX_DRAWDOWN,
    max_quote_age_ms: SearchStrategy[int] = _RISK_CONFIGS_MAX_QUOTE_AGE_MS,
) -> SearchStrategy[RiskConfig]:
    """Risk gate limits (:class:`~gridcore.risk.RiskConfig`); unlisted fields keep their safe
    defaults, and the limits drawn by default are the documented default (what shrinks to) or
    explicitly off. Quantities in base units, notionals in quote.

    >>> risk_configs(max_position=st.just(Decimal("0.05"))).example()  # doctest: +SKIP
    RiskConfig(max_position=Decimal('0.05'), ...)
    """
    for name, value in (
        ("leverage", leverage),
        ("max_position", max_position),
        ("max_order_notional", max_order_notional),
        ("slippage_cap", slippage_cap),
        ("max_drawdown", max_drawdown),
        ("max_quote_age_ms", max_quote_age_ms),
    ):
        _require_strategy(name, value)
    return st.builds(
        RiskConfig,
        leverage=leverage,
        max_position=max_position,
        max_order_notional=max_order_notional,
        slippage_cap=slippage_cap,
        max_drawdown=max_drawdown,
        max_quote_age_ms=max_quote_age_ms,
    )


def core_configs(
    *,
    instrument: SearchStrategy[Instrument],
    risk: SearchStrategy[RiskConfig] = _CORE_CONFIGS_RISK,
    maintenance_ms: SearchStrategy[int] = _CORE_CONFIGS_MAINTENANCE_MS,
    reconcile_ms: SearchStrategy[int] = _CORE_CONFIGS_RECONCILE_MS,
    max_sync_attempts: SearchStrategy[int] = _CORE_CONFIGS_MAX_SYNC_ATTEMPTS,
) -> SearchStrategy[CoreConfig]:
    """Kernel configurations (:class:`~gridcore.core.CoreConfig`) for one instrument.

    >>> core_configs(instrument=instruments()).example()  # doctest: +SKIP
    CoreConfig(instruments=(Instrument(...),), risk=RiskConfig(...), maintenance_ms=5000, ...)
    """
    for name, value in (
        ("instrument", instrument),
        ("risk", risk),
        ("maintenance_ms", maintenance_ms),
        ("reconcile_ms", reconcile_ms),
        ("max_sync_attempts", max_sync_attempts),
    ):
        _require_strategy(name, value)
    return st.builds(
        CoreConfig,
        instruments=st.tuples(instrument),
        risk=risk,
        maintenance_ms=maintenance_ms,
        reconcile_ms=reconcile_ms,
        max_sync_attempts=max_sync_attempts,
    )


def grid_configs(
    *,
    instrument: SearchStrategy[Instrument],
    levels: SearchStrategy[int] = _GRID_CONFIGS_LEVELS,
    spacing: SearchStrategy[Decimal] = _GRID_CONFIGS_SPACING,
    order_notional: SearchStrategy[Decimal] = _GRID_CONFIGS_ORDER_NOTIONAL,
    max_inventory: SearchStrategy[Decimal | None] = _GRID_CONFIGS_MAX_INVENTORY,
) -> SearchStrategy[GridConfig]:
    """Neutral-grid configurations on ``instrument``'s venue and symbol, sized in quote
    (``order_notional``) so that they fit any price.

    >>> grid_configs(instrument=instruments(), levels=st.just(3)).example()  # doctest: +SKIP
    GridConfig(venue='sim', symbol='TEST-PERP', levels=3, ...)
    """
    for name, value in (
        ("instrument", instrument),
        ("levels", levels),
        ("spacing", spacing),
        ("order_notional", order_notional),
        ("max_inventory", max_inventory),
    ):
        _require_strategy(name, value)

    @st.composite
    def build(draw: st.DrawFn) -> GridConfig:
        inst = draw(instrument)
        return GridConfig(
            venue=inst.venue,
            symbol=inst.symbol,
            levels=draw(levels),
            spacing=draw(spacing),
            order_qty=None,
            order_notional=draw(order_notional),
            max_inventory=draw(max_inventory),
        )

    return build()


# --- markets, faults, scenarios ------------------------------------------------------------------


def market_paths(
    *,
    instrument: SearchStrategy[Instrument],
    min_ticks: int = 200,
    max_ticks: int = 2_000,
    start_price: SearchStrategy[Decimal] = _MARKET_PATHS_START_PRICE,
    volatility: SearchStrategy[Decimal] = _MARKET_PATHS_VOLATILITY,
    spread_ticks: SearchStrategy[int] = _MARKET_PATHS_SPREAD_TICKS,
    interval_ms: SearchStrategy[int] = _MARKET_PATHS_INTERVAL_MS,
    start_ts: SearchStrategy[int] = _MARKET_PATHS_START_TS,
) -> SearchStrategy[MarketPath]:
    """Seeded synthetic markets (:class:`~gridcore.testing.MarketPath`): ``min_ticks`` to
    ``max_ticks`` quotes of a random walk with the drawn volatility (a fraction per tick).

    Shrinks towards short, calm paths.

    >>> market_paths(instrument=instruments(), max_ticks=500).example()  # doctest: +SKIP
    MarketPath(instrument=Instrument(...), seed=..., ticks=..., ...)
    """
    _check_bounds("ticks", min_ticks, max_ticks)
    for name, value in (
        ("instrument", instrument),
        ("start_price", start_price),
        ("volatility", volatility),
        ("spread_ticks", spread_ticks),
        ("interval_ms", interval_ms),
        ("start_ts", start_ts),
    ):
        _require_strategy(name, value)
    return st.builds(
        MarketPath,
        instrument=instrument,
        seed=st.integers(min_value=0, max_value=2**32 - 1),
        ticks=st.integers(min_value=min_ticks, max_value=max_ticks),
        start_price=start_price,
        volatility=volatility,
        spread_ticks=spread_ticks,
        start_ts=start_ts,
        interval_ms=interval_ms,
    )


def fault_plans(
    *,
    kinds: Collection[str] = FAULT_KINDS,
    min_ppm: int = 0,
    max_ppm: int = 200_000,
    max_disconnect_ppm: int = 20_000,
    min_ack_delay_ms: int = 0,
    max_ack_delay_ms: int = 5_000,
) -> SearchStrategy[FaultPlan]:
    """Fault plans (:class:`~gridcore.sim.FaultPlan`) with any mix of the fault ``kinds``
    (see :data:`FAULT_KINDS`), each rate up to ``max_ppm`` parts per million per opportunity
    (disconnects: up to ``max_disconnect_ppm`` per tick). Shrinks towards a perfect venue.

    By default each message fault is off in many examples (one fault's effect is then not
    hidden by another's repair) and, when on, often rare. A ``min_ppm`` above zero asks for
    every message fault of ``kinds`` in every example, at ``min_ppm`` or more: a search for a
    bug that one fault exposes then never spends its examples on runs where that fault is off
    or happens once. A delayed answer is held back ``min_ack_delay_ms`` to
    ``max_ack_delay_ms``: a delay of several quotes lets an order fill before its
    acknowledgement arrives.

    >>> fault_plans(kinds={"drop", "duplicate"}, max_ppm=50_000).example()  # doctest: +SKIP
    FaultPlan(name='drawn', drop_ppm=..., duplicate_ppm=..., ...)
    """
    unknown = set(kinds) - FAULT_KINDS
    if unknown:
        raise InvalidArgument(
            f"unknown fault kinds {sorted(unknown)}; choose from {sorted(FAULT_KINDS)}"
        )
    _check_bounds("ppm", min_ppm, max_ppm)
    _check_bounds("disconnect_ppm", 0, max_disconnect_ppm)
    _check_bounds("ack_delay_ms", min_ack_delay_ms, max_ack_delay_ms)
    if max_ppm > 1_000_000 or max_disconnect_ppm > 1_000_000:
        raise InvalidArgument("rates are parts per million: at most 1_000_000")

    def rate(kind: str, top: int) -> SearchStrategy[int]:
        if kind not in kinds or top == 0:
            return st.just(0)
        if kind == "disconnect":
            # Outages in nearly every example: a choice between 0 and a range is drawn 0
            # most of the time, and reconnects are where fills go missing.
            return st.integers(min_value=0, max_value=top)
        if min_ppm > 0:
            return st.integers(min_value=min_ppm, max_value=top)
        # Each message fault off in many examples: one fault's effect is then not hidden by
        # another's repair.
        return st.one_of(st.just(0), st.integers(min_value=1, max_value=top))

    return st.builds(
        FaultPlan,
        name=st.just("drawn"),
        drop_ppm=rate("drop", max_ppm),
        duplicate_ppm=rate("duplicate", max_ppm),
        ack_delay_ppm=rate("ack_delay", max_ppm),
        ack_delay_ms=st.integers(min_value=min_ack_delay_ms, max_value=max_ack_delay_ms),
        rest_error_ppm=rate("rest_error", max_ppm),
        timeout_applied_ppm=rate("timeout_applied", max_ppm),
        timeout_lost_ppm=rate("timeout_lost", max_ppm),
        timeout_ms=st.integers(min_value=500, max_value=10_000),
        disconnect_ppm=rate("disconnect", max_disconnect_ppm),
        disconnect_ms=st.integers(min_value=1_000, max_value=60_000),
    )


def fault_profiles() -> SearchStrategy[FaultPlan]:
    """The named fault profiles of ``gridcore backtest --faults`` (``none``, ``flaky``,
    ``disconnects``, ``lossy``, ``chaos``).

    >>> fault_profiles().example()  # doctest: +SKIP
    FaultPlan(name='lossy', drop_ppm=20000, duplicate_ppm=20000, ...)
    """
    return st.sampled_from(list(PROFILES.values()))


_SCENARIOS_FAULTS: SearchStrategy[FaultPlan] = fault_plans()


def scenarios(
    *,
    market: SearchStrategy[MarketPath],
    faults: SearchStrategy[FaultPlan] = _SCENARIOS_FAULTS,
    seed: SearchStrategy[int] = _SCENARIOS_SEED,
    starting_balance: SearchStrategy[Decimal] = _SCENARIOS_STARTING_BALANCE,
    liquidity: SearchStrategy[Decimal | None] = _SCENARIOS_LIQUIDITY,
    position_mode: SearchStrategy[PositionMode] = _SCENARIOS_POSITION_MODE,
    latency_ms: SearchStrategy[int] = _SCENARIOS_LATENCY_MS,
    settle_ms: SearchStrategy[int] = _SCENARIOS_SETTLE_MS,
    funding_interval_ms: SearchStrategy[int] = _SCENARIOS_FUNDING_INTERVAL_MS,
) -> SearchStrategy[Scenario]:
    """Whole scenarios (:class:`~gridcore.testing.Scenario`) for :func:`~gridcore.testing.simulate`.

    The defaults draw lively runs: partial fills (``liquidity``, by default
    :func:`liquidities`: a drawn number of the instrument's lots per order and quote, or
    unlimited), funding paid every 20 s to 5 min (so every run of the default markets sees
    payments), latency up to 500 ms and every fault kind of :func:`fault_plans` (outages
    included).

    ``settle_ms`` must outlast the bot's periodic reconciliation for messages lost near the
    end of the run to be recovered before the ledger is compared with the venue.

    >>> from gridcore.testing import simulate, assert_no_violations
    >>> @given(scenario=scenarios(market=market_paths(instrument=st.just(MY_INSTRUMENT))))
    ... def test_my_bot(scenario):
    ...     assert_no_violations(simulate(my_bot(), scenario))  # doctest: +SKIP
    """
    for name, value in (
        ("market", market),
        ("faults", faults),
        ("seed", seed),
        ("starting_balance", starting_balance),
        ("liquidity", liquidity),
        ("position_mode", position_mode),
        ("latency_ms", latency_ms),
        ("settle_ms", settle_ms),
        ("funding_interval_ms", funding_interval_ms),
    ):
        _require_strategy(name, value)
    if liquidity is _SCENARIOS_LIQUIDITY:
        drawn_liquidity: SearchStrategy[Decimal | None] = market.flatmap(_lots_of)
    else:
        drawn_liquidity = liquidity
    return st.builds(
        Scenario,
        market=market,
        faults=faults,
        seed=seed,
        starting_balance=starting_balance,
        liquidity=drawn_liquidity,
        position_mode=position_mode,
        latency_ms=latency_ms,
        settle_ms=settle_ms,
        funding_interval_ms=funding_interval_ms,
    )


def venue_refusals(*, max_ppm: int = 200_000, max_order: int = 6) -> SearchStrategy[VenueFaults]:
    """A venue's own answers to opening orders (:class:`~gridcore.sim.funding.VenueFaults`):
    rejected outright, filled in part, accepted then rejected, each off or up to ``max_ppm``
    parts per million of opening orders; and, in about half the examples, one or two of the
    venue's first ``max_order`` opening orders refused by their number
    (``refuse_orders``). Shrinks towards a venue that refuses nothing.

    The numbered refusal is what makes a short run meaningful: a rate of a few percent often
    refuses nothing in the dozen opening orders of a run, and a two-venue bot's answer to a
    failed second leg (its rollback) is then never exercised. Refusing the venue's n-th
    opening order refuses some entry's leg on that venue whenever the run holds n of them.

    >>> venue_refusals(max_ppm=50_000).example()  # doctest: +SKIP
    VenueFaults(reject_ppm=0, partial_ppm=31337, late_reject_ppm=0, refuse_orders=(2,))
    """
    _check_bounds("ppm", 0, max_ppm)
    _check_bounds("order", 0, max_order)
    if max_ppm > 1_000_000:
        raise InvalidArgument("rates are parts per million: at most 1_000_000")
    rate: SearchStrategy[int] = (
        st.just(0) if max_ppm == 0 else st.one_of(st.just(0), st.integers(1, max_ppm))
    )
    numbered: SearchStrategy[tuple[int, ...]] = (
        st.just(())
        if max_order == 0
        else st.one_of(
            st.just(()),
            st.lists(
                st.integers(min_value=1, max_value=max_order), min_size=1, max_size=2, unique=True
            ).map(lambda ns: tuple(sorted(ns))),
        )
    )
    return st.builds(
        VenueFaults,
        reject_ppm=rate,
        partial_ppm=rate,
        late_reject_ppm=rate,
        refuse_orders=numbered,
    )


_MULTI_BASIS: SearchStrategy[Decimal] = st.sampled_from(
    [Decimal(0), Decimal("0.0005"), Decimal("-0.0005"), Decimal("0.002"), Decimal("-0.002")]
)
_MULTI_FUNDING_RATE: SearchStrategy[Decimal] = st.sampled_from(
    [Decimal("0.0001"), Decimal("0.0002"), Decimal(0), Decimal("-0.0001"), Decimal("0.0005")]
)
_MULTI_FUNDING_RATE_VOLATILITY: SearchStrategy[Decimal] = st.sampled_from(
    [Decimal("0.0001"), Decimal(0), Decimal("0.0003")]
)
_MULTI_LIQUIDITY: SearchStrategy[Decimal | None] = st.none()
_MULTI_REFUSALS: SearchStrategy[VenueFaults] = venue_refusals()


def multi_venue_scenarios(
    *,
    venues: Mapping[str, Instrument | Sequence[Instrument]],
    start_prices: Mapping[str, SearchStrategy[Decimal]] | None = None,
    min_ticks: int = 200,
    max_ticks: int = 2_000,
    start_price: SearchStrategy[Decimal] = _MARKET_PATHS_START_PRICE,
    volatility: SearchStrategy[Decimal] = _MARKET_PATHS_VOLATILITY,
    basis: SearchStrategy[Decimal] = _MULTI_BASIS,
    spread_ticks: SearchStrategy[int] = _MARKET_PATHS_SPREAD_TICKS,
    interval_ms: SearchStrategy[int] = _MARKET_PATHS_INTERVAL_MS,
    start_ts: SearchStrategy[int] = _MARKET_PATHS_START_TS,
    faults: SearchStrategy[FaultPlan] = _SCENARIOS_FAULTS,
    refusals: SearchStrategy[VenueFaults] = _MULTI_REFUSALS,
    funding_rate: SearchStrategy[Decimal] = _MULTI_FUNDING_RATE,
    funding_rate_volatility: SearchStrategy[Decimal] = _MULTI_FUNDING_RATE_VOLATILITY,
    funding_interval_ms: SearchStrategy[int] = _SCENARIOS_FUNDING_INTERVAL_MS,
    starting_balance: SearchStrategy[Decimal] = _SCENARIOS_STARTING_BALANCE,
    liquidity: SearchStrategy[Decimal | None] = _MULTI_LIQUIDITY,
    position_mode: SearchStrategy[PositionMode] = _SCENARIOS_POSITION_MODE,
    seed: SearchStrategy[int] = _SCENARIOS_SEED,
    latency_ms: SearchStrategy[int] = _SCENARIOS_LATENCY_MS,
    settle_ms: SearchStrategy[int] = _SCENARIOS_SETTLE_MS,
) -> SearchStrategy[MultiVenueScenario]:
    """Runs on several venues (:class:`~gridcore.testing.MultiVenueScenario`) for a bot that
    trades them all: ``venues`` maps each venue's name to the instrument(s) it quotes.

    Markets are correlated the way a cross-venue bot needs them: the instruments of one asset
    (their ``base``) follow one walk (one seed, one ``volatility``, one ``start_price``, or the
    asset's own strategy in ``start_prices``, keyed by base), each venue in its own ticks and
    shifted by a ``basis`` drawn per venue (a fraction of the price; the first venue quoting the
    asset is the reference, at none). Every run draws one length (``min_ticks`` to
    ``max_ticks`` quotes). Each venue gets its own link fault plan (``faults``, drawn
    independently per venue, from its own stream), its own refusals of opening orders
    (``refusals``, see :func:`venue_refusals`), its own funding period
    (``funding_interval_ms``) and a funding-rate path per symbol (mean-reverting around a
    drawn ``funding_rate`` with a drawn ``funding_rate_volatility``: see
    :func:`gridcore.sim.funding.synthetic_rates`), its own ``starting_balance``, ``liquidity``
    (base units per order and quote; ``None``: unlimited) and ``position_mode``. Venue ``k``
    quotes ``k`` milliseconds after the first, in the order ``venues`` lists them.

    >>> drawn = multi_venue_scenarios(
    ...     venues={"a": ETH_ON_A, "b": ETH_ON_B},
    ...     start_prices={"ETH": st.just(Decimal(3_000))},
    ... )
    >>> @given(scenario=drawn)
    ... def test_my_arbitrage(scenario):
    ...     assert_no_violations(simulate(my_two_venue_bot(), scenario))  # doctest: +SKIP
    """
    if not venues:
        raise InvalidArgument("venues={} needs at least one venue name -> instrument(s)")
    listed: dict[str, tuple[Instrument, ...]] = {}
    for name, given_instruments in venues.items():
        insts = (
            (given_instruments,)
            if isinstance(given_instruments, Instrument)
            else tuple(given_instruments)
        )
        if not insts:
            raise InvalidArgument(f"venues[{name!r}] lists no instrument")
        for inst in insts:
            if not isinstance(inst, Instrument):
                raise InvalidArgument(f"venues[{name!r}] holds {inst!r}, not an Instrument")
            if inst.venue != name:
                raise InvalidArgument(
                    f"venues[{name!r}] holds {inst.venue}/{inst.symbol}, an instrument of "
                    f"venue {inst.venue!r}: list it under that name"
                )
        if len({i.symbol for i in insts}) != len(insts):
            raise InvalidArgument(f"venues[{name!r}] lists a symbol twice")
        listed[name] = insts
    assets = sorted({_asset(i) for insts in listed.values() for i in insts})
    prices = dict(start_prices or {})
    unknown = set(prices) - set(assets)
    if unknown:
        raise InvalidArgument(
            f"start_prices names assets {sorted(unknown)} that no instrument trades; "
            f"the instruments' assets (their base): {assets}"
        )
    _check_bounds("ticks", min_ticks, max_ticks)
    for name, value in (
        *((f"start_prices[{a!r}]", v) for a, v in prices.items()),
        ("start_price", start_price),
        ("volatility", volatility),
        ("basis", basis),
        ("spread_ticks", spread_ticks),
        ("interval_ms", interval_ms),
        ("start_ts", start_ts),
        ("faults", faults),
        ("refusals", refusals),
        ("funding_rate", funding_rate),
        ("funding_rate_volatility", funding_rate_volatility),
        ("funding_interval_ms", funding_interval_ms),
        ("starting_balance", starting_balance),
        ("liquidity", liquidity),
        ("position_mode", position_mode),
        ("seed", seed),
        ("latency_ms", latency_ms),
        ("settle_ms", settle_ms),
    ):
        _require_strategy(name, value)

    @st.composite
    def build(draw: st.DrawFn) -> MultiVenueScenario:
        ticks = draw(st.integers(min_value=min_ticks, max_value=max_ticks))
        every_ms = draw(interval_ms)
        first_ts = draw(start_ts)
        walks = {
            asset: (
                draw(st.integers(min_value=0, max_value=2**32 - 1)),
                draw(prices.get(asset, start_price)),
                draw(volatility),
                draw(spread_ticks),
            )
            for asset in assets
        }
        quoted: set[str] = set()
        out = []
        for k, insts in enumerate(listed.values()):
            interval = draw(funding_interval_ms)
            markets = []
            rates = []
            for inst in insts:
                walk_seed, price, vol, spread = walks[_asset(inst)]
                if _asset(inst) in quoted:
                    price = CTX.multiply(price, CTX.add(Decimal(1), draw(basis)))
                quoted.add(_asset(inst))
                markets.append(
                    MarketPath(
                        instrument=inst,
                        seed=walk_seed,
                        ticks=ticks,
                        start_price=max(price, inst.tick_size),
                        volatility=vol,
                        spread_ticks=spread,
                        start_ts=first_ts + k,
                        interval_ms=every_ms,
                    )
                )
                path = synthetic_rates(
                    seed=draw(st.integers(min_value=0, max_value=2**32 - 1)),
                    start_ts=first_ts,
                    intervals=ticks * every_ms // interval + 2,
                    interval_ms=interval,
                    mean=draw(funding_rate),
                    volatility=draw(funding_rate_volatility),
                )
                rates.append((inst.symbol, tuple(path)))
            out.append(
                VenueScenario(
                    market=markets[0],
                    more_markets=tuple(markets[1:]),
                    faults=draw(faults),
                    starting_balance=draw(starting_balance),
                    position_mode=draw(position_mode),
                    liquidity=draw(liquidity),
                    funding_interval_ms=interval,
                    funding_rate=rates[0][1][0][1],
                    funding_rates=rates[0][1],
                    symbol_funding_rates=tuple(rates[1:]),
                    refusals=draw(refusals),
                )
            )
        return MultiVenueScenario(
            venues=tuple(out),
            seed=draw(seed),
            latency_ms=draw(latency_ms),
            settle_ms=draw(settle_ms),
        )

    return build()


def _asset(instrument: Instrument) -> str:
    """What an instrument trades: its base, else its symbol."""
    return instrument.base or instrument.symbol


def _lots_of(market: MarketPath) -> SearchStrategy[Decimal | None]:
    return liquidities(instrument=market.instrument)


def liquidities(*, instrument: Instrument) -> SearchStrategy[Decimal | None]:
    """How much of one order the venue fills per quote (base units): 1 to 100 lots of
    ``instrument``, small numbers more often (a small value makes partial fills), or
    unlimited (``None``). Shrinks towards one lot.

    >>> liquidities(instrument=my_instrument).example()  # doctest: +SKIP
    Decimal('0.007')
    """
    lot = instrument.lot_size
    # Partial fills first (a search draws its first choice most often, and shrinks to it):
    # one lot, small numbers, and the divisors of 99 that leave an order of 100 lots 99 %
    # filled for a while.
    lots = st.one_of(
        st.just(1),  # every order of more than one lot fills in parts
        st.sampled_from([9, 3, 33, 11, 99, 2]),
        st.integers(min_value=1, max_value=100),
    )
    return st.one_of(lots.map(lambda n: CTX.multiply(lot, Decimal(n))), st.none())


# --- event streams ----------------------------------------------------------------------------


def kernel_cloids(*, epoch: int = _EPOCH, max_seq: int = 64) -> SearchStrategy[str]:
    """Client order ids as the kernel names them for a bot created at ``epoch`` (ms): a stream
    drawn with these talks about the bot's real orders, not only unknown ones.

    >>> kernel_cloids(epoch=0, max_seq=3).example()  # doctest: +SKIP
    '0x00000000000000000000000000000002'
    """
    _check_bounds("seq", 1, max_seq, floor=1)
    if epoch < 0:
        raise InvalidArgument(f"epoch={epoch} must be >= 0 (ms)")
    return st.integers(min_value=1, max_value=max_seq).map(lambda n: f"0x{epoch:016x}{n:016x}")


_EVENT_STREAMS_CLOIDS: SearchStrategy[str] = kernel_cloids()


def event_streams(
    *,
    instrument: SearchStrategy[Instrument],
    cloids: SearchStrategy[str] = _EVENT_STREAMS_CLOIDS,
    start_price: SearchStrategy[Decimal] = _EVENT_STREAMS_START_PRICE,
    start_ts: int = _EPOCH,
    min_size: int = 0,
    max_size: int = 60,
    started: bool = True,
) -> SearchStrategy[list[Event]]:
    """Streams of venue chatter for one instrument: quotes, acks, rejections, fills (with
    duplicated fill ids), cancels, reports, timers, disconnects, command failures, in
    non-decreasing time order, opening with :class:`~gridcore.events.Started` when ``started``.

    Facts arrive in any order and about any order, known or not: a reducer must never crash
    on them and every invariant must hold after each. Fill ids come from a small pool so that
    replays are frequent.

    >>> event_streams(instrument=instruments(), max_size=5).example()  # doctest: +SKIP
    [Started(ts=1700000000000), QuoteTicked(...), OrderFilled(...)]
    """
    _check_bounds("size", min_size, max_size)
    if start_ts < 0:
        raise InvalidArgument(f"start_ts={start_ts} must be >= 0 (ms)")
    for name, value in (
        ("instrument", instrument),
        ("cloids", cloids),
        ("start_price", start_price),
    ):
        _require_strategy(name, value)

    @st.composite
    def build(draw: st.DrawFn) -> list[Event]:
        inst = draw(instrument)
        venue, symbol = inst.venue, inst.symbol
        tick = inst.tick_size
        units = max(10, int(CTX.divide(draw(start_price), tick)))
        ts = start_ts
        events: list[Event] = [Started(ts=ts)] if started else []
        size = draw(st.integers(min_value=min_size, max_value=max_size))
        for _ in range(size):
            ts += draw(st.integers(min_value=0, max_value=3_000))
            units = max(10, units + draw(st.integers(min_value=-5, max_value=5)))
            price = CTX.multiply(Decimal(units), tick)
            kind = draw(st.integers(min_value=0, max_value=15))
            events.append(_event(draw, kind, ts, venue, symbol, inst, price, cloids))
        return events

    return build()


def _fill(
    draw: st.DrawFn,
    ts: int,
    venue: str,
    symbol: str,
    inst: Instrument,
    price: Decimal,
    cloids: SearchStrategy[str],
) -> Fill:
    qty = CTX.multiply(inst.lot_size, Decimal(draw(st.integers(min_value=1, max_value=20))))
    return Fill(
        ts=ts - draw(st.integers(min_value=0, max_value=2_000)),
        venue=venue,
        symbol=symbol,
        fill_id=f"f{draw(st.integers(min_value=1, max_value=12))}",
        cloid=draw(st.one_of(cloids, st.none())),
        venue_order_id=None,
        side=draw(st.sampled_from(Side)),
        position_side=PositionSide.BOTH,
        price=price,
        qty=qty,
        fee=CTX.multiply(CTX.multiply(qty, price), inst.maker_fee),
    )


def _event(
    draw: st.DrawFn,
    kind: int,
    ts: int,
    venue: str,
    symbol: str,
    inst: Instrument,
    price: Decimal,
    cloids: SearchStrategy[str],
) -> Event:
    cid = draw(st.integers(min_value=1, max_value=64))
    command_id: Any = draw(st.one_of(st.none(), st.just(cid)))
    if kind <= 4:
        return QuoteTicked(ts=ts, venue=venue, symbol=symbol, bid=price, ask=price + inst.tick_size)
    if kind == 5:
        return OrderAccepted(
            ts=ts, venue=venue, cloid=draw(cloids), venue_order_id=str(cid), command_id=command_id
        )
    if kind == 6:
        return OrderRejected(
            ts=ts, venue=venue, cloid=draw(cloids), reason="drawn", command_id=command_id
        )
    if kind == 7:
        fill = _fill(draw, ts, venue, symbol, inst, price, cloids)
        return OrderPartiallyFilled(ts=ts, fill=fill)
    if kind == 8:
        fill = _fill(draw, ts, venue, symbol, inst, price, cloids)
        return OrderFilled(ts=ts, fill=fill)
    if kind == 9:
        return OrderCanceled(ts=ts, venue=venue, cloid=draw(cloids), command_id=command_id)
    if kind == 10:
        return CancelRejected(
            ts=ts, venue=venue, cloid=draw(cloids), reason="drawn", command_id=command_id
        )
    if kind == 11:
        return OrderStatusReported(
            ts=ts,
            venue=venue,
            cloid=draw(cloids),
            status=draw(st.sampled_from(ReportedStatus)),
            command_id=command_id,
        )
    if kind == 12:
        n = draw(st.integers(min_value=0, max_value=4))
        fills = [_fill(draw, ts, venue, symbol, inst, price, cloids) for _ in range(n)]
        return FillsReported(
            ts=ts, venue=venue, since=ts - 60_000, fills=tuple(fills), command_id=command_id
        )
    if kind == 13:
        choice = draw(st.integers(min_value=0, max_value=6))
        if choice == 0:
            return FeedDisconnected(ts=ts, venue=venue)
        if choice == 1:
            return FeedReconnected(ts=ts, venue=venue)
        if choice == 2:
            return MessageMalformed(ts=ts, venue=venue, detail="drawn")
        if choice == 3:
            qty = CTX.multiply(
                inst.lot_size, Decimal(draw(st.integers(min_value=-20, max_value=20)))
            )
            return PositionsReported(
                ts=ts,
                venue=venue,
                positions=(
                    PositionReport(
                        symbol=symbol, position_side=PositionSide.BOTH, qty=qty, entry_price=price
                    ),
                )
                if qty
                else (),
                command_id=command_id,
            )
        if choice == 4:
            equity = Decimal(draw(st.integers(min_value=0, max_value=20_000)))
            return BalanceReported(
                ts=ts,
                venue=venue,
                asset=inst.quote,
                equity=equity,
                available=equity,
                command_id=command_id,
            )
        if choice == 5:
            return FundingPaid(
                ts=ts,
                venue=venue,
                symbol=symbol,
                position_side=PositionSide.BOTH,
                amount=Decimal(draw(st.integers(min_value=-5, max_value=5))),
                payment_id=f"p{draw(st.integers(min_value=1, max_value=5))}",
            )
        return TimerFired(ts=ts, timer_id=MAINTENANCE_TIMER)
    if kind == 14:
        return CommandFailed(ts=ts, command_id=cid, reason="drawn", not_applied=draw(st.booleans()))
    return CommandTimedOut(ts=ts, command_id=cid)
