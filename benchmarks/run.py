"""gridcore benchmarks (``nox -s bench``, or ``python benchmarks/run.py [--quick]``).

Every figure is reported both absolute and as a ratio against a baseline measured in the same
run on the same machine: the cost of a minimal frozen-attrs reducer step (``state, event ->
new state``), the floor any immutable reducer in CPython pays. Every figure is the **median** of
``REPEAT`` timed runs, wall clock (``time.perf_counter``); the same aggregation is used by
``bench_journal.py``, ``bench_paper.py`` and the peer benchmark (``peer_bench.py``), so figures from
one run can be compared.

* ``tick, no level crossed`` — ``gridcore.step`` on a quote that leaves the grid where it is:
  the hot path of every backtest and every live reaction.
* ``fill (partial, grid reacts)`` — a stream fill applied to a resting grid order: ledger,
  lifecycle, risk, and the grid's rebuild diff.
* ``backtest events/s`` — the default neutral-grid backtest (`gridcore backtest` defaults) over a
  pre-generated 1,000,000-tick synthetic path: reducer × exchange model, with the invariant
  catalogue checked after every step that moved the books (what ``gridcore backtest`` does) and
  with the checks at the end of the run only. No peer figure is printed here: the comparison
  with Nautilus Trader is ``nox -s peer`` (``benchmarks/peer_bench.py``), which runs both
  engines in the same session, on the same workloads, in the same unit (ticks per CPU-second).
* Then the journal benchmarks (``benchmarks/bench_journal.py``) and paper trading and replay
  throughput (``benchmarks/bench_paper.py``).
"""

from __future__ import annotations

import argparse
import runpy
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
from _reference import reference_rate

from gridcore.config import load_config
from gridcore.core import State, step
from gridcore.events import Fill, OrderPartiallyFilled, QuoteTicked
from gridcore.instruments import PositionSide, Side
from gridcore.sim import make_bot, make_exchange, make_path, run_backtest

REPEAT = 5
"""Timed runs per figure (the backtest: 3); the figure is their median."""


def median_rate(fn: Callable[[], int], repeat: int = REPEAT) -> float:
    """Operations per second: the median of ``repeat`` runs of ``fn`` (which returns its count)."""
    rates = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def bench_baseline(n: int) -> float:
    """The machine reference (``_reference.py``) per wall second, like the figures beside it."""
    return reference_rate(n, REPEAT, clock=time.perf_counter)


def _ready_state() -> tuple[State[Any], QuoteTicked]:
    """A synced grid that has placed its orders (a short backtest), and its last quote."""
    cfg = load_config()
    path = list(make_path(cfg, ticks=300))
    trace = run_backtest(
        make_bot(cfg, epoch=path[0].ts), make_exchange(cfg, start_ts=path[0].ts), path
    )
    state = trace.state
    quote = state.quotes[(cfg.venue.name, cfg.instrument.symbol)]
    return state, quote


def bench_ticks(n: int) -> float:
    state, quote = _ready_state()
    grid = state.strategy
    assert grid.center is not None
    ticks = [
        QuoteTicked(
            ts=state.now + 1 + i,
            venue=quote.venue,
            symbol=quote.symbol,
            bid=quote.bid + Decimal(i % 5) * Decimal("0.1"),
            ask=quote.ask + Decimal(i % 5) * Decimal("0.1"),
        )
        for i in range(n)
    ]

    def run() -> int:
        s = state
        for t in ticks:
            s, commands = step(s, t)
        assert not commands
        return n

    return median_rate(run)


def bench_fills(n: int) -> float:
    state, _quote = _ready_state()
    live = [o for o in state.orders.values() if o.is_live]
    buy = next(o for o in live if o.side is Side.BUY)
    sell = next(o for o in live if o.side is Side.SELL)
    # Two resting orders filled alternately in lot-sized partial fills: the position swings
    # between flat and one lot, as a grid's does, and neither order ever completes.
    orders = {
        **state.orders,
        buy.cloid: attrs.evolve(buy, qty=Decimal(10**6)),
        sell.cloid: attrs.evolve(sell, qty=Decimal(10**6)),
    }
    state = attrs.evolve(state, books=attrs.evolve(state.books, orders=orders))
    fills = []
    for i in range(n):
        order = buy if i % 2 == 0 else sell
        ts = state.now + 1 + i
        fill = Fill(
            ts=ts,
            venue=order.venue,
            symbol=order.symbol,
            fill_id=f"bench-{i}",
            cloid=order.cloid,
            venue_order_id=order.venue_order_id,
            side=order.side,
            position_side=PositionSide.BOTH,
            price=order.price,
            qty=Decimal("0.001"),
            fee=Decimal("0.01"),
        )
        fills.append(OrderPartiallyFilled(ts=ts, fill=fill))

    def run() -> int:
        s = state
        for f in fills:
            s, _ = step(s, f)
        return n

    return median_rate(run)


def bench_backtest(ticks: int, *, check_every_step: bool) -> tuple[float, int, float]:
    cfg = load_config()
    t0 = time.perf_counter()
    path = list(make_path(cfg, ticks=ticks))
    gen = time.perf_counter() - t0
    rates = []
    events = 0
    for _ in range(3):
        t0 = time.perf_counter()
        trace = run_backtest(
            make_bot(cfg, epoch=path[0].ts),
            make_exchange(cfg, start_ts=path[0].ts),
            path,
            check_every_step=check_every_step,
        )
        dt = time.perf_counter() - t0
        assert trace.summary.invariant_violations == 0, trace.violations[:3]
        events = trace.summary.events
        rates.append(events / dt)
    return statistics.median(rates), events, gen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--ticks", type=int, default=None, help="backtest path length")
    args = parser.parse_args(argv)
    n = 20_000 if args.quick else 200_000
    ticks = args.ticks or (100_000 if args.quick else 1_000_000)

    baseline = bench_baseline(n)
    rows: list[tuple[str, float]] = [("baseline: minimal frozen-attrs reducer step", baseline)]
    rows.append(("gridcore.step: tick, no level crossed", bench_ticks(n)))
    rows.append(("gridcore.step: fill (partial, grid reacts)", bench_fills(n // 20)))
    bt, events, gen = bench_backtest(ticks, check_every_step=True)
    rows.append((f"backtest, {ticks:,} ticks ({events:,} events), invariants every step", bt))
    fast, _, _ = bench_backtest(ticks, check_every_step=False)
    rows.append((f"backtest, {ticks:,} ticks, invariants at the end only", fast))

    print(f"{'benchmark':66} {'per second':>12} {'x baseline':>11}")
    for name, rate in rows:
        print(f"{name:66} {rate:>12,.0f} {rate / baseline:>11.3f}")
    print(f"synthetic path generation ({ticks:,} ticks, not in the figure above): {gen:.2f} s")

    for name, what in (("bench_journal.py", "journal"), ("bench_paper.py", "paper and replay")):
        script = Path(__file__).with_name(name)
        print(f"\n== {what} (benchmarks/{name})")
        sys.stdout.flush()
        saved = sys.argv
        sys.argv = [str(script), *(["--quick"] if args.quick else [])]
        try:
            runpy.run_path(str(script), run_name="__main__")
        except SystemExit as exc:
            if exc.code:
                raise
        finally:
            sys.argv = saved
    return 0


if __name__ == "__main__":
    sys.exit(main())
