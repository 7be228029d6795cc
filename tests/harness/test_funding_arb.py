"""The funding-arbitrage kind's invariants bite: each deliberately broken variant is caught.

The harness for this kind is the two-venue backtest (:func:`gridcore.sim.funding.
funding_backtest`) under its defaults: the shipped example configuration (with its own venue
faults: opening orders rejected, filled in part, accepted then rejected) in farm mode with a
two-minute hold (so that a short run holds dozens of hedged entries), a larger notional (a few
entries' margin is the whole balance), the ``flaky`` fault profile, and the kind's invariants
(the registry entry ``invariants``, which the kernel's catalogue judges after every step of
every run). It searches seeds in
order, at most :data:`CI_BUDGET` of them, and stops at the first that reports the invariant.
The real strategy passes the same search.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from gridcore import Intent, State, Submit, step
from gridcore.config import BotConfig, load_config
from gridcore.core import initial_state
from gridcore.registry import get
from gridcore.saga import DEADLINE, Row, Saga, SagaSpec, Signal, advance
from gridcore.sim import PROFILES
from gridcore.sim.funding import pair_instruments
from gridcore.strategies import funding_arb as fa
from gridcore.strategies.funding_arb import Entry, FundingArb, Phase
from gridcore.testing import (
    InvariantViolations,
    MultiVenueScenario,
    Reducer,
    assert_no_violations,
    simulate,
)
from gridcore.testing import strategies as gst
from tests.harness.search import SEARCH, run_proof
from tests.unit.test_funding_arb import run, toml

CI_BUDGET = 4
TICKS = 4_000


def harness_config() -> BotConfig:
    text = toml(mode="farm", farm_hold_ms=120_000, cooldown_ms=0, notional="45000")
    text = text.replace('max_position = "2"', 'max_position = "20"').replace(
        'max_order_notional = "5000"', 'max_order_notional = "50000"'
    )
    return load_config(text)


SECOND_PAIR = """
[[funding_arb.pairs]]
symbol_a = "BTC-USD"
symbol_b = "BTC"
tick_size_a = "0.1"
lot_size_a = "0.0001"
tick_size_b = "1"
lot_size_b = "0.001"
sim_start_price = "60000"
"""


def two_pair_config() -> BotConfig:
    """The harness configuration with a second pair (BTC) on the same two venues: one entry's
    margin fits the shared balance, two at once do not."""
    text = toml(mode="farm", farm_hold_ms=120_000, cooldown_ms=0, notional="45000")
    text = text.replace('max_position = "2"', 'max_position = "20"').replace(
        'max_order_notional = "5000"', 'max_order_notional = "50000"'
    )
    return load_config(text + SECOND_PAIR)


def search(
    make: Callable[[FundingArb], FundingArb],
    cfg: BotConfig | None = None,
    budget: int = CI_BUDGET,
) -> tuple[set[str], int]:
    """The invariants reported for the variant ``make`` builds, and the seeds it took (at most
    ``budget``)."""
    cfg = harness_config() if cfg is None else cfg
    assert get("funding_arb").invariants == fa.INVARIANTS
    core = attrs.evolve(
        cfg.make_core_config(),
        instruments=tuple(i for pair in pair_instruments(cfg) for i in pair),
    )
    found: set[str] = set()
    for n, seed in enumerate(range(1, budget + 1), start=1):
        real = cfg.make_strategy()
        assert isinstance(real, FundingArb)
        state = initial_state(core, make(real), epoch=cfg.market.start_ts)
        trace, _ = run(cfg, ticks=TICKS, faults=PROFILES["flaky"], seed=seed, state=state)
        # What the backtest itself reports: the kernel's catalogue judges the kind's
        # registered invariants after every step.
        found |= {v.invariant for v in trace.violations}
        if found:
            return found, n
    return found, budget


# --- the broken variants ----------------------------------------------------------------------


def _rows(spec: SagaSpec, **changes: Row | tuple[Row, ...]) -> dict[Any, Any]:
    rows = dict(spec.rows)
    for key, row in changes.items():
        phase, kind = key.split("__")
        rows[(Phase[phase.upper()], kind)] = row
    return rows


def _respec(spec: SagaSpec, deadlines: dict[Any, int] | None = None, **changes: Any) -> SagaSpec:
    return SagaSpec(
        name=spec.name,
        initial=spec.initial,
        deadlines={**spec.deadlines, **(deadlines or {})},
        terminal=spec.terminal,
        rows=_rows(spec, **changes),
    )


def _forget_leg2(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    e = saga.data
    return attrs.evolve(e, live={k: v for k, v in e.live.items() if k != "leg2"}), ()


@attrs.frozen(kw_only=True)
class WaitsOutAFailedLeg2(FundingArb):
    """Failure `racing-legs`: a failed leg 2 is not rolled back at once; the saga waits for a
    deadline a minute long, naked all the while."""

    def _spec(self, saga: Saga[Entry]) -> SagaSpec:
        base = super()._spec(saga)
        if base.name != fa.ENTRY.name:
            return base
        stay = Row(to=None, act=_forget_leg2)
        return _respec(
            base,
            deadlines={Phase.LEG2: 120_000},
            leg2__leg2_ended_empty=stay,
            leg2__leg2_refused=stay,
            leg2__leg2_ended_part=stay,
        )


def _close_the_notional(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    """Size the rollback from the quote notional, as if it were a base quantity."""
    e, intents = fa._act_close_difference(saga, signal)
    out: list[Intent] = []
    closes = list(e.closes)
    for intent in intents:
        if isinstance(intent, Submit) and intent.reduce_only:
            wrong = e.notional
            out.append(attrs.evolve(intent, qty=wrong))
            key, _, held = closes[-1]
            closes[-1] = (key, wrong, held)
        else:
            out.append(intent)
    return attrs.evolve(e, closes=tuple(closes)), out


@attrs.frozen(kw_only=True)
class RollbackInQuote(FundingArb):
    """Failure `rollback-in-quote`: the rollback closes the entry's notional (quote), not the
    reported position (base)."""

    def _spec(self, saga: Saga[Entry]) -> SagaSpec:
        base = super()._spec(saga)
        if base.name != fa.ENTRY.name:
            return base
        rows = dict(base.rows)
        for key, entry in base.rows.items():
            choices = entry if isinstance(entry, tuple) else (entry,)
            patched = tuple(
                attrs.evolve(r, act=_close_the_notional)
                if r.act in (fa._act_close_difference, fa._act_unequal)
                else r
                for r in choices
            )
            rows[key] = patched if isinstance(entry, tuple) else patched[0]
        return SagaSpec(
            name=base.name,
            initial=base.initial,
            deadlines=base.deadlines,
            terminal=base.terminal,
            rows=rows,
        )


@attrs.frozen(kw_only=True)
class TrustsCachedReports(FundingArb):
    """Failures `stale-balance`, `stale-position-cache`: an entry is decided at once on the
    balances and positions the state already holds, without waiting for fresh reports."""

    def _begin(
        self, view: State[Any], kind: str, long: str, why: str = "", pair: int = 0
    ) -> tuple[FundingArb, list[Intent]]:
        new, intents = super()._begin(view, kind, long, why, pair)
        if kind != "entry":
            return new, intents
        saga = new.sagas[f"e{new.seq}"]
        cached = {}
        for key, venue in (("a", self.config.venue), ("b", self.config.venue_b)):
            bal = view.balance(venue)
            ts = -1 if bal is None else bal.ts
            cached[(key, "balances")] = (ts, ts)
            cached[(key, "positions")] = (ts, ts)
        saga = attrs.evolve(saga, data=attrs.evolve(saga.data, answered=cached))
        new = attrs.evolve(new, sagas={**new.sagas, saga.saga_id: saga})
        signal = new._signal(view, "refreshed")
        moved, more = advance(new._spec(saga), saga, signal, view.now)
        return attrs.evolve(new, sagas={**new.sagas, saga.saga_id: moved}), [*intents, *more]


@attrs.frozen(kw_only=True)
class EntriesInParallel(FundingArb):
    """Failure `parallel-entries-overdraw`: a new entry starts while others run, each checking
    the balance as if it were alone."""

    def busy(self, pair: int = 0) -> bool:
        return False

    def entry_locked(self, pair: int = 0) -> bool:
        return False

    def reserved(self, pair: int | None = None) -> Decimal:
        return Decimal(0)


@attrs.frozen(kw_only=True)
class PairsIgnoreEachOther(FundingArb):
    """Failure `parallel-entries-overdraw` across pairs: each pair keeps to one saga of its
    own, but enters while another pair's entry runs and checks the shared balance counting
    only its own pair's reservations."""

    def entry_locked(self, pair: int = 0) -> bool:
        return False

    def reserved(self, pair: int | None = None) -> Decimal:
        total = Decimal(0)
        for saga in self.sagas.values():
            if not saga.terminal and saga.data.pair == pair:
                total += saga.data.reserved
        return total


