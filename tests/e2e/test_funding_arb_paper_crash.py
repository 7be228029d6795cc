"""The funding-rate arbitrage on paper (two simulated venues, one journal) through the real
``gridcore run``, SIGKILLed at drawn points and restarted (failures `no-crash-recovery`,
`torn-state-file`, `one-sided-exit`), and a session whose venues live in ``.venue`` files (a
journal written before the venues moved into it) resuming on them.

Both venues keep their state in the journal, committed in its own transactions (group commit):
after every kill, each venue holds no order the journal did not release, received each client
order id once, and lacks no fill the journal heard of from it. Kills land once the journal has
advanced by a drawn number of events (observed through read-only readers, never timed): no
assertion depends on the machine's speed.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from gridcore.commands import PlaceOrder
from gridcore.config import BotConfig, load_config
from gridcore.core import State
from gridcore.events import FillsReported, OrderFilled, OrderPartiallyFilled
from gridcore.invariants import check_against_venue
from gridcore.shells.journal import Journal
from gridcore.shells.simpair import pair_names, pair_venue_path, saved_pair_venue
from gridcore.shells.simvenue import VenueState, VenueStore

from .paper_runs import HANG_S, recovered_as_folded, run_until_killed, start

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "funding_arb.toml"
CYCLES = 4
MAX_ADVANCE = 400  # events a run journals before it is killed: 1 to this many, drawn
SEED = 20_261_130


def _fill_ids(journal: Journal) -> dict[str, set[str]]:
    """The fill ids the journal heard of, per venue."""
    ids: dict[str, set[str]] = {}
    for _, event in journal.events():
        if isinstance(event, OrderFilled | OrderPartiallyFilled):
            ids.setdefault(event.fill.venue, set()).add(event.fill.fill_id)
        elif isinstance(event, FillsReported):
            for f in event.fills:
                ids.setdefault(f.venue, set()).add(f.fill_id)
    return ids


def _check(
    path: Path, config: BotConfig
) -> tuple[State[Any], int, dict[str, set[str]], list[VenueState]]:
    """The journal is consistent, and each venue agrees with it (see the module docstring)."""
    with Journal.open(path, readonly=True) as journal:
        recovered, seq = recovered_as_folded(journal)
        fill_ids = _fill_ids(journal)
        assert recovered.ledger.fill_count == sum(len(ids) for ids in fill_ids.values())
        assert journal.duplicate_cloids() == []
        placed: dict[str, set[str]] = {}
        for row in journal.commands():
            if isinstance(row.command, PlaceOrder):
                placed.setdefault(row.command.venue, set()).add(row.command.cloid)
    venues: list[VenueState] = []
    for which, name in enumerate(pair_names(config)):
        venue = saved_pair_venue(path, config, which)
        assert venue is not None, f"venue {name} is not saved"
        venues.append(venue)
        resent = {cloid: n for cloid, n in venue.placed.items() if n != 1}
        assert resent == {}, f"venue {name} received client order ids more than once: {resent}"
        # Committed with the journal's events: the venue never holds an order the journal lost
        # (the kill dropped both together) ...
        assert set(venue.placed) <= placed.get(name, set()), f"venue {name} holds lost orders"
        # ... and the journal never heard of a fill the venue's saved state lacks.
        lost = fill_ids.get(name, set()) - {f.fill_id for f in venue.exchange.fills}
        assert lost == set(), f"fills of venue {name} in the journal but not at the venue: {lost}"
    return recovered, seq, fill_ids, venues


def _settled(path: Path, config: BotConfig) -> None:
    """After a clean run: the ledger holds exactly each venue's fills and positions."""
    state, _, fill_ids, venues = _check(path, config)
    for name, venue in zip(pair_names(config), venues, strict=True):
        exchange = venue.exchange
        assert fill_ids.get(name, set()) == {f.fill_id for f in exchange.fills}
        for (symbol, side), position in exchange.positions.items():
            assert state.ledger.position(name, symbol, side).qty == position.qty
        if state.ledger.drift_repairs == 0:
            assert check_against_venue(state, exchange) == []
    assert state.ledger.fill_count > 0


def test_pair_paper_sigkilled_at_drawn_points_keeps_venues_and_journal_agreeing(
    tmp_path: Path,
) -> None:
    config = load_config(EXAMPLE.read_text(encoding="utf-8"))
    rng = random.Random(SEED)
    path = tmp_path / "j.db"
    last_seq = 0
    for cycle in range(CYCLES):
        target = last_seq + rng.randint(1, MAX_ADVANCE)
        given = ("--config", str(EXAMPLE)) if cycle == 0 else ()
        run_until_killed(path, target, *given, "--speed", "max", "--faults", "chaos", "--seed", "7")
        _, seq, _, _ = _check(path, config)
        assert seq >= target  # what a reader saw committed survives the kill
        last_seq = seq
    # Nothing of either venue lives outside the journal.
    assert not any(pair_venue_path(path, config, which).exists() for which in (0, 1))
    final = start(path, "--speed", "max", "--duration", "600", "--faults", "none")
    _, final_err = final.communicate(timeout=HANG_S)
    assert final.returncode == 0, final_err
    _settled(path, config)
    with Journal.open(path, readonly=True) as journal:
        starts = sum(type(e).__name__ == "Started" for _, e in journal.events())
    assert starts == CYCLES + 1


def _to_files(path: Path, config: BotConfig) -> list[VenueState]:
    """Rewrite the pair session at ``path`` as a journal written before the venues moved into
    it: each venue in its own ``.venue`` file, the journal without the ``venues`` tables."""
    moved = []
    for which in (0, 1):
        state = saved_pair_venue(path, config, which)
        assert state is not None
        store = VenueStore(pair_venue_path(path, config, which))
        try:
            store.save(state)
        finally:
            store.close()
        moved.append(state)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("DROP TABLE venues")
        conn.execute("DROP TABLE venues_log")
    finally:
        conn.close()
    return moved


def test_a_session_with_its_venues_in_files_resumes_on_them(tmp_path: Path) -> None:
    config = load_config(EXAMPLE.read_text(encoding="utf-8"))
    path = tmp_path / "j.db"
    run = ("--speed", "max", "--duration", "1200", "-q")
    cli = [sys.executable, "-m", "gridcore.shells.cli", "run", "--journal", str(path)]
    first = subprocess.run(
        [*cli, "--config", str(EXAMPLE), *run], capture_output=True, text=True, timeout=HANG_S
    )
    assert first.returncode == 0, first.stderr
    moved = _to_files(path, config)
    assert all(v.touched for v in moved)  # both legs traded: the files hold real state

    again = subprocess.run([*cli, *run], capture_output=True, text=True, timeout=HANG_S)
    assert again.returncode == 0, again.stderr
    assert "resuming journal" in again.stderr
    files = [pair_venue_path(path, config, which) for which in (0, 1)]
    for before, file in zip(moved, files, strict=True):
        store = VenueStore(file)
        try:
            after = store.load()
        finally:
            store.close()
        assert after is not None and after.now > before.now  # the files went on trading
    # The journal still keeps no venue: the session resumed on its files.
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert "venues" not in names
    _settled(path, config)

    # One of the two files lost: refused, never resumed on a fresh venue in its place.
    files[1].rename(tmp_path / "elsewhere.venue")
    refused = subprocess.run([*cli, *run], capture_output=True, text=True, timeout=HANG_S)
    assert refused.returncode == 2, refused.stderr
    assert f"{files[1]} is missing" in refused.stderr
    assert not files[1].exists()
