"""Journal benchmarks (``python benchmarks/bench_journal.py [--quick]``; run by ``benchmarks/run.py``).

* **codec** — encode and decode one ``OrderFilled`` with msgspec (the journal's codec) against
  ``json.dumps(attrs.asdict(...))`` (which still needs a hand-written decoder to get the attrs
  value back) and the tagged form used for snapshots.
* **raw SQLite appends** — the baseline measured in the same run: pre-encoded rows inserted into
  the same ``events`` table, WAL, ``synchronous=FULL``, one transaction per 1, 10 and 100 events.
* **journal + reducer** — what the runtime does per batch, without tasks: ``gridcore.step`` on each
  event of a recorded faulty backtest (mostly ticks, as in real sessions), then one
  :meth:`Journal.append` transaction per batch of 1, 10, 100 (``synchronous=FULL``): durable
  events per second, and the ratio to the raw append rate at the same batch size.
* **runtime** — the same events fed one at a time through the real :class:`Runtime` (channel,
  reducer task, group commit, commit in a worker thread, dispatch) on a wall clock, asyncio and
  trio: the latency from an event entering the channel to the first command it produced reaching
  the venue adapter (p50, p99), which includes the fsync of the commit that must precede it.

Timing is wall clock (``time.perf_counter``); figures vary with the disk (fsync) and the load of
the machine, so compare ratios measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import typing
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import attrs

from gridcore.commands import Batch, Command, OrderCommand, RequestCommand
from gridcore.config import load_config
from gridcore.core import State, step
from gridcore.events import Event, Fill, OrderFilled
from gridcore.instruments import PositionSide, Side
from gridcore.shells import codec
from gridcore.shells.journal import Journal
from gridcore.shells.runtime import ExecCommand, Runtime, RuntimeOptions, Sink, WallClock
from gridcore.sim import backtest, make_bot, profile

_EXECUTABLE = (Batch, *typing.get_args(OrderCommand), *typing.get_args(RequestCommand))


def _fill_event() -> OrderFilled:
    return OrderFilled(
        ts=1_700_000_000_123,
        fill=Fill(
            ts=1_700_000_000_123,
            venue="sim",
            symbol="BTC-PERP",
            fill_id="sim-f123456",
            cloid="0x0000018bcfe568000000000000000abc",
            venue_order_id="123456",
            side=Side.BUY,
            position_side=PositionSide.BOTH,
            price=Decimal("49875.3"),
            qty=Decimal("0.002"),
            fee=Decimal("0.01995012"),
        ),
    )


def _per_op_us(fn: Callable[[], object], n: int, repeat: int = 5) -> float:
    """Microseconds per call: the median of ``repeat`` timed loops of ``n`` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / n * 1e6


