"""The risk gate and breakers, through the kernel (reservations, stale data,
dangerous defaults, order rate, drawdown and error-streak breakers).

Every order of every strategy passes one gate in the step that emits it. A refused order never
leaves the core (no ``PlaceOrder``, nothing in the registry, nothing reserved) and a ``Notify``
says why, with a stable ``refused:<code>`` tag.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from gridcore import (
    Cancel,
    CancelOrder,
    CommandFailed,
    FeedDisconnected,
    FeedReconnected,
    FlattenRequested,
    Halt,
    HaltRequested,
    Level,
    Notify,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    OrderStatus,
    OrderStatusReported,
    PlaceOrder,
    PositionReport,
    PositionSide,
    ReportedStatus,
    RequestBalances,
    ResumeRequested,
    RiskConfig,
    Side,
    Started,
    State,
    Submit,
    TimeInForce,
    TimerFired,
    step,
)
from gridcore.config import load_config
from gridcore.core import MAINTENANCE_TIMER
from gridcore.numbers import ZERO
from gridcore.risk import check_order
from tests.unit.helpers import (
    EPOCH,
    SYMBOL,
    VENUE,
    Scripted,
    answer_sync,
    feed,
    fill,
    instrument,
    intend,
    kernel_config,
    of_type,
    only,
    quote,
    scripted_state,
    submit,
    synced,
)

D = Decimal
SYNC_TS = EPOCH + 1_000
T0 = EPOCH + 2_000


def bot(equity: str = "10000", **risk: Any) -> State[Scripted]:
    """A synced scripted bot (quote 49999.9 / 50000.1 at ``SYNC_TS``) with these limits."""
    limits: dict[str, Any] = {"leverage": D(10)}
    limits.update(risk)
    state, _ = synced(scripted_state(kernel_config(risk=RiskConfig(**limits))), equity=equity)
    return state


def refusals(commands: list[Any]) -> list[str]:
    return [n.code for n in of_type(commands, Notify) if n.code.startswith("refused:")]


def assert_refused(
    before: State[Scripted], after: State[Scripted], commands: list[Any], code: str
) -> None:
    """The order never left the core, nothing was reserved, and a notice says why."""
    assert of_type(commands, PlaceOrder) == []
    assert refusals(commands) == [f"refused:{code}"]
    assert after.orders == before.orders
    assert after.risk.reserved == before.risk.reserved
    note = only(commands, Notify)
    assert note.level is Level.WARNING
    assert code in note.message


# --- reservations ------------------------------------------------------------------------------


def test_an_order_reserves_its_margin_in_the_step_that_emits_it() -> None:
    """Failure `stale-balance`, `stale-balance`: the check and the reservation happen together. 0.01 at 49,000
    is 490 quote: 49 margin at 10x plus 0.245 for the 5 bps taker fee."""
    state = bot()
    state, _, place = submit(state, ts=T0, qty="0.01", price="49000")
    assert place is not None
    assert state.orders[place.cloid].reserved == D("49.245")
    assert state.risk.reserved[VENUE] == D("49.245")


def test_the_gate_refuses_when_free_margin_is_short() -> None:
    """Two orders that each fit the balance but not together: the second is refused."""
    state = bot(equity="100")
    state, _, first = submit(state, ts=T0, qty="0.02", price="49000")  # reserves 98.49
    assert first is not None
    after, commands, second = submit(state, ts=T0 + 1, qty="0.001", price="49000")
    assert second is None
    assert_refused(state, after, commands, "insufficient_margin")


def test_one_step_cannot_overdraw_with_several_orders() -> None:
    """Failure `duplicate-positions`: parallel entries drained the balance. Several orders asked for in one
    step are gated one after the other against the same reservations."""
    state = bot(equity="100")
    intents = [
        Submit(venue=VENUE, symbol=SYMBOL, side=Side.BUY, qty=D("0.01"), price=D(49000 - i))
        for i in range(5)
    ]
    state, commands = intend(state, intents, ts=T0)
    places = of_type(commands, PlaceOrder)
    assert len(places) == 2  # 2 × 49.2 fit in 100, a third does not
    assert state.risk.reserved[VENUE] <= D(100)
    assert "refused:insufficient_margin" in refusals(commands)


def _end(kind: str, place: PlaceOrder, ts: int) -> Any:
    if kind == "fill":
        return OrderFilled(
            ts=ts, fill=fill("f1", Side.BUY, place.qty, place.price, ts=ts, cloid=place.cloid)
        )
    if kind == "cancel":
        return OrderCanceled(ts=ts, venue=VENUE, cloid=place.cloid)
    if kind == "reject":
        return OrderRejected(
            ts=ts, venue=VENUE, cloid=place.cloid, reason="no", command_id=place.command_id
        )
    return CommandFailed(ts=ts, command_id=place.command_id, reason="400", not_applied=True)


@pytest.mark.parametrize("kind", ["fill", "cancel", "reject", "failed"])
def test_every_terminal_result_releases_the_reservation(kind: str) -> None:
    """Failure `unreleased-funds`: funds gone after a failed trade. Every terminal path gives it back."""
    state = bot(equity="100")
    state, _, place = submit(state, ts=T0, qty="0.02", price="49000")
    assert place is not None
    _, _, blocked = submit(state, ts=T0 + 1, qty="0.015", price="49000")
    assert blocked is None
    state, _ = step(state, _end(kind, place, T0 + 2))
    assert state.orders[place.cloid].reserved == ZERO
    assert state.risk.reserved[VENUE] == ZERO
    if kind != "fill":  # a fill uses the margin for the position instead
        _, _, again = submit(state, ts=T0 + 3, qty="0.015", price="49000")
        assert again is not None


def test_a_partial_fill_keeps_the_reservation_until_the_order_ends() -> None:
    state = bot()
    state, _, place = submit(state, ts=T0, qty="0.01", price="49000")
    assert place is not None
    state, _ = step(
        state,
        OrderPartiallyFilled(
            ts=T0 + 1, fill=fill("f1", Side.BUY, "0.004", "49000", ts=T0 + 1, cloid=place.cloid)
        ),
    )
    assert state.risk.reserved[VENUE] == D("49.245")


# --- stale data ---------------------------------------------------------------------------------


def test_an_order_on_a_stale_quote_is_refused_and_never_leaves_the_core() -> None:
    """Failure `stale-quote`: stale quotes executed. The default limit is 10 s."""
    state = bot()
    assert RiskConfig().max_quote_age_ms == 10_000
    _, _, place = submit(state, ts=SYNC_TS + 10_000)
    assert place is not None
    after, commands, refused = submit(state, ts=SYNC_TS + 10_001)
    assert refused is None
    assert_refused(state, after, commands, "stale_quote")
    assert "10001 ms old" in only(commands, Notify).message


def test_a_fresh_quote_lifts_the_refusal() -> None:
    state = bot()
    state, _, refused = submit(state, ts=SYNC_TS + 20_000)
    assert refused is None
    state, _ = step(state, quote(SYNC_TS + 20_000))
    state, _, place = submit(state, ts=SYNC_TS + 20_001)
    assert place is not None


def _restarted(state: State[Scripted], ts: int) -> State[Scripted]:
    """``state`` (re)started at ``ts`` and reconciled, with no quote since."""
    state, started = step(state, Started(ts=ts))
    state, _ = feed(state, answer_sync(started, ts=ts))
    return state


def _reconnected(state: State[Scripted], ts: int) -> State[Scripted]:
    """``state``'s feed lost and back at ``ts`` and reconciled, with no quote since."""
    state, _ = step(state, FeedDisconnected(ts=ts - 1, venue=VENUE, reason="test"))
    state, again = step(state, FeedReconnected(ts=ts, venue=VENUE))
    state, _ = feed(state, answer_sync(again, ts=ts))
    return state


