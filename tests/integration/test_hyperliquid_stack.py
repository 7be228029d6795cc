"""The whole stack (core, runtime, journal, adapter) trading the Hyperliquid fake over loopback
while the fake drops the stream, loses answers (acted on or not), fails with 5xx and refuses
actions: afterwards the bot's invariants hold, its journal folds to its state, and its view of
the venue agrees with the venue's own."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import trio

from gridcore.invariants import check_state
from gridcore.shells.journal import Journal, recover
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


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@pytest.mark.anyio
async def test_the_bot_survives_venue_faults_and_agrees_with_the_venue(
    fake: HyperliquidFake, tmp_path: Path
) -> None:
    config = load_config(DEMO_TOML, source="demo")
    clock = WallClock()
    state = make_bot(config, epoch=clock.now(), nonce=7)
    journal = Journal.create(tmp_path / "j.db", state=state, meta={"config": DEMO_TOML})
    adapter = HyperliquidAdapter(
        base_url=fake.url,
        private_key=KEY,
        mainnet=False,
        coins=("ETH",),
        clock=clock,
        nonces=NonceAllocator(signer=ADDRESS, now_ms=clock.now, path=None),
        http_timeout_s=2.0,
        reconnect_ms=100,
    )
    runtime = Runtime(
        state=state,
        journal=journal,
        venues=[adapter],
        clock=clock,
        options=RuntimeOptions(handle_signals=False, command_timeout_ms=5_000),
    )

    def booked(fill_id: str, ts: int) -> bool:
        return runtime.state.ledger.seen.seen(fill_id, ts)

    def venue_fills() -> list[tuple[str, int, Decimal]]:
        return [
            (f"{f.venue_order_id}:{f.fill_id.rsplit('f', 1)[1]}", f.ts, f.qty * f.side.sign)
            for f in fake.exchange.fills
        ]

    async def faults_then_stop() -> None:
        for fault in (
            fake.disconnect_feed,
            lambda: fake.lose_next_answer(applied=True),
            lambda: fake.fail_next(502),
            fake.reject_next,
            lambda: fake.lose_next_answer(applied=False),
            fake.send_malformed,
            fake.disconnect_feed,
        ):
            await trio.sleep(1.0)
            fault()
        await trio.sleep(2.0)
        # The market stands still (no new fills); the run ends once every fill the venue made
        # has reached the bot (a bound on waiting, not on speed).
        fake.freeze_market(True)
        with trio.move_on_after(60):
            while not all(booked(i, ts) for i, ts, _ in venue_fills()):
                await trio.sleep(0.05)
        runtime.request_stop("test: done")

    await adapter.connect()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(faults_then_stop)
            final = await runtime.run()
    finally:
        await adapter.close()
    assert check_state(final) == [], "the bot's invariants hold"
    assert fake.refused_bodies == [], "the adapter sent only bodies the venue can read"
    recovered, _ = recover(journal)
    assert recovered == final, "the journal folds to the state the run ended with"
    journal.close()
    made = venue_fills()
    assert made, "the bot traded"
    # Every fill the venue made reached the bot exactly once: its position is the venue's.
    assert all(booked(i, ts) for i, ts, _ in made)
    assert final.ledger.fill_count == len(made)
    bot_qty = sum(
        (p.qty for (_venue, symbol, _side), p in final.ledger.positions.items() if symbol == "ETH"),
        Decimal(0),
    )
    assert bot_qty == fake.exchange.position("ETH").qty == sum(q for _, _, q in made)
