"""Hyperliquid stream-to-request latency on loopback (``python benchmarks/bench_hyperliquid.py``).

The whole live path, in one process: the loopback fake (hypercorn, its own thread and trio
loop) pushes a quote over the WebSocket that trades through one of the grid's resting orders,
so the fake fills it and pushes the fill; the adapter reads the stream, the runtime journals
the events (SQLite, ``synchronous=FULL``: an event is durable before its commands leave) and
steps the grid, which replaces the filled level; the adapter signs the order (EIP-712 over
msgpack) and posts it to ``/exchange``. One sample is the time from the fake's send of the
quote to the fake's receipt of the signed request (``time.perf_counter_ns`` on both sides: one
process, one clock). The market is otherwise frozen, so nothing else competes.

Samples alternate between the highest resting bid and the lowest resting ask, and each waits
until the bot is idle (no request for a while) before the next quote. The fake shares the
process (and the GIL) with the bot, so figures include that contention; they vary with the
machine's load. Reports p50, p99 and max in ms (``--json`` for machine-readable output).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import trio

from gridcore.instruments import Side
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
STEP = Decimal("0.1")  # ETH's price step near 3,200 (5 significant figures)
IDLE_S = 0.15  # the bot is idle once no request reached the fake for this long
MISS_S = 10.0  # a quote that brings no request within this long is counted as a miss


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _idle(fake: HyperliquidFake) -> None:
    """Wait until no request has reached the fake for ``IDLE_S`` (and orders rest)."""
    while True:
        seen = len(fake.received)
        await trio.sleep(IDLE_S)
        if len(fake.received) == seen and list(fake.exchange.open_orders()):
            return


async def _measure(
    fake: HyperliquidFake, runtime: Runtime, samples: int
) -> tuple[list[float], int]:
    out: list[float] = []
    misses = 0
    buy = True
    while not list(fake.exchange.open_orders()):  # quotes until the grid is placed
        fake.queue_quote("ETH", Decimal(3200) - STEP, Decimal(3200) + STEP)
        await trio.sleep(0.2)
    while len(out) < samples:
        await _idle(fake)
        orders = [o for o in fake.exchange.open_orders() if o.symbol == "ETH"]
        bids = [o for o in orders if o.side is Side.BUY]
        asks = [o for o in orders if o.side is Side.SELL]
        side = bids if buy and bids else asks if asks else bids
        if not side:
            continue
        if side is bids:
            price = max(o.price for o in bids)
            bid, ask = price - 2 * STEP, price - STEP  # the ask trades through the bid
        else:
            price = min(o.price for o in asks)
            bid, ask = price + STEP, price + 2 * STEP
        buy = not buy
        before = len(fake.received)
        fake.queue_quote("ETH", bid, ask)
        deadline = time.monotonic() + MISS_S
        while time.monotonic() < deadline:
            pushed = fake.quote_pushed_ns
            sent = [
                r
                for r in fake.received[before:]
                if r.kind in ("order", "batchModify", "cancelByCloid")
                and pushed is not None
                and r.arrived_ns > pushed
            ]
            if sent and pushed is not None:
                out.append((sent[0].arrived_ns - pushed) / 1e6)
                break
            await trio.sleep(0.001)
        else:
            misses += 1
    runtime.request_stop("benchmark done")
    return out, misses


async def _run(samples: int, directory: Path) -> tuple[list[float], int]:
    config = load_config(DEMO_TOML, source="demo")
    clock = WallClock()
    with HyperliquidFake(
        account=ADDRESS, coins=(CoinSpec("ETH", 4, Decimal(3200)),), tick_ms=2, record=True
    ) as fake:
        fake.freeze_market(True)
        state = make_bot(config, epoch=clock.now(), nonce=3)
        journal = Journal.create(directory / "bench.db", state=state, meta={"config": DEMO_TOML})
        adapter = HyperliquidAdapter(
            base_url=fake.url,
            private_key=KEY,
            mainnet=False,
            coins=("ETH",),
            clock=clock,
            nonces=NonceAllocator(signer=ADDRESS, now_ms=clock.now, path=None),
        )
        runtime = Runtime(
            state=state,
            journal=journal,
            venues=[adapter],
            clock=clock,
            options=RuntimeOptions(handle_signals=False),
        )
        result: list[tuple[list[float], int]] = []

        async def measure() -> None:
            result.append(await _measure(fake, runtime, samples))

        await adapter.connect()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(measure)
                await runtime.run()
        finally:
            await adapter.close()
            journal.close()
        return result[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=200, help="samples (default 200)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        values, misses = trio.run(_run, args.samples, Path(directory))
    figures: dict[str, Any] = {
        "samples": len(values),
        "misses": misses,
        "p50_ms": round(statistics.median(values), 2),
        "p99_ms": round(_percentile(values, 0.99), 2),
        "max_ms": round(max(values), 2),
    }
    if args.json:
        print(json.dumps({"hyperliquid_stream_to_request": figures}))
    else:
        print(
            f"hyperliquid stream -> signed request on loopback: {figures['samples']} samples, "
            f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, max {figures['max_ms']} ms"
            f" ({misses} quotes brought no request)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
