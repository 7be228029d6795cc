"""The neutral grid bot's failures (docs/failures.md), one test each.

Each test drives the real reducer (``gridcore.step``) and fails if the failure comes back.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from gridcore import (
    Cancel,
    CancelOrder,
    CancelRejected,
    CommandFailed,
    CommandTimedOut,
    Event,
    FeedDisconnected,
    FeedReconnected,
    FillsReported,
    HaltRequested,
    OrderAccepted,
    OrderFilled,
    OrderPartiallyFilled,
    OrderStatus,
    OrderStatusReported,
    PlaceOrder,
    ReportedStatus,
    RequestBalances,
    RequestFills,
    RequestOpenOrders,
    RequestOrderStatus,
    RequestPositions,
    Side,
    Source,
    Started,
    State,
    TimerFired,
    step,
)
from gridcore.core import MAINTENANCE_TIMER
from gridcore.grid import compute_spacing
from gridcore.numbers import ZERO
from gridcore.sim import make_bot
from tests.unit.helpers import (
    EPOCH,
    SYMBOL,
    VENUE,
    answer_sync,
    deliver,
    feed,
    fill,
    grid_config,
    grid_mismatch,
    instrument,
    intend,
    of_type,
    only,
    quote,
    run_with_exchange,
    scripted_state,
    submit,
    synced,
    synced_grid,
    synced_with_exchange,
)

T0 = EPOCH + 2_000


# --- fill-during-rebuild: a fill during a grid rebuild ---------------------------------------------------------


def test_c1_grid_after_a_fill_matches_the_position_it_was_computed_from() -> None:
    """Failure `fill-during-rebuild`: the top buy fills; in that same step the grid is rebuilt from the ledger
    that already holds the fill, so the live orders are exactly the levels for the new
    position — a sell one level up appears, nothing else moves."""
    state, exchange = synced_with_exchange()
    assert grid_mismatch(state) == []
    before = {(o.side, o.price) for o in state.live_orders("grid:")}
    tick = quote(T0, "49899.0", "49899.9")
    fills = exchange.on_tick(tick)
    assert [type(e) for e in fills] == [OrderFilled]
    state, _ = step(state, tick)
    state, _ = deliver(state, exchange, fills, now=T0, check=_no_mismatch)
    assert state.ledger.position(VENUE, SYMBOL).qty == Decimal("0.002")
    after = {(o.side, o.price) for o in state.live_orders("grid:")}
    assert before - after == {(Side.BUY, Decimal("49900.0"))}
    assert after - before == {(Side.SELL, Decimal("50000.0"))}


def _no_mismatch(state: State[Any]) -> None:
    problems = grid_mismatch(state)
    assert problems == [], problems


def test_c1_fills_that_arrive_twice_or_late_do_not_move_the_grid_twice() -> None:
    """Failures `fill-during-rebuild` and `double-counted-fill`: the pivot is read from the position, not counted from fill events, so
    a replayed fill (same id) leaves the grid where it is."""
    state, exchange = synced_with_exchange()
    tick = quote(T0, "49899.0", "49899.9")
    fills = exchange.on_tick(tick)
    state, _ = step(state, tick)
    state, _ = deliver(state, exchange, fills, now=T0)
    orders_once = {(o.side, o.price) for o in state.live_orders("grid:")}
    state, commands = deliver(state, exchange, fills, now=T0 + 1)
    assert of_type(commands, PlaceOrder) == []
    assert of_type(commands, CancelOrder) == []
    assert {(o.side, o.price) for o in state.live_orders("grid:")} == orders_once
    assert grid_mismatch(state) == []


# --- partial-fill-threshold: the 0.99 partial-fill threshold -------------------------------------------------------


def test_c2_dust_final_fill_completes_the_order_exactly_when_nothing_remains() -> None:
    """Failure `partial-fill-threshold`: 99 % filled is not filled; the dust fill that leaves zero is, even when
    the venue words it as a partial fill."""
    state, _ = synced(scripted_state())
    state, _, place = submit(state, ts=T0, qty="1.000", price="49000")
    assert place is not None
    big = fill("f1", Side.BUY, "0.999", "49000", ts=T0 + 1, cloid=place.cloid)
    state, _ = step(state, OrderPartiallyFilled(ts=T0 + 1, fill=big))
    order = state.orders[place.cloid]
    assert order.is_live
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert order.remaining == Decimal("0.001")
    assert order.reserved > 0
    dust = fill("f2", Side.BUY, "0.001", "49000", ts=T0 + 2, cloid=place.cloid)
    state, _ = step(state, OrderPartiallyFilled(ts=T0 + 2, fill=dust))
    order = state.orders[place.cloid]
    assert order.status is OrderStatus.FILLED
    assert order.remaining == ZERO
    assert order.filled_qty == Decimal("1.000")
    assert order.reserved == ZERO
    assert state.risk.reserved[VENUE] == ZERO
    assert state.ledger.position(VENUE, SYMBOL).qty == Decimal("1.000")


def test_c2_many_tiny_partials_complete_the_order() -> None:
    state, _ = synced(scripted_state())
    state, _, place = submit(state, ts=T0, qty="0.005", price="49000")
    assert place is not None
    for i in range(5):
        assert state.orders[place.cloid].is_live
        piece = fill(f"f{i}", Side.BUY, "0.001", "49000", ts=T0 + i, cloid=place.cloid)
        state, _ = step(state, OrderPartiallyFilled(ts=T0 + i, fill=piece))
    assert state.orders[place.cloid].status is OrderStatus.FILLED
    assert not any(o.is_live and o.remaining == 0 for o in state.orders.values())


# --- missed-fills-on-reconnect: fills missed while the stream reconnects ---------------------------------------------


def test_c3_reconnect_requests_fills_since_the_last_one_open_orders_and_positions() -> None:
    """Failure `missed-fills-on-reconnect`: no immediate REST poll after a reconnect. Here the reconnect step itself
    asks for fills since (at or before) the last fill seen, open orders and positions."""
    state, _ = synced(scripted_state())
    seen = fill("f1", Side.BUY, "0.01", "49000", ts=T0)
    state, _ = step(state, OrderPartiallyFilled(ts=T0, fill=seen))
    state, down = step(state, FeedDisconnected(ts=T0 + 1_000, venue=VENUE, reason="ws closed"))
    assert not state.can_trade(VENUE)
    assert of_type(down, PlaceOrder) == []
    state, commands = step(state, FeedReconnected(ts=T0 + 30_000, venue=VENUE))
    request = only(commands, RequestFills)
    assert request.since <= seen.ts
    assert len(of_type(commands, RequestOpenOrders)) == 1
    assert len(of_type(commands, RequestPositions)) == 1
    assert len(of_type(commands, RequestBalances)) == 1
    assert not state.can_trade(VENUE)


def test_c3_missed_fills_plus_overlap_bring_the_ledger_to_the_venues_truth() -> None:
    """Failure `missed-fills-on-reconnect`: fills made while the stream was down arrive in the REST answer together
    with fills already seen (the overlap); the ledger ends equal to the venue's account."""
    state, exchange = synced_with_exchange()
    # One fill seen on the stream.
    tick = quote(T0, "49899.0", "49899.9")
    state, _ = step(state, tick)
    state, _ = deliver(state, exchange, exchange.on_tick(tick), now=T0)
    assert state.ledger.fill_count == 1
    state, _ = step(state, FeedDisconnected(ts=T0 + 1_000, venue=VENUE))
    # While down: the market falls through two more buy levels; the stream messages are lost.
    for i, (bid, ask) in enumerate([("49799.0", "49799.9"), ("49699.0", "49699.9")]):
        lost = exchange.on_tick(quote(T0 + 2_000 + i, bid, ask))
        assert lost and all(isinstance(e, OrderFilled) for e in lost)
    assert exchange.position(SYMBOL).qty == Decimal("0.006")
    assert state.ledger.position(VENUE, SYMBOL).qty == Decimal("0.002")
    back = T0 + 10_000
    tick = quote(back, "49699.0", "49699.9")
    exchange.on_tick(tick)
    state, commands = step(state, FeedReconnected(ts=back, venue=VENUE))
    state, _ = step(state, tick)  # the stream's first quote after the reconnect
    report_request = only(commands, RequestFills)
    answer = exchange.handle(report_request, back)
    assert isinstance(answer[0], FillsReported)
    assert len(answer[0].fills) == 3  # the overlap: the fill already seen is in it again
    state, _ = run_with_exchange(state, exchange, commands, now=back)
    ours = state.ledger.position(VENUE, SYMBOL)
    theirs = exchange.position(SYMBOL)
    assert (ours.qty, ours.avg_entry, ours.realized, ours.fees) == (
        theirs.qty,
        theirs.avg_entry,
        theirs.realized,
        theirs.fees,
    )
    assert state.ledger.fill_count == 3
    assert state.can_trade(VENUE)
    assert grid_mismatch(state) == []


