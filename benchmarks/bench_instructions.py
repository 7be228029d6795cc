"""Replay's cost in instructions per event: a figure the machine's load and speed do not move
(``python benchmarks/bench_instructions.py [--journal PATH] [--quick]``; needs valgrind).

A shared machine's speed moves by a factor of two from hour to hour, so a change worth a few
per cent cannot be seen in seconds. Counted instructions (valgrind's callgrind, ``I refs``) of
the same work are the same on every run, whatever else the machine does: two trees compared on
one journal show what the change itself saves.

Each mode runs in a fresh process under callgrind, and the count of ``null`` (the imports, the
journal's open, its first snapshot) is subtracted from the others:

* ``read`` — every event row read through ``Journal.events`` (chained checksum, decoding,
  validation);
* ``fold`` — the same, each event folded through ``gridcore.step`` (no snapshot compared);
* ``replay`` — what ``bench_paper.py``'s replay times in one process (the journal's checks,
  read, fold, every stored snapshot compared).

The journal is ``--journal`` (with its head file beside it) or, by default, a new paper session
of ``bench_paper.py`` (36,000 simulated seconds; ``--quick``: 3,600): the same events each run.
Callgrind runs the interpreter about fifty times slower: a default run takes a few minutes.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MODES = ("read", "fold", "replay")


def _work(mode: str, path: Path) -> None:
    """The measured work of one mode (run in the child, under callgrind); ``null`` is what
    every mode does besides its own work."""
    import bench_paper

    from gridcore import step
    from gridcore.shells.journal import Journal

    if mode == "replay":
        bench_paper.replay(path)
        return
    # null: what every mode does besides its work (imports above, the open, snapshot 0).
    with Journal.open(path, readonly=True, verify=False) as journal:
        state = journal.snapshot(0)
        if mode == "read":
            for _ in journal.events():
                pass
        elif mode == "fold":
            for _, event in journal.events():
                state, _commands = step(state, event)


def _count(mode: str, path: Path) -> int:
    """Instructions of one child running ``mode`` on ``path``, under callgrind."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--child",
            mode,
            "--journal",
            str(path),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"callgrind run of {mode!r} failed:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main(argv: list[str] | None = None) -> int:
    """Count each mode's instructions per event and print them."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--journal", type=Path, help="a journal to replay (default: a new one)")
    parser.add_argument("--quick", action="store_true", help="a short session (a smoke run)")
    parser.add_argument("--child", choices=("null", *MODES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _work(args.child, args.journal)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: apt install valgrind (or your system's package)")
        return 2
    with tempfile.TemporaryDirectory(prefix="gridcore-instructions-") as tmp:
        path = args.journal
        if path is None:
            import bench_paper

            path = Path(tmp) / "paper.db"
            bench_paper.paper(path, 3_600 if args.quick else 36_000, "none")
        from gridcore.shells.journal import Journal

        with Journal.open(path, readonly=True) as journal:
            events = journal.last_seq
        base = _count("null", path)
        print(f"instructions per event ({events:,} events of {path.name}; imports subtracted)")
        for mode in MODES:
            print(f"  {mode:8} {(_count(mode, path) - base) / events:>10,.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
