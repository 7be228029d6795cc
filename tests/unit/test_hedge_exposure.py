"""Hedge mode, modelled once: exposure is per position key ``(venue, symbol, position_side)``.

LONG and SHORT never net; a sell on the LONG side closes long exposure and is never new short
exposure. "Does this order close exposure?" has one definition
(:func:`gridcore.exposure.closes_exposure`) used by the risk gate, the exchange model and the
invariant catalogue, and the gate's view of exposure after any sequence of fills is the
exchange model's.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore import (
    OrderPartiallyFilled,
    PlaceOrder,
    PositionSide,
    RiskConfig,
    Side,
    Started,
    State,
    Submit,
    TimeInForce,
    step,
)
from gridcore.exposure import closes_exposure
from gridcore.instruments import PositionMode
from gridcore.risk import position_exposure
from gridcore.sim.exchange import SimConfig, SimExchange
from tests.unit.helpers import (
    EPOCH,
    SYMBOL,
    VENUE,
    Scripted,
    deliver,
    fill,
    instrument,
    intend,
    kernel_config,
    of_type,
    quote,
    run_with_exchange,
    scripted_state,
    submit,
    synced,
)

D = Decimal
SYNC_TS = EPOCH + 1_000
T0 = EPOCH + 2_000
LONG, SHORT, BOTH = PositionSide.LONG, PositionSide.SHORT, PositionSide.BOTH


def test_the_predicate_closes_reduce_only_and_hedge_mode_closes_only() -> None:
    assert closes_exposure(Side.SELL, LONG, False)
    assert closes_exposure(Side.BUY, SHORT, False)
    assert not closes_exposure(Side.BUY, LONG, False)
    assert not closes_exposure(Side.SELL, SHORT, False)
    assert not closes_exposure(Side.SELL, BOTH, False)
    assert all(closes_exposure(s, p, True) for s in Side for p in PositionSide)


def hedge_bot(max_position: str) -> State[Scripted]:
    risk = RiskConfig(max_position=D(max_position), max_order_notional=None, max_drawdown=None)
    state, _ = synced(scripted_state(kernel_config(risk=risk)))
    return state


def held(state: State[Scripted], side: PositionSide, qty: str) -> State[Scripted]:
    """``state`` after a fill of ``qty`` opening the ``side`` position at 50,000."""
    return step(
        state,
        OrderPartiallyFilled(
            ts=T0,
            fill=fill(
                f"{side.value}-{qty}",
                Side.BUY if side is LONG else Side.SELL,
                qty,
                "50000",
                ts=T0,
                position_side=side,
            ),
        ),
    )[0]


def test_long_and_short_never_net_against_max_position() -> None:
    """A LONG position does not make room for a SHORT one, nor the other way round."""
    state = held(hedge_bot("0.01"), LONG, "0.01")
    _, _, short = submit(
        state, ts=T0 + 1, side=Side.SELL, qty="0.01", price="50010", position_side=SHORT
    )
    assert short is not None  # the SHORT key is empty: 0.01 fits
    _, _, over = submit(
        state, ts=T0 + 1, side=Side.SELL, qty="0.011", price="50010", position_side=SHORT
    )
    assert over is None  # and 0.011 does not, whatever LONG holds
    _, _, more_long = submit(state, ts=T0 + 1, qty="0.001", price="49000", position_side=LONG)
    assert more_long is None  # LONG is full


def test_a_sell_on_the_long_side_is_a_close_not_new_short_exposure() -> None:
    state = held(hedge_bot("0.01"), LONG, "0.01")
    state = held(state, SHORT, "0.01")
    # Both keys are at the limit; closing either still passes, reserves nothing and is not
    # counted as exposure on any key.
    state, _, close_long = submit(
        state, ts=T0 + 1, side=Side.SELL, qty="0.01", price="50010", position_side=LONG
    )
    state, _, close_short = submit(
        state, ts=T0 + 2, side=Side.BUY, qty="0.01", price="49990", position_side=SHORT
    )
    assert close_long is not None and close_short is not None
    assert state.orders[close_long.cloid].reserved == 0
    inst = state.config.instrument(VENUE, SYMBOL)
    orders = state.orders.values()
    ledger = state.ledger
    assert position_exposure(orders, ledger, inst, LONG, Side.BUY) == D("0.01")
    assert position_exposure(orders, ledger, inst, SHORT, Side.SELL) == D("-0.01")


# --- the gate's view against the exchange model's -----------------------------------------------


def venue(mode: PositionMode) -> SimExchange:
    return SimExchange(
        SimConfig(
            venue=VENUE,
            instruments=(instrument(),),
            starting_balance=D(100_000),
            position_mode=mode,
        ),
        start_ts=EPOCH,
    )


def connected(mode: PositionMode) -> tuple[State[Scripted], SimExchange]:
    risk = RiskConfig(max_position=D("0.05"), max_order_notional=None, max_drawdown=None)
    exchange = venue(mode)
    state = scripted_state(kernel_config(risk=risk))
    tick = quote(SYNC_TS)
    exchange.on_tick(tick)
    state, started = step(state, Started(ts=SYNC_TS))
    state, _ = step(state, tick)
    state, _ = run_with_exchange(state, exchange, started, now=SYNC_TS)
    assert state.can_trade(VENUE)
    return state, exchange


def venue_exposure(exchange: SimExchange, position_side: PositionSide, side: Side) -> Decimal:
    """The exchange model's exposure of one key on one side: its position plus every resting
    order on it that adds to it."""
    total = exchange.position(SYMBOL, position_side).qty
    for o in exchange.open_orders():
        if (
            o.position_side is position_side
            and o.side is side
            and not closes_exposure(o.side, o.position_side, o.reduce_only)
        ):
            total += o.remaining if side is Side.BUY else -o.remaining
    return total


order_spec = st.tuples(
    st.sampled_from([Side.BUY, Side.SELL]),
    st.sampled_from([LONG, SHORT]),
    st.integers(min_value=1, max_value=20),  # lots of 0.001
    st.booleans(),  # reduce-only
    st.integers(min_value=-30, max_value=30),  # price offset from the mid, in ticks of 10
)


@settings(max_examples=60, deadline=None)
@given(
    mode=st.sampled_from([PositionMode.HEDGE, PositionMode.ONE_WAY]),
    plan=st.lists(st.one_of(order_spec, st.integers(-30, 30)), min_size=1, max_size=25),
)
def test_the_gates_exposure_after_any_fills_equals_the_exchange_models(
    mode: PositionMode, plan: list[Any]
) -> None:
    state, exchange = connected(mode)
    keys = [LONG, SHORT] if mode is PositionMode.HEDGE else [BOTH]
    inst = state.config.instrument(VENUE, SYMBOL)
    mid = D(50000)
    ts = T0
    for item in plan:
        ts += 1
        if isinstance(item, int):  # the market moves: resting orders may fill
            mid = D(50000) + D(item) * 10
            tick = quote(ts, mid - D("0.1"), mid + D("0.1"))
            state, _ = deliver(state, exchange, [tick, *exchange.on_tick(tick)], now=ts)
            continue
        side, position_side, lots, reduce_only, offset = item
        if mode is PositionMode.ONE_WAY:
            position_side = BOTH
        price = mid + D(offset) * 10
        intent = Submit(
            venue=VENUE,
            symbol=SYMBOL,
            side=side,
            qty=D(lots) * D("0.001"),
            price=price,
            position_side=position_side,
            reduce_only=reduce_only,
            tif=TimeInForce.GTC,
        )
        state, commands = intend(state, [intent], ts=ts)
        state, _ = run_with_exchange(state, exchange, commands, now=ts)
        for place in of_type(commands, PlaceOrder):
            assert place.position_side is position_side
        for key in keys:
            assert (
                state.ledger.position(VENUE, SYMBOL, key).qty == exchange.position(SYMBOL, key).qty
            )
            for s in Side:
                gate = position_exposure(state.orders.values(), state.ledger, inst, key, s)
                assert gate == venue_exposure(exchange, key, s), (key, s)
