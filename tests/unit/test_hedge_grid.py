"""The hedge-mode averaging grid (``gridcore.strategies.hedge_grid``), step by step.

Each failure the strategy answers has a test here that fails if it comes back; the harness
tests (``tests/harness/test_hedge_grid.py``) let the shipped harness find the broken variants
on its own, and ``tests/e2e/test_hedge_grid.py`` runs the strategy through the command line.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import attrs
import pytest

from gridcore import (
    CancelOrder,
    Command,
    CommandFailed,
    ConfigError,
    Event,
    FeedReconnected,
    ModifyOrder,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    OrderRejected,
    PlaceOrder,
    PositionReport,
    PositionSide,
    PositionsReported,
    RequestPositions,
    Side,
    State,
    TimeInForce,
    step,
)
from gridcore.config import BotConfig, load_config
from gridcore.sim import make_bot
from gridcore.strategies import hedge_grid as hg
from gridcore.strategies.hedge_grid import HedgeGrid, SidePhase
from gridcore.sync import SyncPhase

from .helpers import EPOCH, SYMBOL, VENUE, fill, of_type, quote, synced

LONG, SHORT = PositionSide.LONG, PositionSide.SHORT
T0 = EPOCH + 1_000

BASE = """
[venue]
position_mode = "hedge"
[strategy]
kind = "hedge_grid"
[core]
reconcile_ms = 0
[risk]
max_order_notional = "5000"
[hedge_grid]
"""


def config(**settings: str) -> BotConfig:
    """The hedge grid with ``settings`` (TOML values) in its table."""
    lines = "".join(f"{key} = {value}\n" for key, value in settings.items())
    return load_config(BASE + lines)


def started(cfg: BotConfig | None = None) -> tuple[State[Any], list[Command]]:
    """A synced bot at the default quote (bid 49999.9, ask 50000.1) and its first commands."""
    return synced(make_bot(cfg or config(), epoch=EPOCH), ts=T0)


def places(commands: Sequence[Command]) -> list[PlaceOrder]:
    return of_type(commands, PlaceOrder)


def placed(commands: Sequence[Command], side: PositionSide, *, reduce_only: bool) -> PlaceOrder:
    found = [
        p for p in places(commands) if p.position_side is side and p.reduce_only is reduce_only
    ]
    assert len(found) == 1, f"expected one {side.value} order, got {places(commands)!r}"
    return found[0]


def accept(state: State[Any], place: PlaceOrder, ts: int) -> tuple[State[Any], list[Command]]:
    return step(
        state,
        OrderAccepted(ts=ts, venue=VENUE, cloid=place.cloid, venue_order_id=f"v-{place.cloid}"),
    )


def modified(state: State[Any], modify: ModifyOrder, ts: int) -> tuple[State[Any], list[Command]]:
    """The venue's acknowledgement of ``modify``, as asked."""
    return step(
        state,
        OrderModified(
            ts=ts,
            venue=VENUE,
            cloid=modify.cloid,
            price=modify.price,
            qty=modify.qty,
            command_id=modify.command_id,
        ),
    )


def filled(
    place: PlaceOrder, qty: str, price: str, ts: int, *, complete: bool = True, fid: str = ""
) -> Event:
    f = fill(
        fid or f"f-{place.cloid}-{qty}-{ts}",
        place.side,
        qty,
        price,
        ts=ts,
        cloid=place.cloid,
        position_side=place.position_side,
    )
    return OrderFilled(ts=ts, fill=f) if complete else OrderPartiallyFilled(ts=ts, fill=f)


def strategy(state: State[Any]) -> HedgeGrid:
    s = state.strategy
    assert isinstance(s, HedgeGrid)
    return s


def position(state: State[Any], side: PositionSide) -> Decimal:
    return state.ledger.position(VENUE, SYMBOL, side).qty


