"""The harness catches real bugs at its defaults: every broken bot is found within the CI budget.

Each test hands one deliberately broken bot (``broken.py``) to the shipped harness at its
defaults, the default scenarios of ``simulate`` and the state machine of
``make_state_machine`` with no knob turned, lets it search on its own (at most
:data:`~tests.harness.search.CI_BUDGET` examples, no shrinking) and asserts that the invariant
of the failure the bot brings back is among those reported. ``test_real_bots_pass.py`` runs the
same searches on the real bots. ``GRIDCORE_PROOF_SEED=<n>`` runs them on another seed.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from gridcore import OrderFilled, State, step
from gridcore.testing import (
    LIVENESS_INVARIANT,
    Fault,
    MarketPath,
    Reducer,
    Scenario,
    check_sync_interleaving,
    grid_is_working,
    make_state_machine,
    simulate,
)

from . import broken
from .bots import grid_bot, grid_config, take_profit_bot
from .search import INSTRUMENT, default_scenarios, machine_violations, simulated_violations

_BIG_GRID = grid_config(order_qty="0.1", max_order_notional="10000", max_position="2")


def _big_grid() -> State[Any]:
    return grid_bot(_BIG_GRID)


def _quiet_grid() -> State[Any]:
    return grid_bot(grid_config(reconcile_ms=0))


# name: (bot, reducer factory, the invariants that name the failure: one must be reported)
CASES: dict[str, tuple[Callable[[], State[Any]], Callable[[], Reducer], frozenset[str]]] = {
    "replayed fills counted again": (
        grid_bot,
        lambda: broken.no_fill_dedup,
        frozenset({"fills_applied_once", "ledger_matches_venue"}),
    ),
    "0.99 partial-fill threshold": (
        _big_grid,
        lambda: broken.fills_done_at_threshold,
        frozenset({"filled_only_when_done", "no_live_order_without_remainder"}),
    ),
    "rejected cancel forgotten": (
        grid_bot,
        lambda: broken.ignore_rejected_cancel,
        frozenset({"rejected_cancel_requests_status", "unresolved_orders_have_status_requests"}),
    ),
    "fills dropped while syncing": (
        grid_bot,
        lambda: broken.drop_fills_while_syncing,
        frozenset({"fills_applied_once", "ledger_matches_venue", "position_within_limits"}),
    ),
    "reservation kept after a failure": (
        grid_bot,
        lambda: broken.keep_reservation_on_rejection,
        frozenset({"reservations_match_live_orders"}),
    ),
    "no reconciliation on reconnect": (
        _quiet_grid,
        lambda: broken.no_reconcile_on_reconnect,
        frozenset(
            {
                "ledger_matches_venue",
                "venue_orders_known",
                "no_terminal_order_resting",
                "reconnect_recovers_fills",
            }
        ),
    ),
    "restore retriggers itself": (
        grid_bot,
        lambda: broken.resync_loop,
        frozenset({"sync_requests_bounded", "sync_attempts_bounded", "bot_quiesces"}),
    ),
    "close sized in quote": (
        lambda: take_profit_bot(broken.NOTIONAL_CLOSE),
        lambda: step,
        frozenset({"close_within_position"}),
    ),
    "entries orphaned after a take-profit": (
        lambda: take_profit_bot(broken.ORPHAN_ENTRIES),
        lambda: step,
        frozenset({"no_entry_left_after_take_profit"}),
    ),
    "entries left far from the market": (
        lambda: take_profit_bot(broken.FAR_ENTRIES),
        lambda: step,
        frozenset({"orders_within_band"}),
    ),
    "state kept outside the state": (
        grid_bot,
        broken.dedup_in_memory,
        frozenset({"reducer_is_deterministic", "fills_applied_once", "replay_gives_same_state"}),
    ),
    "funding counted twice": (
        grid_bot,
        lambda: broken.double_funding,
        frozenset({"ledger_matches_venue"}),
    ),
    "orders sent larger than approved": (
        grid_bot,
        lambda: broken.oversized_orders,
        frozenset({"reservation_covers_margin", "position_within_limits"}),
    ),
    "canceled in the core, resting at the venue": (
        grid_bot,
        lambda: broken.forget_untouched_cancels,
        frozenset({"no_terminal_order_resting"}),
    ),
    "fills of a pruned order miscounted": (
        grid_bot,
        lambda: broken.last_fill_wins,
        frozenset({"fills_sum_to_filled_qty"}),
    ),
    "grid inside a strategy, spacing collapsed": (
        broken.tightening_grid_bot,
        lambda: step,
        frozenset({"grid_spacing_above_floor"}),
    ),
    "new orders on every quote": (
        broken.churning_grid_bot,
        lambda: step,
        frozenset({"order_churn_bounded"}),
    ),
    "grid idle after a reconnect": (
        broken.idle_grid_bot,
        lambda: step,
        frozenset({LIVENESS_INVARIANT}),
    ),
}

# The cases that only a liveness check sees: their working predicate (see ``working=``).
WORKING: dict[str, Callable[[State[Any]], str | None]] = {
    "grid idle after a reconnect": grid_is_working,
}

# Cases for the state machine alone. The grid goes idle only when every order of it is gone
# while its feed is down (so that the reconnect leaves it nothing); the default scenarios of
# ``simulate`` draw short, rare outages, and no venue-side cancel, so they seldom bring that.
MACHINE_ONLY = frozenset({"grid idle after a reconnect"})


@pytest.mark.parametrize("case", sorted(set(CASES) - MACHINE_ONLY))
def test_simulate_at_its_defaults_catches(case: str) -> None:
    bot, reducer, names = CASES[case]
    found = simulated_violations(bot, reducer(), default_scenarios(), working=WORKING.get(case))
    assert found & names, f"{case}: found {sorted(found)}, expected one of {sorted(names)}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_state_machine_at_its_defaults_catches(case: str) -> None:
    bot, reducer, names = CASES[case]
    machine = make_state_machine(initial_state=bot(), reducer=reducer(), working=WORKING.get(case))
    found = machine_violations(machine)
    assert found & names, f"{case}: found {sorted(found)}, expected one of {sorted(names)}"


def test_close_events_dropped_during_sync_change_the_final_position() -> None:
    """Failure `sync-drops-close`, the differential form: a sync interleaved into a recorded run, just before
    a fill, changes the final position of the broken bot and not that of the real one. (The
    periodic round is off: it would fetch the dropped fill again.)"""
    config = grid_config(reconcile_ms=0)
    market = MarketPath(instrument=INSTRUMENT, seed=3, ticks=600, volatility=Decimal("0.001"))
    trace = simulate(grid_bot(config), Scenario(market=market))
    assert trace.events is not None
    events = trace.events
    at = next(i for i in range(len(events) // 3, len(events)) if isinstance(events[i], OrderFilled))
    assert check_sync_interleaving(grid_bot(config), events, at=at) == []
    found = check_sync_interleaving(
        grid_bot(config), events, at=at, reducer=broken.drop_fills_while_syncing
    )
    assert {v.invariant for v in found} == {"sync_interleaving_keeps_position"}


def test_state_kept_outside_the_state_is_caught() -> None:
    """Failure `no-crash-recovery`: no crash recovery. State kept beside the reducer cannot be rebuilt from the
    journal: the machine sees the reducer answer the same input differently, and a replay of a
    recorded run does not give the state the run ended with."""
    machine = make_state_machine(
        initial_state=grid_bot(),
        reducer=broken.dedup_in_memory(),
        max_move_ticks=40,
        faults=frozenset({Fault.DUPLICATE, Fault.DISCONNECT}),
    )
    # The reducer (and its memory) outlives one example: the machine sees it answer the same
    # input differently, or drop a fill it has never applied.
    assert machine_violations(machine) & {"reducer_is_deterministic", "fills_applied_once"}
    market = MarketPath(instrument=INSTRUMENT, seed=5, ticks=400, volatility=Decimal("0.001"))
    trace = simulate(grid_bot(), Scenario(market=market), reducer=broken.dedup_in_memory())
    assert trace.summary.fills > 0
    assert {v.invariant for v in trace.violations} == {"replay_gives_same_state"}
