"""Reconciliation (``gridcore.sync``): nothing dropped while syncing, bounded requests, the drift
policy, orphan orders, and cloids derived from state.

Failure `sync-drops-close` (close events ignored while syncing), `resync-loop` (restore retriggering itself in a loop),
`stale-position-cache` (stale positions), and the drift policy: a difference is re-checked before it is
repaired, and repaired by adopting the venue's position with an alert.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from gridcore import (
    CancelOrder,
    CommandFailed,
    CommandTimedOut,
    Event,
    FeedDisconnected,
    FeedReconnected,
    FillsReported,
    Halt,
    Level,
    MessageMalformed,
    Notify,
    OpenOrder,
    OpenOrdersReported,
    OrderAccepted,
    OrderFilled,
    OrderPartiallyFilled,
    OrderStatus,
    PlaceOrder,
    PositionReport,
    PositionSide,
    PositionsReported,
    QuoteTicked,
    RequestFills,
    RequestOpenOrders,
    RequestOrderStatus,
    RequestPositions,
    Side,
    Started,
    State,
    TimerFired,
    step,
)
from gridcore.core import MAINTENANCE_TIMER
from gridcore.sync import SyncPhase
from tests.unit.helpers import (
    EPOCH,
    SYMBOL,
    VENUE,
    Scripted,
    answer_sync,
    feed,
    fill,
    kernel_config,
    of_type,
    only,
    quote,
    scripted_state,
    submit,
    synced,
)

D = Decimal
T0 = EPOCH + 2_000


def resting_order(state: State[Scripted], ts: int = T0) -> tuple[State[Scripted], PlaceOrder]:
    state, _, place = submit(state, ts=ts, qty="0.01", price="49000")
    assert place is not None
    state, _ = step(
        state,
        OrderAccepted(
            ts=ts + 1,
            venue=VENUE,
            cloid=place.cloid,
            venue_order_id="1",
            command_id=place.command_id,
        ),
    )
    return state, place


def position_report(qty: str, entry: str = "50000", ts: int = T0) -> PositionsReported:
    return PositionsReported(
        ts=ts,
        venue=VENUE,
        positions=(
            PositionReport(
                symbol=SYMBOL, position_side=PositionSide.BOTH, qty=D(qty), entry_price=D(entry)
            ),
        )
        if D(qty)
        else (),
    )


# --- close events during a sync (failure `sync-drops-close`) -----------------------------------------------------


def test_a_fill_arriving_while_syncing_is_applied_at_once() -> None:
    """Failure `sync-drops-close`: close events were ignored while the bot was syncing. Here the fill moves
    the order and the ledger in the step it arrives, and the strategy is told."""
    state, _ = synced(scripted_state())
    state, place = resting_order(state)
    state, _ = step(state, FeedDisconnected(ts=T0 + 10, venue=VENUE))
    state, sync = step(state, FeedReconnected(ts=T0 + 20, venue=VENUE))
    assert state.venues[VENUE].phase is SyncPhase.SYNCING
    f = fill("f1", Side.BUY, "0.01", "49000", ts=T0 + 15, cloid=place.cloid)
    state, _ = step(state, OrderFilled(ts=T0 + 21, fill=f))
    assert state.ledger.position(VENUE, SYMBOL).qty == D("0.01")
    assert state.orders[place.cloid].status is OrderStatus.FILLED
    assert state.strategy.changes[-1].fill == f
    # The reports (taken after the fill) complete the sync; nothing moves twice.
    state, _ = feed(
        state,
        answer_sync(
            sync,
            ts=T0 + 30,
            fills=[f],
            positions=list(position_report("0.01", "49000").positions),
        ),
    )
    assert state.venues[VENUE].phase is SyncPhase.SYNCED
    assert state.ledger.position(VENUE, SYMBOL).qty == D("0.01")
    assert state.ledger.fill_count == 1
    assert state.ledger.drift_repairs == 0


def test_final_position_is_the_same_with_or_without_a_sync_interleaved() -> None:
    """The design rule "final position is the same with or without a sync interleaved"."""
    state, _ = synced(scripted_state())
    state, place = resting_order(state)
    pieces = [
        fill(f"f{i}", Side.BUY, "0.002", "49000", ts=T0 + 10 + i, cloid=place.cloid)
        for i in range(5)
    ]
    stream = [OrderPartiallyFilled(ts=p.ts, fill=p) for p in pieces]
    plain, _ = feed(state, stream)
    with_sync, sync = feed(
        state,
        [
            *stream[:2],
            FeedDisconnected(ts=T0 + 12, venue=VENUE),
            FeedReconnected(ts=T0 + 12, venue=VENUE),
        ],
    )
    with_sync, _ = feed(with_sync, stream[2:4])
    with_sync, _ = feed(
        with_sync,
        answer_sync(
            sync,
            ts=T0 + 14,
            fills=pieces[:4],
            positions=list(position_report("0.008", "49000").positions),
        ),
    )
    with_sync, _ = feed(with_sync, stream[4:])
    assert with_sync.ledger.positions == plain.ledger.positions
    assert with_sync.orders[place.cloid].status is plain.orders[place.cloid].status
    assert with_sync.orders[place.cloid].status is OrderStatus.FILLED
    assert with_sync.venues[VENUE].phase is SyncPhase.SYNCED


def test_new_orders_wait_for_the_sync_to_end() -> None:
    """Only new orders wait: they would be decided on a state still being repaired."""
    state, _ = synced(scripted_state())
    state, _ = step(state, FeedReconnected(ts=T0, venue=VENUE))
    assert state.venues[VENUE].phase is SyncPhase.SYNCING
    state, commands, place = submit(state, ts=T0 + 1)
    assert place is None
    assert [n.code for n in of_type(commands, Notify)] == ["refused:not_ready"]


# --- bounded sync requests (failure `resync-loop`) ---------------------------------------------------------


def test_a_failing_sync_request_is_resent_at_most_max_sync_attempts_times_then_halts() -> None:
    """Failure `resync-loop`: the restore retriggered itself in a loop. Three retries, then a halt that
    says why; no fourth retry."""
    state = scripted_state(kernel_config(max_sync_attempts=3))
    state, commands = step(state, Started(ts=T0))
    request = only(commands, RequestPositions)
    sent = [request]
    halts: list[Halt] = []
    for i in range(10):
        state, commands = step(
            state, CommandFailed(ts=T0 + i + 1, command_id=sent[-1].command_id, reason="503")
        )
        sent += of_type(commands, RequestPositions)
        halts += of_type(commands, Halt)
        if halts:
            break
    assert len(sent) == 1 + 3
    assert len(halts) == 1
    assert "could not be reconciled" in halts[0].reason
    assert state.risk.halted
    assert not state.can_trade(VENUE)


def test_timeouts_count_like_failures_for_the_sync_bound() -> None:
    state = scripted_state(kernel_config(max_sync_attempts=1))
    state, commands = step(state, Started(ts=T0))
    fills_request = only(commands, RequestFills)
    state, commands = step(state, CommandTimedOut(ts=T0 + 1, command_id=fills_request.command_id))
    again = only(commands, RequestFills)
    state, commands = step(state, CommandTimedOut(ts=T0 + 2, command_id=again.command_id))
    assert of_type(commands, RequestFills) == []
    assert len(of_type(commands, Halt)) == 1


def test_reconnects_during_a_sync_never_restart_it_and_each_covers_its_own_gap() -> None:
    """A flapping feed must not restart the sync each time (failure `resync-loop`): no new round, no new
    positions or open-orders requests. But a request sent before a reconnect cannot cover the
    gap it closes (failure `missed-fills-on-reconnect`), so each reconnect adds exactly one fills request to the round:
    bounded by the reconnects themselves, which come from outside the core."""
    state = scripted_state(kernel_config(max_sync_attempts=3))
    state, _ = step(state, Started(ts=T0))
    syncs = state.venues[VENUE].syncs
    for i in range(10):
        state, commands = step(state, FeedDisconnected(ts=T0 + 2 * i, venue=VENUE))
        state, commands = step(state, FeedReconnected(ts=T0 + 2 * i + 1, venue=VENUE))
        assert len(of_type(commands, RequestFills)) == 1
        assert of_type(commands, RequestPositions) == []
        assert of_type(commands, RequestOpenOrders) == []
    assert state.venues[VENUE].syncs == syncs
    assert state.venues[VENUE].phase is SyncPhase.SYNCING


def test_a_malformed_message_triggers_one_reconciliation() -> None:
    state, _ = synced(scripted_state())
    state, commands = step(state, MessageMalformed(ts=T0, venue=VENUE, detail="unexpected field"))
    assert len(of_type(commands, RequestFills)) == 1
    assert state.venues[VENUE].phase is SyncPhase.SYNCING
    state, commands = step(state, MessageMalformed(ts=T0 + 1, venue=VENUE, detail="again"))
    assert of_type(commands, RequestFills) == []


# --- drift detection and repair -------------------------------------------------------------------


def test_drift_is_rechecked_before_it_is_repaired() -> None:
    """A difference may be a fill on its way: the first sighting asks again (fills and
    positions) and changes nothing; the ledger is untouched."""
    state, _ = synced(scripted_state())
    state, commands = step(state, position_report("0.005"))
    assert state.ledger.position(VENUE, SYMBOL).qty == 0
    assert only(commands, Notify).code == "position_drift"
    assert len(of_type(commands, RequestFills)) == 1
    assert len(of_type(commands, RequestPositions)) == 1
    assert state.venues[VENUE].phase is SyncPhase.SYNCING


def test_the_same_drift_seen_twice_with_no_fill_between_is_repaired_with_an_alert() -> None:
    state, _ = synced(scripted_state())
    state, commands = step(state, position_report("0.005", "50010"))
    state, commands = feed(
        state,
        answer_sync(
            commands, ts=T0 + 1, positions=list(position_report("0.005", "50010").positions)
        ),
    )
    position = state.ledger.position(VENUE, SYMBOL)
    assert (position.qty, position.avg_entry) == (D("0.005"), D("50010"))
    assert state.ledger.drift_repairs == 1
    alert = [n for n in of_type(commands, Notify) if n.code == "position_drift_repaired"]
    assert len(alert) == 1
    assert alert[0].level is Level.ALERT
    assert state.venues[VENUE].phase is SyncPhase.SYNCED
    assert state.venues[VENUE].drift == {}


def test_drift_explained_by_a_fill_in_the_fills_report_is_not_repaired() -> None:
    """The missing fill arrives with the re-check: the ledger agrees, no repair is counted."""
    state, _ = synced(scripted_state())
    state, commands = step(state, position_report("0.005"))
    missing = fill("late", Side.BUY, "0.005", "50000", ts=T0 - 5)
    state, commands = feed(
        state,
        answer_sync(
            commands,
            ts=T0 + 1,
            fills=[missing],
            positions=list(position_report("0.005").positions),
        ),
    )
    assert state.ledger.position(VENUE, SYMBOL).qty == D("0.005")
    assert state.ledger.drift_repairs == 0
    assert state.venues[VENUE].drift == {}
    assert state.venues[VENUE].phase is SyncPhase.SYNCED


def test_a_changing_drift_is_never_adopted_on_a_guess() -> None:
    """A difference that keeps changing is never confirmed. After ``max_sync_attempts``
    re-checks the core does not adopt the venue's size on a guess (a fill on its way would then
    count twice): it halts and says so (bounded, failure `resync-loop`). The next cause starts a fresh
    round, and a difference that then holds still is repaired."""
    state, _ = synced(scripted_state(kernel_config(max_sync_attempts=2)))
    state, commands = step(state, position_report("0.001"))
    for qty in ("0.002", "0.003"):
        assert state.ledger.drift_repairs == 0
        state, commands = feed(
            state, answer_sync(commands, ts=T0 + 1, positions=list(position_report(qty).positions))
        )
    assert state.ledger.drift_repairs == 0
    assert state.ledger.position(VENUE, SYMBOL).qty == 0
    assert state.risk.halted and "re-checks" in state.risk.halt_reason
    assert state.venues[VENUE].phase is SyncPhase.UNSYNCED
    assert any(isinstance(c, Notify) and c.level is Level.ALERT for c in commands)
    state, commands = step(state, FeedReconnected(ts=T0 + 2, venue=VENUE))
    assert of_type(commands, RequestFills)
    assert of_type(commands, RequestPositions)
    state, _ = feed(
        state, answer_sync(commands, ts=T0 + 3, positions=list(position_report("0.003").positions))
    )
    assert state.ledger.position(VENUE, SYMBOL).qty == D("0.003")
    assert state.ledger.drift_repairs == 1


def test_a_flat_venue_repairs_a_ledger_position_to_flat() -> None:
    state, _ = synced(scripted_state())
    state, _ = step(
        state, OrderPartiallyFilled(ts=T0, fill=fill("ghost", Side.SELL, "0.004", "50000", ts=T0))
    )
    state, commands = step(state, position_report("0", ts=T0 + 1))
    state, _ = feed(state, answer_sync(commands, ts=T0 + 2))
    assert state.ledger.position(VENUE, SYMBOL).qty == 0
    assert state.ledger.drift_repairs == 1


# --- orders the core does not know, and orders the venue no longer lists ---------------------------


def _foreign(cloid: str | None = None, symbol: str = SYMBOL) -> OpenOrder:
    return OpenOrder(
        cloid=cloid,
        venue_order_id="77",
        symbol=symbol,
        side=Side.BUY,
        position_side=PositionSide.BOTH,
        price=D(48000),
        qty=D("0.01"),
        filled_qty=D(0),
    )


def test_orphan_resting_orders_are_canceled() -> None:
    """Failure `orphaned-entries`: orphaned pending orders. A resting order the core does not know is tracked
    and canceled, with a warning."""
    state, commands = synced(scripted_state(), open_orders=[_foreign()])
    cancel = only(commands, CancelOrder)
    assert (cancel.cloid, cancel.venue_order_id) == ("sim:77", "77")
    assert any(n.code == "orphan_order" for n in of_type(commands, Notify))
    assert state.orders["sim:77"].status is OrderStatus.PENDING_CANCEL


def test_orphan_with_a_client_id_is_canceled_by_it() -> None:
    _, commands = synced(scripted_state(), open_orders=[_foreign("0xdead")])
    assert only(commands, CancelOrder).cloid == "0xdead"


def test_foreign_orders_are_left_alone_when_told_to() -> None:
    _, commands = synced(
        scripted_state(kernel_config(cancel_unknown_orders=False)), open_orders=[_foreign()]
    )
    assert of_type(commands, CancelOrder) == []
    assert any(n.code == "foreign_order" for n in of_type(commands, Notify))


def test_orders_on_instruments_not_configured_are_left_alone() -> None:
    _, commands = synced(scripted_state(), open_orders=[_foreign(symbol="ETH-PERP")])
    assert of_type(commands, CancelOrder) == []


def test_our_order_missing_from_an_open_orders_report_gets_its_status_asked() -> None:
    state, _ = synced(scripted_state())
    state, place = resting_order(state)
    state, commands = step(state, FeedReconnected(ts=T0 + 10, venue=VENUE))
    request = only(commands, RequestOpenOrders)
    state, commands = step(
        state,
        OpenOrdersReported(ts=T0 + 11, venue=VENUE, orders=(), command_id=request.command_id),
    )
    assert state.orders[place.cloid].status is OrderStatus.IN_DOUBT
    assert only(commands, RequestOrderStatus).cloid == place.cloid


def test_an_order_named_after_the_report_was_asked_for_is_not_judged_by_it() -> None:
    """A report taken before an order was placed says nothing about that order."""
    state, _ = synced(scripted_state(kernel_config(reconcile_ms=60_000)))
    state, older = resting_order(state)
    round_ts = EPOCH + 61_000
    state, commands = step(state, TimerFired(ts=round_ts, timer_id=MAINTENANCE_TIMER))
    request = only(commands, RequestOpenOrders)
    state, _ = step(state, quote(round_ts))
    state, _, newer = submit(state, ts=round_ts + 1)  # trading goes on during the round
    assert newer is not None
    state, commands = step(
        state,
        OpenOrdersReported(ts=round_ts + 2, venue=VENUE, orders=(), command_id=request.command_id),
    )
    assert state.orders[older.cloid].status is OrderStatus.IN_DOUBT
    assert state.orders[newer.cloid].status is OrderStatus.PENDING_NEW
    assert [r.cloid for r in of_type(commands, RequestOrderStatus)] == [older.cloid]


# --- background reconciliation -------------------------------------------------------------------


def test_periodic_reconciliation_asks_again_without_pausing_trading() -> None:
    state, _ = synced(scripted_state(kernel_config(reconcile_ms=60_000)))
    state, commands = step(state, TimerFired(ts=EPOCH + 1_000 + 60_000, timer_id=MAINTENANCE_TIMER))
    assert len(of_type(commands, RequestFills)) == 1
    assert len(of_type(commands, RequestOpenOrders)) == 1
    assert len(of_type(commands, RequestPositions)) == 1
    assert state.venues[VENUE].phase is SyncPhase.SYNCED
    state, _ = step(state, quote(EPOCH + 61_000))
    _, _, place = submit(state, ts=EPOCH + 61_001)
    assert place is not None


def test_reconciliation_asks_for_fills_from_before_the_last_one_seen() -> None:
    """Failure `missed-fills-on-reconnect`: a message lost without a disconnect is recovered by the next round."""
    state, _ = synced(scripted_state(kernel_config(reconcile_ms=60_000, fill_overlap_ms=1_000)))
    seen = fill("f1", Side.BUY, "0.001", "50000", ts=EPOCH + 30_000)
    state, _ = step(state, OrderPartiallyFilled(ts=seen.ts, fill=seen))
    state, commands = step(state, TimerFired(ts=EPOCH + 61_000, timer_id=MAINTENANCE_TIMER))
    assert only(commands, RequestFills).since <= seen.ts - 1_000


# --- cloids and determinism -------------------------------------------------------------------------


def test_cloids_are_unique_and_derived_from_epoch_and_counter() -> None:
    """Failure `stream-before-ack`: the core names every order before the command leaves. Names come from the
    state (epoch + id counter), so two bots, or one bot restarted with a new epoch, never
    reuse one, and replaying the same events names them the same."""

    def cloids(epoch: int) -> list[str]:
        state, _ = synced(scripted_state(epoch=epoch), ts=epoch + 1_000)
        names = []
        for i in range(20):
            state, _, place = submit(state, ts=epoch + 1_000 + i, qty="0.001", price=str(40000 + i))
            assert place is not None
            names.append(place.cloid)
        return names

    first = cloids(EPOCH)
    assert len(set(first)) == 20
    assert cloids(EPOCH) == first  # derived from state: the same events give the same names
    assert set(cloids(EPOCH + 1)).isdisjoint(first)
    assert all(f"{EPOCH:x}" in c for c in first)


def test_a_restart_of_the_same_state_never_reuses_a_cloid() -> None:
    state, _ = synced(scripted_state())
    state, place = resting_order(state)
    state, commands = step(state, Started(ts=T0 + 100))
    state, _ = step(state, quote(T0 + 100))
    open_order = OpenOrder(
        cloid=place.cloid,
        venue_order_id="1",
        symbol=SYMBOL,
        side=Side.BUY,
        position_side=PositionSide.BOTH,
        price=place.price,
        qty=place.qty,
        filled_qty=D(0),
    )
    state, _ = feed(state, answer_sync(commands, ts=T0 + 100, open_orders=[open_order]))
    assert state.orders[place.cloid].status is OrderStatus.OPEN
    _, _, again = submit(state, ts=T0 + 101)
    assert again is not None
    assert again.cloid != place.cloid


def test_step_never_mutates_its_input_and_is_deterministic() -> None:
    """The design rule: no mutation of inputs; same inputs, same outputs, always."""
    state, _ = synced(scripted_state())
    state, place = resting_order(state)
    events: list[Event] = [
        OrderPartiallyFilled(
            ts=T0 + 5, fill=fill("f1", Side.BUY, "0.004", "49000", ts=T0 + 5, cloid=place.cloid)
        ),
        FillsReported(ts=T0 + 6, venue=VENUE, since=EPOCH, fills=()),
        FeedReconnected(ts=T0 + 7, venue=VENUE),
        TimerFired(ts=T0 + 8, timer_id=MAINTENANCE_TIMER),
        QuoteTicked(ts=T0 + 9, venue=VENUE, symbol=SYMBOL, bid=D(1), ask=D(2)),
        position_report("0.003", ts=T0 + 10),
    ]
    for event in events:
        frozen = copy.deepcopy(state)
        first = step(state, event)
        assert state == frozen
        assert step(state, event) == first
        state = first[0]


def test_drift_is_not_confirmed_before_the_fills_answer_sent_after_it() -> None:
    """Found by the crash test: a drift seen before a restart was "confirmed" by the first
    positions answer after ``Started`` while the fills answer of the same round (holding the
    missing fill) was still on its way; the ledger adopted the venue's size and then applied the
    fill on top, holding twice the position."""
    from gridcore import step
    from gridcore.commands import (
        RequestBalances,
        RequestFills,
        RequestOpenOrders,
        RequestPositions,
    )
    from gridcore.config import load_config
    from gridcore.events import (
        BalanceReported,
        Fill,
        FillsReported,
        OpenOrdersReported,
        PositionReport,
        PositionsReported,
        Started,
    )
    from gridcore.instruments import PositionSide, Side
    from gridcore.sim import make_bot

    T = EPOCH
    pos = PositionReport(
        symbol="BTC-PERP",
        position_side=PositionSide.BOTH,
        qty=Decimal("0.002"),
        entry_price=Decimal(50_000),
    )
    fill = Fill(
        ts=T + 1_500,
        venue="sim",
        symbol="BTC-PERP",
        fill_id="f1",
        cloid=None,
        venue_order_id="9",
        side=Side.BUY,
        position_side=PositionSide.BOTH,
        price=Decimal(50_000),
        qty=Decimal("0.002"),
        fee=Decimal("0.02"),
    )

    def answers(commands: list[Any], ts: int, positions: tuple[PositionReport, ...]) -> list[Event]:
        out: list[Event] = []
        for c in commands:
            if isinstance(c, RequestPositions):
                out.append(
                    PositionsReported(
                        ts=ts, venue="sim", positions=positions, command_id=c.command_id
                    )
                )
            elif isinstance(c, RequestFills):
                fills = (fill,) if positions else ()
                out.append(
                    FillsReported(
                        ts=ts, venue="sim", since=c.since, fills=fills, command_id=c.command_id
                    )
                )
            elif isinstance(c, RequestOpenOrders):
                out.append(
                    OpenOrdersReported(ts=ts, venue="sim", orders=(), command_id=c.command_id)
                )
            elif isinstance(c, RequestBalances):
                out.append(
                    BalanceReported(
                        ts=ts,
                        venue="sim",
                        asset="USD",
                        equity=Decimal(10_000),
                        available=Decimal(10_000),
                        command_id=c.command_id,
                    )
                )
        return out

    state = make_bot(load_config(), epoch=T)
    state, commands = step(state, Started(ts=T + 1_000))
    for event in answers(commands, T + 1_001, ()):
        state, _ = step(state, event)
    state, _ = step(state, PositionsReported(ts=T + 2_000, venue="sim", positions=(pos,)))
    assert state.ledger.drift_repairs == 0
    state, commands = step(state, Started(ts=T + 3_000))
    late = answers(commands, T + 3_001, (pos,))
    late.sort(key=lambda e: not isinstance(e, PositionsReported))  # positions answer first
    for event in late:
        state, _ = step(state, event)
    assert state.ledger.position("sim", "BTC-PERP").qty == Decimal("0.002")
    assert state.ledger.drift_repairs == 0
