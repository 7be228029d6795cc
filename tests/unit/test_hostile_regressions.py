"""One test per way a hostile venue message crashed or poisoned the reducer (found by the
hostile-event fuzz, ``tests/property/test_hostile_input.py``), and per plausibility rule.

Before events validated their fields, a NaN or infinite number reached the ledger, the
drawdown check or the lifecycle and raised ``decimal.InvalidOperation`` inside ``step`` (22
distinct crash sites in 300 fuzz runs); a poisoned ledger then crashed later, unrelated events
(a timer, a restart). Now construction refuses them, and ``step`` refuses what is valid one by
one but absurd in context.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from gridcore import (
    BalanceReported,
    FeedReconnected,
    Fill,
    FundingPaid,
    Halt,
    Notify,
    OpenOrder,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    OrderStatus,
    OrderStatusReported,
    PositionReport,
    PositionSide,
    PositionsReported,
    QuoteTicked,
    ReportedStatus,
    Side,
    TimerFired,
    step,
)
from gridcore.errors import ContractError, InvalidEvent
from gridcore.events import TS_MAX
from gridcore.shells.csvdata import DataError, read_quotes
from tests.unit.helpers import (
    EPOCH,
    SYMBOL,
    VENUE,
    instrument,
    quote,
    scripted_state,
    submit,
    synced,
)

T0 = EPOCH + 2_000
D = Decimal


def _fill(**overrides: Any) -> Fill:
    fields: dict[str, Any] = {
        "ts": T0,
        "venue": VENUE,
        "symbol": SYMBOL,
        "fill_id": "f1",
        "cloid": None,
        "venue_order_id": None,
        "side": Side.BUY,
        "position_side": PositionSide.BOTH,
        "price": D(50_000),
        "qty": D("0.001"),
        "fee": D("0.01"),
    }
    fields.update(overrides)
    return Fill(**fields)


def _codes(commands: list[Any]) -> list[str]:
    return [c.code for c in commands if isinstance(c, Notify)]


# --- construction: the values that crashed step now never reach it ---------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("price", D("NaN")),  # ledger: average entry of NaN
        ("price", D("sNaN")),
        ("qty", D("Infinity")),  # ledger: position of inf
        ("qty", D(0)),  # a zero-quantity fill
        ("qty", D(-1)),  # a negative fill
        ("fee", D("NaN")),  # drawdown check on a NaN PnL (crashed the next timer)
        ("price", D("1e30")),
        ("ts", EPOCH * 1000),  # microseconds
        ("ts", EPOCH // 1000),  # seconds
    ],
)
def test_a_fill_refuses_what_crashed_the_ledger(field: str, value: object) -> None:
    with pytest.raises(InvalidEvent, match=rf"Fill\.{field} = "):
        _fill(**{field: value})


def test_invalid_event_is_a_contract_error_and_a_value_error() -> None:
    with pytest.raises(ContractError):
        _fill(price=D(0))
    with pytest.raises(ValueError, match="MessageMalformed"):
        _fill(price=D(0))


def test_a_status_report_with_a_nan_filled_quantity_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="filled_qty"):
        OrderStatusReported(
            ts=T0, venue=VENUE, cloid="c", status=ReportedStatus.OPEN, filled_qty=D("sNaN")
        )


def test_a_position_report_with_a_nan_size_or_negative_entry_is_refused() -> None:
    with pytest.raises(InvalidEvent, match=r"PositionReport\.qty"):
        PositionReport(
            symbol=SYMBOL, position_side=PositionSide.BOTH, qty=D("sNaN"), entry_price=D(1)
        )
    with pytest.raises(InvalidEvent, match="entry_price"):
        PositionReport(symbol=SYMBOL, position_side=PositionSide.BOTH, qty=D(1), entry_price=D(-1))


def test_a_nan_funding_payment_is_refused() -> None:
    with pytest.raises(InvalidEvent, match=r"FundingPaid\.amount"):
        FundingPaid(
            ts=T0,
            venue=VENUE,
            symbol=SYMBOL,
            position_side=PositionSide.BOTH,
            amount=D("NaN"),
            payment_id="p",
        )


@pytest.mark.parametrize(
    ("bid", "ask", "ts"),
    [
        (D("NaN"), D(1), T0),
        (D(1), D("Infinity"), T0),
        (D(0), D(1), T0),
        (D(2), D(1), T0),
        (D(1), D("1e40"), T0),
        (D(1), D(2), T0 * 1000),
        (D(1), D(2), TS_MAX),
    ],
)
def test_a_quote_refuses_nan_inf_zero_crossed_huge_and_microseconds(
    bid: Decimal, ask: Decimal, ts: int
) -> None:
    with pytest.raises(InvalidEvent, match="QuoteTicked"):
        QuoteTicked(ts=ts, venue=VENUE, symbol=SYMBOL, bid=bid, ask=ask)


def test_an_open_order_that_filled_its_whole_size_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="filled_qty"):
        OpenOrder(
            cloid="c",
            venue_order_id="1",
            symbol=SYMBOL,
            side=Side.BUY,
            position_side=PositionSide.BOTH,
            price=D(1),
            qty=D(1),
            filled_qty=D(1),
        )


def test_an_amendment_to_zero_is_refused() -> None:
    with pytest.raises(InvalidEvent, match=r"OrderModified\.qty"):
        OrderModified(ts=T0, venue=VENUE, cloid="c", price=D(1), qty=D(0))


def test_a_csv_time_no_event_accepts_names_its_line() -> None:
    # Milliseconds (13 digits, read as such) in the year 2100: no event may carry it.
    lines = ["timestamp,bid,ask", "4102444800000,100.0,100.1"]
    with pytest.raises(DataError, match=r"q\.csv:2: timestamp: QuoteTicked\.ts = "):
        list(read_quotes(iter(lines), instrument=instrument(), source="q.csv"))


# --- step: valid one by one, absurd in context ------------------------------------------------


def _bot() -> Any:
    state, _ = synced(scripted_state())
    return state


def test_a_far_future_quote_does_not_move_the_clock_and_trading_goes_on() -> None:
    state = _bot()
    now = state.now
    state, commands = step(state, quote(TS_MAX - 1))
    assert state.now == now
    assert "clock_ahead" in _codes(commands)
    state, _ = step(state, quote(now + 1_000))
    _, _, place = submit(state, ts=now + 1_001)
    assert place is not None  # the quote at now + 1 s is fresh: not frozen


def test_a_far_future_fill_is_booked_as_of_the_clock() -> None:
    state = _bot()
    now = state.now
    state, commands = step(state, OrderFilled(ts=now, fill=_fill(ts=TS_MAX - 1)))
    assert "clock_ahead" in _codes(commands)
    assert state.ledger.position(VENUE, SYMBOL).qty == D("0.001")
    assert state.ledger.last_fill_ts[VENUE] == now  # "fills since" stays in the present


def test_a_quote_a_million_times_away_is_refused_until_confirmed() -> None:
    state = _bot()
    last = state.quotes[(VENUE, SYMBOL)]
    far = [quote(state.now + i, "50000000000", "50000000000.1") for i in (1, 2, 3)]
    state, commands = step(state, far[0])
    assert state.quotes[(VENUE, SYMBOL)] == last
    assert "implausible_quote" in _codes(commands)
    state, _ = step(state, far[1])
    assert state.quotes[(VENUE, SYMBOL)] == last
    state, commands = step(state, far[2])
    assert state.quotes[(VENUE, SYMBOL)] == far[2]
    assert "quote_jump_accepted" in _codes(commands)


def test_outliers_separated_by_normal_quotes_are_never_believed() -> None:
    state = _bot()
    last = state.quotes[(VENUE, SYMBOL)]
    for _ in range(5):
        state, commands = step(state, quote(state.now + 1, "1", "1.1"))
        assert "implausible_quote" in _codes(commands)
        state, _ = step(state, quote(state.now + 1))
    assert state.quotes[(VENUE, SYMBOL)].bid == last.bid


def test_a_fill_far_from_the_market_halts_and_is_not_booked() -> None:
    state = _bot()
    state, commands = step(state, OrderFilled(ts=state.now, fill=_fill(price=D("1e17"))))
    assert state.ledger.position(VENUE, SYMBOL).qty == 0
    assert state.risk.halted
    assert any(isinstance(c, Halt) for c in commands)
    assert "implausible_fill" in _codes(commands)


def test_an_amendment_below_the_filled_quantity_is_not_applied() -> None:
    state = _bot()
    state, _, place = submit(state, ts=T0, qty="0.002", price="49000")
    assert place is not None
    state, _ = step(
        state,
        OrderPartiallyFilled(
            ts=T0 + 1, fill=_fill(ts=T0 + 1, cloid=place.cloid, qty=D("0.001"), price=D(49_000))
        ),
    )
    before = state.orders[place.cloid]
    state, commands = step(
        state,
        OrderModified(ts=T0 + 2, venue=VENUE, cloid=place.cloid, price=D(49_000), qty=D("0.001")),
    )
    assert state.orders[place.cloid].qty == before.qty
    assert "order_anomaly" in _codes(commands)


def test_an_unknown_venue_is_ignored_and_never_reconciled() -> None:
    state = _bot()
    state, commands = step(state, FeedReconnected(ts=state.now, venue="elsewhere"))
    assert "elsewhere" not in state.venues
    assert _codes(commands) == ["unknown_venue"]


def test_a_position_on_an_unknown_symbol_is_left_alone() -> None:
    state = _bot()
    foreign = PositionReport(
        symbol="DOGE-PERP", position_side=PositionSide.BOTH, qty=D(5), entry_price=D("0.1")
    )
    for i in range(6):  # more than the re-check allowance: never a halt, never a repair
        state, commands = step(
            state, PositionsReported(ts=state.now + i, venue=VENUE, positions=(foreign,))
        )
        assert "foreign_position" in _codes(commands)
    assert not state.risk.halted
    assert state.ledger.drift_repairs == 0


def test_a_timer_after_hostile_input_still_runs() -> None:
    state = _bot()
    state, _ = step(state, OrderFilled(ts=state.now, fill=_fill(price=D("1e-17"))))
    state, _ = step(state, TimerFired(ts=state.now + 5_000, timer_id="gridcore:maintenance"))
    assert state.risk.halted  # the implausible fill halted; nothing crashed


def test_a_balance_below_the_reservations_halts_and_cancels() -> None:
    state = _bot()
    state, _, place = submit(state, ts=T0, qty="0.002", price="49000")
    assert place is not None and state.risk.reserved[VENUE] > 0
    state, commands = step(
        state,
        BalanceReported(ts=T0 + 1, venue=VENUE, asset="USD", equity=D(-1), available=D(0)),
    )
    assert state.risk.halted
    assert any(isinstance(c, Halt) for c in commands)
    assert state.orders[place.cloid].status is OrderStatus.PENDING_CANCEL
