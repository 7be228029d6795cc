"""``gridcore replay`` in parallel stretches: the same verdict as one process — every event folded,
every stored snapshot compared — including a forged snapshot where a stretch starts, which the
stretch before it must catch."""

from __future__ import annotations

import argparse
import functools
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import anyio
import attrs
import pytest

from gridcore.shells import cli_run
from gridcore.shells.cli_run import (
    _Child,
    _replay_cuts,
    _stretch_result,
    cmd_replay,
    replay_journal,
)
from gridcore.shells.codec import encode_value
from gridcore.shells.journal import Journal, JournalDamaged, JournalError, _snapshot_crc
from gridcore.shells.runtime import RuntimeOptions
from tests.integration.test_runtime import _paper


@pytest.fixture(scope="module")
def journal_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "j.db"
    options = RuntimeOptions(handle_signals=False, snapshot_every=150)
    run = functools.partial(_paper, path, duration_ms=1_800_000, options=options, in_journal=True)
    anyio.run(run, backend="asyncio")
    return path


def _copy(path: Path, name: str) -> Path:
    """A copy of the journal (and its head file) beside it."""
    copy = path.with_name(name)
    src = sqlite3.connect(path)
    dst = sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    Path(f"{copy}.head").write_bytes(Path(f"{path}.head").read_bytes())
    return copy


def _forge(path: Path, seq: int) -> Path:
    """A copy of the journal whose snapshot ``seq`` is not the fold (checksum recomputed)."""
    copy = _copy(path, f"forged-{seq}.db")
    with Journal.open(path, readonly=True) as journal:
        state = journal.snapshot(seq)
    forged = attrs.evolve(state, books=attrs.evolve(state.books, seq=state.books.seq + 1))
    payload = encode_value(forged)
    dst = sqlite3.connect(copy)
    dst.execute(
        "UPDATE snapshots SET payload = ?, crc = ? WHERE seq = ?",
        (payload, _snapshot_crc(seq, forged.now, payload), seq),
    )
    dst.commit()
    dst.close()
    return copy


def test_parallel_stretches_give_the_verdict_of_one_process(journal_path: Path) -> None:
    with Journal.open(journal_path, readonly=True) as journal:
        one = replay_journal(journal)
        seqs = journal.snapshot_seqs()
        assert len(_replay_cuts(seqs, journal.last_seq, 3)) == 3
        for jobs in (2, 3):
            assert replay_journal(journal, jobs=jobs) == one
    assert one.mismatch_seq is None
    assert one.verified == tuple(seqs)
    assert one.events == journal.last_seq


@pytest.mark.parametrize("where", ["cut", "inside"])
def test_a_forged_snapshot_is_caught_in_parallel_as_alone(journal_path: Path, where: str) -> None:
    with Journal.open(journal_path, readonly=True) as journal:
        seqs = journal.snapshot_seqs()
        cut = _replay_cuts(seqs, journal.last_seq, 2)[1][0]
    # At the cut the second stretch starts from the forged snapshot: only the first stretch's
    # comparison can catch it. Inside: the second stretch's own comparison.
    seq = cut if where == "cut" else seqs[seqs.index(cut) + 1]
    forged = _forge(journal_path, seq)
    with Journal.open(forged, readonly=True) as journal:
        one = replay_journal(journal)
        two = replay_journal(journal, jobs=2)
    assert one.mismatch_seq == seq
    assert two == one


def _damage_event(path: Path, seq: int) -> None:
    """Alter event ``seq``'s payload in place, its checksum left as it was."""
    conn = sqlite3.connect(path)
    (payload,) = conn.execute("SELECT payload FROM events WHERE seq = ?", (seq,)).fetchone()
    conn.execute("UPDATE events SET payload = ? WHERE seq = ?", (bytes(payload) + b"\0", seq))
    conn.commit()
    conn.close()


def test_a_damaged_event_row_is_refused_by_a_replay_that_skipped_its_walk_at_open(
    journal_path: Path,
) -> None:
    # `gridcore replay` opens without the walk over the event rows: the replay reads each one
    # and checks it, in whichever stretch it falls.
    copy = _copy(journal_path, "damaged.db")
    with Journal.open(copy, readonly=True) as journal:
        seqs = journal.snapshot_seqs()
        late = _replay_cuts(seqs, journal.last_seq, 2)[1][0] + 5
    _damage_event(copy, late)
    message = f"event {late} is corrupt (checksum mismatch)"
    with pytest.raises(JournalDamaged, match=message.replace("(", r"\(").replace(")", r"\)")):
        Journal.open(copy, readonly=True)
    with Journal.open(copy, readonly=True, verify_events=False) as journal:
        for jobs in (1, 2):
            with pytest.raises(JournalDamaged, match=r"checksum mismatch") as caught:
                replay_journal(journal, jobs=jobs)
            assert message in str(caught.value)


