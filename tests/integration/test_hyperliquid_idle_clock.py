"""The live runtime's clock when the feed is silent: a stream that stops sending without
disconnecting must not stop the core's housekeeping. An order whose place got no answer is in
doubt; with no market data arriving, the status request that resolves it must still go out,
fired by the runtime's timer from the wall clock (failure `leaked-cancel`: no order stays
unresolved without a status request)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import trio

from gridcore.commands import PlaceOrder, RequestOrderStatus
from gridcore.core import MAINTENANCE_TIMER
from gridcore.events import (
    CommandFailed,
    CommandTimedOut,
    OrderStatusReported,
    QuoteTicked,
    ReportedStatus,
    TimerFired,
)
from gridcore.invariants import check_state
from gridcore.shells.journal import Journal
from gridcore.shells.runtime import Runtime, RuntimeOptions, WallClock
from gridcore.shells.strategies import load_config
from gridcore.shells.venues.hyperliquid.adapter import HyperliquidAdapter
from gridcore.shells.venues.hyperliquid.cli import DEMO_TOML
from gridcore.shells.venues.hyperliquid.fake import CoinSpec, HyperliquidFake
from gridcore.shells.venues.hyperliquid.nonces import NonceAllocator
from gridcore.shells.venues.hyperliquid.signing import address_of
from gridcore.sim import make_bot

KEY = "0x0123456789012345678901234567890123456789012345678901234567890123"  # SDK test key
ADDRESS = address_of(KEY)
# Housekeeping every half second: the test waits for it, so a short period keeps it cheap.
TOML = DEMO_TOML + "\n[core]\nmaintenance_ms = 500\n"


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@pytest.mark.anyio
async def test_a_silent_feed_still_gets_the_status_request_for_an_order_in_doubt(
    tmp_path: Path,
) -> None:
    coins = (CoinSpec("ETH", 4, Decimal(3200)),)
    with HyperliquidFake(account=ADDRESS, coins=coins, tick_ms=50) as fake:
        # The market stands still: no quote reaches the bot but the one the test queues.
        fake.freeze_market(True)
        config = load_config(TOML, source="test")
        clock = WallClock()
        state = make_bot(config, epoch=clock.now(), nonce=3)
        journal = Journal.create(tmp_path / "j.db", state=state, meta={"config": TOML})
        adapter = HyperliquidAdapter(
            base_url=fake.url,
            private_key=KEY,
            mainnet=False,
            coins=("ETH",),
            clock=clock,
            nonces=NonceAllocator(signer=ADDRESS, now_ms=clock.now, path=None),
            http_timeout_s=1.0,  # the lost answer becomes an unknown outcome after a second
            reconnect_ms=100,
        )
        runtime = Runtime(
            state=state,
            journal=journal,
            venues=[adapter],
            clock=clock,
            options=RuntimeOptions(handle_signals=False, command_timeout_ms=30_000),
        )

        def in_doubt() -> set[str]:
            return set(runtime.state.books.attention)

        def resolved(cloids: set[str]) -> bool:
            return all(not runtime.state.orders[c].is_live for c in cloids)

        async def until(done: object, what: str) -> None:
            assert callable(done)
            with trio.move_on_after(60):  # a bound on waiting, not on speed
                while not done():
                    await trio.sleep(0.02)
            assert done(), f"timed out waiting for {what}"

        doubted: set[str] = set()
        quiet: list[int] = []  # the journal's last seq when the bot fell idle with orders in doubt

        def idle_in_doubt() -> bool:
            return bool(in_doubt()) and runtime.outstanding == 0 and runtime.backlog == 0

        async def scenario() -> None:
            await until(lambda: runtime.state.books.venues["hyperliquid"].feed_up, "feed up")
            # The grid's first orders go out in one action, which the venue loses before acting
            # on it: no answer, nothing on the stream, the outcome unknown to the bot. Its
            # status queries fail too, so the orders stay in doubt.
            fake.fail_info("orderStatus")
            fake.lose_next_answer(applied=False)
            fake.queue_quote("ETH", Decimal("3199.9"), Decimal("3200.1"))
            # Idle: nothing in flight, nothing waiting, the feed silent. From here only the
            # runtime's clock can bring the next event.
            await until(idle_in_doubt, "the bot idle with orders in doubt")
            doubted.update(in_doubt())
            quiet.append(journal.event_count())
            fake.fail_info(None)
            await until(lambda: resolved(doubted), "the in-doubt orders resolved")
            runtime.request_stop("test: done")

        await adapter.connect()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(scenario)
                final = await runtime.run()
        finally:
            await adapter.close()

    assert doubted and check_state(final) == []
    events = dict(journal.events())
    quotes = [e for e in events.values() if isinstance(e, QuoteTicked)]
    assert len(quotes) == 1, "the feed stayed silent after the one quote"
    (silent_from,) = quiet
    after = [(seq, e) for seq, e in events.items() if seq > silent_from]
    first_seq, first = after[0]
    # Nothing was in flight and the feed said nothing: the runtime's timer fired from the wall
    # clock, and its housekeeping asked about the orders in doubt.
    assert isinstance(first, TimerFired) and first.timer_id == MAINTENANCE_TIMER, first
    rows = list(journal.commands())
    asked = {
        r.command.cloid
        for r in rows
        if r.seq == first_seq and isinstance(r.command, RequestOrderStatus)
    }
    assert asked == doubted, "every order in doubt was asked about"
    answers = [e for _, e in after if isinstance(e, OrderStatusReported)]
    assert {e.cloid for e in answers} == doubted
    assert all(e.status is ReportedStatus.NOT_FOUND for e in answers)  # the venue never had them
    placed = {r.command.cloid for r in rows if isinstance(r.command, PlaceOrder)}
    assert doubted <= placed
    unknown = [e for e in events.values() if isinstance(e, CommandFailed | CommandTimedOut)]
    assert unknown and not any(e.not_applied for e in unknown if isinstance(e, CommandFailed))
    journal.close()
