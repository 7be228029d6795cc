"""The loopback Hyperliquid fake, driven by the official SDK (unmodified, over real sockets):
it places, modifies, cancels and queries as against the venue; it refuses what the venue
refuses with the venue's words (bad signature, nonces, tick, $10, post-only, IOC); faults come
on command."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import eth_account
import httpx
import pytest
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.error import ClientError, ServerError
from hyperliquid.utils.types import Cloid

from gridcore.numbers import Rounding
from gridcore.shells.venues.hyperliquid.fake import (
    BAD_BODY,
    SCHEDULE_BUDGET_SPENT,
    SCHEDULE_TOO_EARLY,
    HyperliquidFake,
)
from gridcore.shells.venues.hyperliquid.meta import instruments_from_meta
from gridcore.shells.venues.hyperliquid.signing import address_of, sign_l1_action

# The official SDK's own test key: a throwaway, never a real account.
KEY = "0x0123456789012345678901234567890123456789012345678901234567890123"
ADDRESS = address_of(KEY)
GTC: Any = {"limit": {"tif": "Gtc"}}


class _Clock:
    """The fake's clock: real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = 0

    def __call__(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset


@pytest.fixture
def clock() -> _Clock:
    return _Clock()


@pytest.fixture
def fake(clock: _Clock) -> Iterator[HyperliquidFake]:
    with HyperliquidFake(account=ADDRESS, tick_ms=50, now_ms=clock, nonce_set_size=5) as running:
        yield running


@pytest.fixture
def sdk(fake: HyperliquidFake) -> tuple[Info, Exchange]:
    wallet = eth_account.Account.from_key(KEY)
    return Info(fake.url, skip_ws=True), Exchange(wallet, fake.url)


def _eth_price(info: Info, factor: str, rounding: Rounding) -> float:
    inst = instruments_from_meta(info.meta(), venue="hl")["ETH"].instrument
    mid = Decimal(info.all_mids()["ETH"])
    return float(inst.round_price(mid * Decimal(factor), rounding))


def _statuses(answer: Any) -> list[Any]:
    assert answer["status"] == "ok", answer
    return list(answer["response"]["data"]["statuses"])


def _wait(done: Callable[[], bool], what: str, seconds: float = 30) -> None:
    """Wait for something the fake does on its own (bounded; not a speed assertion)."""
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {seconds} s")
        time.sleep(0.02)


def test_the_sdk_places_modifies_cancels_and_queries(
    fake: HyperliquidFake, sdk: tuple[Info, Exchange]
) -> None:
    info, ex = sdk
    assert [a["name"] for a in info.meta()["universe"]] == ["BTC", "ETH"]
    px = _eth_price(info, "0.95", Rounding.DOWN)
    cloid = Cloid.from_int(7)
    (status,) = _statuses(ex.order("ETH", True, 0.01, px, GTC, cloid=cloid))
    oid = status["resting"]["oid"]
    assert status["resting"]["cloid"] == cloid.to_raw()
    (row,) = info.open_orders(ADDRESS)
    assert (row["coin"], row["side"], row["oid"], row["sz"]) == ("ETH", "B", oid, "0.01")
    found = info.query_order_by_cloid(ADDRESS, cloid)
    assert found["status"] == "order" and found["order"]["status"] == "open"
    assert info.query_order_by_oid(ADDRESS, oid)["order"]["order"]["cloid"] == cloid.to_raw()
    # The SDK's modify sends batchModify: the order gets a new oid under the same cloid.
    (modified,) = _statuses(ex.modify_order(oid, "ETH", True, 0.02, px, GTC, cloid=cloid))
    new_oid = modified["resting"]["oid"]
    assert new_oid != oid
    (row,) = info.open_orders(ADDRESS)
    assert (row["oid"], row["sz"]) == (new_oid, "0.02")
    # The old oid is gone; the cloid cancels.
    (gone,) = _statuses(ex.cancel("ETH", oid))
    assert gone == {"error": "Order was never placed, already canceled, or filled. asset=1"}
    assert _statuses(ex.cancel_by_cloid("ETH", cloid)) == ["success"]
    assert info.open_orders(ADDRESS) == []
    assert info.query_order_by_cloid(ADDRESS, cloid)["order"]["status"] == "canceled"
    assert info.query_order_by_oid(ADDRESS, 999_999) == {"status": "unknownOid"}


def test_a_taking_order_fills_and_shows_in_fills_and_positions(
    fake: HyperliquidFake, sdk: tuple[Info, Exchange]
) -> None:
    info, ex = sdk
    (status,) = _statuses(ex.market_open("ETH", True, 0.01))
    filled = status["filled"]
    assert filled["totalSz"] == "0.01"
    (fill,) = info.user_fills(ADDRESS)
    assert (fill["coin"], fill["side"], fill["sz"], fill["oid"]) == (
        "ETH",
        "B",
        "0.01",
        filled["oid"],
    )
    assert fill["crossed"] is True and fill["dir"] == "Open Long"
    assert info.user_fills_by_time(ADDRESS, fill["time"]) == [fill]
    assert info.user_fills_by_time(ADDRESS, fill["time"] + 1) == []
    (position,) = info.user_state(ADDRESS)["assetPositions"]
    assert position["position"]["coin"] == "ETH" and position["position"]["szi"] == "0.01"
    # Another user's queries see nothing of this account.
    assert info.user_fills("0x" + "1" * 40) == []


def test_per_order_errors_come_inside_an_ok_answer(sdk: tuple[Info, Exchange]) -> None:
    info, ex = sdk
    low = _eth_price(info, "0.95", Rounding.DOWN)
    high = _eth_price(info, "1.05", Rounding.UP)
    answers = _statuses(
        ex.bulk_orders(
            [
                {
                    "coin": "ETH",
                    "is_buy": True,
                    "sz": 0.01,
                    "limit_px": low + 0.001,
                    "order_type": GTC,
                    "reduce_only": False,
                },
                {
                    "coin": "ETH",
                    "is_buy": True,
                    "sz": 0.001,
                    "limit_px": low,
                    "order_type": GTC,
                    "reduce_only": False,
                },
                {
                    "coin": "ETH",
                    "is_buy": True,
                    "sz": 0.01,
                    "limit_px": high,
                    "order_type": {"limit": {"tif": "Alo"}},
                    "reduce_only": False,
                },
                {
                    "coin": "ETH",
                    "is_buy": True,
                    "sz": 0.01,
                    "limit_px": low,
                    "order_type": {"limit": {"tif": "Ioc"}},
                    "reduce_only": False,
                },
                {
                    "coin": "ETH",
                    "is_buy": True,
                    "sz": 0.01,
                    "limit_px": low,
                    "order_type": GTC,
                    "reduce_only": False,
                },
            ]
        )
    )
    assert answers[0] == {"error": "Price must be divisible by tick size."}
    assert answers[1] == {"error": "Order must have minimum value of $10."}
    assert answers[2]["error"].startswith(
        "Post only order would have immediately matched, bbo was "
    )
    assert answers[3] == {"error": "Order could not immediately match against any resting orders."}
    assert "resting" in answers[4]
    assert len(info.open_orders(ADDRESS)) == 1


def test_an_unknown_signer_is_refused_and_an_approved_agent_trades(
    fake: HyperliquidFake, sdk: tuple[Info, Exchange]
) -> None:
    info, _ = sdk
    stranger = eth_account.Account.create()
    px = _eth_price(info, "0.95", Rounding.DOWN)
    refused = Exchange(stranger, fake.url).order("ETH", True, 0.01, px, GTC)
    assert refused == {
        "status": "err",
        "response": f"User or API Wallet {stranger.address.lower()} does not exist.",
    }
    fake.approve_agent(stranger.address)
    agent = Exchange(stranger, fake.url, account_address=ADDRESS)
    assert "resting" in _statuses(agent.order("ETH", True, 0.01, px, GTC))[0]
    assert len(info.open_orders(ADDRESS)) == 1


def _signed(action: dict[str, Any], nonce: int, key: str = KEY) -> dict[str, Any]:
    return {
        "action": action,
        "nonce": nonce,
        "signature": sign_l1_action(key, action, nonce=nonce, mainnet=False),
        "vaultAddress": None,
        "expiresAfter": None,
    }


def test_nonce_rules_use_the_venues_words(fake: HyperliquidFake, clock: _Clock) -> None:
    noop = {"type": "noop"}
    base = clock()
    with httpx.Client(base_url=fake.url) as http:
        first = _signed(noop, base)
        assert http.post("/exchange", json=first).json()["status"] == "ok"
        # The same body again (a retry): a duplicate, refused, nothing done twice.
        assert http.post("/exchange", json=first).json() == {
            "status": "err",
            "response": f"Invalid nonce: duplicate nonce {base}",
        }
        for n in range(1, 6):  # fill the signer's set (5 here)
            assert http.post("/exchange", json=_signed(noop, base + n)).json()["status"] == "ok"
        low = http.post("/exchange", json=_signed(noop, base - 10)).json()
        assert low == {
            "status": "err",
            "response": f"Invalid nonce: nonce too low {base - 10} < {base + 1}",
        }
        far = http.post("/exchange", json=_signed(noop, base + 2 * 86_400_000)).json()
        assert far["status"] == "err" and far["response"].startswith("Invalid nonce")
        # A tampered signature recovers someone else: refused as an unknown wallet.
        bad = _signed(noop, base + 100)
        bad["signature"]["s"] = hex(int(bad["signature"]["s"], 16) ^ 1)
        answer = http.post("/exchange", json=bad).json()
        assert answer["status"] == "err" and answer["response"].endswith("does not exist.")
        # Mainnet signatures are not the loopback's ("b" source): refused the same way.
        main = _signed(noop, base + 101)
        main["signature"] = sign_l1_action(KEY, noop, nonce=base + 101, mainnet=True)
        assert http.post("/exchange", json=main).json()["status"] == "err"
        # A body that is not the venue's type: 422 with the venue's text.
        broken = http.post("/exchange", content=b'{"action": 1}')
        assert broken.status_code == 422
        assert broken.text == "Failed to deserialize the JSON body into the target type"


def test_faults_on_command(fake: HyperliquidFake, sdk: tuple[Info, Exchange]) -> None:
    info, ex = sdk
    px = _eth_price(info, "0.95", Rounding.DOWN)
    fake.fail_next(502)
    with pytest.raises(ServerError):
        ex.order("ETH", True, 0.01, px, GTC)
    fake.fail_next(429)
    with pytest.raises(ClientError) as limited:
        ex.order("ETH", True, 0.01, px, GTC)
    assert limited.value.status_code == 429
    assert info.open_orders(ADDRESS) == []  # neither acted
    fake.reject_next()
    assert ex.order("ETH", True, 0.01, px, GTC)["status"] == "err"
    fake.post_only_window(True)
    (status,) = _statuses(ex.order("ETH", True, 0.01, px, GTC))
    assert status == {"error": "Only post-only orders allowed immediately after a network upgrade"}
    assert "resting" in _statuses(ex.order("ETH", True, 0.01, px, {"limit": {"tif": "Alo"}}))[0]
    fake.post_only_window(False)
    # Executed but the answer lost: the client times out, the order rests.
    fake.lose_next_answer(applied=True)
    slow = Exchange(eth_account.Account.from_key(KEY), fake.url, timeout=1)
    with pytest.raises(Exception, match=r"(?i)timed? ?out"):
        slow.order("ETH", True, 0.01, px, GTC, cloid=Cloid.from_int(9))
    assert info.query_order_by_cloid(ADDRESS, Cloid.from_int(9))["order"]["status"] == "open"


def test_scheduled_cancel_fires_on_the_venues_clock(
    fake: HyperliquidFake, sdk: tuple[Info, Exchange], clock: _Clock
) -> None:
    info, ex = sdk
    px = _eth_price(info, "0.95", Rounding.DOWN)
    _statuses(ex.order("ETH", True, 0.01, px, GTC))
    too_soon = ex.schedule_cancel(clock() + 1_000)
    assert too_soon["status"] == "err"
    assert ex.schedule_cancel(clock() + 6_000) == {"status": "ok", "response": {"type": "default"}}
    assert len(info.open_orders(ADDRESS)) == 1
    clock.offset += 7_000
    _wait(lambda: info.open_orders(ADDRESS) == [], "scheduled cancel")


def test_the_sdk_websocket_gets_a_fills_snapshot_then_updates(
    fake: HyperliquidFake, sdk: tuple[Info, Exchange]
) -> None:
    _, ex = sdk
    _statuses(ex.market_open("ETH", True, 0.01))
    messages: list[dict[str, Any]] = []
    lock = threading.Lock()

    def record(message: Any) -> None:
        with lock:
            messages.append(json.loads(json.dumps(message)))

    live = Info(fake.url, skip_ws=False)
    try:
        live.subscribe({"type": "userFills", "user": ADDRESS}, record)
        live.subscribe({"type": "orderUpdates", "user": ADDRESS}, record)
        live.subscribe({"type": "bbo", "coin": "ETH"}, record)

        def channels() -> list[str]:
            with lock:
                return [m["channel"] for m in messages]

        _wait(lambda: "userFills" in channels() and "bbo" in channels(), "snapshot and quotes")
        with lock:
            snapshot = next(m for m in messages if m["channel"] == "userFills")
        assert snapshot["data"]["isSnapshot"] is True and len(snapshot["data"]["fills"]) == 1
        assert "orderUpdates" not in channels()  # no snapshot on orderUpdates
        px = _eth_price(live, "0.95", Rounding.DOWN)
        _statuses(ex.order("ETH", True, 0.01, px, GTC))
        _wait(lambda: "orderUpdates" in channels(), "order update")
        with lock:
            update = next(m for m in messages if m["channel"] == "orderUpdates")
        assert update["data"][0]["status"] == "open"
    finally:
        live.disconnect_websocket()


def test_funding_is_paid_on_the_venues_schedule_and_streamed() -> None:
    """With a short funding interval: payments show in userFunding and on userFundings."""
    with HyperliquidFake(account=ADDRESS, tick_ms=50, funding_interval_ms=200) as fake:
        wallet = eth_account.Account.from_key(KEY)
        info, ex = Info(fake.url, skip_ws=True), Exchange(wallet, fake.url)
        _statuses(ex.market_open("ETH", True, 0.01))
        start = fake.exchange.fills[0].ts
        _wait(lambda: bool(info.user_funding_history(ADDRESS, start)), "funding payment")
        payment = info.user_funding_history(ADDRESS, start)[0]
        assert payment["delta"]["type"] == "funding" and payment["delta"]["coin"] == "ETH"
        assert Decimal(payment["delta"]["usdc"]) < 0  # longs pay a positive rate
        assert payment["delta"]["szi"] == "0.01"


def test_the_websocket_answers_pings_refuses_garbage_and_unsubscribes(
    fake: HyperliquidFake,
) -> None:
    import websocket  # websocket-client, the official SDK's own WebSocket client

    ws_url = fake.url.replace("http", "ws") + "/ws"
    ws = websocket.create_connection(ws_url, timeout=30)
    try:

        def ask(message: Any) -> dict[str, Any]:
            ws.send(message if isinstance(message, str) else json.dumps(message))
            while True:
                answer: dict[str, Any] = json.loads(ws.recv())
                if answer["channel"] not in ("bbo", "allMids"):
                    return answer

        assert ask({"method": "ping"}) == {"channel": "pong"}
        assert ask("garbage")["channel"] == "error"
        assert ask({"method": "dance", "subscription": {}})["channel"] == "error"
        sub = {"type": "userFundings", "user": ADDRESS}
        assert (
            ask({"method": "subscribe", "subscription": sub})["channel"] == "subscriptionResponse"
        )
        snapshot = json.loads(ws.recv())
        assert snapshot["channel"] == "userFundings" and snapshot["data"]["isSnapshot"] is True
        gone = ask({"method": "unsubscribe", "subscription": sub})
        assert gone == {
            "channel": "subscriptionResponse",
            "data": {"method": "unsubscribe", "subscription": sub},
        }
    finally:
        ws.close()
    with pytest.raises(websocket.WebSocketException):
        websocket.create_connection(fake.url.replace("http", "ws") + "/elsewhere", timeout=30)
    fake.refuse_websockets(True)
    with pytest.raises(websocket.WebSocketException):
        websocket.create_connection(ws_url, timeout=30)


def test_http_paths_and_bodies_it_cannot_read(fake: HyperliquidFake) -> None:
    with httpx.Client(base_url=fake.url) as http:
        assert http.get("/info").status_code == 404
        assert http.post("/elsewhere", json={}).status_code == 404
        for body in ([1, 2], {"type": "candleSnapshot"}, {"no": "type"}):
            refused = http.post("/info", json=body)
            assert refused.status_code == 422 and refused.text == BAD_BODY
    assert len(fake.refused_bodies) == 3


def test_the_dead_man_switch_counts_fires_not_armings_ten_a_utc_day(
    fake: HyperliquidFake, sdk: tuple[Info, Exchange], clock: _Clock
) -> None:
    """The venue's rules (its SDK's ``schedule_cancel``): a time at least 5 s ahead; every
    fire cancels all open orders and counts one trigger; at most 10 triggers a day, reset at
    00:00 UTC. Arming, refreshing and clearing are free."""
    info, ex = sdk
    ok = {"status": "ok", "response": {"type": "default"}}
    # Start the day at 00:00:30 UTC on the fake's clock, so that a day's fires fit in it.
    day = 86_400_000
    fake.nonce_window_ms = 10 * day  # the SDK signs with real time; the fake's clock moves on
    clock.offset += day - clock() % day + 30_000
    for _ in range(20):  # refreshes push the time back and cost nothing
        assert ex.schedule_cancel(clock() + 60_000) == ok
    assert ex.schedule_cancel(None) == ok  # cleared: the action carries no time at all
    assert fake.scheduled_cancel is None
    clock.offset += 120_000
    assert not fake.fire_due_schedule() and fake.schedule_triggers == {}
    px = _eth_price(info, "0.95", Rounding.DOWN)
    for fire in range(1, 11):
        _statuses(ex.order("ETH", True, 0.01, px, GTC))
        assert ex.schedule_cancel(clock() + 6_000) == ok
        clock.offset += 6_000
        _wait(lambda: fake.scheduled_cancel is None, "the switch to fire")
        assert info.open_orders(ADDRESS) == []
        assert sum(fake.schedule_triggers.values()) == fire
    spent = ex.schedule_cancel(clock() + 60_000)
    assert spent == {"status": "err", "response": SCHEDULE_BUDGET_SPENT}
    too_soon = ex.schedule_cancel(clock() + 4_000)
    assert too_soon == {"status": "err", "response": SCHEDULE_TOO_EARLY}
    clock.offset += day  # a new UTC day: the budget is back
    assert ex.schedule_cancel(clock() + 60_000) == ok
