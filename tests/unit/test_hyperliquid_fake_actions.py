"""The Hyperliquid fake's handlers in-process (no sockets): every /info type and /exchange action
it serves, and what it refuses, in the venue's words."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from gridcore.shells.venues.hyperliquid.fake import HyperliquidFake, _BadBody, _sim_reason
from gridcore.shells.venues.hyperliquid.signing import address_of, sign_l1_action

KEY = "0x0123456789012345678901234567890123456789012345678901234567890123"  # SDK test key
ADDRESS = address_of(KEY)
NOW = 1_750_000_000_000
GTC = {"limit": {"tif": "Gtc"}}


class _Venue:
    def __init__(self, **kwargs: Any) -> None:
        self.fake = HyperliquidFake(account=ADDRESS, now_ms=lambda: NOW, **kwargs)
        self.nonce = NOW - 1_000

    def send(self, action: dict[str, Any], **extra: Any) -> Any:
        self.nonce += 1
        body = {
            "action": action,
            "nonce": self.nonce,
            "signature": sign_l1_action(
                KEY,
                action,
                nonce=self.nonce,
                mainnet=False,
                expires_after=extra.get("expiresAfter"),
            ),
            "vaultAddress": None,
            "expiresAfter": None,
            **extra,
        }
        return self.fake._exchange(body)

    def info(self, kind: str, **fields: Any) -> Any:
        return self.fake._info({"type": kind, "user": ADDRESS, **fields})

    def mid(self) -> Decimal:
        return self.fake.mids["ETH"]

    def order(self, price: str, size: str = "0.01", buy: bool = True, **wire: Any) -> Any:
        order = {"a": 1, "b": buy, "p": price, "s": size, "r": False, "t": GTC, **wire}
        answer = self.send({"type": "order", "orders": [order], "grouping": "na"})
        assert answer["status"] == "ok", answer
        return answer["response"]["data"]["statuses"][0]


def _low(venue: _Venue) -> str:
    return str(int(venue.mid() * Decimal("0.9")))


def test_market_data_info() -> None:
    v = _Venue()
    assert v.info("spotMeta") == {"universe": [], "tokens": []}
    meta, ctxs = v.info("metaAndAssetCtxs")
    assert meta == v.fake.meta and len(ctxs) == 2 and "markPx" in ctxs[0]
    assert set(v.info("allMids")) == {"BTC", "ETH"}
    book = v.info("l2Book", coin="ETH")
    bid, ask = book["levels"][0][0]["px"], book["levels"][1][0]["px"]
    assert Decimal(bid) < Decimal(ask)
    assert v.info("userRateLimit")["nRequestsCap"] == 10_000
    with pytest.raises(_BadBody):
        v.info("candleSnapshot")


def test_positions_orders_and_status_after_modify() -> None:
    v = _Venue()
    filled = v.order(str(int(v.mid() * Decimal("1.05"))), "0.02")
    assert "filled" in filled
    state = v.info("clearinghouseState")
    (position,) = state["assetPositions"]
    assert position["position"]["szi"] == "0.02" and Decimal(state["withdrawable"]) > 0
    assert (
        v.fake._info({"type": "clearinghouseState", "user": "0x" + "2" * 40})["assetPositions"]
        == []
    )
    closing = v.order(_low(v) + "0", "0.01", buy=False, r=True, c="0x" + "ab" * 16)
    assert "resting" in closing  # reduce-only sell far above: rests
    (front,) = v.info("frontendOpenOrders")
    assert (
        front["reduceOnly"] is True and front["tif"] == "Gtc" and front["cloid"] == "0x" + "ab" * 16
    )
    (plain,) = v.info("openOrders")
    assert plain["reduceOnly"] is True
    oid = closing["resting"]["oid"]
    wire = {"a": 1, "b": False, "p": _low(v) + "1", "s": "0.01", "r": True, "t": GTC}
    assert v.send({"type": "modify", "oid": oid, "order": wire}) == {
        "status": "ok",
        "response": {"type": "default"},
    }
    old = v.info("orderStatus", oid=oid)
    assert old["order"]["status"] == "canceled" and old["order"]["order"]["oid"] == oid
    assert v.info("orderStatus", oid="0x" + "ab" * 16)["order"]["status"] == "open"
    # A modify of the old oid: the venue no longer has that order.
    refused = v.send({"type": "modify", "oid": oid, "order": wire})
    assert refused == {"status": "err", "response": "Cannot modify canceled or filled order"}
    # A modify may not turn a sell into a buy, or carry a bad order.
    new_oid = v.info("openOrders")[0]["oid"]
    flipped = v.send(
        {"type": "batchModify", "modifies": [{"oid": new_oid, "order": {**wire, "b": True}}]}
    )
    assert flipped["response"]["data"]["statuses"] == [
        {"error": "fake: a modify may change only price and size"}
    ]
    off_tick = v.send(
        {"type": "batchModify", "modifies": [{"oid": new_oid, "order": {**wire, "p": "1.234567"}}]}
    )
    assert off_tick["response"]["data"]["statuses"] == [
        {"error": "Price must be divisible by tick size."}
    ]
    # A reduce-only order that would increase the position, and one too big for the margin.
    assert v.order(_low(v), "0.01", r=True) == {
        "error": "Reduce only order would increase position."
    }
    assert v.order(_low(v), "900") == {"error": "Insufficient margin to place order."}


def test_orders_the_fake_refuses() -> None:
    v = _Venue()
    low = _low(v)
    trigger = {"trigger": {"isMarket": True, "triggerPx": low, "tpsl": "sl"}}
    assert v.order(low, t=trigger) == {"error": "fake: trigger orders are not supported"}
    assert v.order(low, t={"limit": {"tif": "FrontendMarket"}})["error"].startswith(
        "fake: unsupported tif"
    )
    assert v.order(low, "0.000001") == {"error": "Order has invalid size."}
    cloid = "0x" + "01" * 16
    assert "resting" in v.order(low, c=cloid)
    assert v.order(low, c=cloid) == {"error": "Duplicate cloid."}
    with pytest.raises(ValueError, match="unknown asset"):
        v.order(low, a=99)
    with pytest.raises(ValueError, match="decimal string"):
        v.order(100)  # type: ignore[arg-type]
    for bad in ("abc", "Infinity"):
        with pytest.raises(ValueError, match="not"):
            v.order(bad)
    cancel = v.send({"type": "cancel", "cancels": [{"a": 1, "o": "oops"}]})
    assert cancel["response"]["data"]["statuses"][0]["error"].startswith("Order was never placed")
    with pytest.raises(ValueError, match="bad oid"):
        v.send({"type": "cancel", "cancels": [{"a": 1, "o": None}]})
    assert v.send({"type": "withdraw3"}) == {
        "status": "err",
        "response": "fake: unsupported action type 'withdraw3'",
    }


def test_action_level_refusals() -> None:
    v = _Venue()
    expired = v.send({"type": "noop"}, expiresAfter=NOW - 1)
    assert expired["status"] == "err" and "expired" in expired["response"]
    assert v.send({"type": "noop"}, expiresAfter=NOW + 60_000)["status"] == "ok"
    with pytest.raises(_BadBody):
        v.fake._exchange({"action": {"type": "noop"}, "nonce": True, "signature": {}})
    with pytest.raises(_BadBody):
        v.fake._exchange({"action": {"type": "noop"}, "nonce": 5, "signature": {"r": "x"}})


def test_schedule_cancel_limits() -> None:
    """The venue counts fires, not armings: at most 10 a UTC day, then arming is refused."""
    v = _Venue()
    now = [NOW]
    v.fake._now_ms = lambda: now[0]
    ok = {"status": "ok", "response": {"type": "default"}}
    assert v.send({"type": "scheduleCancel"}) == ok  # clearing needs no time
    for _ in range(20):  # arming and refreshing are free
        assert v.send({"type": "scheduleCancel", "time": now[0] + 10_000}) == ok
    for _ in range(10):
        assert v.send({"type": "scheduleCancel", "time": now[0] + 10_000}) == ok
        now[0] += 10_000
        assert v.fake.fire_due_schedule()
    assert sum(v.fake.schedule_triggers.values()) == 10
    eleventh = v.send({"type": "scheduleCancel", "time": now[0] + 10_000})
    assert eleventh["status"] == "err" and "Too many" in eleventh["response"]
    too_soon = v.send({"type": "scheduleCancel", "time": now[0] + 4_999})
    assert too_soon["status"] == "err" and "at least 5 seconds" in too_soon["response"]


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        ("insufficient margin", "Insufficient margin to place order."),
        (
            "reduce-only order would increase the position",
            "Reduce only order would increase position.",
        ),
        ("order value 5 is under the minimum 10", "Order must have minimum value of $10."),
        (
            "price 1.05 is not a positive multiple of tick 0.1",
            "Price must be divisible by tick size.",
        ),
        ("something else", "fake: something else"),
    ],
)
def test_model_refusals_in_the_venues_words(reason: str, text: str) -> None:
    assert _sim_reason(reason) == text


def test_fills_say_direction_and_closed_pnl() -> None:
    v = _Venue()
    up = str(int(v.mid() * Decimal("1.05")))
    down = str(int(v.mid() * Decimal("0.95")))
    v.order(up, "0.02")  # open long at the ask
    v.order(down, "0.01", buy=False)  # close half at the bid
    v.order(down, "0.03", buy=False)  # flip to short
    opened, closed, flipped = v.fake._fills
    assert (opened["dir"], opened["startPosition"], opened["closedPnl"]) == ("Open Long", "0", "0")
    assert closed["dir"] == "Close Long" and closed["startPosition"] == "0.02"
    spread = Decimal(closed["px"]) - Decimal(opened["px"])
    assert Decimal(closed["closedPnl"]) == spread * Decimal("0.01")
    assert flipped["dir"] == "Long > Short" and flipped["startPosition"] == "0.01"
    assert Decimal(flipped["closedPnl"]) == (
        Decimal(flipped["px"]) - Decimal(opened["px"])
    ) * Decimal("0.01")
