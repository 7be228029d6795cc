"""``simulate`` proves a two-venue bot the way it proves a grid: a :class:`MultiVenueScenario`
gives each venue its own market path, link fault plan, account, funding-rate path and order
refusals, and the funding-rate arbitrage's broken variants are caught while the real strategy
passes (at the first seed, on a short run)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from gridcore import PlaceOrder, State, step
from gridcore.core import initial_state
from gridcore.events import Event, FillsReported, QuoteTicked
from gridcore.instruments import Instrument, PositionSide, Side
from gridcore.sim import PROFILES, FaultPlan
from gridcore.sim.funding import FundingVenue, VenueFaults, second_instrument, synthetic_rates
from gridcore.strategies.funding_arb import FundingArb
from gridcore.testing import (
    MarketPath,
    MultiVenueScenario,
    RunMonitor,
    Scenario,
    VenueScenario,
    assert_no_violations,
    simulate,
)
from gridcore.testing import strategies as gst
from tests.harness.test_funding_arb import (
    AssumesLeg2Filled,
    TrustsCachedReports,
    WaitsOutAFailedLeg2,
    drawn_search,
    drawn_venues,
    harness_config,
    two_pair_config,
)

TICKS = 2_000
CFG = harness_config()


def two_venues(
    seed: int, *, faults_b: FaultPlan = PROFILES["flaky"], ticks: int = TICKS
) -> MultiVenueScenario:
    """The funding arbitrage's two venues as the two-venue backtest builds them: the same
    synthetic market on each (venue b quotes a millisecond later, in its own ticks), each with
    its own funding-rate path, its own refusals of opening orders and its own link faults."""
    s, m, v = CFG.settings, CFG.market, CFG.venue
    refusals = VenueFaults(
        reject_ppm=s.sim_reject_ppm,
        partial_ppm=s.sim_partial_ppm,
        late_reject_ppm=s.sim_late_reject_ppm,
    )
    sides = (
        (CFG.make_instrument(), s.funding_interval_ms, s.sim_rate_a, PROFILES["flaky"]),
        (second_instrument(CFG), s.funding_interval_ms_b, s.sim_rate_b, faults_b),
    )
    venues = []
    for n, (inst, interval, mean, faults) in enumerate(sides):
        rates = synthetic_rates(
            seed=seed * 2 + n + 1,
            start_ts=m.start_ts,
            intervals=ticks * m.interval_ms // interval + 2,
            interval_ms=interval,
            mean=mean,
            volatility=s.sim_rate_volatility,
        )
        market = MarketPath(
            instrument=inst,
            seed=seed,
            ticks=ticks,
            start_price=m.start_price,
            volatility=m.volatility,
            spread_ticks=m.spread_ticks,
            start_ts=m.start_ts + n,
            interval_ms=m.interval_ms,
        )
        venues.append(
            VenueScenario(
                market=market,
                faults=faults,
                starting_balance=v.starting_balance,
                leverage=v.leverage,
                position_mode=v.position_mode,
                liquidity=v.liquidity,
                funding_interval_ms=interval,
                funding_rate=mean,
                funding_rates=tuple(rates),
                refusals=refusals,
            )
        )
    return MultiVenueScenario(venues=tuple(venues), seed=seed)


def bot(make: Callable[[FundingArb], FundingArb] = lambda real: real) -> State[Any]:
    real = CFG.make_strategy()
    assert isinstance(real, FundingArb)
    core = attrs.evolve(
        CFG.make_core_config(), instruments=(CFG.make_instrument(), second_instrument(CFG))
    )
    return initial_state(core, make(real), epoch=CFG.market.start_ts)


@pytest.mark.parametrize(
    ("variant", "invariant"),
    [
        (WaitsOutAFailedLeg2, "funding_naked_exposure_bounded"),
        (TrustsCachedReports, "funding_decision_on_fresh_report"),
        (AssumesLeg2Filled, "funding_saga_ends_flat_or_hedged"),
    ],
)
def test_a_two_venue_scenario_catches_a_broken_funding_arbitrage(
    variant: type[FundingArb], invariant: str
) -> None:
    trace = simulate(
        bot(lambda real: variant(config=real.config, leverage=real.leverage)), two_venues(1)
    )
    assert invariant in {v.invariant for v in trace.violations}


def test_the_real_funding_arbitrage_passes_two_venue_scenarios() -> None:
    for seed in (1, 2):
        trace = simulate(bot(), two_venues(seed))
        assert_no_violations(trace)
        s = trace.summary
        assert s.fills > 0 and s.injected.total > 0  # it traded, under faults
        assert set(trace.exchanges) == {CFG.venue.name, CFG.settings.venue_b}
        assert all(ex.fills for ex in trace.exchanges.values())  # on both venues


def test_a_venue_refuses_its_opening_orders_by_number() -> None:
    """``VenueFaults.refuse_orders``: venue b refuses its first opening order (the first entry's
    leg 2) whatever its rates, the real strategy rolls leg 1 back, and every invariant holds."""
    plain = two_venues(1, ticks=300)
    a, b = plain.venues
    refused = attrs.evolve(b, refusals=VenueFaults(refuse_orders=(1,)))
    scenario = attrs.evolve(plain, venues=(attrs.evolve(a, refusals=VenueFaults()), refused))
    trace = simulate(bot(), scenario, replay=False)
    assert_no_violations(trace)
    venue_b = trace.exchanges[b.venue]
    assert isinstance(venue_b, FundingVenue)
    assert venue_b.injected == {"reject": 1, "partial": 0, "late_reject": 0}
    assert venue_b.rejections == ["simulated rejection (injected)"]


def test_each_venue_fails_on_its_own() -> None:
    """Venue b without link faults: every fault injected is venue a's, and venue a's faults
    are the same whatever venue b's plan is (each venue draws from its own stream)."""
    quiet = simulate(bot(), two_venues(1, faults_b=FaultPlan(), ticks=300), replay=False)
    noisy = simulate(bot(), two_venues(1, ticks=300), replay=False)
    assert quiet.summary.faults == f"{CFG.venue.name}=flaky,{CFG.settings.venue_b}=none"
    assert 0 < quiet.summary.injected.total < noisy.summary.injected.total


