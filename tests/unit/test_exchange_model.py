"""The exchange model answers like a venue: matching, fees, partial fills, funding, margin and
every rejection a venue makes (issue 3, item 1)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gridcore.commands import (
    Batch,
    CancelOrder,
    ModifyOrder,
    PlaceOrder,
    RequestBalances,
    RequestFills,
    RequestOpenOrders,
    RequestOrderStatus,
    RequestPositions,
)
from gridcore.events import (
    BalanceReported,
    CancelRejected,
    FillsReported,
    FundingPaid,
    ModifyRejected,
    OpenOrdersReported,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    OrderRejected,
    OrderStatusReported,
    PositionsReported,
    QuoteTicked,
    ReportedStatus,
)
from gridcore.instruments import Instrument, PositionMode, PositionSide, Side, TimeInForce
from gridcore.sim import SimConfig, SimExchange
from tests.unit.helpers import EPOCH

D = Decimal
BTC = Instrument(
    venue="sim",
    symbol="BTC-PERP",
    tick_size=D("0.1"),
    lot_size=D("0.001"),
    min_notional=D(10),
    maker_fee=D("0.0002"),
    taker_fee=D("0.0005"),
)
ETH = Instrument(venue="sim", symbol="ETH-PERP", tick_size=D("0.01"), lot_size=D("0.01"))


def venue(**overrides: object) -> SimExchange:
    config = SimConfig(instruments=(BTC, ETH), **overrides)  # type: ignore[arg-type]
    ex = SimExchange(config, start_ts=EPOCH)
    ex.on_tick(quote(1, "50000", "50000.1"))
    return ex


def quote(ts: int, bid: str, ask: str, symbol: str = "BTC-PERP") -> QuoteTicked:
    return QuoteTicked(ts=EPOCH + ts, venue="sim", symbol=symbol, bid=D(bid), ask=D(ask))


_ids = iter(range(1, 10**9))


def place(
    side: Side,
    qty: str,
    price: str,
    *,
    cloid: str | None = None,
    symbol: str = "BTC-PERP",
    tif: TimeInForce = TimeInForce.GTC,
    reduce_only: bool = False,
    position_side: PositionSide = PositionSide.BOTH,
) -> PlaceOrder:
    n = next(_ids)
    return PlaceOrder(
        command_id=n,
        venue="sim",
        symbol=symbol,
        cloid=cloid or f"c{n}",
        side=side,
        position_side=position_side,
        qty=D(qty),
        price=D(price),
        tif=tif,
        reduce_only=reduce_only,
    )


def test_resting_buy_fills_as_maker_when_the_ask_trades_through() -> None:
    ex = venue()
    [ack] = ex.handle(place(Side.BUY, "0.002", "49900"), now=EPOCH + 2)
    assert isinstance(ack, OrderAccepted) and ack.command_id is not None
    assert ex.on_tick(quote(3, "49950", "49950.1")) == []
    [fill] = ex.on_tick(quote(4, "49899.9", "49900"))
    assert isinstance(fill, OrderFilled)
    assert fill.fill.price == D("49900") and fill.fill.qty == D("0.002") and fill.fill.is_maker
    assert fill.fill.fee == D("0.002") * D("49900") * D("0.0002")
    assert ex.position("BTC-PERP").qty == D("0.002")
    assert ex.open_orders() == []


def test_crossing_limit_takes_at_the_touch_and_pays_taker() -> None:
    ex = venue()
    events = ex.handle(place(Side.BUY, "0.001", "50100"), now=EPOCH + 2)
    assert [type(e) for e in events] == [OrderAccepted, OrderFilled]
    fill = events[1]
    assert isinstance(fill, OrderFilled)
    assert fill.fill.price == D("50000.1") and not fill.fill.is_maker
    assert fill.fill.fee == D("0.001") * D("50000.1") * D("0.0005")


def test_ioc_remainder_is_canceled_and_partial_fills_follow_liquidity() -> None:
    ex = venue(liquidity=D("0.001"))
    events = ex.handle(place(Side.BUY, "0.003", "50100", tif=TimeInForce.IOC), now=EPOCH + 2)
    assert [type(e) for e in events] == [OrderAccepted, OrderPartiallyFilled, OrderCanceled]
    ex.handle(place(Side.SELL, "0.003", "50200"), now=EPOCH + 3)
    fills = ex.on_tick(quote(4, "50200", "50200.1"))
    fills += ex.on_tick(quote(5, "50200", "50200.1"))
    fills += ex.on_tick(quote(6, "50200", "50200.1"))
    assert [type(e) for e in fills] == [OrderPartiallyFilled, OrderPartiallyFilled, OrderFilled]
    assert sum(e.fill.qty for e in fills if isinstance(e, OrderPartiallyFilled | OrderFilled)) == D(
        "0.003"
    )


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (place(Side.BUY, "0.0015", "49000"), "not a positive multiple of lot"),
        (place(Side.BUY, "0.001", "49000.05"), "not a positive multiple of tick"),
        (place(Side.BUY, "0.0001", "49000"), "not a positive multiple of lot"),
        (place(Side.BUY, "0.0002", "49000"), "not a positive multiple of lot"),
        (place(Side.BUY, "0.001", "9000"), "under the minimum"),
        (place(Side.BUY, "5", "49000"), "insufficient margin"),
        (place(Side.SELL, "0.001", "50100", reduce_only=True), "would increase"),
        (place(Side.BUY, "0.001", "50100", tif=TimeInForce.POST_ONLY), "post-only"),
        (place(Side.BUY, "0.001", "49000", symbol="DOGE"), "unknown instrument"),
        (
            place(Side.BUY, "0.001", "49000", position_side=PositionSide.LONG),
            "one-way mode",
        ),
    ],
)
def test_rejections_name_the_reason(command: PlaceOrder, reason: str) -> None:
    ex = venue()
    [event] = ex.handle(command, now=EPOCH + 2)
    assert isinstance(event, OrderRejected)
    assert reason in event.reason
    assert event.command_id == command.command_id
    [status] = ex.handle(
        RequestOrderStatus(command_id=99, venue="sim", symbol=command.symbol, cloid=command.cloid),
        now=EPOCH + 3,
    )
    assert isinstance(status, OrderStatusReported)
    # A venue does not keep orders for instruments it does not list.
    expected = ReportedStatus.NOT_FOUND if command.symbol == "DOGE" else ReportedStatus.REJECTED
    assert status.status is expected


def test_duplicate_cloid_is_rejected_and_never_placed_twice() -> None:
    ex = venue()
    first = place(Side.BUY, "0.001", "49000", cloid="same")
    again = place(Side.BUY, "0.001", "49000", cloid="same")
    assert isinstance(ex.handle(first, now=EPOCH + 2)[0], OrderAccepted)
    [event] = ex.handle(again, now=EPOCH + 3)
    assert isinstance(event, OrderRejected) and "duplicate" in event.reason
    assert len(ex.open_orders()) == 1


def test_cancel_of_filled_or_unknown_order_is_a_cancel_rejection() -> None:
    ex = venue()
    cmd = place(Side.BUY, "0.001", "50100")
    ex.handle(cmd, now=EPOCH + 2)  # filled at once
    [filled] = ex.handle(
        CancelOrder(command_id=50, venue="sim", symbol="BTC-PERP", cloid=cmd.cloid), now=EPOCH + 3
    )
    assert isinstance(filled, CancelRejected) and "filled" in filled.reason
    [unknown] = ex.handle(
        CancelOrder(command_id=51, venue="sim", symbol="BTC-PERP", cloid="nope"), now=EPOCH + 3
    )
    assert isinstance(unknown, CancelRejected) and "unknown" in unknown.reason


def test_cancel_and_modify_of_a_resting_order() -> None:
    ex = venue()
    cmd = place(Side.BUY, "0.002", "49000")
    ex.handle(cmd, now=EPOCH + 2)
    [modified] = ex.handle(
        ModifyOrder(
            command_id=60,
            venue="sim",
            symbol="BTC-PERP",
            cloid=cmd.cloid,
            venue_order_id=None,
            price=D("48000"),
            qty=D("0.003"),
        ),
        now=EPOCH + 3,
    )
    assert isinstance(modified, OrderModified) and modified.price == D("48000")
    [canceled] = ex.handle(
        CancelOrder(command_id=61, venue="sim", symbol="BTC-PERP", cloid=cmd.cloid), now=EPOCH + 4
    )
    assert isinstance(canceled, OrderCanceled) and canceled.command_id == 61
    [failed] = ex.handle(
        ModifyOrder(
            command_id=62,
            venue="sim",
            symbol="BTC-PERP",
            cloid=cmd.cloid,
            venue_order_id=None,
            price=D("48000"),
            qty=D("0.003"),
        ),
        now=EPOCH + 5,
    )
    assert isinstance(failed, ModifyRejected) and failed.command_id == 62


def test_reports_answer_every_request_with_its_command_id() -> None:
    ex = venue()
    ex.handle(place(Side.BUY, "0.001", "50100"), now=EPOCH + 2)
    ex.handle(place(Side.SELL, "0.002", "51000"), now=EPOCH + 3)
    batch = Batch(
        command_id=70,
        venue="sim",
        commands=(place(Side.BUY, "0.001", "49000"), place(Side.BUY, "0.001", "48000")),
    )
    assert [type(e) for e in ex.handle(batch, now=EPOCH + 4)] == [OrderAccepted, OrderAccepted]
    [positions] = ex.handle(RequestPositions(command_id=71, venue="sim"), now=EPOCH + 5)
    assert isinstance(positions, PositionsReported) and positions.command_id == 71
    assert [(p.symbol, p.qty) for p in positions.positions] == [("BTC-PERP", D("0.001"))]
    [orders] = ex.handle(RequestOpenOrders(command_id=72, venue="sim"), now=EPOCH + 5)
    assert isinstance(orders, OpenOrdersReported) and len(orders.orders) == 3
    [fills] = ex.handle(RequestFills(command_id=73, venue="sim", since=0), now=EPOCH + 5)
    assert isinstance(fills, FillsReported) and len(fills.fills) == 1
    [later] = ex.handle(RequestFills(command_id=74, venue="sim", since=EPOCH + 3), now=EPOCH + 5)
    assert isinstance(later, FillsReported) and later.fills == ()
    [balance] = ex.handle(RequestBalances(command_id=75, venue="sim"), now=EPOCH + 5)
    assert isinstance(balance, BalanceReported)
    assert balance.equity == ex.equity() and balance.available < balance.equity


def test_funding_is_paid_at_intervals_on_the_mark() -> None:
    ex = venue(funding_interval_ms=1_000, funding_rate=D("0.001"))
    ex.handle(place(Side.BUY, "0.01", "50100"), now=EPOCH + 2)
    events = ex.on_tick(quote(1_000, "50000", "50000.2"))
    paid = [e for e in events if isinstance(e, FundingPaid)]
    assert len(paid) == 1
    assert paid[0].amount == -(D("0.01") * D("50000.1") * D("0.001"))
    assert ex.position("BTC-PERP").funding == paid[0].amount
    assert ex.on_tick(quote(1_500, "50000", "50000.2")) == []


def test_hedge_mode_keeps_long_and_short_apart_and_closes_are_bounded() -> None:
    ex = venue(position_mode=PositionMode.HEDGE)
    ex.handle(place(Side.BUY, "0.002", "50100", position_side=PositionSide.LONG), now=EPOCH + 2)
    ex.handle(place(Side.SELL, "0.001", "49900", position_side=PositionSide.SHORT), now=EPOCH + 3)
    assert ex.position("BTC-PERP", PositionSide.LONG).qty == D("0.002")
    assert ex.position("BTC-PERP", PositionSide.SHORT).qty == D("-0.001")
    [too_big] = ex.handle(
        place(Side.SELL, "0.003", "49900", position_side=PositionSide.LONG), now=EPOCH + 4
    )
    assert isinstance(too_big, OrderRejected) and "exceeds position" in too_big.reason
    [one_way] = ex.handle(place(Side.BUY, "0.001", "49000"), now=EPOCH + 5)
    assert isinstance(one_way, OrderRejected) and "hedge mode" in one_way.reason


def test_balance_is_start_plus_realized_minus_fees_plus_funding() -> None:
    ex = venue()
    ex.handle(place(Side.BUY, "0.01", "50100"), now=EPOCH + 2)
    ex.on_tick(quote(3, "50500", "50500.1"))
    ex.handle(place(Side.SELL, "0.01", "50400"), now=EPOCH + 4)
    pos = ex.position("BTC-PERP")
    assert pos.qty == 0
    assert ex.cash == D(10_000) + pos.realized - pos.fees + pos.funding
    assert pos.realized == D("0.01") * (D("50500") - D("50000.1"))


def test_instruments_are_matched_independently() -> None:
    ex = venue()
    ex.on_tick(quote(2, "3000", "3000.01", symbol="ETH-PERP"))
    ex.handle(place(Side.BUY, "1", "2990", symbol="ETH-PERP"), now=EPOCH + 3)
    ex.handle(place(Side.BUY, "0.001", "49000"), now=EPOCH + 3)
    fills = ex.on_tick(quote(4, "2980", "2985", symbol="ETH-PERP"))
    assert [e.fill.symbol for e in fills if isinstance(e, OrderFilled)] == ["ETH-PERP"]
    assert len(ex.open_orders()) == 1


def test_copy_is_independent() -> None:
    ex = venue()
    twin = ex.copy()
    ex.handle(place(Side.BUY, "0.001", "49000"), now=EPOCH + 2)
    assert len(ex.open_orders()) == 1 and twin.open_orders() == []