@pytest.mark.parametrize("gap", [_restarted, _reconnected], ids=["restart", "reconnect"])
def test_a_quote_from_before_a_gap_prices_no_order_however_young(gap: Any) -> None:
    """Failure `quote-from-before-a-gap`: a bot restarted two seconds after its last quote
    priced its grid from it and crossed a market that had moved meanwhile. After a start or a
    reconnect, new orders wait for the venue's next quote."""
    state = gap(bot(), SYNC_TS + 2_000)
    assert state.venues[VENUE].phase.value == "synced"
    after, commands, place = submit(state, ts=SYNC_TS + 2_001)
    assert place is None
    assert_refused(state, after, commands, "stale_quote")
    assert "before" in only(commands, Notify).message
    # Closing orders wait too: their price needs the market as it is now.
    _, commands, place = submit(after, ts=SYNC_TS + 2_001, side=Side.SELL, reduce_only=True)
    assert place is None
    # The venue's clock may lag ours: a quote stamped before our restart but newer than every
    # quote seen before it is the market after the gap.
    state, _ = step(after, quote(SYNC_TS + 1_500))
    _, _, place = submit(state, ts=SYNC_TS + 2_002)
    assert place is not None


def test_an_order_on_a_stale_balance_is_refused_and_a_fresh_balance_asked_for() -> None:
    """Failure `stale-position-cache`: decisions on stale cached data. The default limit is 5 minutes."""
    state = bot()
    late = SYNC_TS + 300_001
    # The shell's clock moves the core's (a venue's quote may move it only a little at once).
    state, woke = step(state, TimerFired(ts=late, timer_id="clock"))
    state, _ = step(state, quote(late))
    _, commands, place = submit(state, ts=late)
    assert place is None
    assert "refused:stale_balance" in refusals(commands)
    # Asked once: by the housekeeping that fell due while the clock moved, or by the refusal.
    assert len(of_type([*woke, *commands], RequestBalances)) == 1