def test_c3_a_fill_recovered_after_later_fills_still_leaves_the_ledger_equal_to_the_venue() -> None:
    """Failure `missed-fills-on-reconnect`: "dropping any stream messages then reconnecting ends with the
    ledger equal to the venue's truth". Here the lost fill is older than one the stream did
    deliver, so the ledger applies them in a different order than the venue did. Size, fees
    and total PnL agree regardless; the venue's positions report then carries its entry price,
    and the ledger must end with the venue's entry and realized PnL too (not a split of the
    same total that the venue's account never had)."""
    state, exchange = synced_with_exchange()
    tick = quote(T0, "50100.0", "50100.1")  # the first sell fills: short 0.002 at 50100
    state, _ = step(state, tick)
    state, _ = deliver(state, exchange, exchange.on_tick(tick), now=T0)
    # Buys at 49900 (older) and 50000 fill, in that order: the first closes the short, the
    # second opens a long at 50000.
    tick = quote(T0 + 1_000, "49899.9", "49900.0")
    buys = exchange.on_tick(tick)
    assert [e.fill.price for e in buys if isinstance(e, OrderFilled)] == [
        Decimal("49900.0"),
        Decimal("50000.0"),
    ]
    state, _ = step(state, tick)
    state, _ = deliver(state, exchange, buys[1:], now=T0 + 1_000)  # the first is lost
    back = T0 + 2_000
    state, _ = step(state, FeedDisconnected(ts=back, venue=VENUE))
    state, _ = deliver(state, exchange, [FeedReconnected(ts=back, venue=VENUE)], now=back)
    ours, theirs = state.ledger.position(VENUE, SYMBOL), exchange.position(SYMBOL)
    assert ours.qty == theirs.qty == Decimal("0.002")
    assert ours.fees == theirs.fees
    assert (
        ours.realized - ours.qty * ours.avg_entry == theirs.realized - theirs.qty * theirs.avg_entry
    )
    assert theirs.avg_entry == Decimal("50000.0")
    assert ours.avg_entry == theirs.avg_entry
    assert ours.realized == theirs.realized


