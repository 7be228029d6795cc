"""Funding history against the loopback Hyperliquid fake, over real sockets: the official SDK
reads the fake's ``userFunding`` in the venue's pages; the adapter answers ``RequestFunding``
with every payment once; and a payment the stream lost is recovered by the whole stack
(runtime, journal, core, adapter) on reconnect, booked once alongside the ones it saw."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import eth_account
import pytest
import trio
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info

from gridcore.commands import RequestFunding
from gridcore.events import FundingPaid, FundingReported, MessageMalformed
from gridcore.instruments import Side
from gridcore.invariants import check_state
from gridcore.shells.journal import Journal, recover
from gridcore.shells.runtime import Runtime, RuntimeOptions, WallClock
from gridcore.shells.strategies import load_config
from gridcore.shells.venues.hyperliquid.adapter import HyperliquidAdapter
from gridcore.shells.venues.hyperliquid.cli import DEMO_TOML
from gridcore.shells.venues.hyperliquid.fake import FUNDING_PAGE, CoinSpec, HyperliquidFake
from gridcore.shells.venues.hyperliquid.nonces import NonceAllocator
from gridcore.shells.venues.hyperliquid.signing import address_of
from gridcore.sim import make_bot
from gridcore.sim.exchange import SimOrder

KEY = "0x0123456789012345678901234567890123456789012345678901234567890123"  # SDK test key
ADDRESS = address_of(KEY)


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


def _wait(done: Callable[[], bool], what: str, seconds: float = 60) -> None:
    """Wait for the fake to do something on its own (a bound on waiting, not on speed)."""
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


async def _until(done: Callable[[], bool], what: str, seconds: float = 60) -> None:
    with trio.move_on_after(seconds):
        while not done():
            await trio.sleep(0.02)
    assert done(), f"timed out waiting for {what}"


def _adapter(fake: HyperliquidFake, clock: WallClock) -> HyperliquidAdapter:
    return HyperliquidAdapter(
        base_url=fake.url,
        private_key=KEY,
        mainnet=False,
        coins=("ETH",),
        clock=clock,
        nonces=NonceAllocator(signer=ADDRESS, now_ms=clock.now, path=None),
        http_timeout_s=5.0,
        reconnect_ms=100,
    )


@pytest.mark.anyio
async def test_the_sdk_and_the_adapter_read_the_fakes_funding_history_in_pages() -> None:
    """Positions in two coins, 300 funding rounds: 600 payments, more than one page."""
    with HyperliquidFake(account=ADDRESS, tick_ms=50) as fake:
        wallet = eth_account.Account.from_key(KEY)
        info, ex = Info(fake.url, skip_ws=True), Exchange(wallet, fake.url)
        assert ex.market_open("ETH", True, 0.01)["status"] == "ok"  # long ETH
        assert ex.market_open("BTC", False, 0.001)["status"] == "ok"  # short BTC
        _wait(lambda: len(fake.exchange.fills) == 2, "both fills")
        base = time.time_ns() // 1_000_000 + 1_000
        for i in range(300):
            assert fake.pay_funding(base + i) == 2
        rows = fake.funding_rows()
        assert len(rows) == 600

        # The official SDK, unmodified: oldest first, at most one page per answer.
        first = info.user_funding_history(ADDRESS, base)
        assert len(first) == FUNDING_PAGE and first == rows[:FUNDING_PAGE]
        last = first[-1]["time"]
        rest = info.user_funding_history(ADDRESS, last)
        assert rest == [r for r in rows if r["time"] >= last]
        assert info.user_funding_history(ADDRESS, base, base + 9) == rows[:20]
        btc, eth = rows[0]["delta"], rows[1]["delta"]  # paid in coin order
        assert (eth["type"], eth["coin"], eth["szi"]) == ("funding", "ETH", "0.01")
        assert Decimal(eth["usdc"]) < 0 < Decimal(btc["usdc"])  # a positive rate: longs pay
        assert (btc["coin"], btc["szi"]) == ("BTC", "-0.001")

        # The adapter walks every page and reports each payment once, as the venue paid it.
        clock = WallClock()
        async with _adapter(fake, clock) as adapter:
            request = RequestFunding(command_id=5, venue="hyperliquid", since=base)
            (report,) = await adapter.execute(request)
            assert isinstance(report, FundingReported) and report.command_id == 5
            assert [(p.payment_id, p.amount) for p in report.payments] == [
                (f"{r['time']}:{r['delta']['coin']}", Decimal(r["delta"]["usdc"])) for r in rows
            ]
            only = RequestFunding(command_id=6, venue="hyperliquid", since=base, symbol="BTC")
            (btc_report,) = await adapter.execute(only)
            assert isinstance(btc_report, FundingReported)
            assert {p.symbol for p in btc_report.payments} == {"BTC"}
            assert len(btc_report.payments) == 300
        assert fake.refused_bodies == []


def test_the_stream_carries_a_payment_flat_and_the_history_nests_it() -> None:
    """The venue's two shapes of one payment: ``userFundings`` rows are ``{time, coin, usdc,
    szi, fundingRate}``, ``userFunding`` rows nest the same under ``delta``."""
    import websocket  # websocket-client, the official SDK's own WebSocket client

    with HyperliquidFake(account=ADDRESS, tick_ms=50) as fake:
        wallet = eth_account.Account.from_key(KEY)
        assert Exchange(wallet, fake.url).market_open("ETH", True, 0.01)["status"] == "ok"
        _wait(lambda: len(fake.exchange.fills) == 1, "the fill")
        ws = websocket.create_connection(fake.url.replace("http", "ws") + "/ws", timeout=30)
        try:
            sub = {"type": "userFundings", "user": ADDRESS}
            ws.send(json.dumps({"method": "subscribe", "subscription": sub}))
            seen: list[dict[str, object]] = []
            while len(seen) < 2:  # the acknowledgement, then the (empty) snapshot
                message = json.loads(ws.recv())
                if message["channel"] in ("subscriptionResponse", "userFundings"):
                    seen.append(message)
            assert seen[1]["data"] == {"user": ADDRESS, "fundings": [], "isSnapshot": True}
            ts = time.time_ns() // 1_000_000
            assert fake.pay_funding(ts) == 1
            while (message := json.loads(ws.recv()))["channel"] != "userFundings":
                pass
        finally:
            ws.close()
        (row,) = fake.funding_rows()
        delta = row["delta"]
        assert message["data"]["fundings"] == [
            {
                "time": ts,
                "coin": "ETH",
                "usdc": delta["usdc"],
                "szi": "0.01",
                "fundingRate": delta["fundingRate"],
            }
        ]
        assert row["time"] == ts and delta["type"] == "funding" and row["hash"] == "0x" + "0" * 64


@pytest.mark.anyio
async def test_a_payment_the_stream_lost_is_recovered_on_reconnect_and_booked_once(
    tmp_path: Path,
) -> None:
    """The bot holds a position; three funding rounds: the first streamed, the second booked
    but never streamed (the fake's fault), the third streamed (so the reconnect's own catch-up,
    which starts after the last payment seen, does not bring the second back). After a dropped
    socket the core's funding request, answered from the venue's history, books the lost one,
    and the two it saw on the stream, which the history lists again, are not booked twice."""
    coins = (CoinSpec("ETH", 4, Decimal(3200)),)
    with HyperliquidFake(account=ADDRESS, coins=coins, tick_ms=50) as fake:
        config = load_config(DEMO_TOML, source="demo")
        clock = WallClock()
        state = make_bot(config, epoch=clock.now(), nonce=7)
        journal = Journal.create(tmp_path / "j.db", state=state, meta={"config": DEMO_TOML})
        adapter = _adapter(fake, clock)
        runtime = Runtime(
            state=state,
            journal=journal,
            venues=[adapter],
            clock=clock,
            options=RuntimeOptions(handle_signals=False, command_timeout_ms=20_000),
        )

        def funding() -> tuple[int, int]:
            status = runtime.state.books.venues["hyperliquid"].funding
            return status.paid, status.recovered

        def bot_qty() -> Decimal:
            return sum((p.qty for p in runtime.state.ledger.positions.values()), Decimal(0))

        def bids() -> list[SimOrder]:
            return [o for o in fake.exchange.open_orders() if o.side is Side.BUY]

        async def scenario() -> None:
            await _until(lambda: bool(bids()), "the grid's bids at the venue")
            fake.freeze_market(True)
            best = max(o.price for o in bids())
            fake.queue_quote("ETH", best - Decimal("0.1"), best)  # trades through the best bid
            await _until(lambda: bot_qty() > 0, "the bot's long position")
            await _until(lambda: bot_qty() == fake.exchange.position("ETH").qty, "agreement")
            t = clock.now() + 1
            assert fake.pay_funding(t) == 1
            await _until(lambda: funding()[0] == 1, "the first payment, streamed")
            fake.drop_next_funding()
            assert fake.pay_funding(t + 1) == 1  # booked, never streamed
            assert fake.pay_funding(t + 2) == 1
            await _until(lambda: funding()[0] == 2, "the third payment, streamed")
            assert funding() == (2, 0), "the lost payment is not booked yet"
            fake.disconnect_feed()
            await _until(lambda: funding()[0] == 3, "the lost payment, recovered")
            runtime.request_stop("test: done")

        await adapter.connect()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(scenario)
                final = await runtime.run()
        finally:
            await adapter.close()

    rows = fake.funding_rows()
    assert len(rows) == 3
    status = final.books.venues["hyperliquid"].funding
    assert (status.paid, status.recovered) == (3, 1)
    venue_paid = sum((Decimal(r["delta"]["usdc"]) for r in rows), Decimal(0))
    assert venue_paid < 0  # long, positive rate
    assert sum((p.funding for p in final.ledger.positions.values()), Decimal(0)) == venue_paid
    assert check_state(final) == []
    events = [e for _, e in journal.events()]
    streamed = [e for e in events if isinstance(e, FundingPaid)]
    assert [p.ts for p in streamed] == [rows[0]["time"], rows[2]["time"]]
    reports = [e for e in events if isinstance(e, FundingReported)]
    overlap = [r for r in reports if len(r.payments) == 3]
    assert overlap, "a report listed all three, the two streamed ones included"
    assert not [e for e in events if isinstance(e, MessageMalformed)]
    recovered, _ = recover(journal)
    assert recovered == final
    journal.close()