def test_a_multi_venue_scenario_prints_as_a_program() -> None:
    scenario = two_venues(3, ticks=10)
    namespace = {
        "MultiVenueScenario": MultiVenueScenario,
        "VenueScenario": VenueScenario,
        "MarketPath": MarketPath,
        "FaultPlan": FaultPlan,
        "VenueFaults": VenueFaults,
        "Instrument": Instrument,
        "Decimal": Decimal,
    }
    exec("from gridcore.instruments import *", namespace)  # PositionMode and friends
    assert eval(repr(scenario), namespace) == scenario


def test_multi_venue_scenarios_refuse_what_cannot_run() -> None:
    one = two_venues(1, ticks=10).venues[0]
    with pytest.raises(ValueError, match="distinct venues"):
        MultiVenueScenario(venues=(one, one))
    with pytest.raises(ValueError, match="at least one"):
        MultiVenueScenario(venues=())
    with pytest.raises(ValueError, match="sorted"):
        attrs.evolve(one, funding_rates=((2, Decimal(0)), (1, Decimal(0))))
    grid_market = MarketPath(instrument=CFG.make_instrument(), ticks=10)
    with pytest.raises(ValueError, match="not configured in the bot"):
        other = Instrument(venue="zz", symbol="X", tick_size=Decimal(1), lot_size=Decimal(1))
        simulate(
            bot(),
            MultiVenueScenario(
                venues=(VenueScenario(market=attrs.evolve(grid_market, instrument=other)),)
            ),
        )
    # A one-venue Scenario still runs as it did.
    assert simulate(bot(), Scenario(market=grid_market)).summary.ticks == 10


