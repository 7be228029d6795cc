"""Core backtest benchmark: CPU cost per tick, cost per bar of sparse data, and bounded memory.

``python benchmarks/bench_core.py [--quick] [--json PATH]``

Every figure is measured in a fresh subprocess (so that peak RSS, ``ru_maxrss``, belongs to that
one run) and timed in CPU seconds of that process (``time.process_time``), never wall clock:
other processes on the machine do not count against it. The whole job is timed: config, market
generation or CSV parsing, the backtest with its exchange model, and the final checks.

* ``default`` — ``gridcore backtest`` defaults (neutral grid, 1-second synthetic quotes) over
  1,000,000 ticks, the path generated while it streams; with the invariant catalogue checked
  after every step (``check_every_step``, what ``gridcore backtest`` does) and without (the
  checks at the end only, as a peer engine runs).
* ``matched`` — the same on a workload shaped like a peer's grid benchmark: quotes every
  100 ms moving about one tick each (volatility 0.000002), 10 levels a side 10 ticks apart
  (maker fee 0, so the fee floor does not widen the spacing).
* ``monthly bars`` — ``benchmarks/data/btc_monthly.csv`` (156 monthly candles, 13 years) with
  the default config: reducer events per bar, CPU seconds and peak RSS.
* ``minute bars`` — a month of 1-minute candles (43,200 bars, generated on the fly by
  ``benchmarks/data/make_candles.py``): reducer events per bar.
* ``rss`` — peak RSS of the default workload at 100k, 1M and 5M ticks, and the 5M / 1M ratio
  (memory must not grow with history).

Before them, the machine reference (``_reference.py``: a fixed pure-Python workload, per CPU
second, in this process); each throughput figure is also given as a multiple of it, which
compares runs made on different days.

``--quick`` shrinks the tick counts (200k for throughput, 50k / 200k / 1M for memory) for a
smoke run; its figures are not the reference ones.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _reference import REFERENCE_LABEL, reference_rate

HERE = Path(__file__).resolve().parent
MONTHLY = HERE / "data" / "btc_monthly.csv"

MATCHED_TOML = """
[instrument]
maker_fee = "0"

[grid]
levels = 10
spacing = "0.00002"

[market]
interval_ms = 100
volatility = "0.000002"
"""


def _config(workload: str) -> Any:
    from gridcore.config import load_config

    if workload == "matched":
        return load_config(MATCHED_TOML, source="matched workload")
    return load_config()


def _child(kind: str, n: int, check: bool) -> dict[str, Any]:
    """One measurement, in this (fresh) process."""
    t0 = time.process_time()
    from gridcore.sim import backtest

    if kind in ("default", "matched"):
        trace = backtest(_config(kind), ticks=n, check_every_step=check)
        rows = n
    else:
        from gridcore.shells.csvdata import open_quotes

        config = _config("default")
        if kind == "monthly":
            path = MONTHLY
        else:
            sys.path.insert(0, str(HERE / "data"))
            from make_candles import minute_candles

            path = Path(tempfile.mkdtemp()) / "minute.csv"
            minute_candles(path, bars=n)
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        rows = len(lines) - 1
        start_ts = int(lines[1].split(",")[0])
        quotes = open_quotes(path, instrument=config.make_instrument())
        trace = backtest(config, path=quotes, start_ts=start_ts, check_every_step=check)
    cpu = time.process_time() - t0
    s = trace.summary
    return {
        "kind": kind,
        "n": n,
        "check_every_step": check,
        "rows": rows,
        "ticks": s.ticks,
        "events": s.events,
        "fills": s.fills,
        "net_pnl": str(s.net_pnl),
        "violations": s.invariant_violations,
        "cpu_s": round(cpu, 3),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def measure(kind: str, n: int, check: bool, timeout: float) -> dict[str, Any]:
    """Run :func:`_child` in a fresh interpreter; ``{"timeout": ...}`` if it runs too long."""
    cmd = [sys.executable, __file__, "--one", kind, str(n), "1" if check else "0"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return {"kind": kind, "n": n, "check_every_step": check, "timeout_s": timeout}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (smoke test)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per measurement")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, n, check = args.one
        print(json.dumps(_child(kind, int(n), check == "1")))
        return 0

    ticks = 200_000 if args.quick else 1_000_000
    rss_sizes = (50_000, 200_000, 1_000_000) if args.quick else (100_000, 1_000_000, 5_000_000)
    report: dict[str, Any] = {"quick": args.quick, "python": sys.version.split()[0]}

    def show(label: str, value: str) -> None:
        print(f"{label:<52} {value}", flush=True)

    reference = reference_rate()
    report["reference_per_cpu_s"] = round(reference)
    show(REFERENCE_LABEL, f"{reference:>9,.0f}")
    for workload in ("default", "matched"):
        for check in (False, True):
            r = measure(workload, ticks, check, args.timeout)
            key = f"{workload}_{'checked' if check else 'unchecked'}"
            if "timeout_s" in r:
                show(
                    f"{workload} {ticks:,} ticks, invariants {'on' if check else 'off'}", "timeout"
                )
            else:
                r["ticks_per_cpu_s"] = round(r["ticks"] / r["cpu_s"])
                r["x_reference"] = round(r["ticks_per_cpu_s"] / reference, 4)
                show(
                    f"{workload} {ticks:,} ticks, invariants {'on' if check else 'off'}",
                    f"{r['ticks_per_cpu_s']:>9,} ticks/CPU-s  ({r['cpu_s']:.2f} CPU-s, "
                    f"{r['max_rss_mb']:.0f} MB; {r['x_reference']:.4f} x reference)",
                )
            report[key] = r

    for kind, n in (("monthly", 0), ("minute", 43_200)):
        r = measure(kind, n, True, args.timeout)
        if "timeout_s" in r:
            show(f"{kind} bars", f"timeout after {args.timeout:.0f} s")
        else:
            r["events_per_bar"] = round(r["events"] / r["rows"], 2)
            show(
                f"{kind} bars ({r['rows']:,} rows): reducer events per bar",
                f"{r['events_per_bar']:.2f}  ({r['cpu_s']:.2f} CPU-s, {r['max_rss_mb']:.0f} MB)",
            )
        report[f"{kind}_bars"] = r

    rss: dict[str, Any] = {}
    for n in rss_sizes:
        r = measure("default", n, False, args.timeout)
        rss[str(n)] = r.get("max_rss_mb")
        show(f"peak RSS, default workload, {n:,} ticks", f"{r.get('max_rss_mb')} MB")
    small, big = rss[str(rss_sizes[1])], rss[str(rss_sizes[2])]
    if small and big:
        rss["ratio_last_to_middle"] = round(big / small, 3)
        show(f"peak RSS {rss_sizes[2]:,} / {rss_sizes[1]:,} ticks", f"{big / small:.3f}")
    report["peak_rss_mb"] = rss

    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
