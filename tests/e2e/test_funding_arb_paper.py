"""Paper trading the funding-rate arbitrage on two simulated venues through the real
``gridcore run``: SIGKILLed with both legs open, restarted, and checked against both venues
(failures `no-crash-recovery`, `one-sided-exit`, `missed-fills-on-reconnect`,
`lost-funding-payment`).

The kill lands once both venues (the venues' truth, which survive the bot: kept in the
journal, committed with the events) show a position: observed through read-only readers, never
timed. No assertion depends on the machine's speed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gridcore.config import load_config
from gridcore.events import FillsReported, OrderFilled, OrderPartiallyFilled, PositionsReported
from gridcore.invariants import check_against_venue
from gridcore.shells.journal import Journal, recover
from gridcore.shells.simpair import pair_venue_path, saved_pair_venue
from gridcore.shells.simvenue import VenueState

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "funding_arb.toml"
HANG_S = 300.0  # a safety net against hangs only


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "gridcore.shells.cli", *args]


def _held(state: VenueState | None) -> bool:
    return state is not None and any(p.qty for p in state.exchange.positions.values())


def _journal_fill_ids(journal: Journal) -> set[str]:
    ids: set[str] = set()
    for _, event in journal.events():
        if isinstance(event, OrderFilled | OrderPartiallyFilled):
            ids.add(event.fill.fill_id)
        elif isinstance(event, FillsReported):
            ids.update(f.fill_id for f in event.fills)
    return ids


def test_paper_on_two_venues_sigkilled_with_both_legs_open_resumes_hedged(
    tmp_path: Path,
) -> None:
    config = load_config(EXAMPLE.read_text(encoding="utf-8"))
    path = tmp_path / "j.db"

    def venues() -> list[VenueState | None]:
        return [saved_pair_venue(path, config, which) for which in (0, 1)]

    proc = subprocess.Popen(
        _cli("run", "--config", str(EXAMPLE), "--journal", str(path), "--speed", "max", "-q"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    try:
        deadline = time.monotonic() + HANG_S
        while not all(_held(v) for v in venues()):
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"gridcore run ended (exit {proc.returncode}) before entering: {err}")
            if time.monotonic() > deadline:
                pytest.fail("no position on both venues within the safety net (hung?)")
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=HANG_S)
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    killed = venues()
    assert all(_held(v) for v in killed)  # both legs were open at the venues when it died
    # Both venues live in the journal (group-committed with its events), not in files.
    assert not any(pair_venue_path(path, config, which).exists() for which in (0, 1))

    # Restart with the recorded configuration: both venues resume from the journal.
    rerun = subprocess.run(
        _cli("run", "--journal", str(path), "--speed", "max", "--duration", "600", "-q"),
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming journal" in rerun.stderr

    resumed = venues()
    with Journal.open(path, readonly=True) as journal:
        state, _ = recover(journal)
        fill_ids = _journal_fill_ids(journal)
        events = [e for _, e in journal.events()]
    starts = [i for i, e in enumerate(events) if type(e).__name__ == "Started"]
    assert len(starts) == 2
    # Both venues were reconciled after the restart.
    after = {e.venue for e in events[starts[1] :] if isinstance(e, PositionsReported)}
    assert after == {config.venue.name, config.settings.venue_b}
    venue_fills: set[str] = set()
    qty: dict[str, Any] = {}
    for venue in resumed:
        assert venue is not None
        exchange = venue.exchange
        name = exchange.config.venue
        venue_fills |= {f.fill_id for f in exchange.fills}
        for (symbol, side), position in exchange.positions.items():
            assert state.ledger.position(name, symbol, side).qty == position.qty
            qty[name] = qty.get(name, 0) + position.qty
        if state.ledger.drift_repairs == 0:
            # Size, fees and funding per position equal the venue's: no fill and no funding
            # payment lost across the kill, none counted twice.
            assert check_against_venue(state, exchange) == []
        assert {c: n for c, n in venue.placed.items() if n != 1} == {}
    # No fill lost, none counted twice, on either venue.
    assert fill_ids == venue_fills
    assert state.ledger.fill_count == len(venue_fills) > 0
    # Hedged (or flat): the two legs offset each other.
    assert sum(qty.values()) == 0
    assert all(qty.values())  # still holding: the hold lasts longer than this run

    report = subprocess.run(
        _cli("inspect", str(path), "--json"), capture_output=True, text=True, timeout=HANG_S
    )
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    held = {p["venue"] for p in data["positions"] if Decimal(p["qty"])}
    assert held == {config.venue.name, config.settings.venue_b}  # per-venue positions
    assert data["invariants"] == {"ok": True, "violations": []}
    # Both venues' funding reconciliation is reported; every payment booked was priced by the
    # kernel or recovered, and none was off the expected amount.
    for name in (config.venue.name, config.settings.venue_b):
        funding = data["venues"][name]["funding"]
        assert funding["drifts"] == 0 and funding["history"] == "asked"