def _assume_hedged(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    return fa._with_snap(saga.data, signal), ()


@attrs.frozen(kw_only=True)
class AssumesLeg2Filled(FundingArb):
    """A saga that ends "hedged" when leg 2 ends, whatever it filled."""

    def _spec(self, saga: Saga[Entry]) -> SagaSpec:
        base = super()._spec(saga)
        if base.name != fa.ENTRY.name:
            return base
        done = Row(to=Phase.HEDGED, act=_assume_hedged)
        return _respec(
            base,
            leg2__leg2_ended_empty=done,
            leg2__leg2_refused=done,
            leg2__leg2_ended_part=done,
        )


def _as(cls: type[FundingArb]) -> Callable[[FundingArb], FundingArb]:
    def make(real: FundingArb) -> FundingArb:
        return cls(config=real.config, leverage=real.leverage)

    return make


# --- the search -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "invariant"),
    [
        (WaitsOutAFailedLeg2, "funding_naked_exposure_bounded"),
        (RollbackInQuote, "funding_rollback_within_position"),
        (TrustsCachedReports, "funding_decision_on_fresh_report"),
        (EntriesInParallel, "funding_reservations_within_balance"),
        (AssumesLeg2Filled, "funding_saga_ends_flat_or_hedged"),
    ],
)
def test_a_broken_variant_is_caught_within_the_ci_budget(
    variant: type[FundingArb], invariant: str
) -> None:
    found, seeds = search(_as(variant))
    assert invariant in found, (found, seeds)


