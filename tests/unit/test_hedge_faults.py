"""The hedge grid under venue faults in fast markets, step by step.

Each test is the minimal form of a run the harness found when it drew every fault kind in
markets that move past the reprice threshold (``DRIFTING`` in
``tests/harness/test_hedge_grid.py``): a take-profit enlarged while its old size filled
(failure `modify-answer-overtaken`, whichever way the fill reached the core), and an entry whose
fill was lost and whose repricing the venue refused because it had filled, and an entry whose
repricing failed while the strategy waited after the refusal; and an averaging entry left far
behind while a market ran towards a take-profit filled slowly in a thin book.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

from gridcore import (
    CancelOrder,
    CommandFailed,
    FillsReported,
    ModifyOrder,
    ModifyRejected,
    OpenOrder,
    OpenOrdersReported,
    OrderStatus,
    OrderStatusReported,
    PlaceOrder,
    ReportedStatus,
    RequestFills,
    RequestOrderStatus,
    State,
    step,
)
from gridcore.invariants import StepRecord, orders_within_band
from gridcore.numbers import relative_distance
from gridcore.strategies import hedge_grid as hg

from .helpers import VENUE, fill, of_type, only, quote
from .test_hedge_grid import (
    LONG,
    SHORT,
    T0,
    accept,
    filled,
    modified,
    placed,
    places,
    position,
    started,
    strategy,
    with_long,
)


def _enlarged() -> tuple[State[Any], PlaceOrder, ModifyOrder]:
    """The LONG side holds 0.002 with its take-profit resting; level 1 fills (0.002 more) and
    the take-profit is enlarged to 0.004 with one modify, still unanswered."""
    state, orders = with_long()
    state, commands = step(state, filled(orders["long1"], "0.002", "49749.9", T0 + 40))
    modify = only(commands, ModifyOrder)
    assert (modify.cloid, modify.qty) == (orders["tp"].cloid, Decimal("0.004"))
    assert position(state, LONG) == Decimal("0.004")
    return state, orders["tp"], modify


def test_a_take_profit_filled_to_its_old_size_while_the_venue_says_it_rests_stays_live() -> None:
    """The venue applied the increase and filled the old size of the take-profit; its stream
    (a partial fill: something still rests) overtook the modify's answer. The take-profit is
    the enlarged one, half filled and still live: the cycle goes on, no second take-profit is
    placed, and none closes more than the side holds."""
    state, tp, modify = _enlarged()
    cycle = strategy(state).cycle
    state, commands = step(state, filled(tp, "0.002", str(modify.price), T0 + 50, complete=False))
    order = state.orders[tp.cloid]
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert (order.qty, order.remaining, order.modify_to) == (
        Decimal("0.004"),
        Decimal("0.002"),
        None,
    )
    assert position(state, LONG) == Decimal("0.002")
    assert strategy(state).cycle == cycle
    assert not [p for p in places(commands) if p.reduce_only]
    assert hg.hedge_grid_take_profit_within_position(state) == []
    state, _ = modified(state, modify, T0 + 60)  # the late answer changes nothing
    assert state.orders[tp.cloid].status is OrderStatus.PARTIALLY_FILLED
    state, _ = step(state, filled(tp, "0.002", str(modify.price), T0 + 70, fid="rest"))
    assert state.orders[tp.cloid].status is OrderStatus.FILLED
    assert position(state, LONG) == 0
    assert strategy(state).cycle == cycle + 1


def _filled_by_a_report(state: State[Any], tp: PlaceOrder, price: Decimal) -> State[Any]:
    """The take-profit's stream fill was lost; a fills report brings its old size."""
    f = fill(
        "tp-old-size",
        tp.side,
        "0.002",
        price,
        ts=T0 + 50,
        cloid=tp.cloid,
        position_side=tp.position_side,
    )
    state, _ = step(state, FillsReported(ts=T0 + 55, venue=VENUE, since=T0, fills=(f,)))
    # A report says nothing of what rests: the order is done at its known size (filled is final).
    assert state.orders[tp.cloid].status is OrderStatus.FILLED
    return state


