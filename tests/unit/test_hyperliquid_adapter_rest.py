"""The Hyperliquid adapter's REST side against scripted venue answers (an in-process httpx
transport): every answer, failure and malformed body maps to the contract's events/errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gridcore.commands import (
    Batch,
    CancelOrder,
    ModifyOrder,
    PlaceOrder,
    RequestBalances,
    RequestOpenOrders,
    RequestOrderStatus,
    RequestPositions,
)
from gridcore.events import (
    BalanceReported,
    CancelRejected,
    CommandFailed,
    MessageMalformed,
    ModifyRejected,
    OpenOrdersReported,
    OrderAccepted,
    OrderCanceled,
    OrderModified,
    OrderRejected,
    OrderStatusReported,
    PositionsReported,
    ReportedStatus,
)
from gridcore.instruments import Instrument, PositionSide, Side, TimeInForce
from gridcore.shells.runtime import WallClock
from gridcore.shells.venue import TransportError, VenueError
from gridcore.shells.venues.hyperliquid.adapter import (
    HyperliquidAdapter,
    from_venue_cloid,
    to_venue_cloid,
)
from gridcore.shells.venues.hyperliquid.nonces import NonceAllocator

KEY = "0x0123456789012345678901234567890123456789012345678901234567890123"  # SDK test key
META = {"universe": [{"name": "BTC", "szDecimals": 5}, {"name": "ETH", "szDecimals": 4}]}
Answer = Any  # a JSON value, an httpx.Response, or an exception to raise


class Venue:
    """Scripted answers: ``meta`` always; the rest in order."""

    def __init__(self) -> None:
        self.script: list[Answer] = []
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body.get("type") == "meta":
            return httpx.Response(200, json=META)
        self.bodies.append(body)
        answer = self.script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json=answer)


def _adapter(venue: Callable[[httpx.Request], httpx.Response]) -> HyperliquidAdapter:
    clock = WallClock()
    return HyperliquidAdapter(
        base_url="http://venue.test",
        private_key=KEY,
        mainnet=False,
        coins=("ETH",),
        clock=clock,
        nonces=NonceAllocator(signer="0x0", now_ms=clock.now, path=None),
        transport=httpx.MockTransport(venue),
    )


def _place(cid: int, **kw: Any) -> PlaceOrder:
    fields: dict[str, Any] = {
        "command_id": cid, "venue": "hyperliquid", "symbol": "ETH", "cloid": f"c-{cid}",
        "side": Side.BUY, "position_side": PositionSide.BOTH, "qty": Decimal("0.01"),
        "price": Decimal("3000"),
    }  # fmt: skip
    fields.update(kw)
    return PlaceOrder(**fields)


def _ok(kind: str, statuses: list[Any]) -> dict[str, Any]:
    return {"status": "ok", "response": {"type": kind, "data": {"statuses": statuses}}}


WIRE = {"coin": "ETH", "side": "B", "limitPx": "3000", "sz": "0.004", "oid": 5, "timestamp": 1,
        "origSz": "0.01", "cloid": to_venue_cloid("c-1"), "tif": "Alo", "reduceOnly": True}  # fmt: skip


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@pytest.mark.anyio
async def test_connect_checks_meta_and_coins() -> None:
    def bad(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=["not", "meta"])

    with pytest.raises(VenueError, match="unreadable meta") as caught:
        await _adapter(bad).connect()
    assert caught.value.not_applied
    adapter = _adapter(Venue())
    adapter.coins = ("DOGE",)
    with pytest.raises(VenueError, match="not listed"):
        await adapter.connect()
    async with _adapter(Venue()) as connected:
        assert sorted(connected.assets) == ["BTC", "ETH"]
    with pytest.raises(VenueError, match="not connected"):
        await connected.execute(RequestBalances(command_id=1, venue="hyperliquid"))


@pytest.mark.anyio
async def test_transport_failures_map_to_the_contract() -> None:
    venue = Venue()
    async with _adapter(venue) as adapter:
        cases: list[tuple[Answer, type[Exception], bool]] = [
            (httpx.ConnectError("refused"), VenueError, True),
            (httpx.ReadTimeout("slow"), TransportError, False),
            (httpx.RemoteProtocolError("reset"), TransportError, False),
            (httpx.Response(404, text="no"), VenueError, True),
            (httpx.Response(500, text="oops"), VenueError, False),
            ({"status": "err", "response": "Invalid nonce: duplicate nonce 5"}, VenueError, True),
        ]
        for answer, error, not_applied in cases:
            venue.script.append(answer)
            with pytest.raises(error) as caught:
                await adapter.execute(_place(1))
            assert getattr(caught.value, "not_applied", None) is not_applied, answer


@pytest.mark.anyio
async def test_unreadable_answers_become_malformed_and_unknown() -> None:
    venue = Venue()
    async with _adapter(venue) as adapter:
        for answer in (
            httpx.Response(200, text="<html>"),
            {"status": "maybe"},
            {"status": "ok", "response": {"type": "order", "data": {"statuses": "x"}}},
            _ok("order", [{"resting": {"oid": "5"}}]),
        ):
            venue.script.append(answer)
            events = await adapter.execute(_place(1))
            assert isinstance(events[0], MessageMalformed)
            (failed,) = events[1:]
            assert isinstance(failed, CommandFailed) and not failed.not_applied


@pytest.mark.anyio
async def test_place_answers_and_refusals() -> None:
    venue = Venue()
    async with _adapter(venue) as adapter:
        venue.script.append(
            _ok("order", [{"filled": {"totalSz": "0.01", "avgPx": "3000", "oid": 9}},
                          {"error": "Insufficient margin to place order."}, "waitingForFill"])
        )  # fmt: skip
        events = await adapter.execute(
            Batch(command_id=10, venue="hyperliquid", commands=(_place(1), _place(2), _place(3), _place(4)))
        )  # fmt: skip
        kinds = [(type(e), getattr(e, "command_id", None)) for e in events]
        assert kinds == [
            (OrderAccepted, 1),
            (OrderRejected, 2),
            (CommandFailed, 3),
            (CommandFailed, 4),
        ]
        wire = venue.bodies[-1]["action"]["orders"][0]
        assert list(wire) == ["a", "b", "p", "s", "r", "t", "c"] and wire["a"] == 1
        for bad, match in (
            (_place(5, symbol="DOGE"), "unknown coin"),
            (_place(6, position_side=PositionSide.LONG), "one-way"),
            (_place(7, price=Decimal("3000.000000001")), "8 decimals"),
        ):
            with pytest.raises(VenueError, match=match) as caught:
                await adapter.execute(bad)
            assert caught.value.not_applied
        # Post-only places travel in their own action.
        venue.script += [
            _ok("order", [{"resting": {"oid": 11}}]),
            _ok("order", [{"resting": {"oid": 12}}]),
        ]
        batch = Batch(
            command_id=20,
            venue="hyperliquid",
            commands=(_place(8), _place(9, tif=TimeInForce.POST_ONLY)),
        )
        assert len(await adapter.execute(batch)) == 2
        assert [len(b["action"]["orders"]) for b in venue.bodies[-2:]] == [1, 1]


@pytest.mark.anyio
async def test_cancels_and_modifies() -> None:
    venue = Venue()
    async with _adapter(venue) as adapter:
        cancels = tuple(
            CancelOrder(command_id=i, venue="hyperliquid", symbol="ETH", cloid=f"c-{i}")
            for i in (1, 2, 3)
        )
        venue.script.append(
            _ok(
                "cancel",
                [
                    "success",
                    {"error": "Order was never placed, already canceled, or filled. asset=1"},
                ],
            )
        )
        events = await adapter.execute(Batch(command_id=9, venue="hyperliquid", commands=cancels))
        assert [type(e) for e in events] == [OrderCanceled, CancelRejected, CommandFailed]
        assert venue.bodies[-1]["action"]["cancels"][0] == {
            "asset": 1,
            "cloid": to_venue_cloid("c-1"),
        }

        def modify(cid: int, cloid: str) -> ModifyOrder:
            return ModifyOrder(
                command_id=cid,
                venue="hyperliquid",
                symbol="ETH",
                cloid=cloid,
                venue_order_id="5",
                price=Decimal("2990"),
                qty=Decimal("0.02"),
            )

        # Not placed by this process: looked up first (unknown: refused without sending).
        venue.script.append({"status": "unknownOid"})
        (refused,) = await adapter.execute(modify(1, "c-x"))
        assert isinstance(refused, ModifyRejected) and "does not know" in refused.reason
        # Known by lookup: sent with its side and tif; answers map one by one.
        venue.script += [
            {"status": "order", "order": {"order": WIRE, "status": "open", "statusTimestamp": 1}},
            {
                "status": "ok",
                "response": {"type": "order", "data": {"statuses": [{"resting": {"oid": 6}}]}},
            },
        ]
        (modified,) = await adapter.execute(modify(2, "c-1"))
        assert isinstance(modified, OrderModified) and modified.venue_order_id == "6"
        sent = venue.bodies[-1]["action"]["modifies"][0]
        assert sent["oid"] == to_venue_cloid("c-1") and sent["order"]["t"] == {
            "limit": {"tif": "Alo"}
        }
        assert sent["order"]["r"] is True
        venue.script.append(_ok("order", [{"error": "Cannot modify canceled or filled order"}]))
        (rejected,) = await adapter.execute(modify(3, "c-1"))
        assert isinstance(rejected, ModifyRejected)
        venue.script.append(_ok("order", ["waitingForFill"]))
        (unknown,) = await adapter.execute(modify(4, "c-1"))
        assert isinstance(unknown, CommandFailed) and not unknown.not_applied


@pytest.mark.anyio
async def test_requests_map_to_reports() -> None:
    venue = Venue()
    async with _adapter(venue) as adapter:
        venue.script.append([WIRE, {**WIRE, "cloid": None, "oid": 77}])
        (orders,) = await adapter.execute(RequestOpenOrders(command_id=1, venue="hyperliquid"))
        assert isinstance(orders, OpenOrdersReported)
        assert [(o.cloid, o.venue_order_id, o.filled_qty) for o in orders.orders] == [
            ("c-1", "5", Decimal("0.006")), ("oid:77", "77", Decimal("0.006")),
        ]  # fmt: skip
        state = {
            "marginSummary": {"accountValue": "1234.5"},
            "withdrawable": "1000",
            "assetPositions": [
                {"type": "oneWay", "position": {"coin": "ETH", "szi": "-0.5", "entryPx": "3100"}},
                {"type": "oneWay", "position": {"coin": "BTC", "szi": "0", "entryPx": "1"}},
            ],
        }
        venue.script += [state, state]
        (balance,) = await adapter.execute(RequestBalances(command_id=2, venue="hyperliquid"))
        assert isinstance(balance, BalanceReported)
        assert (balance.equity, balance.available, balance.asset) == (
            Decimal("1234.5"),
            Decimal(1000),
            "USDC",
        )
        (positions,) = await adapter.execute(RequestPositions(command_id=3, venue="hyperliquid"))
        assert isinstance(positions, PositionsReported)
        assert [(p.symbol, p.qty) for p in positions.positions] == [("ETH", Decimal("-0.5"))]
        for status, expected in (
            ("open", ReportedStatus.OPEN), ("triggered", ReportedStatus.OPEN),
            ("filled", ReportedStatus.FILLED), ("rejected", ReportedStatus.REJECTED),
            ("badAloPxRejected", ReportedStatus.REJECTED), ("marginCanceled", ReportedStatus.CANCELED),
            ("scheduledCancel", ReportedStatus.CANCELED),
        ):  # fmt: skip
            venue.script.append(
                {
                    "status": "order",
                    "order": {"order": WIRE, "status": status, "statusTimestamp": 1},
                }
            )
            (report,) = await adapter.execute(
                RequestOrderStatus(command_id=4, venue="hyperliquid", symbol="ETH", cloid="c-1")
            )
            assert isinstance(report, OrderStatusReported) and report.status is expected
        venue.script.append({"status": "unknownOid"})
        (missing,) = await adapter.execute(
            RequestOrderStatus(command_id=5, venue="hyperliquid", symbol="ETH", cloid="c-9")
        )
        assert (
            isinstance(missing, OrderStatusReported) and missing.status is ReportedStatus.NOT_FOUND
        )
        with pytest.raises(VenueError, match="cannot carry out"):
            await adapter._request(object())
        venue.script.append({"BTC": "65000"})
        with pytest.raises(VenueError, match="no mid for ETH"):
            await adapter.mid("ETH")


@pytest.mark.anyio
async def test_instrument_problems_name_the_field() -> None:
    async with _adapter(Venue()) as adapter:

        def inst(**kw: Any) -> Instrument:
            fields: dict[str, Any] = {
                "venue": "hyperliquid",
                "symbol": "ETH",
                "tick_size": Decimal("0.1"),
                "lot_size": Decimal("0.0001"),
                "min_notional": Decimal(10),
            }
            fields.update(kw)
            return Instrument(**fields)

        assert adapter.instrument_problems(inst(), Decimal(3200)) == []
        assert "not listed" in adapter.instrument_problems(inst(symbol="DOGE"), Decimal(1))[0]
        (lot,) = adapter.instrument_problems(inst(lot_size=Decimal("0.001")), Decimal(3200))
        assert lot.startswith("[instrument] lot_size")
        (tick,) = adapter.instrument_problems(inst(tick_size=Decimal("0.01")), Decimal(3200))
        assert tick.startswith("[instrument] tick_size") and "multiple of 0.1" in tick
        (low,) = adapter.instrument_problems(inst(min_notional=Decimal(5)), Decimal(3200))
        assert low.startswith("[instrument] min_notional")


def test_foreign_cloids_come_back_as_they_are() -> None:
    assert from_venue_cloid("0xzz") == "0xzz"
    native = "0x" + "00" * 15 + "07"
    assert from_venue_cloid(native) == native
