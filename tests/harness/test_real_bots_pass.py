"""The real bots pass the searches that catch the broken ones.

The neutral grid (gridcore's own) and the reference take-profit bot face the very searches of
``test_catches_broken_bots.py`` (the default scenarios, the default state machine, the same
deterministic budget) and the whole catalogue must hold; then a randomized property run (the
``ci`` profile) and the differential checks on recorded runs.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore import OrderFilled, State, step
from gridcore.testing import (
    MarketPath,
    Scenario,
    assert_no_violations,
    check_reordering,
    check_sync_interleaving,
    grid_is_working,
    make_state_machine,
    simulate,
)

from .bots import grid_bot, grid_config, take_profit_bot
from .search import (
    INSTRUMENT,
    default_scenarios,
    machine_violations,
    scenarios,
    simulated_violations,
)

_BIG_GRID = grid_config(order_qty="0.1", max_order_notional="10000", max_position="2")

REAL_BOTS: dict[str, Callable[[], State[Any]]] = {
    "neutral grid": grid_bot,
    "neutral grid, orders of 100 lots": lambda: grid_bot(_BIG_GRID),
    "take-profit bot": take_profit_bot,
}

# The bots' working predicates (the liveness check, ``working=``): the grids must keep trading.
WORKING: dict[str, Callable[[State[Any]], str | None]] = {
    "neutral grid": grid_is_working,
    "neutral grid, orders of 100 lots": grid_is_working,
}


# slow: 60 full runs per bot; the default run keeps the state machine at its defaults and the
# randomized runs below.
@pytest.mark.slow
@pytest.mark.parametrize("bot", sorted(REAL_BOTS))
def test_real_bot_passes_simulate_at_its_defaults(bot: str) -> None:
    found = simulated_violations(
        REAL_BOTS[bot], step, default_scenarios(), working=WORKING.get(bot)
    )
    assert found == set()


@pytest.mark.parametrize("bot", sorted(REAL_BOTS))
def test_real_bot_passes_the_state_machine_at_its_defaults(bot: str) -> None:
    machine = make_state_machine(initial_state=REAL_BOTS[bot](), working=WORKING.get(bot))
    assert machine_violations(machine) == set()


@settings(max_examples=20)
@given(scenario=scenarios(max_ppm=50_000, max_ticks=500))
def test_neutral_grid_keeps_every_invariant(scenario: Scenario) -> None:
    """Randomized, unlike the searches above: new examples in every CI run."""
    assert_no_violations(simulate(grid_bot(), scenario, working=grid_is_working))


@settings(max_examples=20)
@given(scenario=scenarios(max_ppm=50_000, max_ticks=800))
def test_take_profit_bot_keeps_every_invariant(scenario: Scenario) -> None:
    """Randomized, like the grid's."""
    assert_no_violations(simulate(take_profit_bot(), scenario))


@settings(max_examples=10)
@given(
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    where=st.floats(min_value=0, max_value=1),
)
def test_a_sync_interleaved_before_a_fill_keeps_the_position(seed: int, where: float) -> None:
    """Failure `sync-drops-close` (differential): the grid's final position is the same with or without a
    reconciliation started just before any fill of a recorded run."""
    config = grid_config(reconcile_ms=0)
    market = MarketPath(instrument=INSTRUMENT, seed=seed, ticks=300, volatility=Decimal("0.001"))
    events = simulate(grid_bot(config), Scenario(market=market)).events
    assert events is not None
    fills = [i for i, e in enumerate(events) if isinstance(e, OrderFilled)]
    at = fills[int(where * (len(fills) - 1))] if fills else len(events)
    assert check_sync_interleaving(grid_bot(config), events, at=at) == []


@settings(max_examples=15)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_ack_and_fill_commute(seed: int) -> None:
    """Failure `stream-before-ack` (differential): moving each order's first fill before its ack changes
    neither the order nor the ledger. Orders that cross on arrival make such pairs."""
    market = MarketPath(instrument=INSTRUMENT, seed=seed, ticks=300, volatility=Decimal("0.002"))
    events = simulate(take_profit_bot(), Scenario(market=market)).events
    assert events is not None
    assert check_reordering(take_profit_bot(), events) == []
