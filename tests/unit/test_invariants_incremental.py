"""What the state invariants skip when nothing they read changed (the grid's spacing is judged
again only for a new grid or config) never hides a violation nor changes what is reported."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

from gridcore.config import load_config
from gridcore.core import State
from gridcore.invariants import STATE_INVARIANTS, Violation, check_state
from gridcore.sim import backtest


def _full(state: State[Any]) -> list[Violation]:
    return [v for invariant in STATE_INVARIANTS for v in invariant(state)]


def test_a_change_after_a_clean_check_is_judged_and_reported_every_time() -> None:
    state = backtest(load_config(), ticks=2_000).state
    venue = next(iter(state.books.risk.reserved))
    assert state.books.live and check_state(state) == [] == _full(state)
    risk = state.books.risk
    broken = attrs.evolve(
        state,
        books=attrs.evolve(
            state.books,
            risk=attrs.evolve(
                risk, reserved={**risk.reserved, venue: risk.reserved[venue] + Decimal(1)}
            ),
        ),
    )
    found = check_state(broken)
    assert found == _full(broken)
    assert {v.invariant for v in found} == {"reservations_match_live_orders"}
    assert check_state(broken) == found  # a failing invariant is judged again
    assert check_state(state) == []  # and the clean state is still clean
    # A registry with an order whose fill left nothing: a new object, judged again.
    cloid = next(iter(state.books.live))
    order = state.books.orders[cloid]
    done = attrs.evolve(order, filled_qty=order.qty)
    orders = {**state.books.orders, cloid: done}
    worse = attrs.evolve(state, books=attrs.evolve(state.books, orders=orders))
    assert check_state(worse) == _full(worse) != []


def test_a_new_grid_under_its_spacing_floor_is_reported_after_a_clean_check() -> None:
    state = backtest(load_config(), ticks=2_000).state
    assert check_state(state) == []
    tight = attrs.evolve(state, strategy=attrs.evolve(state.strategy, step=Decimal("0.01")))
    found = check_state(tight)
    assert found == _full(tight)
    assert {v.invariant for v in found} == {"grid_spacing_above_floor"}
    assert check_state(state) == []