# --- spacing-collapse: grid collapse -------------------------------------------------------------------------


def test_c4_tightening_cannot_take_the_spacing_under_the_fee_floor() -> None:
    """Failure `spacing-collapse`: loss-drift tightening went to 50 % and beyond. The floor holds: 2 bps
    maker fee at 50,000 is 20 quote per round trip, plus one tick."""
    inst = instrument()
    price = Decimal(50_000)
    assert compute_spacing(price, inst, spacing=Decimal("0.002")) == Decimal("100.0")
    assert compute_spacing(
        price, inst, spacing=Decimal("0.002"), tightening=Decimal("0.5")
    ) == Decimal("50.0")
    for tightening in ("0.9", "0.99", "0.999999"):
        step_ = compute_spacing(
            price, inst, spacing=Decimal("0.002"), tightening=Decimal(tightening)
        )
        assert step_ == Decimal("20.1")
    assert compute_spacing(
        price, inst, spacing=Decimal("0.002"), min_spacing=Decimal("150"), tightening=Decimal("0.9")
    ) == Decimal("150.0")


def test_c4_a_tiny_configured_spacing_still_gives_a_grid_with_bids_below_asks() -> None:
    config = grid_config(spacing='"0.000001"')
    _state, commands = synced_grid(config)
    places = of_type(commands, PlaceOrder)
    assert len(places) == 10
    buys = sorted(p.price for p in places if p.side is Side.BUY)
    sells = sorted(p.price for p in places if p.side is Side.SELL)
    assert max(buys) < min(sells)
    gaps = [b - a for a, b in itertools.pairwise(buys)]
    gaps += [b - a for a, b in itertools.pairwise(sells)]
    assert min(gaps) >= Decimal("20.1")  # the fee floor at 50,000


