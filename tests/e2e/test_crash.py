"""Crash recovery (failure `torn-state-file`, `torn-state-file`: torn state files; `no-crash-recovery`: no crash recovery).

The real ``gridcore run`` is started as a subprocess against the simulated venue with a fault
profile, SIGKILLed once it has journaled a random number of further events (observed through a
read-only reader, never timed), and restarted, many times: every restart makes progress, on a
slow machine as on a fast one. After every kill the journal
must show: the recovered state (latest snapshot + tail) equals the fold of the whole journal
from snapshot 0 and every snapshot is the fold at its seq; no fill id was counted twice; no
client order id was released twice, and the venue (which survives the bot, its state committed
in the journal's own transactions) received each client order id once, holds no order the
journal lost and lacks no fill the journal heard of: a kill in the middle of a group of events
sharing one commit loses the venue's effects together with the events. A last clean run then settles, and the ledger must equal
the venue's own account.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from gridcore.core import State
from gridcore.events import FillsReported, OrderFilled, OrderPartiallyFilled
from gridcore.invariants import check_against_venue
from gridcore.shells.journal import Journal
from gridcore.shells.simvenue import saved_venue

from .paper_runs import HANG_S, recovered_as_folded, run_until_killed, start

CYCLES = 20
MAX_ADVANCE = 300  # events a run journals before it is killed: 1 to this many, drawn
SEED = 20_260_401


def _check_journal(path: Path) -> tuple[State[Any], int, set[str]]:
    with Journal.open(path, readonly=True) as journal:
        recovered, seq = recovered_as_folded(journal)
        fill_ids: set[str] = set()
        for _, event in journal.events():
            if isinstance(event, OrderFilled | OrderPartiallyFilled):
                fill_ids.add(event.fill.fill_id)
            elif isinstance(event, FillsReported):
                fill_ids.update(f.fill_id for f in event.fills)
        # Every distinct fill the journal saw is counted once, however often it arrived.
        assert recovered.ledger.fill_count == len(fill_ids)
        assert journal.duplicate_cloids() == []
        placed = journal.placed_cloids()
        assert len(placed) == len(set(placed))
    venue = saved_venue(path)
    if venue is not None:
        resent = {cloid: n for cloid, n in venue.placed.items() if n != 1}
        assert resent == {}, f"the venue received these client order ids more than once: {resent}"
        # The venue's state is committed in the journal's transactions (group commit): a kill
        # loses the venue's effects together with the events that caused them. The venue
        # never holds an order the journal did not release ...
        assert set(venue.placed) <= set(placed), "the venue holds orders the journal lost"
        # ... and the journal never heard of a fill the venue's saved state lacks.
        lost = fill_ids - {f.fill_id for f in venue.exchange.fills}
        assert lost == set(), f"fills in the journal but not in the venue: {lost}"
    return recovered, seq, fill_ids


# slow: the default run kills the hedge grid, the funding arbitrage and the live Hyperliquid CLI.
@pytest.mark.slow
def test_sigkill_at_random_points_then_recover(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    path = tmp_path / "j.db"
    last_seq = 0
    for _ in range(CYCLES):
        # Killed after the journal has advanced by a drawn number of events: a kill lands
        # mid-run at a point the draw (not the machine's speed) decides, and every restart
        # recovers, reconciles and trades before it dies.
        target = last_seq + rng.randint(1, MAX_ADVANCE)
        run_until_killed(path, target, "--speed", "3000", "--faults", "chaos", "--seed", "7")
        _, seq, _ = _check_journal(path)
        # What a reader saw committed survives the kill (the bot may have gone further).
        assert seq >= target
        last_seq = seq
    # A clean run without faults settles: a reconciliation round, then a graceful stop.
    final = start(path, "--speed", "max", "--duration", "240", "--faults", "none")
    _, final_err = final.communicate(timeout=HANG_S)
    assert final.returncode == 0, final_err
    state, _, fill_ids = _check_journal(path)
    venue = saved_venue(path)
    assert venue is not None
    # No fill lost, none counted twice: the ledger holds exactly the venue's fills.
    assert fill_ids == {f.fill_id for f in venue.exchange.fills}
    assert state.ledger.fill_count == len(venue.exchange.fills) > 0
    for (symbol, side), position in venue.exchange.positions.items():
        assert state.ledger.position(venue.exchange.config.venue, symbol, side).qty == position.qty
    if state.ledger.drift_repairs == 0:
        assert check_against_venue(state, venue.exchange) == []
    # else: a drift repair adopted the venue's size and entry while a fill was still on its way,
    # so realized PnL and entry can differ from the venue's (a gridcore.core issue: a drift seen
    # before a restart is confirmed by the first positions answer after it, before the fills
    # answer of the same round; reported with issue 4). Sizes and fills must still agree.
    with Journal.open(path, readonly=True) as journal:
        starts = sum(type(e).__name__ == "Started" for _, e in journal.events())
    assert starts == CYCLES + 1