def test_repeated_identical_refusals_are_said_once() -> None:
    """A strategy retrying on every event must not flood the operator."""
    state = bot()
    state, first, _ = submit(state, ts=SYNC_TS + 20_000)
    state, second, _ = submit(state, ts=SYNC_TS + 20_000)
    assert refusals(first) == ["refused:stale_quote"]
    assert refusals(second) == []


# --- price band, sizes, position, velocity ----------------------------------------------------


def test_default_slippage_cap_is_50_bps() -> None:
    """Failure `unsafe-defaults`: a 5 % default slippage. Ours is 50 bps, in the class and in the file."""
    assert RiskConfig().slippage_cap == D("0.005")
    assert load_config().risk.slippage_cap == D("0.005")


@pytest.mark.parametrize(
    ("side", "price", "tif", "allowed"),
    [
        (Side.BUY, "50250.0", TimeInForce.GTC, True),  # crosses the ask, exactly 50 bps
        (Side.BUY, "50250.1", TimeInForce.GTC, False),
        (Side.SELL, "49750.0", TimeInForce.IOC, True),
        (Side.SELL, "49749.9", TimeInForce.IOC, False),
        (Side.BUY, "40000.0", TimeInForce.IOC, False),  # IOC is aggressive wherever it is
        (Side.BUY, "40000.0", TimeInForce.GTC, True),  # a resting bid far away risks nothing
    ],
)
def test_aggressive_orders_are_capped_at_the_band_around_the_mid(
    side: Side, price: str, tif: TimeInForce, allowed: bool
) -> None:
    state = bot()
    after, commands, place = submit(state, ts=T0, side=side, qty="0.001", price=price, tif=tif)
    if allowed:
        assert place is not None
    else:
        assert_refused(state, after, commands, "price_band")


def test_max_order_notional() -> None:
    state = bot(max_order_notional=D(1000))
    _, _, place = submit(state, ts=T0, qty="0.02", price="49000")  # 980
    assert place is not None
    after, commands, refused = submit(state, ts=T0, qty="0.021", price="49000")  # 1029
    assert refused is None
    assert_refused(state, after, commands, "max_order_notional")


def test_min_notional_except_for_reduce_only() -> None:
    state = bot()
    after, commands, refused = submit(state, ts=T0, qty="0.001", price="9999.9")  # < 10
    assert refused is None
    assert_refused(state, after, commands, "min_notional")
    _, _, enough = submit(state, ts=T0, qty="0.001", price="10000")
    assert enough is not None
    _, _, closing = submit(state, ts=T0, qty="0.001", price="9999.9", reduce_only=True)
    assert closing is not None


def test_max_position_counts_the_position_and_every_live_order_on_that_side() -> None:
    """Failure `duplicate-positions`: too many positions. Position 0.015 plus live buys 0.01 plus 0.01 more
    would be 0.035 > 0.03; selling is still allowed."""
    state = bot(max_position=D("0.03"))
    state, _ = step(
        state,
        OrderPartiallyFilled(ts=T0, fill=fill("m", Side.BUY, "0.015", "50000", ts=T0)),
    )
    state, _, first = submit(state, ts=T0 + 1, qty="0.01", price="49000")
    assert first is not None
    after, commands, second = submit(state, ts=T0 + 2, qty="0.01", price="48900")
    assert second is None
    assert_refused(state, after, commands, "max_position")
    _, _, sell = submit(state, ts=T0 + 3, side=Side.SELL, qty="0.01", price="51000")
    assert sell is not None