def with_long(cfg: BotConfig | None = None) -> tuple[State[Any], dict[str, PlaceOrder]]:
    """Both level-0 entries acknowledged, the LONG one filled at 49999.9: the LONG side holds
    0.002 with a take-profit and a level-1 entry out (both acknowledged)."""
    state, commands = started(cfg)
    long0, short0 = (
        placed(commands, LONG, reduce_only=False),
        placed(commands, SHORT, reduce_only=False),
    )
    state, _ = accept(state, long0, T0 + 10)
    state, _ = accept(state, short0, T0 + 10)
    state, commands = step(state, filled(long0, "0.002", "49999.9", T0 + 20))
    tp = placed(commands, LONG, reduce_only=True)
    long1 = placed(commands, LONG, reduce_only=False)
    state, _ = accept(state, tp, T0 + 30)
    state, _ = accept(state, long1, T0 + 30)
    return state, {"long0": long0, "short0": short0, "tp": tp, "long1": long1}


# --- the ladder ----------------------------------------------------------------------------------


def test_opens_both_sides_at_the_touch_with_the_reference_quantity() -> None:
    state, commands = started()
    long0 = placed(commands, LONG, reduce_only=False)
    short0 = placed(commands, SHORT, reduce_only=False)
    assert (long0.side, long0.price, long0.qty) == (Side.BUY, Decimal("49999.9"), Decimal("0.002"))
    assert (short0.side, short0.price, short0.qty) == (
        Side.SELL,
        Decimal("50000.1"),
        Decimal("0.002"),
    )
    assert strategy(state).reference == ()  # both sides flat: no reference kept


def test_an_entry_fill_places_the_take_profit_and_the_next_level() -> None:
    state, orders = with_long()
    tp, long1 = orders["tp"], orders["long1"]
    # take-profit: reduce-only, the whole position, average entry + 0.4 % rounded up to the tick
    assert (tp.side, tp.qty, tp.reduce_only) == (Side.SELL, Decimal("0.002"), True)
    assert tp.price == Decimal("50199.9")
    # level 1: one step (0.5 %) under the fill, sized by the reference table (multiplier 1)
    assert (long1.side, long1.qty, long1.price) == (Side.BUY, Decimal("0.002"), Decimal("49749.9"))
    assert strategy(state).long.depth == 1


def test_every_partial_fill_resizes_and_reprices_the_take_profit_with_one_modify() -> None:
    state, orders = with_long()
    tp, long1 = orders["tp"], orders["long1"]
    state, commands = step(state, filled(long1, "0.001", "49749.9", T0 + 40, complete=False))
    modify = of_type(commands, ModifyOrder)
    assert len(modify) == 1 and modify[0].cloid == tp.cloid
    assert modify[0].qty == Decimal("0.003")  # the whole position
    avg = state.ledger.position(VENUE, SYMBOL, LONG).avg_entry
    assert modify[0].price == max(
        Decimal(str((avg * Decimal("1.004")).quantize(Decimal("0.1"), rounding="ROUND_CEILING"))),
        Decimal("50000.1"),
    )
    assert not of_type(commands, CancelOrder)  # no cancel-and-replace
    state, _ = modified(state, modify[0], T0 + 50)
    state, commands = step(state, filled(long1, "0.001", "49749.9", T0 + 60, fid="second"))
    again = of_type(commands, ModifyOrder)
    assert len(again) == 1 and again[0].qty == Decimal("0.004")


# --- failure `orphaned-entries` ----------------------------------------------------------------------


def _tp_filled(
    state: State[Any], orders: dict[str, PlaceOrder]
) -> tuple[State[Any], list[Command]]:
    return step(state, filled(orders["tp"], "0.002", "50199.9", T0 + 100))


def test_a_take_profit_cancels_the_entries_of_both_sides_and_reopens_after_the_cancels() -> None:
    state, orders = with_long()
    state, commands = _tp_filled(state, orders)
    canceled = {c.cloid for c in of_type(commands, CancelOrder)}
    assert canceled == {orders["long1"].cloid, orders["short0"].cloid}
    assert not places(commands), "nothing reopens while cancels are out"
    refresh = of_type(commands, RequestPositions)
    assert len(refresh) == 1
    assert strategy(state).draining and strategy(state).cycle == 2
    # one cancel resolves, the refresh is answered: still waiting for the other cancel
    state, commands = step(
        state, OrderCanceled(ts=T0 + 110, venue=VENUE, cloid=orders["long1"].cloid)
    )
    state, commands = step(
        state,
        PositionsReported(ts=T0 + 120, venue=VENUE, positions=(), command_id=refresh[0].command_id),
    )
    assert not places(commands)
    state, commands = step(
        state, OrderCanceled(ts=T0 + 130, venue=VENUE, cloid=orders["short0"].cloid)
    )
    assert not strategy(state).draining
    reopened = places(commands)
    assert {p.position_side for p in reopened} == {LONG, SHORT}
    assert all(p.qty == Decimal("0.002") for p in reopened)
    assert hg.hedge_grid_reopens_after_cancels(state) == []