def test_a_venue_quotes_several_instruments() -> None:
    """``more_markets``: venue a also lists a second instrument, quoted on its own path; the
    bot sees both and every venue's account still matches."""
    a = CFG.make_instrument()
    extra = attrs.evolve(a, symbol="BTC-USD")
    two = two_venues(1, ticks=300)
    first = two.venues[0]
    more = attrs.evolve(
        first,
        more_markets=(
            MarketPath(instrument=extra, seed=9, ticks=300, start_price=Decimal(60_000)),
        ),
    )
    scenario = attrs.evolve(two, venues=(more, two.venues[1]))
    state = bot()
    core = attrs.evolve(state.config, instruments=(*state.config.instruments, extra))
    trace = simulate(initial_state(core, state.strategy, epoch=CFG.market.start_ts), scenario)
    assert_no_violations(trace)
    assert trace.summary.ticks == 900
    assert set(trace.exchanges[a.venue].instruments) == {a.symbol, extra.symbol}
    with pytest.raises(ValueError, match="distinct instruments"):
        attrs.evolve(first, more_markets=(first.market,))
    with pytest.raises(ValueError, match="a VenueScenario of its own"):
        attrs.evolve(first, more_markets=(two.venues[1].market,))


def loses_b_fills_on_reconnect(state: State[Any], event: Event) -> tuple[State[Any], list[Any]]:
    """Failure `missed-fills-on-reconnect` on one venue of two: venue b's answers to the fills
    requests (the catch-up a reconnect starts, and every later one) are dropped, so a fill of
    venue b lost on its stream stays missing after its feed comes back; venue a is sound."""
    if isinstance(event, FillsReported) and event.venue == CFG.settings.venue_b and event.fills:
        event = attrs.evolve(event, fills=())
    return step(state, event)


def test_a_fill_one_venue_loses_on_reconnect_is_caught() -> None:
    """The running record judges each venue on its own: venue b's fills lost on its stream
    and never caught up are reported once the reconciliation of b's reconnect ends.

    The funding arbitrage rarely has a fill outstanding when a feed drops (its legs resolve in
    seconds) and the default plans lose few messages, so this search runs every venue on a
    hard plan: a tenth of the stream lost and an outage every 200 quotes or so."""
    hard = FaultPlan(name="lossy-outages", drop_ppm=100_000, disconnect_ppm=5_000)
    found = drawn_search(
        lambda real: real,
        reducer=loses_b_fills_on_reconnect,
        target="reconnect_recovers_fills",
        faults=st.just(hard),
    )
    assert "reconnect_recovers_fills" in found


def test_the_monitor_watches_every_venue() -> None:
    """``RunMonitor(exchanges=...)``: an order resting at either venue while the core holds it
    done is found at its own venue, and an exchange keyed by another venue's name is refused."""
    scenario = two_venues(1, ticks=10)
    state = bot()
    exchanges = {v.venue: v.exchange_for(state, seed=0) for v in scenario.venues}
    monitor = RunMonitor(state, exchanges=exchanges, resting_window_ms=0)
    b = second_instrument(CFG)
    exchanges[b.venue].on_tick(
        QuoteTicked(
            ts=CFG.market.start_ts,
            venue=b.venue,
            symbol=b.symbol,
            bid=Decimal(2999),
            ask=Decimal(3001),
        )
    )
    exchanges[b.venue].handle(
        PlaceOrder(
            command_id=1,
            cloid="0xstray",
            venue=b.venue,
            symbol=b.symbol,
            side=Side.BUY,
            position_side=PositionSide.BOTH,
            qty=Decimal("0.1"),
            price=Decimal(2000),
        ),
        CFG.market.start_ts,
    )
    assert monitor.venue(state, None, CFG.market.start_ts) == []
    found = monitor.venue(state, None, CFG.market.start_ts + 1)
    assert [v.invariant for v in found] == ["no_terminal_order_resting"]
    assert f"venue {b.venue} has rested 0xstray" in found[0].detail
    assert [v.invariant for v in monitor.quiescent(state)] == []  # reported once
    with pytest.raises(ValueError, match="its own venue's name"):
        RunMonitor(state, exchanges={"a": exchanges[b.venue]})
    with pytest.raises(ValueError, match="not both"):
        RunMonitor(state, exchange=exchanges[b.venue], exchanges=exchanges)