def test_an_order_the_venue_calls_filled_counts_until_its_fills_arrive() -> None:
    """The venue's "filled" can come before the fills themselves (a status answer, a stream
    update): the position is about to grow by them, so the gate keeps counting the order until
    they arrive. Counting it as gone let a new order take the position past ``max_position``."""
    state = bot(max_position=D("0.03"))
    state, _, first = submit(state, ts=T0, qty="0.02", price="49000")
    assert first is not None
    state, _ = step(
        state,
        OrderStatusReported(
            ts=T0 + 1,
            venue=VENUE,
            cloid=first.cloid,
            status=ReportedStatus.FILLED,
            filled_qty=D("0.02"),
        ),
    )
    assert state.orders[first.cloid].status is OrderStatus.FILLED
    assert state.orders[first.cloid].filled_qty < D("0.02")  # the fills are on their way
    after, commands, second = submit(state, ts=T0 + 2, qty="0.015", price="48900")
    assert second is None
    assert_refused(state, after, commands, "max_position")
    _, _, small = submit(state, ts=T0 + 3, qty="0.01", price="48900")
    assert small is not None  # 0.02 on its way + 0.01 is within 0.03


def test_velocity_limit_over_a_sliding_window() -> None:
    """The risk engine: an order-rate limit."""
    state = bot(max_orders_per_window=3, velocity_window_ms=10_000)
    for i in range(3):
        state, _, place = submit(state, ts=T0 + i, qty="0.001", price=str(49000 + i))
        assert place is not None
    after, commands, refused = submit(state, ts=T0 + 5, qty="0.001", price="48000")
    assert refused is None
    assert_refused(state, after, commands, "velocity")
    state, _ = step(state, quote(T0 + 10_001))
    state, _, place = submit(state, ts=T0 + 10_001, qty="0.001", price="48000")
    assert place is not None


def test_check_order_is_the_same_gate_when_called_directly() -> None:
    """The gate is a pure function: the kernel's refusal and a direct call agree."""
    state = bot()
    verdict = check_order(
        config=state.config.risk,
        risk=state.risk,
        ledger=state.ledger,
        orders=state.orders.values(),
        quotes=state.quotes,
        instrument=instrument(),
        side=Side.BUY,
        qty=D("0.01"),
        price=D("49000"),
        tif=TimeInForce.GTC,
        reduce_only=False,
        now=T0,
    )
    assert verdict == D("49.245")
    off_tick = check_order(
        config=state.config.risk,
        risk=state.risk,
        ledger=state.ledger,
        orders=(),
        quotes=state.quotes,
        instrument=instrument(),
        side=Side.BUY,
        qty=D("0.0105"),
        price=D("49000.05"),
        tif=TimeInForce.GTC,
        reduce_only=False,
        now=T0,
    )
    assert not isinstance(off_tick, Decimal)
    assert off_tick.code == "bad_qty"


# --- breakers -----------------------------------------------------------------------------------


def test_drawdown_halt_from_the_peak() -> None:
    """The risk engine: a drawdown check. Long 0.01 from 50,000; the mid falls to
    48,000 (−20 quote, over the 10 limit); the next maintenance halts and cancels."""
    state = bot(max_drawdown=D(10))
    state, _ = step(
        state, OrderPartiallyFilled(ts=T0, fill=fill("m", Side.BUY, "0.01", "50000", ts=T0))
    )
    state, _, resting = submit(state, ts=T0 + 1, qty="0.001", price="47000")
    assert resting is not None
    assert not state.risk.halted
    state, _ = step(state, quote(T0 + 2, "47999.9", "48000.1"))
    assert not state.risk.halted  # a tick touches nothing but the quote (hot path)
    state, commands = step(state, TimerFired(ts=T0 + 5_000, timer_id=MAINTENANCE_TIMER))
    assert state.risk.halted
    assert "drawdown" in only(commands, Halt).reason
    assert only(commands, CancelOrder).cloid == resting.cloid
    assert not state.can_trade(VENUE)