def test_a_fill_on_an_entry_canceled_late_is_applied_and_covered_by_a_take_profit() -> None:
    state, orders = with_long()
    state, _ = _tp_filled(state, orders)
    # the SHORT entry filled before the cancel reached the venue
    state, commands = step(state, filled(orders["short0"], "0.002", "50000.1", T0 + 105))
    assert position(state, SHORT) == Decimal("-0.002")
    assert strategy(state).short.depth == 1 and strategy(state).short.entries == 1
    tp = placed(commands, SHORT, reduce_only=True)
    assert (tp.side, tp.qty) == (Side.BUY, Decimal("0.002"))


# --- failure `stream-before-ack` ---------------------------------------------------------------------


def test_a_fill_before_the_acknowledgement_is_matched_by_cloid() -> None:
    state, commands = started()
    long0 = placed(commands, LONG, reduce_only=False)
    # no OrderAccepted yet: the stream's fill names the cloid the core gave the order
    state, commands = step(state, filled(long0, "0.002", "49999.9", T0 + 5))
    assert position(state, LONG) == Decimal("0.002")
    tp = placed(commands, LONG, reduce_only=True)
    # the take-profit fills before its own ack: the cycle still ends
    state, commands = step(state, filled(tp, "0.002", "50199.9", T0 + 6))
    assert position(state, LONG) == 0
    assert strategy(state).long.take_profits == 1 and strategy(state).cycle == 2
    assert hg.hedge_grid_take_profit_within_position(state) == []


def test_a_take_profit_not_acknowledged_yet_is_resized_once_it_rests() -> None:
    state, commands = started()
    long0 = placed(commands, LONG, reduce_only=False)
    state, _ = accept(state, long0, T0 + 5)
    state, commands = step(state, filled(long0, "0.001", "49999.9", T0 + 6, complete=False))
    tp = placed(commands, LONG, reduce_only=True)
    state, commands = step(state, filled(long0, "0.001", "49999.9", T0 + 7, fid="rest"))
    assert not of_type(commands, ModifyOrder), "a take-profit is modified only once it rests"
    state, commands = accept(state, tp, T0 + 8)
    modify = of_type(commands, ModifyOrder)
    assert len(modify) == 1 and modify[0].qty == Decimal("0.002")


# --- failure `resync-loop` -----------------------------------------------------------------------------


def test_reports_never_trigger_requests_and_refreshes_are_bounded_per_cause() -> None:
    state, orders = with_long()
    for i in range(20):
        report = PositionsReported(
            ts=T0 + 50 + i,
            venue=VENUE,
            positions=(
                PositionReport(
                    symbol=SYMBOL,
                    position_side=LONG,
                    qty=Decimal("0.002"),
                    entry_price=Decimal("49999.9"),
                ),
            ),
        )
        state, commands = step(state, report)
        assert not of_type(commands, RequestPositions)
    state, commands = _tp_filled(state, orders)
    asked = of_type(commands, RequestPositions)
    total = len(asked)
    for i in range(10):
        if not asked:
            break
        state, commands = step(
            state, CommandFailed(ts=T0 + 200 + i, command_id=asked[0].command_id, reason="boom")
        )
        asked = of_type(commands, RequestPositions)
        total += len(asked)
    assert total == strategy(state).config.max_refreshes == 3
    assert not strategy(state).awaiting_refresh
    assert hg.hedge_grid_refreshes_bounded(state) == []


# --- failure `split-balance-checks` ----------------------------------------------------------------------


