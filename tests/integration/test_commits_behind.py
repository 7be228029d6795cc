"""A paper session's commits run behind the reducer, and the groups that wait meanwhile share
the next transaction (:meth:`Journal.append_groups`). How the groups fall into transactions
depends on the disk's speed; the rows written must not: each group keeps its events, its
commands, its snapshot and the venue's writes, exactly as one transaction per group writes
them."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore.commands import Command, RequestBalances
from gridcore.config import load_config
from gridcore.events import Event, QuoteTicked
from gridcore.shells.journal import Group, Journal
from gridcore.shells.runtime import LockstepClock, Runtime, RuntimeOptions
from gridcore.shells.simvenue import SimVenue, VenueStore, open_venue_state
from gridcore.sim import make_bot

CONFIG = load_config()
START = CONFIG.market.start_ts

_TABLES = (
    "SELECT seq, ts, kind, crc, payload FROM events ORDER BY seq",
    "SELECT id, seq, command_id, batch_id, kind, venue, cloid, crc, payload FROM commands "
    "ORDER BY id",
    "SELECT seq, ts, crc, payload FROM snapshots ORDER BY seq",
    "SELECT n, payload FROM venue_log ORDER BY n",
)


def _rows(path: Path) -> list[list[Any]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [conn.execute(sql).fetchall() for sql in _TABLES]
    finally:
        conn.close()


def _new(path: Path) -> Journal:
    return Journal.create(
        path, state=make_bot(CONFIG, epoch=START), meta={"config": ""}, synchronous="NORMAL"
    )


def _groups(sizes: Sequence[int], snapshots: Sequence[bool]) -> list[Group]:
    """Groups of quotes, every third with a command, each with a snapshot when asked and one
    staged write of the venue's log."""
    state = make_bot(CONFIG, epoch=START)
    groups: list[Group] = []
    seq = 0
    for size, snap in zip(sizes, snapshots, strict=True):
        entries: list[tuple[Event, Sequence[Command]]] = []
        for _ in range(size):
            seq += 1
            quote = QuoteTicked(
                ts=START + seq,
                venue="sim",
                symbol="BTC-PERP",
                bid=Decimal(seq),
                ask=Decimal(seq + 1),
            )
            commands = [RequestBalances(command_id=seq, venue="sim")] if seq % 3 == 0 else []
            entries.append((quote, commands))
        staged = [("INSERT INTO venue_log (payload) VALUES (?)", (f"group {len(groups)}",))]
        groups.append((entries, state if snap else None, staged))
    return groups


@settings(max_examples=25, deadline=None)
@given(
    layout=st.lists(
        st.tuples(st.integers(min_value=0, max_value=6), st.booleans()), min_size=1, max_size=8
    ),
    cuts=st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_groups_in_one_transaction_write_the_rows_of_one_transaction_each(
    tmp_path_factory: Any, layout: list[tuple[int, bool]], cuts: list[bool]
) -> None:
    tmp = Path(tmp_path_factory.mktemp("groups"))
    groups = _groups([n for n, _ in layout], [s for _, s in layout])
    one_each = _new(tmp / "each.db")
    with one_each:
        for entries, snapshot, staged in groups:
            one_each.append(entries, snapshot=snapshot, staged=staged)
    together = _new(tmp / "together.db")
    with together:
        batch: list[Group] = []
        for group, cut in zip(groups, cuts, strict=False):
            batch.append(group)
            if cut:
                together.append_groups(batch)
                batch = []
        if batch:
            together.append_groups(batch)
        assert (together.last_seq, together.last_snapshot_seq) == (
            one_each.last_seq,
            one_each.last_snapshot_seq,
        )
    assert _rows(tmp / "together.db") == _rows(tmp / "each.db")
    with Journal.open(tmp / "together.db", readonly=True) as journal:
        journal.verify()  # chained checksums, snapshots and the head's mark hold


class _SlowDisk(Journal):
    """A journal whose first transactions of one group, in the runtime's commit thread, last
    until the reducer has reduced ``ahead`` events past them (a slow disk, without a timer):
    the groups taken meanwhile wait, and go together into the next transaction."""

    runtime: Runtime | None = None
    ahead = 2 * 256  # two groups of max_batch wait (the reducer itself waits from four)
    slow = 3
    sizes: list[int]

    def append_groups(self, groups: Sequence[Group]) -> int:
        self.sizes.append(len(groups))
        if self.slow and len(groups) == 1 and self.runtime is not None:
            self.slow -= 1
            runtime = self.runtime
            upto = self.last_seq + sum(len(g[0]) for g in groups) + self.ahead
            deadline = time.monotonic() + 60  # a bound for a broken runtime, never a measure
            while (
                runtime.stats.events < upto and not runtime.stopping and time.monotonic() < deadline
            ):
                time.sleep(0.001)
        return super().append_groups(groups)


async def _session(path: Path, journal_cls: type[Journal]) -> list[int]:
    journal = journal_cls.create(
        path, state=make_bot(CONFIG, epoch=START), meta={"config": ""}, synchronous="NORMAL"
    )
    if isinstance(journal, _SlowDisk):
        journal.sizes = []
    store = VenueStore.in_journal(journal)
    try:
        venue_state, _ = open_venue_state(store, CONFIG, seed=4, faults="chaos")
        clock = LockstepClock(START)
        venue = SimVenue(config=CONFIG, state=venue_state, store=store, clock=clock)
        runtime = Runtime(
            state=make_bot(CONFIG, epoch=START),
            journal=journal,
            venues=[venue],
            clock=clock,
            options=RuntimeOptions(handle_signals=False),
        )
        if isinstance(journal, _SlowDisk):
            journal.runtime = runtime
        with anyio.fail_after(60):
            await runtime.run(duration_ms=2_400_000)
        venue.close()
        return journal.sizes if isinstance(journal, _SlowDisk) else []
    finally:
        journal.close()


def test_a_session_whose_commits_fall_behind_writes_the_same_rows(tmp_path: Path) -> None:
    anyio.run(_session, tmp_path / "plain.db", Journal, backend="asyncio")
    sizes = anyio.run(_session, tmp_path / "slow.db", _SlowDisk, backend="asyncio")
    assert max(sizes) >= 2  # groups did share transactions
    slow, plain = _rows(tmp_path / "slow.db"), _rows(tmp_path / "plain.db")
    assert len(slow[0]) > 2_000 and len(slow[2]) >= 3  # events, snapshots on the way
    assert slow == plain
