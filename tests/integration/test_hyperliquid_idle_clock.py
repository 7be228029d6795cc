"""The live runtime's clock when the feed is silent: a stream that stops sending without
disconnecting must not stop the core's housekeeping. An order whose place got no answer is in
doubt; with no market data arriving, the status request that resolves it must still go out,
fired by the runtime's timer from the wall clock (failure `leaked-cancel`: no order stays
unresolved without a status request)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio

from gridcore.commands import (
    PlaceOrder,
    RequestFills,
    RequestFunding,
    RequestOpenOrders,
    RequestOrderStatus,
    RequestPositions,
)
from gridcore.core import MAINTENANCE_TIMER, State
from gridcore.events import (
    CommandFailed,
    CommandTimedOut,
    Event,
    FeedReconnected,
    OrderAccepted,
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
from gridcore.shells.venues.hyperliquid.fake import HyperliquidFake
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


class _Bot:
    """The whole live stack (journal, runtime, core, adapter) on the fake, whose market stands
    still: no quote reaches the bot but the ones the test queues."""

    def __init__(self, fake: HyperliquidFake, tmp_path: Path, toml: str) -> None:
        fake.freeze_market(True)
        config = load_config(toml, source="test")
        clock = WallClock()
        state = make_bot(config, epoch=clock.now(), nonce=3)
        self.journal = Journal.create(tmp_path / "j.db", state=state, meta={"config": toml})
        self.adapter = HyperliquidAdapter(
            base_url=fake.url,
            private_key=KEY,
            mainnet=False,
            coins=("ETH",),
            clock=clock,
            nonces=NonceAllocator(signer=ADDRESS, now_ms=clock.now, path=None),
            http_timeout_s=1.0,  # a lost answer becomes an unknown outcome after a second
            reconnect_ms=100,
        )
        self.runtime = Runtime(
            state=state,
            journal=self.journal,
            venues=[self.adapter],
            clock=clock,
            options=RuntimeOptions(handle_signals=False, command_timeout_ms=30_000),
        )

    def idle(self) -> bool:
        """Nothing in flight, nothing waiting to be reduced or committed: with the feed silent,
        only the runtime's clock can bring the next event."""
        return self.runtime.outstanding == 0 and self.runtime.backlog == 0

    async def run(self, scenario: Callable[[], Awaitable[None]]) -> State[Any]:
        async def then_stop() -> None:
            await scenario()
            self.runtime.request_stop("test: done")

        await self.adapter.connect()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(then_stop)
                return await self.runtime.run()
        finally:
            await self.adapter.close()

    def streaming(self) -> bool:
        """The adapter reported its stream up (it does so once every subscription is
        confirmed, so a quote pushed from now on reaches the bot) and the bot is idle."""
        up = any(isinstance(e, FeedReconnected) for _, e in self.journal.events())
        return up and self.idle()

    def after(self, seq: int) -> list[tuple[int, Event]]:
        return [(s, e) for s, e in self.journal.events() if s > seq]

    def quotes(self) -> list[QuoteTicked]:
        return [e for _, e in self.journal.events() if isinstance(e, QuoteTicked)]


async def _until(done: Callable[[], bool], what: str) -> None:
    with trio.move_on_after(60):  # a bound on waiting, not on speed
        while not done():
            await trio.sleep(0.02)
    assert done(), f"timed out waiting for {what}"