def test_every_entry_passes_the_one_risk_gate_and_holds_a_reservation() -> None:
    state, _ = with_long()
    entries = [o for o in state.orders.values() if o.is_live and ":entry:" in o.tag]
    assert entries and all(o.reserved > 0 for o in entries)
    assert hg.hedge_grid_orders_pass_the_gate(state) == []
    # a balance too small for any entry: the gate refuses, no order leaves, retry waits
    poor, commands = synced(make_bot(config(), epoch=EPOCH), ts=T0, equity="1")
    assert not places(commands)
    assert strategy(poor).retry_at == T0 + strategy(poor).config.retry_ms
    poor, commands = step(poor, quote(T0 + 100))
    assert not places(commands), "a refused entry is not retried before retry_ms"


# --- failure `torn-state-file` ----------------------------------------------------------------------------


def test_the_strategy_state_is_an_immutable_value_the_journal_reproduces() -> None:
    state, _ = with_long()
    assert hg.hedge_grid_state_is_a_value(state) == []
    from gridcore.shells import codec

    for s in (state, step(state, quote(T0 + 500, "49000", "49000.2"))[0]):
        assert codec.decode_value(codec.encode_value(s.strategy)) == s.strategy


# --- failure `stale-reference-table` ------------------------------------------------------------------------


def test_the_reference_table_is_cleared_when_both_sides_are_flat() -> None:
    state, orders = with_long()
    state, commands = step(state, filled(orders["long1"], "0.002", "49749.9", T0 + 40))
    assert len(strategy(state).reference) == 3  # levels 0, 1 and the next one sized
    modify = of_type(commands, ModifyOrder)[0]
    state, _ = modified(state, modify, T0 + 41)
    state, commands = step(state, filled(orders["tp"], "0.004", str(modify.price), T0 + 50))
    assert position(state, LONG) == 0 and position(state, SHORT) == 0
    assert len(strategy(state).reference) <= 1
    assert hg.hedge_grid_reference_cleared_when_flat(state) == []


def test_a_new_cycle_sizes_from_the_price_of_the_day() -> None:
    state, orders = with_long()
    state, commands = _tp_filled(state, orders)
    for key in ("long1", "short0"):
        state, _ = step(state, OrderCanceled(ts=T0 + 110, venue=VENUE, cloid=orders[key].cloid))
    state, _ = step(state, quote(T0 + 120, "24999.9", "25000.1"))  # the price halved
    refresh = of_type(commands, RequestPositions)[0]
    state, commands = step(
        state,
        PositionsReported(ts=T0 + 130, venue=VENUE, positions=(), command_id=refresh.command_id),
    )
    assert {p.qty for p in places(commands)} == {Decimal("0.004")}


# --- failure `stale-pending-entries` ------------------------------------------------------------------------


def test_a_pending_entry_is_repriced_after_the_mid_moved_more_than_the_threshold() -> None:
    state, commands = started()
    long0 = placed(commands, LONG, reduce_only=False)
    short0 = placed(commands, SHORT, reduce_only=False)
    state, _ = accept(state, long0, T0 + 5)
    state, _ = accept(state, short0, T0 + 5)
    state, commands = step(state, quote(T0 + 10, "51499.9", "51500.1"))  # +3 %: left alone
    assert not of_type(commands, ModifyOrder)
    state, commands = step(state, quote(T0 + 20, "52999.9", "53000.1"))  # +6 %
    moved = {m.cloid: m.price for m in of_type(commands, ModifyOrder)}
    assert moved == {long0.cloid: Decimal("52999.9"), short0.cloid: Decimal("53000.1")}
    assert hg.hedge_grid_entries_near_market(state) == []


def test_the_reprice_threshold_is_a_setting() -> None:
    state, commands = started(config(reprice_threshold='"0.02"'))
    long0 = placed(commands, LONG, reduce_only=False)
    state, _ = accept(state, long0, T0 + 5)
    state, commands = step(state, quote(T0 + 10, "51499.9", "51500.1"))  # +3 % > 2 %
    assert [m.cloid for m in of_type(commands, ModifyOrder)] == [long0.cloid]


# --- failure `sync-drops-close` --------------------------------------------------------------------------------