def test_the_real_strategy_passes_the_same_search() -> None:
    found, _ = search(lambda real: real)
    assert found == set()


def test_pairs_entering_on_each_others_balance_are_caught_within_the_ci_budget() -> None:
    """Two pairs share the venues' balances: pairs that each check the free balance without
    counting the other pair's reservation overdraw it, and the invariant says so."""
    found, seeds = search(_as(PairsIgnoreEachOther), two_pair_config())
    assert "funding_reservations_within_balance" in found, (found, seeds)


def test_the_real_strategy_with_two_pairs_passes_the_same_search() -> None:
    # Two seeds (each runs two pairs): the search the variant above fails on its first.
    found, _ = search(lambda real: real, two_pair_config(), budget=2)
    assert found == set()


def test_the_broken_tables_are_still_valid_sagas() -> None:
    """The variants break the strategy's rules, not the saga engine's: their tables validate."""
    probe: Saga[Entry] = Saga(
        spec=fa.ENTRY.name,
        saga_id="x",
        phase=Phase.LEG2,
        deadline_at=0,
        data=Entry(saga_id="x", kind="entry"),
    )
    cfg = harness_config()
    for cls in (WaitsOutAFailedLeg2, RollbackInQuote, AssumesLeg2Filled):
        real = cfg.make_strategy()
        assert isinstance(real, FundingArb)
        spec = _as(cls)(real)._spec(probe)
        assert (Phase.LEG2, DEADLINE) in spec.rows


# --- the same proofs, drawn: hypothesis searches two-venue scenarios --------------------------