def bench_codec(n: int) -> list[tuple[str, float]]:
    """Microseconds per operation for one OrderFilled."""
    event = _fill_event()
    kind, payload = codec.encode_event(event)
    as_json = json.dumps(attrs.asdict(event), default=str)
    tagged = codec.encode_value(event)
    return [
        ("msgspec encode (journal)", _per_op_us(lambda: codec.encode_event(event), n)),
        ("msgspec decode (journal)", _per_op_us(lambda: codec.decode_event(kind, payload), n)),
        (
            "json.dumps(attrs.asdict())",
            _per_op_us(lambda: json.dumps(attrs.asdict(event), default=str), n // 5),
        ),
        ("json.loads (dict only)", _per_op_us(lambda: json.loads(as_json), n)),
        ("tagged encode (snapshots)", _per_op_us(lambda: codec.encode_value(event), n // 5)),
        ("tagged decode (snapshots)", _per_op_us(lambda: codec.decode_value(tagged), n // 5)),
    ]


def _recorded_events(ticks: int) -> tuple[State[Any], list[Event]]:
    config = load_config()
    trace = backtest(config, seed=3, ticks=ticks, faults=profile("flaky"), record_events=True)
    assert trace.events is not None
    return make_bot(config, epoch=config.market.start_ts), list(trace.events)


def bench_raw(directory: Path, batch: int, n: int, payload: bytes) -> float:
    """Events per second: pre-encoded rows, one transaction per ``batch``."""
    path = directory / f"raw-{batch}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, kind TEXT NOT NULL,"
        " crc INTEGER NOT NULL, payload BLOB NOT NULL)"
    )
    rows = [(i, 1_700_000_000_000 + i, "QuoteTicked", 0, payload) for i in range(1, n + 1)]
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", rows[start : start + batch])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return n / elapsed


def bench_journal(directory: Path, batch: int, state: State[Any], events: Sequence[Event]) -> float:
    """Durable events per second: step each event, one append transaction per ``batch``."""
    journal = Journal.create(directory / f"journal-{batch}.db", state=state)
    t0 = time.perf_counter()
    pending: list[tuple[Event, list[Command]]] = []
    for event in events:
        state, commands = step(state, event)
        pending.append((event, commands))
        if len(pending) == batch:
            journal.append(pending)
            pending = []
    if pending:
        journal.append(pending)
    elapsed = time.perf_counter() - t0
    journal.close()
    return len(events) / elapsed


class _Probe:
    """A venue adapter that records when each command arrives and never answers (so the
    runtime's state stays the recorded run's fold and the same events produce the same
    commands)."""

    name = "sim"

    def __init__(self) -> None:
        self.arrivals: dict[int, float] = {}
        self.changed: anyio.Event | None = None
        self.sink: Sink | None = None

    async def run(self, sink: Sink) -> None:
        self.sink = sink
        await anyio.sleep_forever()

    def quiesce(self) -> None:
        pass

    async def execute(self, command: ExecCommand) -> Sequence[Event]:
        self.arrivals[command.command_id] = time.perf_counter()
        if self.changed is not None:
            self.changed.set()
        await anyio.sleep_forever()
        return []


def bench_latency(
    directory: Path,
    backend: str,
    state: State[Any],
    events: Sequence[Event],
    limit: int,
    *,
    idle: bool,
) -> tuple[list[float], float]:
    """Microseconds from an event entering the channel to its first command at the adapter,
    for up to ``limit`` events that produce venue commands; and events/s fed overall. With
    ``idle`` each such event arrives when everything before it is committed; otherwise events
    stream in back to back and may wait for a commit of earlier ones (group commit)."""
    # Which events produce a venue command when folded from this state (the runtime folds the
    # same events from the same state, so they produce the same commands).
    triggers: dict[int, int] = {}  # event index -> id of the first venue command it produced
    s = state
    for i, event in enumerate(events):
        s, commands = step(s, event)
        venue_commands = [c.command_id for c in commands if isinstance(c, _EXECUTABLE)]
        if venue_commands and i > 0:
            triggers[i] = venue_commands[0]
    journal = Journal.create(directory / f"latency-{backend}-{idle}.db", state=state)
    probe = _Probe()
    options = RuntimeOptions(
        handle_signals=False,
        max_concurrency=1_000_000,
        command_timeout_ms=10**9,
        drain_grace_ms=0,
        flush_ms=1 if idle else 200,
    )
    # A clock frozen long before the recording: the runtime's own Started then leaves the state
    # as the recorded one did, and no runtime timer or timeout fires during the measurement
    # (each would add an event the recording does not have).
    frozen = state.epoch - 10**9
    runtime = Runtime(
        state=state,
        journal=journal,
        venues=[probe],
        clock=WallClock(time_ms=lambda: frozen),
        options=options,
    )
    samples: list[float] = []
    fed = 0

    async def feed() -> float:
        nonlocal fed
        while probe.sink is None:
            await anyio.sleep(0.001)
        t0 = time.perf_counter()
        # events[0] is the recorded Started; the runtime sent its own.
        for i, event in enumerate(events[1:], start=1):
            if i in triggers and len(samples) < limit:
                while idle and runtime.backlog:
                    await anyio.sleep(0.0005)
                cid = triggers[i]
                sent = time.perf_counter()
                await runtime.emit(event)
                with anyio.fail_after(10):
                    while cid not in probe.arrivals:
                        probe.changed = anyio.Event()
                        await probe.changed.wait()
                samples.append((probe.arrivals[cid] - sent) * 1e6)
            else:
                await runtime.emit(event)
            fed += 1
        elapsed = time.perf_counter() - t0
        runtime.request_stop("benchmark done")
        return elapsed

    async def main() -> float:
        result: list[float] = []
        async with anyio.create_task_group() as tg:

            async def feeder() -> None:
                result.append(await feed())

            tg.start_soon(feeder)
            with anyio.fail_after(300):
                await runtime.run()
        return result[0]

    elapsed = anyio.run(main, backend=backend)
    journal.close()
    return samples, fed / elapsed


def _pct(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: Sequence[str] | None = None) -> int:
    """Run every journal benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    args = parser.parse_args(argv)
    quick = bool(args.quick)

    print("codec, one OrderFilled (µs per op, median of 5)")
    for name, us in bench_codec(5_000 if quick else 50_000):
        print(f"  {name:<30} {us:8.2f}")

    ticks = 5_000 if quick else 30_000
    state, events = _recorded_events(ticks)
    _, payload = codec.encode_event(events[len(events) // 2])
    print(f"\ndurable appends, synchronous=FULL, WAL ({len(events):,} recorded events)")
    print(f"  {'batch':>5} {'raw SQLite ev/s':>16} {'journal+reducer ev/s':>21} {'ratio':>6}")
    with tempfile.TemporaryDirectory(prefix="gridcore-bench-") as tmp:
        directory = Path(tmp)
        for batch in (1, 10, 100):
            n = min(len(events), (2_000 if quick else 10_000) * (1 if batch == 1 else 5))
            raw = bench_raw(directory, batch, n, payload)
            ours = bench_journal(directory, batch, state, events[:n])
            print(f"  {batch:>5} {raw:>16,.0f} {ours:>21,.0f} {ours / raw:>6.2f}")
        print("\nruntime: event in -> first command at the venue adapter (µs), synchronous=FULL")
        print(
            f"  {'backend':<8} {'arrival':<9} {'events':>7} {'p50':>8} {'p99':>8} {'fed ev/s':>9}"
        )
        limit = 200 if quick else 1_000
        for backend in ("asyncio", "trio"):
            for idle in (True, False):
                samples, rate = bench_latency(directory, backend, state, events, limit, idle=idle)
                print(
                    f"  {backend:<8} {'idle' if idle else 'streamed':<9} {len(samples):>7} "
                    f"{statistics.median(samples):>8.0f} {_pct(samples, 0.99):>8.0f} "
                    f"{rate:>9,.0f}"
                )
    print(f"\n(platform: {sys.platform}, {os.cpu_count()} CPUs, python {sys.version.split()[0]})")
    return 0


if __name__ == "__main__":
    main()
