"""The Hyperliquid adapter passes the public adapter conformance suite against the loopback fake,
over real sockets (HTTP and WebSocket on 127.0.0.1, the fake serving from its own thread).

The adapter runs on trio (its WebSocket client is trio-websocket). Real time: the suite's
answer/feed windows are generous bounds on waiting, not speed thresholds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from gridcore.commands import PlaceOrder, RequestFunding
from gridcore.events import FundingReported, QuoteTicked
from gridcore.instruments import PositionSide, Side
from gridcore.numbers import Rounding
from gridcore.shells.conformance import AdapterConformance, VenueUnderTest
from gridcore.shells.runtime import WallClock
from gridcore.shells.venues.hyperliquid.adapter import HyperliquidAdapter
from gridcore.shells.venues.hyperliquid.fake import HyperliquidFake
from gridcore.shells.venues.hyperliquid.meta import instruments_from_meta
from gridcore.shells.venues.hyperliquid.nonces import NonceAllocator, nonce_path
from gridcore.shells.venues.hyperliquid.signing import address_of

# A throwaway key (the official SDK's own test key): never a real account.
KEY = "0x0123456789012345678901234567890123456789012345678901234567890123"
ADDRESS = address_of(KEY)


class _FakeControl:
    """The conformance suite's remote control, on the fake's fault injection."""

    def __init__(self, fake: HyperliquidFake) -> None:
        self.fake = fake

    def reject_next(self) -> None:
        self.fake.reject_next()

    def lose_next_answer(self, *, applied: bool) -> None:
        self.fake.lose_next_answer(applied=applied)

    def disconnect_feed(self) -> None:
        self.fake.disconnect_feed()

    def send_malformed(self) -> None:
        self.fake.send_malformed()


@pytest.fixture
def fake() -> Iterator[HyperliquidFake]:
    with HyperliquidFake(account=ADDRESS, tick_ms=100) as running:
        yield running


class TestHyperliquidConformance(AdapterConformance):
    answer_within_ms = 30_000
    feed_within_ms = 60_000

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "trio"

    @pytest.fixture
    async def venue(self, fake: HyperliquidFake, tmp_path: Path) -> AsyncIterator[VenueUnderTest]:
        clock = WallClock()
        adapter = HyperliquidAdapter(
            base_url=fake.url,
            private_key=KEY,
            mainnet=False,
            coins=("ETH",),
            clock=clock,
            nonces=NonceAllocator(
                signer=ADDRESS, now_ms=clock.now, path=nonce_path(tmp_path, ADDRESS)
            ),
            http_timeout_s=3.0,
            reconnect_ms=200,
        )
        await adapter.connect()
        try:
            yield VenueUnderTest(adapter=adapter, control=_FakeControl(fake), clock=clock)
        finally:
            await adapter.close()
            adapter.nonces.close()
        assert fake.refused_bodies == [], "the adapter sent a body the venue cannot read"

    @pytest.mark.anyio
    async def test_the_funding_history_is_answered_not_refused(self, venue: VenueUnderTest) -> None:
        """The suite accepts a refusal from a venue without funding history; Hyperliquid keeps
        one (``userFunding``), so its adapter must answer."""
        since = venue.clock.now() - 60_000
        request = RequestFunding(command_id=1, venue="hyperliquid", since=since)
        (report,) = await venue.adapter.execute(request)
        assert isinstance(report, FundingReported), report
        assert (report.command_id, report.since, report.payments) == (1, since, ())

    def make_place(
        self, quote: QuoteTicked, *, command_id: int, cloid: str, side: Side, cross: bool
    ) -> PlaceOrder:
        inst = instruments_from_meta(
            {"universe": [{"name": quote.symbol, "szDecimals": 4}]}, venue="hyperliquid"
        )[quote.symbol].instrument
        # Crossing: a marketable limit a little through the touch, so that a quote that moved
        # while the order travelled still fills it at once (at the touch).
        if side is Side.BUY:
            up = quote.ask * Decimal("1.005") if cross else quote.bid * Decimal("0.97")
            price = inst.round_price(up, Rounding.UP if cross else Rounding.DOWN)
        else:
            down = quote.bid * Decimal("0.995") if cross else quote.ask * Decimal("1.03")
            price = inst.round_price(down, Rounding.DOWN if cross else Rounding.UP)
        qty = inst.round_qty(Decimal(20) / price, Rounding.UP)
        return PlaceOrder(
            command_id=command_id,
            venue="hyperliquid",
            symbol=quote.symbol,
            cloid=cloid,
            side=side,
            position_side=PositionSide.BOTH,
            qty=qty,
            price=price,
        )
