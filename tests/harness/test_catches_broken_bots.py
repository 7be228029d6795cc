"""The harness catches real bugs: every broken bot is found within the CI example budget.

Each test hands one deliberately broken bot (``broken.py``) to the shipped harness, lets it
search on its own (deterministically, at most :data:`~tests.harness.search.CI_BUDGET`
examples, no shrinking) and asserts that the invariant of the seed failure the bot brings back
is among those reported. ``test_real_bots_pass.py`` runs the same searches on the real bots.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import strategies as st

from gridcore import OrderFilled, step
from gridcore.testing import (
    Fault,
    MarketPath,
    Scenario,
    check_sync_interleaving,
    make_state_machine,
    simulate,
)

from . import broken
from .bots import grid_bot, grid_config, take_profit_bot
from .search import INSTRUMENT, machine_violations, scenarios, simulated_violations


def test_no_fill_dedup_is_caught() -> None:
    """Failure `double-counted-fill`: replayed fills counted again."""
    found = simulated_violations(grid_bot, broken.no_fill_dedup, scenarios())
    assert "fills_applied_once" in found
    assert "ledger_matches_venue" in found


def test_partial_fills_by_threshold_are_caught() -> None:
    """Failure `partial-fill-threshold`: a 0.99 partial-fill threshold leaves dust live at the venue. The venue
    fills at most 0.099 of an order of 0.1 per tick, so an order is first 99 % filled."""
    big = grid_config(order_qty="0.1", max_order_notional="10000", max_position="2")
    found = simulated_violations(
        lambda: grid_bot(big),
        broken.fills_done_at_threshold,
        scenarios(liquidity=st.just(Decimal("0.099"))),
    )
    assert "filled_only_when_done" in found


def test_rejected_cancel_ignored_is_caught() -> None:
    """Failure `leaked-cancel`: a failed cancel leaves the order in the registry forever. Lost fills make
    the grid cancel orders that are already filled."""
    found = simulated_violations(
        grid_bot,
        broken.ignore_rejected_cancel,
        scenarios(kinds=frozenset({"drop"}), max_ppm=500_000),
    )
    assert "rejected_cancel_requests_status" in found


def test_close_events_dropped_during_sync_are_caught_by_the_machine() -> None:
    """Failure `sync-drops-close`: fills that arrive while the venue is reconciling are ignored."""
    # Syncs start on reconnects: the feed faults are the ones this failure needs (with every
    # fault kind drawn, some searches spend the budget on others and miss it).
    machine = make_state_machine(
        initial_state=grid_bot(),
        reducer=broken.drop_fills_while_syncing,
        max_move_ticks=40,
        faults=frozenset({Fault.DISCONNECT}),
    )
    assert "fills_applied_once" in machine_violations(machine)


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


def test_reservation_kept_after_rejection_is_caught() -> None:
    """Failure `unreleased-funds`: funds gone after a failed trade."""
    found = simulated_violations(
        grid_bot,
        broken.keep_reservation_on_rejection,
        scenarios(kinds=frozenset({"rest_error"}), max_ppm=200_000),
    )
    assert "reservations_match_live_orders" in found


def test_missed_reconnect_reconciliation_is_caught() -> None:
    """Failure `missed-fills-on-reconnect`: fills missed while the stream reconnects. The periodic round is off so
    that only the reconnect path is judged."""
    machine = make_state_machine(
        initial_state=grid_bot(grid_config(reconcile_ms=0)),
        reducer=broken.no_reconcile_on_reconnect,
        max_move_ticks=40,
    )
    assert "ledger_matches_venue" in machine_violations(machine)


def test_resync_loop_is_caught() -> None:
    """Failure `resync-loop`: a restore that retriggers itself."""
    machine = make_state_machine(
        initial_state=grid_bot(), reducer=broken.resync_loop, faults=frozenset({Fault.STALL})
    )
    assert "sync_requests_bounded" in machine_violations(machine)


def test_close_sized_in_notional_is_caught() -> None:
    """Failure `rollback-in-quote`: rollback sized in USD, "size exceeds position"."""
    found = simulated_violations(lambda: take_profit_bot(broken.NOTIONAL_CLOSE), step, scenarios())
    assert "close_within_position" in found


def test_entries_left_open_after_take_profit_are_caught() -> None:
    """Failure `orphaned-entries`: pending entries of the other side orphaned after a take-profit."""
    found = simulated_violations(lambda: take_profit_bot(broken.ORPHAN_ENTRIES), step, scenarios())
    assert "no_entry_left_after_take_profit" in found


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
