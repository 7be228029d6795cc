"""A strategy that answers a quiet quote or heartbeat with an equal copy of itself and no
intents (rather than ``None`` or itself) keeps the kernel's fast paths, with the results the
general path gives."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Self

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore import Intent, QuoteTicked, State
from gridcore.grid import NeutralGrid
from gridcore.kernel import general_step, initial_state, step
from gridcore.testing import MarketPath, Scenario, simulate
from tests.harness.bots import EPOCH, grid_config
from tests.harness.search import INSTRUMENT
from tests.unit.helpers import working_copies


@attrs.frozen(kw_only=True)
class CopyingGrid(NeutralGrid):
    """The neutral grid, answering every quiet quote and heartbeat with a fresh equal copy of
    itself and an empty tuple of intents."""

    def on_tick(self, view: State[Self], tick: QuoteTicked) -> tuple[Self, Sequence[Intent]]:
        decision = super().on_tick(view, tick)
        return (attrs.evolve(self), ()) if decision is None else decision

    def on_timer(self, view: State[Self], timer_id: str) -> tuple[Self, Sequence[Intent]]:
        new, intents = super().on_timer(view, timer_id)
        return (new if intents else attrs.evolve(new)), intents


def _quotes_through_the_general_path(bot: State[Any], market: MarketPath) -> tuple[int, set[int]]:
    """The number of quotes of a run of ``bot`` on ``market`` and the times of those for which
    ``step`` built a working copy; every step is checked against ``general_step``."""
    quotes = 0
    slow: set[int] = set()

    def reducer(state: State[Any], event: Any) -> Any:
        nonlocal quotes
        if type(event) is not QuoteTicked:
            return step(state, event)
        quotes += 1
        with working_copies() as built:
            got = step(state, event)
        if built:
            slow.add(event.ts)
        assert got == general_step(state, event)
        return got

    simulate(bot, Scenario(market=market), reducer=reducer, replay=False)
    return quotes, slow


@settings(max_examples=4, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    volatility=st.sampled_from([Decimal("0.0002"), Decimal("0.001")]),
)
def test_a_strategy_answering_with_an_equal_copy_keeps_the_fast_paths(
    seed: int, volatility: Decimal
) -> None:
    """The copying grid's quotes go through the general path exactly where the grid's own do
    (the same events: equal strategies decide alike), and a quiet market keeps most of them on
    the fast paths."""
    config = grid_config()
    market = MarketPath(instrument=INSTRUMENT, seed=seed, ticks=600, volatility=volatility)
    core = config.make_core_config()
    plain = _quotes_through_the_general_path(
        initial_state(core, NeutralGrid(config=config.grid), epoch=EPOCH), market
    )
    copying = _quotes_through_the_general_path(
        initial_state(core, CopyingGrid(config=config.grid), epoch=EPOCH), market
    )
    assert copying == plain
    quotes, slow = plain
    assert len(slow) < quotes // 2