@pytest.mark.anyio
async def test_a_silent_feed_still_gets_the_status_request_for_an_order_in_doubt(
    fake: HyperliquidFake, tmp_path: Path
) -> None:
    # One level a side: two orders, so that their failures stay under the error-streak breaker.
    bot = _Bot(fake, tmp_path, TOML.replace("levels = 3", "levels = 1"))
    runtime, journal = bot.runtime, bot.journal
    doubted: set[str] = set()
    quiet: list[int] = []  # the journal's last seq when the bot fell idle with orders in doubt

    def resolved() -> bool:
        return all(not runtime.state.orders[c].is_live for c in doubted)

    async def scenario() -> None:
        await _until(bot.streaming, "the stream up")
        # The grid's first orders go out in one action, which the venue loses before acting on
        # it: no answer, nothing on the stream, the outcome unknown to the bot. Its status
        # queries fail too, so the orders stay in doubt.
        fake.fail_info("orderStatus")
        fake.lose_next_answer(applied=False)
        fake.queue_quote("ETH", Decimal("3199.9"), Decimal("3200.1"))
        await _until(lambda: bool(runtime.state.books.attention) and bot.idle(), "idle in doubt")
        doubted.update(runtime.state.books.attention)
        quiet.append(journal.event_count())
        fake.fail_info(None)
        await _until(resolved, "the in-doubt orders resolved")

    final = await bot.run(scenario)
    assert doubted and check_state(final) == []
    assert len(bot.quotes()) == 1, "the feed stayed silent after the one quote"
    (silent_from,) = quiet
    after = bot.after(silent_from)
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
    events = [e for _, e in journal.events()]
    unknown = [e for e in events if isinstance(e, CommandFailed | CommandTimedOut)]
    assert unknown and not any(e.not_applied for e in unknown if isinstance(e, CommandFailed))
    journal.close()


@pytest.mark.anyio
async def test_a_silent_feed_still_gets_its_reconciliation_round(
    fake: HyperliquidFake, tmp_path: Path
) -> None:
    """A round is owed once the venue said something since the last one; with the stream quiet
    (the market frozen, the grid resting) it runs anyway, one period later, on the timer."""
    # The funding history rides with every round here (its own period is an hour by default).
    bot = _Bot(fake, tmp_path, TOML + "reconcile_ms = 1000\nfunding_reconcile_ms = 1\n")
    runtime, journal = bot.runtime, bot.journal
    quiet: list[int] = []

    def rounds_after(seq: int) -> list[int]:
        return [
            r.seq
            for r in journal.commands()
            if r.seq > seq and isinstance(r.command, RequestPositions)
        ]

    def streamed() -> bool:
        """Every order resting at the venue was accepted twice in the journal: by the place's
        answer and by the stream's update (so no update is still on its way)."""
        resting = [o.cloid for o in fake.exchange.open_orders()]
        accepted = [e.cloid for _, e in journal.events() if isinstance(e, OrderAccepted)]
        return bool(resting) and all(accepted.count(c) >= 2 for c in resting)

    async def scenario() -> None:
        await _until(bot.streaming, "the stream up")
        fake.queue_quote("ETH", Decimal("3199.9"), Decimal("3200.1"))
        await _until(lambda: streamed() and bot.idle(), "the grid resting, its updates read")
        # One more quote, the last word of the stream: a round is owed from it on, whenever
        # the last one ran.
        seen = len(bot.quotes())
        fake.queue_quote("ETH", Decimal("3199.9"), Decimal("3200.1"))
        await _until(lambda: len(bot.quotes()) > seen and bot.idle(), "the last quote reduced")
        assert runtime.state.books.maintenance_timer is not None, "the core armed its timer"
        quiet.append(journal.event_count())
        await _until(lambda: bool(rounds_after(quiet[0])), "a reconciliation round")

    final = await bot.run(scenario)
    assert check_state(final) == []
    (silent_from,) = quiet
    assert not [e for _, e in bot.after(silent_from) if isinstance(e, QuoteTicked)]
    first_seq, first = bot.after(silent_from)[0]
    assert isinstance(first, TimerFired) and first.timer_id == MAINTENANCE_TIMER, first
    asked = [type(r.command) for r in journal.commands() if r.seq == first_seq]
    for kind in (RequestFills, RequestOpenOrders, RequestPositions, RequestFunding):
        assert kind in asked, (kind, asked)
    journal.close()
