"""A settled hedge grid asks for nothing: a quote that moves no order and a heartbeat with
nothing to do return the strategy itself and no intent, so the kernel keeps the state it has
(the quote's hot path, the housekeeping tick's fast path)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore import ModifyOrder, State, step
from gridcore.config import load_config
from gridcore.events import QuoteTicked
from gridcore.kernel import MAINTENANCE_TIMER
from gridcore.sim import backtest, profile

from .helpers import of_type, quote
from .test_hedge_grid import (
    LONG,
    SHORT,
    T0,
    accept,
    filled,
    modified,
    placed,
    started,
    strategy,
    with_long,
)


def _both_entries_resting() -> State[Any]:
    """Both sides flat, each with its level-0 entry acknowledged at the touch."""
    state, commands = started()
    for side in (LONG, SHORT):
        state, _ = accept(state, placed(commands, side, reduce_only=False), T0 + 10)
    return state


def _long_holding() -> State[Any]:
    """The LONG side holds a position with its take-profit and level-1 entry resting."""
    return with_long()[0]


def _long_partly_averaged() -> State[Any]:
    """The LONG side's level-1 entry partly filled and the take-profit's resize acknowledged."""
    state, orders = with_long()
    state, commands = step(
        state, filled(orders["long1"], "0.001", "49749.9", T0 + 40, complete=False)
    )
    (modify,) = of_type(commands, ModifyOrder)
    return modified(state, modify, T0 + 50)[0]


_SETTLED: tuple[Callable[[], State[Any]], ...] = (
    _both_entries_resting,
    _long_holding,
    _long_partly_averaged,
)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.sampled_from(_SETTLED),
    # The mid moves by less than reprice_threshold (0.05 by default): no entry is repriced.
    move=st.decimals(min_value=Decimal("-0.04"), max_value=Decimal("0.04"), places=4),
    spread=st.integers(min_value=1, max_value=20),
    later=st.integers(min_value=100, max_value=4_000),
)
def test_a_settled_grid_asks_for_nothing_on_a_quiet_quote_or_heartbeat(
    shape: Callable[[], State[Any]], move: Decimal, spread: int, later: int
) -> None:
    state = shape()
    before = strategy(state)
    assert before.decide(state) == (before, [])  # settled: every order is where it should be
    bid = (Decimal("49999.9") * (1 + move)).quantize(Decimal("0.1"))
    tick = quote(T0 + later, bid, bid + Decimal("0.1") * spread)
    after, commands = step(state, tick)
    assert commands == []
    # The quote changed nothing the strategy keeps: the kernel holds the very same value.
    assert after.strategy is before
    assert before.on_tick(after, tick) is None
    kept, intents = before.on_timer(after, MAINTENANCE_TIMER)
    assert intents == [] and kept is before


def test_most_housekeeping_quotes_of_the_hedge_grid_backtest_leave_the_strategy_as_it_is() -> None:
    """In the shipped hedge-grid example, most quotes that bring housekeeping find the ladder
    as desired: the strategy asks for nothing on the quote and on the heartbeat, and the step
    keeps the very same strategy value (what the kernel's housekeeping fast path needs from
    the strategy; the rest of its conditions are the kernel's)."""
    due = quiet = 0

    def counted(state: State[Any], event: Any) -> Any:
        nonlocal due, quiet
        due_at = state.books.maintenance_due
        after, commands = step(state, event)
        if type(event) is QuoteTicked and due_at and event.ts >= due_at:
            due += 1
            s = state.strategy
            if after.strategy is s and not commands:
                assert s.on_tick(after, event) is None
                assert s.on_timer(after, MAINTENANCE_TIMER) == (s, [])
                quiet += 1
        return after, commands

    path = Path(__file__).resolve().parents[2] / "examples" / "hedge_grid.toml"
    cfg = load_config(path.read_text(), source=str(path))
    trace = backtest(cfg, seed=1, ticks=3_000, faults=profile("none"), reducer=counted)
    assert trace.summary.invariant_violations == 0
    assert due > 100
    assert quiet * 2 > due, f"{quiet} of {due} quotes bringing housekeeping left it as it was"