# --- double-counted-fill: replayed fills counted again ----------------------------------------------------------


def test_c5_a_fill_seen_on_the_stream_in_a_rest_report_and_in_a_replay_counts_once() -> None:
    """Failure `double-counted-fill`: the replay path also updated the position. Here one fill id is one
    execution, whatever path brings it."""
    state, _ = synced(scripted_state())
    state, _, place = submit(state, ts=T0, qty="0.01", price="49000")
    assert place is not None
    f = fill("exec-1", Side.BUY, "0.004", "49000", ts=T0 + 1, cloid=place.cloid, fee="0.02")
    events: list[Event] = [
        OrderPartiallyFilled(ts=T0 + 1, fill=f, source=Source.STREAM),
        FillsReported(ts=T0 + 2, venue=VENUE, since=EPOCH, fills=(f,), source=Source.REST),
        OrderPartiallyFilled(ts=T0 + 3, fill=f, source=Source.REPLAY),
        FillsReported(ts=T0 + 4, venue=VENUE, since=EPOCH, fills=(f, f), source=Source.REPLAY),
    ]
    state, _ = feed(state, events)
    position = state.ledger.position(VENUE, SYMBOL)
    assert position.qty == Decimal("0.004")
    assert position.fees == Decimal("0.02")
    assert state.ledger.fill_count == 1
    order = state.orders[place.cloid]
    assert order.filled_qty == Decimal("0.004")
    assert order.status is OrderStatus.PARTIALLY_FILLED


# --- leaked-cancel: a failed cancel leaks the order -------------------------------------------------------


def test_c6_rejected_cancel_marks_the_order_and_requests_its_status() -> None:
    """Failure `leaked-cancel`: a failed cancel left the order in the registry forever. Here it becomes
    CANCEL_FAILED with a status request in the same step, and the venue's answer resolves it."""
    state, _ = synced(scripted_state())
    state, _, place = submit(state, ts=T0)
    assert place is not None
    state, _ = step(
        state,
        OrderAccepted(
            ts=T0 + 1,
            venue=VENUE,
            cloid=place.cloid,
            venue_order_id="9",
            command_id=place.command_id,
        ),
    )
    state, commands = intend(state, [Cancel(cloid=place.cloid)], ts=T0 + 2)
    cancel = only(commands, CancelOrder)
    assert state.orders[place.cloid].status is OrderStatus.PENDING_CANCEL
    state, commands = step(
        state,
        CancelRejected(
            ts=T0 + 3, venue=VENUE, cloid=place.cloid, reason="busy", command_id=cancel.command_id
        ),
    )
    assert state.orders[place.cloid].status is OrderStatus.CANCEL_FAILED
    request = only(commands, RequestOrderStatus)
    assert (request.cloid, request.venue_order_id) == (place.cloid, "9")
    state, _ = step(
        state,
        OrderStatusReported(
            ts=T0 + 4,
            venue=VENUE,
            cloid=place.cloid,
            status=ReportedStatus.CANCELED,
            command_id=request.command_id,
        ),
    )
    order = state.orders[place.cloid]
    assert order.status is OrderStatus.CANCELED
    assert order.reserved == ZERO
    assert state.risk.reserved[VENUE] == ZERO
    assert request.command_id not in state.inflight