def test_error_streak_breaker_halts() -> None:
    state = bot(max_error_streak=3)
    places = []
    for i in range(3):
        state, _, place = submit(state, ts=T0 + i, qty="0.001", price=str(48000 + i))
        assert place is not None
        places.append(place)
    halts = []
    for i, place in enumerate(places):
        state, commands = step(
            state, CommandFailed(ts=T0 + 10 + i, command_id=place.command_id, reason="500")
        )
        halts += of_type(commands, Halt)
    assert state.risk.halted
    assert len(halts) == 1
    assert "3 errors in a row" in halts[0].reason


def test_a_success_resets_the_error_streak() -> None:
    state = bot(max_error_streak=2)
    state, _, a = submit(state, ts=T0, qty="0.001", price="48000")
    state, _, b = submit(state, ts=T0 + 1, qty="0.001", price="48001")
    state, _, c = submit(state, ts=T0 + 2, qty="0.001", price="48002")
    assert a is not None and b is not None and c is not None
    state, _ = step(state, CommandFailed(ts=T0 + 3, command_id=a.command_id, reason="500"))
    state, _ = step(
        state,
        OrderAccepted(
            ts=T0 + 4, venue=VENUE, cloid=b.cloid, venue_order_id="2", command_id=b.command_id
        ),
    )
    state, _ = step(state, CommandFailed(ts=T0 + 5, command_id=c.command_id, reason="500"))
    assert not state.risk.halted
    assert state.risk.error_streak == 1


def test_a_failed_batch_counts_each_order_in_the_error_streak() -> None:
    """Each order of a failed request is one error (the same count as five single requests)."""
    state = bot(max_error_streak=6)
    intents = [
        Submit(venue=VENUE, symbol=SYMBOL, side=Side.BUY, qty=D("0.001"), price=D(48000 + i))
        for i in range(5)
    ]
    state, commands = intend(state, intents, ts=T0)
    places = of_type(commands, PlaceOrder)
    assert len(places) == 5
    assert len(commands) == 1  # one Batch
    for place in places:
        state, _ = step(
            state,
            CommandFailed(
                ts=T0 + 1, command_id=place.command_id, reason="batch 500", not_applied=True
            ),
        )
    assert state.risk.error_streak == 5
    assert not state.risk.halted


# --- operator -------------------------------------------------------------------------------------


def test_halt_cancels_every_open_order_and_refuses_new_ones() -> None:
    state = bot()
    state, _, a = submit(state, ts=T0, qty="0.001", price="48000")
    state, _, b = submit(state, ts=T0 + 1, qty="0.001", price="48001")
    assert a is not None and b is not None
    state, commands = step(state, HaltRequested(ts=T0 + 2, reason="manual check"))
    assert "manual check" in only(commands, Halt).reason
    assert {c.cloid for c in of_type(commands, CancelOrder)} == {a.cloid, b.cloid}
    assert not state.can_trade(VENUE)
    _, commands, refused = submit(state, ts=T0 + 3, qty="0.001", price="48002")
    assert refused is None
    assert refusals(commands) == ["refused:halted"]


def test_resume_reconciles_before_trading_again() -> None:
    state = bot()
    state, _ = step(state, HaltRequested(ts=T0))
    state, commands = step(state, ResumeRequested(ts=T0 + 1))
    assert not state.risk.halted
    assert not state.can_trade(VENUE)  # reconciling first
    answers = answer_sync(commands, ts=T0 + 2)
    assert len(answers) == 4
    state, _ = step(state, quote(T0 + 2))
    state, _ = feed(state, answers)
    assert state.can_trade(VENUE)
    assert state.strategy.readies == (VENUE, VENUE)
    _, _, place = submit(state, ts=T0 + 3, qty="0.001", price="48000")
    assert place is not None


def test_resume_when_not_halted_does_nothing() -> None:
    state = bot()
    after, commands = step(state, ResumeRequested(ts=T0))
    assert commands == []
    assert after.venues == state.venues