def test_an_increase_answered_after_the_old_size_filled_cancels_the_rest_at_the_venue() -> None:
    """The modify's answer says the take-profit is 0.004 at the venue while the core booked
    0.002 of it filled and done: the 0.002 still resting there is canceled at once, never left
    to close a position the side may no longer hold."""
    state, tp, modify = _enlarged()
    assert modify.price is not None
    state = _filled_by_a_report(state, tp, modify.price)
    state, commands = modified(state, modify, T0 + 60)
    assert [c.cloid for c in of_type(commands, CancelOrder)] == [tp.cloid]
    assert state.orders[tp.cloid].status is OrderStatus.FILLED


def test_an_open_orders_report_listing_an_order_held_filled_cancels_it_at_the_venue() -> None:
    """The modify's answer was lost; the next open-orders report lists the take-profit resting
    with 0.002 of 0.004 filled while the core holds it filled: reconciliation cancels what rests
    (the venue is the truth about what rests; filled stays final)."""
    state, tp, modify = _enlarged()
    assert modify.price is not None
    state = _filled_by_a_report(state, tp, modify.price)
    listed = OpenOrder(
        cloid=tp.cloid,
        venue_order_id=f"v-{tp.cloid}",
        symbol=tp.symbol,
        side=tp.side,
        position_side=tp.position_side,
        price=modify.price,
        qty=Decimal("0.004"),
        filled_qty=Decimal("0.002"),
    )
    state, commands = step(state, OpenOrdersReported(ts=T0 + 70, venue=VENUE, orders=(listed,)))
    assert [c.cloid for c in of_type(commands, CancelOrder)] == [tp.cloid]
    assert state.orders[tp.cloid].status is OrderStatus.FILLED
    # A report taken before the order ended is stale, not news: nothing is sent.
    old = OpenOrdersReported(ts=T0 + 50, venue=VENUE, orders=(listed,))
    assert not of_type(step(state, old)[1], CancelOrder)


def test_a_repricing_refused_because_the_entry_filled_asks_for_its_status() -> None:
    """The entry's fill was lost; the market moved past the threshold and the venue refused
    the repricing: the order has filled. The core asks for the entry's status instead of
    believing it rests, and the answer ends it (and fetches the missing fill)."""
    state, commands = started()
    long0 = placed(commands, LONG, reduce_only=False)
    state, _ = accept(state, long0, T0 + 5)
    state, commands = step(state, quote(T0 + 10, "52999.9", "53000.1"))  # +6 %
    reprice = [m for m in of_type(commands, ModifyOrder) if m.cloid == long0.cloid]
    assert len(reprice) == 1
    state, commands = step(
        state,
        ModifyRejected(
            ts=T0 + 20,
            venue=VENUE,
            cloid=long0.cloid,
            reason="order is filled",
            command_id=reprice[0].command_id,
        ),
    )
    asked = only(commands, RequestOrderStatus)
    assert asked.cloid == long0.cloid
    state, commands = step(
        state,
        OrderStatusReported(
            ts=T0 + 30,
            venue=VENUE,
            cloid=long0.cloid,
            status=ReportedStatus.FILLED,
            filled_qty=long0.qty,
            command_id=asked.command_id,
        ),
    )
    assert not state.orders[long0.cloid].is_live
    assert of_type(commands, RequestFills)


def _repricing_failed() -> tuple[State[Any], PlaceOrder]:
    """The LONG entry rests at 49999.9; the mid moves 6 % and its repricing fails at the
    venue, not applied (a request error): the entry still rests at 49999.9."""
    state, commands = started()
    long0 = placed(commands, LONG, reduce_only=False)
    state, _ = accept(state, long0, T0 + 5)
    state, commands = step(state, quote(T0 + 10, "52999.9", "53000.1"))
    reprice = [m for m in of_type(commands, ModifyOrder) if m.cloid == long0.cloid]
    assert len(reprice) == 1
    state, _ = step(
        state,
        CommandFailed(
            ts=T0 + 20, command_id=reprice[0].command_id, reason="REST error", not_applied=True
        ),
    )
    assert state.orders[long0.cloid].price == long0.price
    return state, long0


