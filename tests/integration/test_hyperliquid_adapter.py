"""The Hyperliquid adapter against the loopback fake, beyond the conformance suite: the fill
guarantor recovers fills made while the stream was down, batches keep post-only orders apart,
modify answers with the new oid, and HTTP failures map to the contract's errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import trio

from gridcore.commands import Batch, CancelOrder, ModifyOrder, PlaceOrder, RequestOpenOrders
from gridcore.events import (
    CommandFailed,
    Event,
    FeedDisconnected,
    FeedReconnected,
    FundingPaid,
    OpenOrdersReported,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    PositionsReported,
    QuoteTicked,
)
from gridcore.instruments import PositionSide, Side, TimeInForce
from gridcore.numbers import Rounding
from gridcore.shells.runtime import Clock, Sink, WallClock
from gridcore.shells.venue import VenueError
from gridcore.shells.venues.hyperliquid.adapter import HyperliquidAdapter
from gridcore.shells.venues.hyperliquid.fake import HyperliquidFake
from gridcore.shells.venues.hyperliquid.meta import instruments_from_meta
from gridcore.shells.venues.hyperliquid.nonces import NonceAllocator
from gridcore.shells.venues.hyperliquid.signing import address_of

KEY = "0x0123456789012345678901234567890123456789012345678901234567890123"  # SDK test key
ADDRESS = address_of(KEY)
WAIT_S = 60  # a bound on waiting for the fake, not a speed requirement


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@pytest.fixture
def fake() -> Iterator[HyperliquidFake]:
    with HyperliquidFake(account=ADDRESS, tick_ms=50) as running:
        yield running


class _Sink(Sink):
    def __init__(self, nursery: trio.Nursery) -> None:  # no runtime behind it
        self.events: list[Event] = []
        self._clock = WallClock()
        self._nursery = nursery

    @property
    def clock(self) -> Clock:
        return self._clock

    async def emit(self, event: Event) -> None:
        self.events.append(event)

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        self._nursery.start_soon(fn, *args)

    def stop(self, reason: str) -> None:
        raise AssertionError(f"stopped: {reason}")

    def since(self, index: int, kind: type[Any]) -> list[Any]:
        return [e for e in self.events[index:] if isinstance(e, kind)]

    async def until(self, done: Callable[[], bool], what: str) -> None:
        with trio.move_on_after(WAIT_S):
            while not done():
                await trio.sleep(0.02)
            return
        pytest.fail(f"no {what} within {WAIT_S} s")


@pytest.fixture
async def running(fake: HyperliquidFake) -> AsyncIterator[tuple[HyperliquidAdapter, _Sink]]:
    adapter = _adapter(fake.url)
    await adapter.connect()
    async with trio.open_nursery() as nursery:
        sink = _Sink(nursery)
        nursery.start_soon(adapter.run, sink)
        await sink.until(lambda: bool(sink.since(0, QuoteTicked)), "quote")
        yield adapter, sink
        nursery.cancel_scope.cancel()
    await adapter.close()


def _place(
    quote: QuoteTicked, cid: int, *, cross: bool, tif: TimeInForce = TimeInForce.GTC
) -> PlaceOrder:
    inst = instruments_from_meta({"universe": [{"name": "ETH", "szDecimals": 4}]}, venue="hl")[
        "ETH"
    ].instrument
    price = (
        inst.round_price(quote.ask * Decimal("1.005"), Rounding.UP)
        if cross
        else inst.round_price(quote.bid * Decimal("0.97"), Rounding.DOWN)
    )
    return PlaceOrder(
        command_id=cid, venue="hyperliquid", symbol="ETH", cloid=f"t-{cid}", side=Side.BUY,
        position_side=PositionSide.BOTH, qty=Decimal("0.01"), price=price, tif=tif,
    )  # fmt: skip


@pytest.mark.anyio
async def test_fills_made_while_the_stream_was_down_arrive_before_it_is_back_up(
    fake: HyperliquidFake, running: tuple[HyperliquidAdapter, _Sink]
) -> None:
    adapter, sink = running
    quote = sink.since(0, QuoteTicked)[-1]
    fake.refuse_websockets(True)
    mark = len(sink.events)
    fake.disconnect_feed()
    await sink.until(lambda: bool(sink.since(mark, FeedDisconnected)), "disconnect")
    down = len(sink.events)
    # REST still works: the order fills on the venue while no stream can tell.
    (accepted,) = await adapter.execute(_place(quote, 1, cross=True))
    assert isinstance(accepted, OrderAccepted)
    assert not sink.since(down, OrderFilled)
    fake.refuse_websockets(False)
    await sink.until(lambda: bool(sink.since(down, FeedReconnected)), "reconnect")
    up = sink.events.index(sink.since(down, FeedReconnected)[0], down)
    recovered = [e for e in sink.events[down:up] if isinstance(e, OrderFilled)]
    assert [e.fill.cloid for e in recovered] == ["t-1"], "the guarantor fetched the fill"
    # ... and pushed the venue's positions and open orders (no command asked for them).
    (positions,) = [e for e in sink.events[down:up] if isinstance(e, PositionsReported)]
    assert positions.command_id is None
    assert [(p.symbol, p.qty) for p in positions.positions] == [("ETH", Decimal("0.01"))]
    assert [e for e in sink.events[down:up] if isinstance(e, OpenOrdersReported)]
    # The stream's own snapshot afterwards does not deliver it a second time.
    await sink.until(lambda: len(sink.since(up, QuoteTicked)) > 2, "quotes")
    assert [e.fill.fill_id for e in sink.since(0, OrderFilled)] == [recovered[0].fill.fill_id]


@pytest.mark.anyio
async def test_a_batch_keeps_post_only_orders_apart_and_answers_each(
    fake: HyperliquidFake, running: tuple[HyperliquidAdapter, _Sink]
) -> None:
    adapter, sink = running
    quote = sink.since(0, QuoteTicked)[-1]
    places = [
        _place(quote, 1, cross=False),
        _place(quote, 2, cross=False, tif=TimeInForce.POST_ONLY),
        _place(quote, 3, cross=False),
    ]
    before = len(fake.actions)
    events = await adapter.execute(
        Batch(command_id=10, venue="hyperliquid", commands=tuple(places))
    )
    assert sorted(fake.actions[before:]) == [("order", 1), ("order", 2)]
    assert sorted(e.cloid for e in events if isinstance(e, OrderAccepted)) == ["t-1", "t-2", "t-3"]
    # Modify is cancel-replace: a new oid under the same cloid.
    old = next(
        e.venue_order_id for e in events if isinstance(e, OrderAccepted) and e.cloid == "t-1"
    )
    (modified,) = await adapter.execute(
        ModifyOrder(command_id=11, venue="hyperliquid", symbol="ETH", cloid="t-1", venue_order_id=old, price=places[0].price, qty=Decimal("0.02"))
    )  # fmt: skip
    assert isinstance(modified, OrderModified) and modified.venue_order_id not in (None, old)
    (report,) = await adapter.execute(RequestOpenOrders(command_id=12, venue="hyperliquid"))
    assert isinstance(report, OpenOrdersReported)
    by_cloid = {o.cloid: o for o in report.orders}
    assert by_cloid["t-1"].venue_order_id == modified.venue_order_id
    assert by_cloid["t-1"].qty == Decimal("0.02")
    (canceled,) = await adapter.execute(
        CancelOrder(command_id=13, venue="hyperliquid", symbol="ETH", cloid="t-1")
    )
    assert isinstance(canceled, OrderCanceled) and canceled.command_id == 13
    # On the stream, the modify's replaced oid (reported canceled by the venue) did not end the
    # order: the only stream cancel for t-1 is the one of the live, new oid.

    def streamed_cancels() -> list[OrderCanceled]:
        return [e for e in sink.since(0, OrderCanceled) if e.cloid == "t-1"]

    await sink.until(lambda: bool(streamed_cancels()), "the stream's cancel")
    assert [e.venue_order_id for e in streamed_cancels()] == [modified.venue_order_id]


@pytest.mark.anyio
async def test_http_failures_map_to_the_contract(
    fake: HyperliquidFake, running: tuple[HyperliquidAdapter, _Sink]
) -> None:
    adapter, sink = running
    quote = sink.since(0, QuoteTicked)[-1]
    fake.fail_next(503)
    with pytest.raises(VenueError) as unknown:
        await adapter.execute(_place(quote, 1, cross=False))
    assert not unknown.value.not_applied  # a 5xx: the venue may have acted
    fake.fail_next(429)
    with pytest.raises(VenueError) as limited:
        await adapter.execute(_place(quote, 2, cross=False))
    assert limited.value.not_applied
    assert adapter.limiter.delay_ms(1, adapter.clock.now()) > 0  # backing off
    # Inside a batch, a refused action becomes one CommandFailed per order it carried.
    fake.reject_next()
    batch = Batch(
        command_id=5,
        venue="hyperliquid",
        commands=(_place(quote, 3, cross=False), _place(quote, 4, cross=False)),
    )
    events = await adapter.execute(batch)
    assert [(type(e), getattr(e, "command_id", None)) for e in events] == [
        (CommandFailed, 3),
        (CommandFailed, 4),
    ]
    assert all(isinstance(e, CommandFailed) and e.not_applied for e in events)


@pytest.mark.anyio
async def test_the_dead_man_switch_is_armed_refreshed_refused_softly_and_cleared(
    fake: HyperliquidFake,
) -> None:
    clock = WallClock()

    def adapter(dead_man_ms: int | None) -> HyperliquidAdapter:
        return HyperliquidAdapter(
            base_url=fake.url,
            private_key=KEY,
            mainnet=False,
            coins=("ETH",),
            clock=clock,
            nonces=NonceAllocator(signer=ADDRESS, now_ms=clock.now, path=None),
            dead_man_ms=dead_man_ms,
        )

    with pytest.raises(ValueError, match="dead_man_ms must be >= 10000"):
        adapter(5_000)
    bot = adapter(60_000)
    async with bot:
        before = clock.now()
        assert await bot.arm_dead_man()
        due = fake.scheduled_cancel
        assert due is not None and before + 60_000 <= due <= clock.now() + 60_000
        assert await bot.arm_dead_man()  # a refresh pushes the time back
        assert fake.scheduled_cancel is not None and fake.scheduled_cancel >= due
        assert await bot.disarm_dead_man()
        assert fake.scheduled_cancel is None
        # The day's budget spent: the venue refuses, the adapter logs it and carries on.
        fake.schedule_triggers[fake._now_ms() // 86_400_000] = 10
        assert not await bot.arm_dead_man()
        assert (bot.dead_man_armed, bot.dead_man_failures) == (2, 1)
        assert fake.scheduled_cancel is None


class _CutSink(_Sink):
    """A sink whose next send of a fill or a funding payment is cut short: cancelled before the
    reducer takes it, as a stop cancelling the feed while the channel is full does."""

    def __init__(self, nursery: trio.Nursery) -> None:
        super().__init__(nursery)
        self.cut: trio.CancelScope | None = None

    async def emit(self, event: Event) -> None:
        if self.cut is not None and isinstance(
            event, OrderFilled | OrderPartiallyFilled | FundingPaid
        ):
            scope, self.cut = self.cut, None
            scope.cancel()
            await trio.lowlevel.checkpoint()  # raises Cancelled: the event never arrives
        self.events.append(event)


def _adapter(fake_url: str) -> HyperliquidAdapter:
    clock = WallClock()
    return HyperliquidAdapter(
        base_url=fake_url,
        private_key=KEY,
        mainnet=False,
        coins=("ETH",),
        clock=clock,
        nonces=NonceAllocator(signer=ADDRESS, now_ms=clock.now, path=None),
        http_timeout_s=3.0,
        reconnect_ms=100,
    )


@pytest.mark.anyio
async def test_a_fill_whose_send_was_cancelled_is_still_owed_and_the_next_resync_emits_it(
    fake: HyperliquidFake,
) -> None:
    adapter = _adapter(fake.url)
    await adapter.connect()
    try:
        (accepted,) = await adapter.execute(_place(fake.exchange.quotes["ETH"], 1, cross=True))
        assert isinstance(accepted, OrderAccepted)
        assert len(fake.exchange.fills) == 1  # taken at once
        async with trio.open_nursery() as nursery:
            sink = _CutSink(nursery)
            # The feed's first session: its resync fetches the fill, and the send is cancelled.
            with trio.CancelScope() as cut:
                sink.cut = cut
                await adapter.run(sink)
            assert cut.cancelled_caught
            assert not sink.since(0, OrderFilled) and not sink.since(0, OrderPartiallyFilled)
            # The feed runs again: the fill is still owed, so its resync emits it before the
            # stream is declared up (not skipped as seen).
            nursery.start_soon(adapter.run, sink)
            await sink.until(lambda: bool(sink.since(0, FeedReconnected)), "reconnect")
            up = sink.events.index(sink.since(0, FeedReconnected)[0])
            recovered = [e for e in sink.events[:up] if isinstance(e, OrderFilled)]
            assert [e.fill.cloid for e in recovered] == ["t-1"], "the resync emitted the fill"
            # ... once: the stream's snapshot that follows does not deliver it again.
            await sink.until(lambda: len(sink.since(up, QuoteTicked)) > 2, "quotes")
            assert [e.fill.fill_id for e in sink.since(0, OrderFilled)] == [
                recovered[0].fill.fill_id
            ]
            nursery.cancel_scope.cancel()
    finally:
        await adapter.close()


@pytest.mark.anyio
@pytest.mark.parametrize("channel", ["userFills", "userFundings"])
async def test_a_streamed_fill_or_payment_whose_send_was_cancelled_is_emitted_when_resent(
    channel: str,
) -> None:
    """The stream's snapshot after a resubscribe sends the same rows again: a row whose
    first send was cancelled is emitted then, exactly once."""
    adapter = _adapter("http://127.0.0.1:9")  # never connected: on_text needs no network
    ts = adapter.clock.now() + 1_000
    if channel == "userFills":
        row: dict[str, Any] = {
            "coin": "ETH", "px": "3200.0", "sz": "0.01", "side": "B", "time": ts, "oid": 7,
            "tid": 11, "fee": "0.0144", "crossed": True, "cloid": "0x" + "ab" * 16,
        }  # fmt: skip
        body: dict[str, Any] = {"user": ADDRESS, "fills": [row]}
        kind: Any = OrderPartiallyFilled | OrderFilled
    else:
        row = {"time": ts, "coin": "ETH", "usdc": "-0.04", "szi": "0.01", "fundingRate": "1e-5"}
        body = {"user": ADDRESS, "fundings": [row]}
        kind = FundingPaid
    text = json.dumps({"channel": channel, "data": body})
    async with trio.open_nursery() as nursery:
        sink = _CutSink(nursery)
        with trio.CancelScope() as cut:
            sink.cut = cut
            await adapter.on_text(text, sink)
        assert cut.cancelled_caught and not sink.since(0, kind)
        await adapter.on_text(text, sink)  # the same row again
        await adapter.on_text(text, sink)  # and again: now seen
    assert len(sink.since(0, kind)) == 1, "emitted once the send went through, then only once"