def test_damage_after_a_mismatch_is_reported_as_damage(journal_path: Path) -> None:
    with Journal.open(journal_path, readonly=True) as journal:
        seqs = journal.snapshot_seqs()
    forged = _forge(journal_path, seqs[1])
    _damage_event(forged, seqs[-1])
    with Journal.open(forged, readonly=True, verify_events=False) as journal:
        assert replay_journal(journal).mismatch_seq == seqs[1]  # stops before the damage
    with pytest.raises(JournalDamaged, match=f"event {seqs[-1]} is corrupt"):
        cmd_replay(argparse.Namespace(journal=forged))


def test_a_replay_process_that_ends_without_a_result_is_an_error_not_a_verdict() -> None:
    # A child killed before it wrote (out of memory, say) closes its pipe empty: the parent
    # must say so rather than count the stretch as verified or wait forever.
    reader, writer = os.pipe()
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe, pytest.raises(JournalError, match="without a result"):
        _stretch_result(_Child(os.getpid(), pipe))


def test_a_replay_that_checks_as_it_folds_gives_the_verdict_of_a_checked_open(
    journal_path: Path,
) -> None:
    with Journal.open(journal_path, readonly=True) as journal:
        one = replay_journal(journal)
    with Journal.open(journal_path, readonly=True, verify=False) as journal:
        for jobs in (1, 2, 3):
            assert replay_journal(journal, jobs=jobs, verify=True) == one


def _damage(path: Path, damage: str) -> None:
    """Damage the journal at ``path`` in a way :meth:`Journal.open` refuses."""
    if damage == "head":
        Path(f"{path}.head").unlink()
        return
    if damage == "command":  # a command row's checksum: only the row checks see it
        conn = sqlite3.connect(path)
        conn.execute("UPDATE commands SET crc = crc + 1 WHERE id = 7")
        conn.commit()
        conn.close()
        return
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    (root,) = conn.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'commands_by_seq'"
    ).fetchone()
    conn.close()
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    # "index": the b-tree header of an index that nothing but SQLite's integrity check reads
    # (the process that runs it is not the one that checks the rows); "pages": page headers
    # early and mid-file, which the fold may meet before the checks say what they found.
    for n in (root - 1,) if damage == "index" else (2, 3, len(data) // page // 2):
        data[n * page : n * page + 12] = b"\xff" * 12
    path.write_bytes(bytes(data))


def _refusal(call: Callable[[], object]) -> tuple[type, str]:
    with pytest.raises(JournalError) as caught:
        call()
    return type(caught.value), str(caught.value)


@pytest.mark.parametrize("damage", ["index", "pages", "command", "head"])
@pytest.mark.parametrize("forged", [False, True])
def test_a_replay_that_checks_as_it_folds_refuses_as_a_checked_open(
    journal_path: Path, damage: str, forged: bool
) -> None:
    # forged: a mismatch early in the first stretch, found before the checks finish — the
    # refusal must still come first, as from an open that checked before folding.
    if forged:
        with Journal.open(journal_path, readonly=True) as journal:
            seq = journal.snapshot_seqs()[1]
        copy = _forge(journal_path, seq).rename(journal_path.with_name(f"f-{damage}.db"))
        Path(f"{journal_path.with_name(f'forged-{seq}.db')}.head").rename(f"{copy}.head")
    else:
        copy = _copy(journal_path, f"damaged-{damage}.db")
    _damage(copy, damage)
    expected = _refusal(lambda: Journal.open(copy, readonly=True, verify_events=False))
    assert expected[0] is JournalDamaged
    for jobs in (1, 2):

        def replay(jobs: int = jobs) -> None:
            with Journal.open(copy, readonly=True, verify=False) as journal:
                replay_journal(journal, jobs=jobs, verify=True)

        assert _refusal(replay) == expected
    # What `gridcore replay` prints is the open's refusal too, in one process or in two.
    assert _refusal(lambda: cmd_replay(argparse.Namespace(journal=copy))) == expected
    with pytest.MonkeyPatch.context() as patch:
        _replay_in_two(patch)
        assert _refusal(lambda: cmd_replay(argparse.Namespace(journal=copy))) == expected


def _replay_in_two(patch: pytest.MonkeyPatch) -> None:
    """`gridcore replay` in two processes whatever the journal's length and the machine."""
    patch.setattr(cli_run, "_PARALLEL_REPLAY_EVENTS", 0)
    patch.setattr(os, "cpu_count", lambda: 2)


def test_gridcore_replay_in_two_processes_gives_the_verdict_of_one(
    journal_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cmd_replay(argparse.Namespace(journal=journal_path)) == 0
    one = capsys.readouterr().out
    _replay_in_two(monkeypatch)
    assert cmd_replay(argparse.Namespace(journal=journal_path)) == 0
    assert capsys.readouterr().out == one
    assert "deterministic" in one