@settings(max_examples=25, deadline=None, database=None)
@given(scenario=drawn_venues(two_pair_config(), max_ticks=200))
def test_drawn_venues_quote_one_walk_per_asset_with_a_basis(scenario: MultiVenueScenario) -> None:
    """``multi_venue_scenarios``: each asset's markets share one walk (seed, volatility, length)
    on every venue, venue b's price is venue a's shifted by a basis of at most 20 bps and quoted a
    millisecond later, every further symbol has its own rate path, and the scenario prints as a
    program."""
    a, b = scenario.venues
    assert (a.venue, b.venue) == (CFG.venue.name, CFG.settings.venue_b)
    for on_a, on_b in zip(a.markets, b.markets, strict=True):
        assert on_a.instrument.base == on_b.instrument.base
        assert (on_a.seed, on_a.volatility, on_a.ticks) == (on_b.seed, on_b.volatility, on_b.ticks)
        assert on_b.start_ts == on_a.start_ts + 1
        assert abs(on_b.start_price / on_a.start_price - 1) <= Decimal("0.002")
    prices = {m.instrument.base: m.start_price for m in a.markets}
    assert prices == {"ETH": Decimal(3_000), "BTC": Decimal(60_000)}
    for venue in scenario.venues:
        assert [s for s, _ in venue.symbol_funding_rates] == [
            m.instrument.symbol for m in venue.more_markets
        ]
        assert venue.funding_rates and all(path for _, path in venue.symbol_funding_rates)
    namespace: dict[str, Any] = {
        "MultiVenueScenario": MultiVenueScenario,
        "VenueScenario": VenueScenario,
        "MarketPath": MarketPath,
        "FaultPlan": FaultPlan,
        "VenueFaults": VenueFaults,
        "Instrument": Instrument,
        "Decimal": Decimal,
    }
    exec("from gridcore.instruments import *", namespace)
    assert eval(repr(scenario), namespace) == scenario


def test_multi_venue_scenarios_refuse_bad_arguments_when_built() -> None:
    a, b = CFG.make_instrument(), second_instrument(CFG)
    with pytest.raises(InvalidArgument, match="at least one venue"):
        gst.multi_venue_scenarios(venues={})
    with pytest.raises(InvalidArgument, match="list it under that name"):
        gst.multi_venue_scenarios(venues={"a": b})
    with pytest.raises(InvalidArgument, match="no instrument"):
        gst.multi_venue_scenarios(venues={"a": []})
    with pytest.raises(InvalidArgument, match=r"assets \['BTC'\]"):
        gst.multi_venue_scenarios(venues={"a": a}, start_prices={"BTC": st.just(Decimal(1))})
    with pytest.raises(InvalidArgument, match="must be a SearchStrategy"):
        gst.multi_venue_scenarios(venues={"a": a}, basis=Decimal(0))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="max_ticks"):
        gst.multi_venue_scenarios(venues={"a": a}, min_ticks=10, max_ticks=5)
    with pytest.raises(InvalidArgument, match="max_ppm"):
        gst.venue_refusals(max_ppm=-1)
    one = two_venues(1, ticks=10).venues[0]
    with pytest.raises(ValueError, match="does not quote"):
        attrs.evolve(one, symbol_funding_rates=(("BTC", ()),))