def drawn_venues(
    cfg: BotConfig, *, max_ticks: int = 2_000, **knobs: Any
) -> SearchStrategy[MultiVenueScenario]:
    """What a user points the harness at for this configuration: every pair's instrument on
    each venue, every asset from its configured price, everything else the defaults of
    :func:`gridcore.testing.strategies.multi_venue_scenarios` (a drawn basis between the venues,
    each venue's own drawn link faults, refusals, funding periods and rate paths per symbol);
    ``knobs`` turn the strategy's other knobs."""
    pairs = pair_instruments(cfg)
    prices = {
        a.base or a.symbol: st.just(cfg.market.start_price if p is None else p.sim_start_price)
        for (a, _), p in zip(pairs, (None, *cfg.settings.pairs), strict=True)
    }
    return gst.multi_venue_scenarios(
        venues={
            cfg.venue.name: [a for a, _ in pairs],
            cfg.settings.venue_b: [b for _, b in pairs],
        },
        start_prices={k: v for k, v in prices.items() if v is not None},
        max_ticks=max_ticks,
        **knobs,
    )


def drawn_search(
    make: Callable[[FundingArb], FundingArb],
    cfg: BotConfig | None = None,
    *,
    max_ticks: int = 2_000,
    reducer: Reducer = step,
    target: str | None = None,
    **knobs: Any,
) -> set[str]:
    """The invariants ``simulate`` reports for the variant ``make`` builds on the first failing
    drawn scenario of the proofs' search (:data:`tests.harness.search.SEARCH`), stepped by
    ``reducer``. With a ``target`` the search goes on until a scenario breaks that invariant
    (a variant may break another on its way: a search for one failure stops at it)."""
    cfg = harness_config() if cfg is None else cfg

    def bot() -> State[Any]:
        real = cfg.make_strategy()
        assert isinstance(real, FundingArb)
        core = attrs.evolve(
            cfg.make_core_config(),
            instruments=tuple(i for pair in pair_instruments(cfg) for i in pair),
        )
        return initial_state(core, make(real), epoch=cfg.market.start_ts)

    @SEARCH
    @given(scenario=drawn_venues(cfg, max_ticks=max_ticks, **knobs))
    def proof(scenario: MultiVenueScenario) -> None:
        trace = simulate(bot(), scenario, reducer=reducer)
        if target is None or target in {v.invariant for v in trace.violations}:
            assert_no_violations(trace)

    try:
        run_proof(proof)
    except InvariantViolations as failure:
        return {v.invariant for v in failure.violations}
    return set()


TWO_PAIR_TICKS = 800
"""Two pairs quote twice as much per second: shorter drawn runs keep that proof's cost."""


@pytest.mark.parametrize(
    ("variant", "invariant"),
    [
        (WaitsOutAFailedLeg2, "funding_naked_exposure_bounded"),
        (RollbackInQuote, "funding_rollback_within_position"),
        (TrustsCachedReports, "funding_decision_on_fresh_report"),
        (EntriesInParallel, "funding_reservations_within_balance"),
        (AssumesLeg2Filled, "funding_saga_ends_flat_or_hedged"),
    ],
)
def test_a_drawn_two_venue_search_catches_a_broken_variant(
    variant: type[FundingArb], invariant: str
) -> None:
    assert invariant in drawn_search(_as(variant), target=invariant)


def test_a_drawn_two_venue_search_catches_pairs_entering_on_each_others_balance() -> None:
    target = "funding_reservations_within_balance"
    found = drawn_search(
        _as(PairsIgnoreEachOther), two_pair_config(), max_ticks=TWO_PAIR_TICKS, target=target
    )
    assert target in found


# slow: the default run holds the real strategy to the fixed-fault search above.
@pytest.mark.slow
def test_the_real_strategy_passes_the_drawn_two_venue_search() -> None:
    assert drawn_search(lambda real: real) == set()


# slow: the default run holds two pairs to the fixed-fault search above.
@pytest.mark.slow
def test_the_real_strategy_with_two_pairs_passes_the_drawn_two_venue_search() -> None:
    found = drawn_search(lambda real: real, two_pair_config(), max_ticks=TWO_PAIR_TICKS)
    assert found == set()
