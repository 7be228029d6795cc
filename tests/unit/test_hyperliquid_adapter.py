"""The Hyperliquid adapter's pure parts: cloids in the venue's form and back, the
request-weight limiter, and every stream message becoming an event (never an exception)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridcore.events import (
    Event,
    FundingPaid,
    MessageMalformed,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderPartiallyFilled,
    QuoteTicked,
)
from gridcore.instruments import Side, TimeInForce
from gridcore.shells.runtime import Clock, Sink, WallClock
from gridcore.shells.venues.hyperliquid.adapter import (
    HyperliquidAdapter,
    WeightLimiter,
    _Order,
    from_venue_cloid,
    to_venue_cloid,
)
from gridcore.shells.venues.hyperliquid.nonces import NonceAllocator

KEY = "0x0123456789012345678901234567890123456789012345678901234567890123"


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_gridcores_own_cloids_are_already_the_venues_form(n: int) -> None:
    cloid = f"0x{n:032x}"
    assert to_venue_cloid(cloid) == cloid


@given(
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=16)
)
def test_short_cloids_round_trip(cloid: str) -> None:
    venue = to_venue_cloid(cloid)
    assert len(venue) == 34 and venue.startswith("0x")
    assert from_venue_cloid(venue) == cloid


def test_long_cloids_hash_to_the_venues_form() -> None:
    venue = to_venue_cloid("a-very-long-client-order-id-indeed")
    assert len(venue) == 34 and int(venue, 16) >= 0
    assert to_venue_cloid("a-very-long-client-order-id-indeed") == venue


@given(st.lists(st.tuples(st.integers(0, 5_000), st.integers(1, 50)), max_size=80))
def test_the_limiter_never_spends_beyond_the_budget(steps: list[tuple[int, int]]) -> None:
    """Whatever the request pattern, weight sent in any window never exceeds capacity plus
    what refills over that window (a token bucket), because each request waits its delay."""
    limiter = WeightLimiter(capacity=100, window_ms=1_000)
    now = 0
    sent: list[tuple[int, int]] = []
    for gap, weight in steps:
        now += gap
        now += limiter.delay_ms(weight, now)
        assert limiter.delay_ms(weight, now) == 0
        limiter.spend(weight, now)
        sent.append((now, weight))
    for start, _ in sent:
        in_window = sum(w for t, w in sent if start <= t < start + 1_000)
        assert in_window <= 100 + 100 + 50  # bucket + one window's refill + one request


def test_a_429_backs_off_doubling_and_a_success_resets_it() -> None:
    limiter = WeightLimiter(backoff_ms=1_000, max_backoff_ms=4_000)
    limiter.throttled(0)
    assert limiter.delay_ms(1, 0) == 1_000
    limiter.throttled(1_000)
    assert limiter.delay_ms(1, 1_000) == 2_000
    limiter.throttled(3_000)
    limiter.throttled(7_000)
    assert limiter.delay_ms(1, 7_000) == 4_000  # capped
    limiter.succeeded()
    limiter.throttled(20_000)
    assert limiter.delay_ms(1, 20_000) == 1_000


class _Sink(Sink):
    def __init__(self) -> None:  # no runtime behind it
        self.events: list[Event] = []
        self._clock = WallClock()

    @property
    def clock(self) -> Clock:
        return self._clock

    async def emit(self, event: Event) -> None:
        self.events.append(event)

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        raise AssertionError("not used")

    def stop(self, reason: str) -> None:
        raise AssertionError("not used")


def _adapter() -> HyperliquidAdapter:
    clock = WallClock()
    return HyperliquidAdapter(
        base_url="http://127.0.0.1:1",
        private_key=KEY,
        mainnet=False,
        coins=("ETH",),
        clock=clock,
        nonces=NonceAllocator(signer="0x0", now_ms=clock.now, path=None),
        fills_since=0,
    )


async def _feed(adapter: HyperliquidAdapter, *messages: Any) -> list[Event]:
    sink = _Sink()
    for message in messages:
        text = message if isinstance(message, str) else json.dumps(message)
        parsed = adapter._parse(text)
        if parsed is None:
            await sink.emit(adapter._malformed(text, "not a JSON object with a channel"))
        else:
            await adapter._dispatch(text, parsed, sink)
    return sink.events


FILL = {
    "coin": "ETH",
    "px": "3200.5",
    "sz": "0.01",
    "side": "B",
    "time": 1_700_000_000_000,
    "startPosition": "0",
    "dir": "Open Long",
    "closedPnl": "0",
    "hash": "0x0",
    "oid": 7,
    "crossed": False,
    "fee": "0.0048",
    "tid": 99,
    "feeToken": "USDC",
    "cloid": to_venue_cloid("conf-1"),
}


@pytest.mark.anyio
async def test_stream_messages_map_to_events() -> None:
    adapter = _adapter()
    adapter._cloids[to_venue_cloid("conf-1")] = "conf-1"
    adapter._orders["conf-1"] = _Order(
        symbol="ETH", side=Side.BUY, qty=Decimal("0.02"), tif=TimeInForce.GTC, reduce_only=False
    )
    bbo = {
        "coin": "ETH",
        "time": 1_700_000_000_005,
        "bbo": [{"px": "3200", "sz": "1", "n": 1}, {"px": "3200.5", "sz": "1", "n": 1}],
    }
    update: dict[str, Any] = {
        "order": {
            "coin": "ETH",
            "side": "B",
            "limitPx": "3200",
            "sz": "0.02",
            "oid": 7,
            "timestamp": 1,
            "origSz": "0.02",
            "cloid": FILL["cloid"],
        },
        "status": "open",
        "statusTimestamp": 1_700_000_000_003,
    }
    events = await _feed(
        adapter,
        {"channel": "bbo", "data": bbo},
        {"channel": "orderUpdates", "data": [update]},
        {"channel": "userFills", "data": {"user": "0x", "fills": [FILL], "isSnapshot": True}},
        {"channel": "userFills", "data": {"user": "0x", "fills": [FILL]}},  # the same again
        {"channel": "userFills", "data": {"user": "0x", "fills": [{**FILL, "tid": 100}]}},
        {"channel": "orderUpdates", "data": [{**update, "status": "marginCanceled"}]},
        {
            "channel": "userFundings",
            "data": {
                "user": "0x",
                "fundings": [
                    {
                        "time": 1_700_000_000_000,
                        "coin": "ETH",
                        "usdc": "-0.5",
                        "szi": "0.02",
                        "fundingRate": "0.0001",
                    }
                ],
            },
        },
        {"channel": "pong"},
    )
    kinds = [type(e) for e in events]
    assert kinds == [
        QuoteTicked,
        OrderAccepted,
        OrderPartiallyFilled,
        OrderFilled,
        OrderCanceled,
        FundingPaid,
    ]
    quote = events[0]
    assert isinstance(quote, QuoteTicked) and (quote.bid, quote.ask) == (
        Decimal(3200),
        Decimal("3200.5"),
    )
    fill = events[2]
    assert isinstance(fill, OrderPartiallyFilled)
    assert fill.fill.cloid == "conf-1" and fill.fill.fill_id == "7:99" and fill.fill.is_maker
    funding = events[5]
    assert isinstance(funding, FundingPaid) and funding.amount == Decimal("-0.5")


@pytest.mark.anyio
@pytest.mark.parametrize(
    "message",
    [
        "not json",
        "[1, 2]",
        {"no": "channel"},
        {"channel": "bbo", "data": {"coin": "ETH", "bbo": "garbage"}},
        {"channel": "bbo", "data": {"coin": "ETH", "time": 1, "bbo": [{"px": "NaN"}, {"px": "1"}]}},
        {"channel": "bbo", "data": {"coin": "ETH", "time": 1, "bbo": [{"px": "2"}, {"px": "1"}]}},
        {"channel": "userFills", "data": {"fills": [{**FILL, "px": 3200.5}]}},
        {"channel": "userFills", "data": {"fills": [{**FILL, "tid": "99"}]}},
        {"channel": "orderUpdates", "data": {"not": "a list"}},
        {"channel": "userFundings", "data": {"fundings": [{"time": "x"}]}},
        {"channel": "activeAssetCtx", "data": {"coin": "ETH", "ctx": {"funding": None}}},
        {"channel": "error", "data": "Invalid subscription"},
        {"channel": "bbo", "data": {"coin": "ETH", "time": 5, "bbo": [{"px": "1"}, {"px": "2"}]}},
        {"channel": "userFills", "data": {"fills": [{**FILL, "sz": "0"}]}},
    ],
)
async def test_anything_unreadable_becomes_message_malformed(message: Any) -> None:
    events = await _feed(_adapter(), message)
    assert len(events) == 1 and isinstance(events[0], MessageMalformed), events
    assert events[0].venue == "hyperliquid"


@pytest.mark.anyio
async def test_fills_are_paged_at_2000_and_deduplicated() -> None:
    """``userFillsByTime`` answers at most 2,000 fills; the adapter asks again from the last
    time it got, and the page boundary's millisecond (asked twice) is reported once."""
    adapter = _adapter()
    fills = [{**FILL, "tid": n, "oid": 7, "time": 1_700_000_000_000 + n // 3} for n in range(4_500)]
    asked: list[int] = []

    async def info(body: dict[str, Any]) -> Any:
        assert body["type"] == "userFillsByTime"
        asked.append(body["startTime"])
        return [f for f in fills if f["time"] >= body["startTime"]][:2_000]

    adapter._info = info  # type: ignore[method-assign]
    from gridcore.commands import RequestFills
    from gridcore.events import FillsReported

    (report,) = await adapter.execute(
        RequestFills(command_id=1, venue="hyperliquid", since=1_700_000_000_000)
    )
    assert isinstance(report, FillsReported)
    assert len(asked) == 3 and asked == sorted(asked)
    assert sorted(int(f.fill_id.split(":")[1]) for f in report.fills) == list(range(4_500))


@pytest.mark.anyio
async def test_stream_details_quiet_empty_books_foreign_orders_and_repeats() -> None:
    from gridcore.events import FundingRateUpdated, OrderRejected

    adapter = _adapter()
    adapter.resume_fills_from(1_700_000_000_000)  # older fills are the journal's already
    bbo_level = {"px": "3200", "sz": "1", "n": 1}
    update: dict[str, Any] = {
        "order": {"coin": "ETH", "side": "B", "limitPx": "3200", "sz": "0.02", "oid": 8,
                  "timestamp": 1, "origSz": "0.02", "cloid": to_venue_cloid("conf-2")},
        "status": "badAloPxRejected",
        "statusTimestamp": 1_700_000_000_003,
    }  # fmt: skip
    funding = {
        "time": 1_700_000_000_000,
        "coin": "ETH",
        "usdc": "0.1",
        "szi": "1",
        "fundingRate": "0",
    }
    ctx = {"coin": "ETH", "ctx": {"funding": "0.0000125", "markPx": "3200"}}
    events = await _feed(
        adapter,
        {
            "channel": "bbo",
            "data": {"coin": "ETH", "time": 1_700_000_000_000, "bbo": [bbo_level, None]},
        },
        {"channel": "bbo", "data": {"coin": "ETH", "time": 1, "bbo": [bbo_level] * 3}},
        {"channel": "orderUpdates", "data": [update]},
        {"channel": "orderUpdates", "data": [{**update, "status": "filled"}]},
        {
            "channel": "orderUpdates",
            "data": [{**update, "order": {**update["order"], "cloid": None}}],
        },
        {"channel": "userFundings", "data": {"fundings": [funding, funding]}},
        {"channel": "userFills", "data": {"fills": [{**FILL, "time": 1_600_000_000_000}]}},
        {"channel": "activeAssetCtx", "data": ctx},
        {"channel": "somethingNew", "data": {}},
    )
    kinds = [type(e) for e in events]
    assert kinds == [MessageMalformed, OrderRejected, FundingPaid, FundingRateUpdated], kinds
    rate = events[3]
    assert isinstance(rate, FundingRateUpdated) and rate.rate == Decimal("0.0000125")
    assert rate.next_funding_ts % 3_600_000 == 0 and rate.next_funding_ts > rate.ts
    adapter.quiesce()
    quiet = await _feed(
        adapter,
        {
            "channel": "bbo",
            "data": {"coin": "ETH", "time": 1_700_000_000_000, "bbo": [bbo_level, {"px": "3201"}]},
        },
        {"channel": "activeAssetCtx", "data": ctx},
    )
    assert quiet == [], "quiesced: no market data"


@pytest.mark.anyio
async def test_the_replaced_oid_of_a_modify_does_not_end_the_order() -> None:
    adapter = _adapter()
    cloid = to_venue_cloid("conf-3")
    adapter._cloids[cloid] = "conf-3"
    adapter._orders["conf-3"] = _Order(
        symbol="ETH", side=Side.BUY, qty=Decimal("0.02"), tif=TimeInForce.GTC,
        reduce_only=False, oid="8",
    )  # fmt: skip

    def update(oid: int, status: str) -> dict[str, Any]:
        order = {"coin": "ETH", "side": "B", "limitPx": "3200", "sz": "0.02", "oid": oid,
                 "timestamp": 1, "origSz": "0.02", "cloid": cloid}  # fmt: skip
        return {
            "channel": "orderUpdates",
            "data": [{"order": order, "status": status, "statusTimestamp": 1_700_000_000_000}],
        }

    # The modify is in flight: the old oid reported canceled is the replaced half.
    adapter._modifying.add("conf-3")
    assert await _feed(adapter, update(8, "canceled")) == []
    adapter._modifying.clear()
    # The new oid comes up; the old one reported canceled later is still not the order's end.
    (accepted,) = await _feed(adapter, update(9, "open"))
    assert isinstance(accepted, OrderAccepted) and accepted.venue_order_id == "9"
    assert await _feed(adapter, update(8, "canceled")) == []
    # The live oid canceled: that is the end.
    (canceled,) = await _feed(adapter, update(9, "canceled"))
    assert isinstance(canceled, OrderCanceled) and canceled.venue_order_id == "9"


def test_reconnects_back_off_until_the_stream_is_up() -> None:
    adapter = _adapter()
    adapter.reconnect_ms, adapter.max_reconnect_ms = 500, 4_000
    assert [adapter.reconnect_delay_ms() for _ in range(6)] == [
        500,
        1_000,
        2_000,
        4_000,
        4_000,
        4_000,
    ]
    adapter._failures = 0  # what a session that got the stream up does
    assert adapter.reconnect_delay_ms() == 500