def test_flatten_closes_exactly_the_ledger_quantity_reduce_only_ioc() -> None:
    """Failure `rollback-in-quote`: the rollback was sized in USD and the venue said "size exceeds position".
    Flatten closes the ledger's base quantity, reduce-only, IOC, inside the slippage band."""
    state = bot()
    state, _ = step(
        state, OrderPartiallyFilled(ts=T0, fill=fill("m", Side.BUY, "0.013", "50000", ts=T0))
    )
    state, _, resting = submit(state, ts=T0 + 1, qty="0.001", price="48000")
    assert resting is not None
    state, commands = step(state, FlattenRequested(ts=T0 + 2))
    assert state.risk.halted
    assert len(of_type(commands, Halt)) == 1
    assert only(commands, CancelOrder).cloid == resting.cloid
    close = only(commands, PlaceOrder)
    assert close.side is Side.SELL
    assert close.qty == D("0.013")
    assert close.reduce_only
    assert close.tif is TimeInForce.IOC
    assert close.position_side is PositionSide.BOTH
    mid = D(50000)
    assert mid * (1 - D("0.005")) <= close.price < mid
    assert close.price == D("49750.0")


def test_flatten_in_hedge_mode_closes_each_leg_with_its_position_side() -> None:
    state = bot()
    legs = [
        fill("l", Side.BUY, "0.005", "50000", ts=T0, position_side=PositionSide.LONG),
        fill("s", Side.SELL, "0.003", "50000", ts=T0, position_side=PositionSide.SHORT),
    ]
    for f in legs:
        state, _ = step(state, OrderPartiallyFilled(ts=T0, fill=f))
    state, commands = step(state, FlattenRequested(ts=T0 + 1))
    closes = {(p.position_side, p.side, p.qty) for p in of_type(commands, PlaceOrder)}
    assert closes == {
        (PositionSide.LONG, Side.SELL, D("0.005")),
        (PositionSide.SHORT, Side.BUY, D("0.003")),
    }
    assert all(p.reduce_only for p in of_type(commands, PlaceOrder))


def test_flatten_when_flat_only_halts() -> None:
    state = bot()
    state, commands = step(state, FlattenRequested(ts=T0))
    assert of_type(commands, PlaceOrder) == []
    assert state.risk.halted


def test_flatten_after_a_drift_repair_closes_the_venues_size() -> None:
    """The ledger is what flatten closes, so after the venue's size was adopted it closes that."""
    short = [
        PositionReport(
            symbol=SYMBOL, position_side=PositionSide.BOTH, qty=D("-0.007"), entry_price=D(1)
        )
    ]
    state, recheck = synced(scripted_state(), positions=short)
    assert state.ledger.drift_repairs == 0  # seen once: re-checked before it is repaired
    state, _ = feed(state, answer_sync(recheck, ts=T0 + 1, positions=short))
    assert state.ledger.drift_repairs == 1
    assert state.ledger.position(VENUE, SYMBOL).qty == D("-0.007")
    state, commands = step(state, FlattenRequested(ts=T0 + 2))
    close = only(commands, PlaceOrder)
    assert (close.side, close.qty, close.reduce_only) == (Side.BUY, D("0.007"), True)


def test_cancel_intent_for_an_unknown_or_finished_order_is_ignored() -> None:
    state = bot()
    after, commands = intend(state, [Cancel(cloid="nope")], ts=T0)
    assert of_type(commands, CancelOrder) == []
    assert after.orders == state.orders


def test_flatten_with_a_position_on_an_instrument_the_bot_does_not_trade_still_flattens() -> None:
    """The emergency stop must work when the account also holds something the bot does not
    trade (a manual ETH position on the same account, reported by the venue and adopted by
    the drift repair). Flatten must not raise; it halts and closes the instrument it trades."""
    eth = [
        PositionReport(
            symbol="ETH-PERP", position_side=PositionSide.BOTH, qty=D(1), entry_price=D(3000)
        )
    ]
    state, commands = synced(scripted_state(), positions=eth)
    state, _ = feed(state, answer_sync(commands, ts=SYNC_TS, positions=eth))
    state, _ = step(
        state, OrderPartiallyFilled(ts=T0, fill=fill("m", Side.BUY, "0.005", "50000", ts=T0))
    )
    state, commands = step(state, FlattenRequested(ts=T0 + 1))
    assert state.risk.halted
    assert len(of_type(commands, Halt)) == 1
    close = only(commands, PlaceOrder)
    assert (close.symbol, close.side, close.qty) == (SYMBOL, Side.SELL, D("0.005"))