def test_c6_a_cancel_the_venue_refused_is_not_sent_again_before_its_status_answer() -> None:
    """A venue that refuses a cancel at once ("order is canceled") must not be asked again and
    again within one instant: while the refused cancel's status request is out, another cancel
    of the same order sends nothing (the state machine found a strategy re-asking in a loop)."""
    state, _ = synced(scripted_state())
    state, _, place = submit(state, ts=T0)
    assert place is not None
    state, commands = intend(state, [Cancel(cloid=place.cloid)], ts=T0 + 2)
    state, commands = step(
        state,
        CancelRejected(
            ts=T0 + 3,
            venue=VENUE,
            cloid=place.cloid,
            reason="order is canceled",
            command_id=only(commands, CancelOrder).command_id,
        ),
    )
    assert state.orders[place.cloid].status is OrderStatus.CANCEL_FAILED
    only(commands, RequestOrderStatus)
    for ts in (T0 + 3, T0 + 4):
        state, commands = intend(state, [Cancel(cloid=place.cloid)], ts=ts)
        assert not [c for c in commands if isinstance(c, CancelOrder)]
    assert state.orders[place.cloid].status is OrderStatus.CANCEL_FAILED


def test_c6_status_answer_open_lets_the_strategy_cancel_again() -> None:
    state, _ = synced(scripted_state())
    state, _, place = submit(state, ts=T0)
    assert place is not None
    state, commands = intend(state, [Cancel(cloid=place.cloid)], ts=T0 + 2)
    state, commands = step(
        state,
        CancelRejected(
            ts=T0 + 3,
            venue=VENUE,
            cloid=place.cloid,
            reason="busy",
            command_id=only(commands, CancelOrder).command_id,
        ),
    )
    request = only(commands, RequestOrderStatus)
    state, _ = step(
        state,
        OrderStatusReported(
            ts=T0 + 4,
            venue=VENUE,
            cloid=place.cloid,
            status=ReportedStatus.OPEN,
            venue_order_id="9",
            command_id=request.command_id,
        ),
    )
    assert state.orders[place.cloid].status is OrderStatus.OPEN
    state, commands = intend(state, [Cancel(cloid=place.cloid)], ts=T0 + 5)
    assert only(commands, CancelOrder).cloid == place.cloid


def test_c6_maintenance_asks_again_when_the_status_request_itself_failed() -> None:
    """No order stays unresolved past its timeout without a status request: when the status
    request fails, the next maintenance timer sends another."""
    state, _ = synced(scripted_state())
    state, _, place = submit(state, ts=T0)
    assert place is not None
    state, commands = intend(state, [Cancel(cloid=place.cloid)], ts=T0 + 2)
    state, commands = step(
        state,
        CommandTimedOut(ts=T0 + 5_000, command_id=only(commands, CancelOrder).command_id),
    )
    assert state.orders[place.cloid].status is OrderStatus.CANCEL_FAILED
    request = only(commands, RequestOrderStatus)
    state, commands = step(
        state, CommandFailed(ts=T0 + 6_000, command_id=request.command_id, reason="503")
    )
    assert of_type(commands, RequestOrderStatus) == []
    assert not state.orders[place.cloid].status_requested
    state, commands = step(state, TimerFired(ts=T0 + 10_000, timer_id=MAINTENANCE_TIMER))
    again = only(commands, RequestOrderStatus)
    assert again.cloid == place.cloid
    assert state.orders[place.cloid].status_requested
    # While that request is out, maintenance does not pile up more.
    state, commands = step(state, TimerFired(ts=T0 + 15_000, timer_id=MAINTENANCE_TIMER))
    assert of_type(commands, RequestOrderStatus) == []
    state, _ = step(
        state,
        OrderStatusReported(
            ts=T0 + 16_000,
            venue=VENUE,
            cloid=place.cloid,
            status=ReportedStatus.FILLED,
            filled_qty=Decimal("0.01"),
            command_id=again.command_id,
        ),
    )
    assert state.orders[place.cloid].status is OrderStatus.FILLED


