"""Paper-trading and replay throughput (``python benchmarks/bench_paper.py [--quick]``; run by
``benchmarks/run.py``).

* **paper** — what ``gridcore run --speed max`` does on the simulated venue, in this process:
  the durable pipeline of a new journal (SQLite WAL, ``synchronous=FULL``, the head file), the
  reducer, the simulated venue with its state committed in the journal's own transactions (so
  its commands go out before their commit and events commit in groups of ``max_batch``, each
  commit behind the reducer, the groups that wait for one sharing the next transaction, as
  ``gridcore run`` does on paper), the lockstep clock (the feed's ticks, the venue's commands
  and the core's timers are its callbacks), default :class:`RuntimeOptions`. Timed
  from the start of :meth:`Runtime.run` to its return (the final snapshot included); opening
  the files is not.
  Events per wall second and per CPU second (``time.process_time``: this process, all threads).
* **replay** — what ``gridcore replay`` does with that journal, timed from opening it: the
  journal's checks (SQLite's, every command, snapshot and quarantine row, the head file's mark;
  in two processes, shared between them), then
  every event read (chained checksum, msgspec decode), folded through the reducer from snapshot
  0, and every stored snapshot compared with the fold. Events per second, in one process and in
  one process per core (the journal cut at stored snapshots into stretches folded in parallel,
  each from the snapshot the previous stretch proved; ``gridcore replay`` does this for
  journals of 10,000 events or more).

Each figure is the median of ``--rounds`` runs (3), wall clock (``time.perf_counter``), and is
also given as a multiple of the machine reference measured before each round (``_reference.py``:
a fixed pure-Python workload, per CPU second), which compares runs made on different days. Replay
is also given per CPU second, which a machine shared with other work changes far less than the
wall clock: one process's own CPU time (``time.process_time``), and in parallel that of its
longest stretch (the larger of this process's CPU time and a forked process's, from
``resource.getrusage(RUSAGE_CHILDREN)`` once it is reaped; with more than one forked process,
their mean). On an idle machine with a core per process, the wall figure approaches it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from _reference import REFERENCE_LABEL, reference_rate

from gridcore.config import load_config
from gridcore.shells.cli_run import replay_journal
from gridcore.shells.journal import Journal
from gridcore.shells.runtime import LockstepClock, Runtime, RuntimeOptions
from gridcore.shells.simvenue import SimVenue, VenueStore, open_venue_state
from gridcore.sim import make_bot


def paper(path: Path, duration_s: int, faults: str) -> tuple[int, float, float]:
    """``(events, wall s, CPU s)`` of one paper session of ``duration_s`` simulated seconds."""
    config = load_config()
    journal = Journal.create(
        path, state=make_bot(config, epoch=config.market.start_ts), meta={"config": ""}
    )
    store = VenueStore.in_journal(journal)
    try:
        venue_state, _ = open_venue_state(store, config, seed=None, faults=faults)
        state = make_bot(config, epoch=config.market.start_ts)
        clock = LockstepClock(SimVenue.resume_time(venue_state, state.now))
        venue = SimVenue(config=config, state=venue_state, store=store, clock=clock)
        runtime = Runtime(
            state=state,
            journal=journal,
            venues=[venue],
            clock=clock,
            options=RuntimeOptions(handle_signals=False),
        )
        cpu0, t0 = time.process_time(), time.perf_counter()
        anyio.run(lambda: runtime.run(duration_ms=duration_s * 1000))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        venue.close()
        return runtime.stats.events, wall, cpu
    finally:
        journal.close()


def replay(path: Path, jobs: int = 1) -> tuple[int, float, float]:
    """``(events, wall s, CPU s of the longest path)`` of ``gridcore replay`` on the journal at
    ``path`` (``jobs`` processes, each folding a stretch between stored snapshots), its open and
    the journal's checks included, made as ``gridcore replay`` makes them: by
    ``replay_journal`` (the event rows by the fold that reads them; the rest, in parallel,
    beside the stretches)."""
    children0 = _children_cpu()
    cpu0, t0 = time.process_time(), time.perf_counter()
    with Journal.open(path, readonly=True, verify=False) as journal:
        result = replay_journal(journal, jobs=jobs, verify=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if jobs > 1:  # replay_journal has reaped its forked processes: their CPU time is counted
        cpu = max(cpu, (_children_cpu() - children0) / (jobs - 1))
    assert result.mismatch_seq is None, result.diff
    return result.events, wall, cpu


def _children_cpu() -> float:
    """User and system CPU seconds of this process's reaped children (0 where not known)."""
    try:
        import resource
    except ImportError:  # not on this platform: no forked stretches either
        return 0.0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    """Run the paper and replay benchmarks and print their table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short session (a smoke run)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--faults", default="none", help="fault profile of the simulated venue")
    args = parser.parse_args(argv)
    duration = 3_600 if args.quick else 36_000
    jobs = os.cpu_count() or 1
    results: dict[str, list[Any]] = {
        "paper": [],
        "paper_cpu": [],
        "replay": [],
        "replay_cpu": [],
        "replay_n": [],
        "replay_n_cpu": [],
        "reference": [],
    }
    events = 0
    with tempfile.TemporaryDirectory(prefix="gridcore-paper-") as tmp:
        for i in range(args.rounds):
            results["reference"].append(reference_rate())
            path = Path(tmp) / f"paper-{i}.db"
            events, wall, cpu = paper(path, duration, args.faults)
            results["paper"].append(events / wall)
            results["paper_cpu"].append(events / cpu)
            replayed, rwall, rcpu = replay(path)
            results["replay"].append(replayed / rwall)
            results["replay_cpu"].append(replayed / rcpu)
            replayed, rwall, rcpu = replay(path, jobs)
            results["replay_n"].append(replayed / rwall)
            results["replay_n_cpu"].append(replayed / rcpu)
    print(
        f"paper and replay ({events:,} events: {duration:,} simulated seconds, faults "
        f"{args.faults}; median of {args.rounds})"
    )
    reference = statistics.median(results["reference"])
    print(f"  {'':44} {'events/s':>10} {'x ref':>7}   runs")
    rows = [
        ("paper, --speed max (per wall second)", "paper"),
        ("paper, --speed max (per CPU second)", "paper_cpu"),
        ("replay (open + read + fold + compare)", "replay"),
        ("replay (per CPU second)", "replay_cpu"),
        (f"replay, {jobs} processes (one per core)", "replay_n"),
        (f"replay, {jobs} processes (per CPU s, longest)", "replay_n_cpu"),
    ]
    for label, key in rows:
        runs = ", ".join(f"{r:,.0f}" for r in results[key])
        rate = statistics.median(results[key])
        print(f"  {label:44} {rate:>10,.0f} {rate / reference:>7.4f}   {runs}")
    runs = ", ".join(f"{r:,.0f}" for r in results["reference"])
    print(f"  {REFERENCE_LABEL}: {reference:,.0f} ({runs}; one before each round)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