def test_an_entry_whose_repricing_failed_is_repriced_once_the_wait_is_over() -> None:
    """The failed repricing had noted the new mid as the entry's basis: the entry rested 6 %
    from the market and was repriced only after the mid moved another 5 %. The refusal
    forgets that mid, and the first quote after ``retry_ms`` reprices the entry."""
    state, long0 = _repricing_failed()
    wait = strategy(state).config.retry_ms
    state, commands = step(state, quote(T0 + 1_000, "52999.9", "53000.1"))
    assert not of_type(commands, ModifyOrder)  # waiting after the refusal
    state, commands = step(state, quote(T0 + 20 + wait, "52999.9", "53000.1"))
    assert [m.cloid for m in of_type(commands, ModifyOrder)] == [long0.cloid]
    assert hg.hedge_grid_entries_near_market(state) == []


def test_entries_near_market_is_not_judged_during_the_wait_after_a_refusal_only() -> None:
    """The invariant waits with the strategy: not judged while the latest quote predates the
    end of a wait of at most ``retry_ms``; judged from the first quote after it, and judged
    throughout a wait longer than ``retry_ms``."""
    state, _ = _repricing_failed()
    s = strategy(state)
    state, _ = step(state, quote(T0 + 1_000, "52999.9", "53000.1"))
    assert hg.hedge_grid_entries_near_market(state) == []
    late = quote(s.retry_at, "52999.9", "53000.1")
    after = attrs.evolve(state, now=s.retry_at, quotes={(VENUE, late.symbol): late})
    assert [v.invariant for v in hg.hedge_grid_entries_near_market(after)] == [
        "hedge_grid_entries_near_market"
    ]
    longer = attrs.evolve(
        state, strategy=attrs.evolve(s, retry_at=state.now + s.config.retry_ms + 1)
    )
    assert hg.hedge_grid_entries_near_market(longer) != []


def _band_violations(state: State[Any], bid: str, ask: str) -> list[str]:
    """What ``orders_within_band`` says of ``state`` once the quote is ``bid``/``ask``."""
    tick = quote(state.now + 1, bid, ask)
    after = attrs.evolve(state, now=tick.ts, quotes={(VENUE, tick.symbol): tick})
    return [v.detail for v in orders_within_band(StepRecord(before=state, event=tick, after=after))]


def test_an_averaging_entry_rests_at_its_level_however_far_the_market_ran() -> None:
    """The LONG side averages one step under its last fill (49749.9); the market runs 12 % up
    while its take-profit fills slowly: the entry stays at its level, the ladder's next level,
    and the band the strategy declares reaches it (the catalogue's 10 % does not)."""
    state, orders = with_long()
    long1 = orders["long1"]
    assert relative_distance(long1.price, Decimal("56000")) > Decimal("0.1")
    assert _band_violations(state, "55999.9", "56000.1") == []
    band = strategy(state).order_band(state)
    assert band == 2 * Decimal("0.05") + relative_distance(
        Decimal("49999.9"), state.quotes[(VENUE, long1.symbol)].mid
    ) + Decimal("0.005")


def test_an_entry_at_the_touch_left_behind_is_still_outside_the_declared_band() -> None:
    """Flat sides have no level to reach: the band is twice the reprice threshold, and level-0
    entries the market left 10.7 % behind are reported."""
    state, commands = started()
    for side in (LONG, SHORT):
        state, _ = accept(state, placed(commands, side, reduce_only=False), T0 + 5)
    assert strategy(state).order_band(state) == Decimal("0.10")
    assert len(_band_violations(state, "55999.9", "56000.1")) == 2