def test_c6_cancel_of_an_order_already_filled_resolves_to_filled() -> None:
    """The cancel raced the last fill: the venue rejects the cancel, the fill decides."""
    state, _ = synced(scripted_state())
    state, _, place = submit(state, ts=T0)
    assert place is not None
    state, commands = intend(state, [Cancel(cloid=place.cloid)], ts=T0 + 2)
    cancel = only(commands, CancelOrder)
    state, _ = step(
        state,
        OrderFilled(
            ts=T0 + 3, fill=fill("f1", Side.BUY, "0.01", "49000", ts=T0 + 3, cloid=place.cloid)
        ),
    )
    state, commands = step(
        state,
        CancelRejected(
            ts=T0 + 4,
            venue=VENUE,
            cloid=place.cloid,
            reason="order is filled",
            command_id=cancel.command_id,
        ),
    )
    assert state.orders[place.cloid].status is OrderStatus.FILLED
    assert of_type(commands, RequestOrderStatus) == []
    assert cancel.command_id not in state.inflight


def test_c6_cancel_the_sim_venue_rejects_because_the_order_filled_ends_filled() -> None:
    """End to end on the simulated venue: the stream message of a fill is lost, a halt cancels
    every order, the venue rejects the cancel of the filled one; the status request and the
    fills request it leads to resolve the order and put the fill in the ledger."""
    state, exchange = synced_with_exchange()
    top_buy = max(
        (o for o in state.live_orders("grid:") if o.side is Side.BUY), key=lambda o: o.price
    )
    tick = quote(T0, "49899.0", "49899.9")
    assert exchange.on_tick(tick)  # the venue fills it; the stream message is lost
    state, _ = step(state, tick)
    state, commands = step(state, HaltRequested(ts=T0 + 1))
    rejected = [
        e
        for c in of_type(commands, CancelOrder)
        for e in exchange.copy().handle(c, T0 + 1)
        if isinstance(e, CancelRejected)
    ]
    assert [e.cloid for e in rejected] == [top_buy.cloid]
    state, _ = run_with_exchange(state, exchange, commands, now=T0 + 1)
    order = state.orders[top_buy.cloid]
    assert order.status is OrderStatus.FILLED
    assert order.filled_qty == Decimal("0.002")
    assert state.ledger.position(VENUE, SYMBOL) == exchange.position(SYMBOL)
    assert state.live_orders() == []
    assert state.attention == frozenset()


def test_a_grid_refused_for_a_quote_from_before_its_feed_came_up_is_placed_on_a_fresh_one() -> None:
    """Failure `grid-idle-after-refusal`: a restarted bot finished its reconciliation before the
    venue's first fresh quote; its grid, priced from the journal's last quote, was refused level
    by level, silently, and the fresh quotes that followed lay inside the grid's bounds, so it
    never placed an order while the market held. The grid now waits, unfinished, for a fresh
    quote, and places its levels once one has come."""
    state = make_bot(grid_config(), epoch=EPOCH)
    state, _ = step(state, quote(EPOCH + 500))  # the last quote the previous run journaled
    state, started = step(state, Started(ts=EPOCH + 1_000))
    state, on_ready = feed(state, answer_sync(started, ts=EPOCH + 1_000))
    assert state.venues[VENUE].phase.value == "synced"
    assert of_type(on_ready, PlaceOrder) == [], "priced from a quote from before the start"
    # The market holds: fresh quotes at the same prices, then the housekeeping they bring.
    placed: list[PlaceOrder] = []
    for k in range(1, 12):
        state, commands = step(state, quote(EPOCH + 1_000 + k * 1_000))
        placed += of_type(commands, PlaceOrder)
    assert placed, "no grid order placed on the fresh quotes"
    assert {p.side for p in placed} == {Side.BUY, Side.SELL}