def test_a_close_during_a_reconciliation_is_applied_at_once() -> None:
    state, orders = with_long()
    state, commands = step(state, FeedReconnected(ts=T0 + 90, venue=VENUE))
    assert state.venues[VENUE].phase is SyncPhase.SYNCING
    state, commands = _tp_filled(state, orders)
    assert position(state, LONG) == 0
    assert strategy(state).long.take_profits == 1 and strategy(state).cycle == 2
    assert {c.cloid for c in of_type(commands, CancelOrder)} == {
        orders["long1"].cloid,
        orders["short0"].cloid,
    }
    assert hg.hedge_grid_no_averaging_while_flat(state) == []


# --- stop criteria as risk rules ----------------------------------------------------------------------------------


def test_a_side_past_its_loss_limit_is_closed_and_halted() -> None:
    state, orders = with_long(config(max_loss='"5"'))
    state, commands = step(state, quote(T0 + 100, "47000", "47000.2"))  # long loses ~6
    canceled = {c.cloid for c in of_type(commands, CancelOrder)}
    assert canceled == {orders["tp"].cloid, orders["long1"].cloid}
    assert strategy(state).long.phase is SidePhase.STOPPING
    for key in ("tp", "long1"):
        state, commands = step(
            state, OrderCanceled(ts=T0 + 110, venue=VENUE, cloid=orders[key].cloid)
        )
    close = placed(commands, LONG, reduce_only=True)
    assert (close.side, close.qty, close.tif) == (Side.SELL, Decimal("0.002"), TimeInForce.IOC)
    state, commands = step(state, filled(close, "0.002", "47000", T0 + 120))
    assert strategy(state).long.phase is SidePhase.STOPPED
    state, commands = step(state, quote(T0 + 20_000, "47000", "47000.2"))
    assert not [p for p in places(commands) if p.position_side is LONG]


def test_repeated_stops_halt_the_whole_grid() -> None:
    cfg = config(max_loss='"5"', max_stops="0")
    state, orders = with_long(cfg)
    state, commands = step(state, quote(T0 + 100, "47000", "47000.2"))
    assert strategy(state).halted
    assert orders["short0"].cloid in {c.cloid for c in of_type(commands, CancelOrder)}


def test_consecutive_take_profit_failures_halt_the_grid() -> None:
    state, commands = started(config(max_tp_failures="1", retry_ms="1"))
    long0 = placed(commands, LONG, reduce_only=False)
    state, _ = accept(state, long0, T0 + 5)
    state, commands = step(state, filled(long0, "0.002", "49999.9", T0 + 6))
    for i in range(2):
        tp = placed(commands, LONG, reduce_only=True)
        state, _ = step(
            state, OrderRejected(ts=T0 + 10 + i * 10, venue=VENUE, cloid=tp.cloid, reason="no")
        )
        state, commands = step(state, quote(T0 + 15 + i * 10))
    assert strategy(state).halted.startswith("2 take-profit failures")
    assert strategy(state).long.tp_failures == 2


# --- configuration -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"level_multipliers": '"1 x 2"'}, "hedge_grid.level_multipliers"),
        ({"max_levels": "9"}, "hedge_grid.max_levels"),
        ({"step": '"0.9"'}, "hedge_grid.step"),
        ({"take_profit": '"0"'}, "hedge_grid.take_profit"),
        ({"max_loss": '"-1"'}, "hedge_grid.max_loss"),
        ({"base_notional": '"1"'}, "hedge_grid.base_notional"),
        ({"stepp": '"0.01"'}, "hedge_grid.stepp"),
        ({"tag": '"a:b"'}, "hedge_grid.tag"),
    ],
)
def test_a_bad_setting_names_its_field(settings: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(**settings)
    assert field in str(info.value)


def test_a_one_way_account_is_refused_naming_the_position_mode() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(BASE.replace('position_mode = "hedge"', 'position_mode = "one_way"'))
    assert "venue.position_mode" in str(info.value) and "hedge" in str(info.value)


def test_the_kind_is_found_without_naming_a_module_and_declares_its_invariants() -> None:
    from gridcore import registry

    kind = registry.get("hedge_grid")
    assert kind.strategy_class is HedgeGrid
    assert set(kind.invariants) == set(hg.INVARIANTS) and len(kind.invariants) == 8
    assert isinstance(load_config(BASE).make_strategy(), HedgeGrid)
    assert attrs.has(hg.HedgeGridConfig)
