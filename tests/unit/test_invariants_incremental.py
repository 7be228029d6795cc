"""What the state invariants skip when nothing they read changed (the grid's spacing is judged
again only for a new grid or config) never hides a violation nor changes what is reported."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore.commands import Command
from gridcore.config import load_config
from gridcore.core import State, step
from gridcore.events import Event
from gridcore.instruments import Side
from gridcore.invariants import STATE_INVARIANTS, Violation, check_state
from gridcore.sim import PROFILES, backtest, profile


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


def test_grid_levels_carried_over_a_step_are_judged_again_when_a_level_moves() -> None:
    """The highest grid buy and lowest grid sell are carried from the last scan over orders
    that keep their level; a buy moved above the lowest sell, or a new buy appended above it,
    is still reported, exactly as judging everything reports it."""
    state = backtest(load_config(), ticks=2_000).state
    assert check_state(state) == []
    orders = state.books.orders
    live = [orders[c] for c in state.books.live]
    buy = next(o for o in live if o.side is Side.BUY)
    low_sell = min(o.price for o in live if o.side is Side.SELL)
    # An acknowledged order (same level): carried, still clean.
    acked = attrs.evolve(buy, updated_ts=buy.updated_ts + 1)
    same = attrs.evolve(state, books=attrs.evolve(state.books, orders={**orders, buy.cloid: acked}))
    assert check_state(same) == _full(same) == []
    # The same buy moved above the lowest sell, in place.
    moved = attrs.evolve(buy, price=low_sell + 1)
    crossed = attrs.evolve(
        state, books=attrs.evolve(state.books, orders={**orders, buy.cloid: moved})
    )
    found = check_state(crossed)
    assert found == _full(crossed)
    assert {v.invariant for v in found} == {"grid_levels_never_cross"}
    # A new buy appended above the lowest sell.
    extra = attrs.evolve(buy, cloid=buy.cloid + "x", price=low_sell + 2)
    appended = attrs.evolve(
        same, books=attrs.evolve(same.books, orders={**same.books.orders, extra.cloid: extra})
    )
    found = check_state(appended)
    assert found == _full(appended)
    assert "grid_levels_never_cross" in {v.invariant for v in found}
    assert check_state(state) == []


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**16),
    faults=st.sampled_from(sorted(PROFILES)),
    corrupt_every=st.integers(min_value=2, max_value=7),
)
def test_the_incremental_check_equals_the_full_one_after_every_step_of_a_faulty_run(
    seed: int, faults: str, corrupt_every: int
) -> None:
    """After every step of a run with faults, and for states broken on purpose between them,
    :func:`check_state` (which skips what it judged clean on the same parts) reports exactly
    what judging everything reports."""
    steps = 0
    broken_seen = 0

    def reducer(state: State[Any], event: Event) -> tuple[State[Any], list[Command]]:
        nonlocal steps, broken_seen
        after, commands = step(state, event)
        steps += 1
        assert check_state(after) == check_state(after, full=True) == _full(after)
        if steps % corrupt_every == 0 and after.books.risk.reserved:
            risk = after.books.risk
            venue = next(iter(risk.reserved))
            broken = attrs.evolve(
                after,
                books=attrs.evolve(
                    after.books,
                    risk=attrs.evolve(
                        risk, reserved={**risk.reserved, venue: risk.reserved[venue] + 1}
                    ),
                ),
            )
            found = check_state(broken)
            assert found == _full(broken) != []
            broken_seen += 1
            live = sorted(after.books.live)
            if live:
                # An order of the registry replaced by one with nothing left, and one removed.
                order = after.books.orders[live[0]]
                done = {
                    **after.books.orders,
                    order.cloid: attrs.evolve(order, filled_qty=order.qty),
                }
                gone = {c: o for c, o in after.books.orders.items() if c != order.cloid}
                for orders in (done, gone, after.books.orders):
                    odd = attrs.evolve(after, books=attrs.evolve(after.books, orders=orders))
                    assert check_state(odd) == check_state(odd, full=True)
            assert check_state(after) == _full(after)
        return after, commands

    trace = backtest(load_config(), seed=seed, ticks=600, faults=profile(faults), reducer=reducer)
    assert steps == trace.summary.events
    assert broken_seen > 0
