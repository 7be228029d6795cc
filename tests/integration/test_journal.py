"""The codec and the journal on real SQLite files: round trips, group commit, corruption and
schema errors, and recovery (latest snapshot + tail) equal to the fold from snapshot 0.

Seed failures: `torn-state-file` / `torn-state-file` (state files torn by a crash), `no-crash-recovery` (no crash recovery).
"""

from __future__ import annotations

import enum
import functools
import os
import shutil
import sqlite3
import typing
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridcore.commands import Batch, Level, Notify, PlaceOrder
from gridcore.config import load_config
from gridcore.core import State, step
from gridcore.events import FIELD_RULES, Event, OrderAccepted, QuoteTicked, Started
from gridcore.grid import NeutralGrid
from gridcore.instruments import PositionSide, Side
from gridcore.shells import codec
from gridcore.shells.journal import (
    CodecError,
    Journal,
    JournalDamaged,
    JournalError,
    JournalLocked,
    _event_crc,
    fold,
    head_path,
    is_new,
    recover,
)
from gridcore.sim import backtest, make_bot, profile
from tests.property.hostile import valid_instances

T = 1_700_000_000_000
"""Event times in the tests below count from here (events refuse times before 2000)."""

# --- hypothesis strategies built from the event classes' annotations ----------------------------

_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_DECIMALS = st.decimals(allow_nan=False, allow_infinity=False)


def _for_type(tp: Any) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(tp)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return st.one_of(*(_for_type(a) for a in typing.get_args(tp)))
    if tp is type(None):
        return st.none()
    if origin is tuple:
        inner, _ellipsis = typing.get_args(tp)
        return st.lists(_for_type(inner), max_size=3).map(tuple)
    if tp is bool:
        return st.booleans()
    if tp is int:
        return _INT64
    if tp is str:
        return st.text(max_size=12)
    if tp is Decimal:
        return _DECIMALS
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    if attrs.has(tp):
        return _for_class(tp)
    raise AssertionError(f"no strategy for {tp!r}")


@functools.cache
def _for_class(cls: type) -> st.SearchStrategy[Any]:
    if cls in FIELD_RULES:
        return valid_instances(cls)  # events validate their fields when built
    hints = typing.get_type_hints(cls)
    fields = {f.name: _for_type(hints[f.name]) for f in attrs.fields(cls) if f.init}
    if cls is QuoteTicked:
        # A quote checks 0 < bid <= ask when built: draw only quotes that can exist, with the
        # same odd exponents and digits as any other decimal.
        positive = _DECIMALS.filter(lambda d: d > 0)
        return st.builds(
            lambda bid, spread, **kw: cls(bid=bid, ask=max(bid, bid + abs(spread)), **kw),
            bid=positive,
            spread=_DECIMALS,
            **{k: v for k, v in fields.items() if k not in ("bid", "ask")},
        )
    return st.builds(cls, **fields)


EVENTS: st.SearchStrategy[Event] = st.one_of(
    *(_for_class(cls) for cls in codec.EVENT_CLASSES.values())
)


@functools.cache
def _backtest_states() -> tuple[State[Any], ...]:
    """States of real runs (a faulty one included): every 97th state of each fold."""
    out: list[State[Any]] = []
    for seed, faults in ((3, "chaos"), (8, "flaky")):
        trace = backtest(
            load_config(), seed=seed, ticks=3_000, faults=profile(faults), record_events=True
        )
        assert trace.events is not None
        state: State[Any] = make_bot(load_config(), epoch=load_config().market.start_ts)
        for i, event in enumerate(trace.events):
            state, _ = step(state, event)
            if i % 97 == 0:
                out.append(state)
        out.append(trace.state)
    return tuple(out)


# --- codec -------------------------------------------------------------------------------------


@given(EVENTS)
def test_every_event_round_trips_exactly(event: Event) -> None:
    kind, payload = codec.encode_event(event)
    back = codec.decode_event(kind, payload)
    assert back == event
    # The round trip keeps representations (each Decimal's exponent), not only values, so
    # arithmetic after recovery rounds exactly as it did live.
    assert repr(back) == repr(event)
    assert codec.decode_value(codec.encode_value(event)) == event


@given(st.data())
def test_states_of_real_backtests_round_trip_exactly(data: st.DataObject) -> None:
    state = data.draw(st.sampled_from(_backtest_states()))
    back = codec.decode_value(codec.encode_value(state))
    assert back == state
    assert codec.canonical(back) == codec.canonical(state)
    # Derived fields are rebuilt by __init__, not trusted from the payload.
    assert back.config.by_key == state.config.by_key


def test_mappings_keyed_by_tuples_with_enums_and_frozensets_round_trip() -> None:
    value = {
        ("sim", "X", PositionSide.LONG): (Decimal("1.50"), 3),
        ("sim", "X", PositionSide.SHORT): frozenset({"a", "b"}),
        "list": [1, {2, 3}],
        "big": 2**80,
    }
    assert codec.decode_value(codec.encode_value(value)) == value


def test_canonical_bytes_tell_representations_apart() -> None:
    assert Decimal("1.0") == Decimal("1.00")
    assert codec.canonical(Decimal("1.0")) != codec.canonical(Decimal("1.00"))
    a = frozenset(f"id{i}" for i in range(50))
    b = frozenset(sorted(a, reverse=True))
    assert codec.canonical(a) == codec.canonical(b)


def test_an_unregistered_class_is_refused_when_encoding() -> None:
    @attrs.frozen
    class Mine:
        x: int = 1

    with pytest.raises(codec.CodecError, match="register it"):
        codec.encode_value(Mine())


def test_a_registered_user_strategy_round_trips() -> None:
    @attrs.frozen(kw_only=True)
    class MyStrategy:
        threshold: Decimal = Decimal("0.5")
        side: Side = Side.BUY

    codec.register(MyStrategy, "tests.MyStrategy")
    value = MyStrategy(threshold=Decimal("0.25"))
    assert codec.decode_value(codec.encode_value(value)) == value
    with pytest.raises(codec.CodecError, match="taken"):
        codec.register(Notify, "tests.MyStrategy")


def test_a_class_name_in_a_payload_is_never_imported() -> None:
    forged = codec._encoder.encode(["O", "os.system", {"command": "true"}])
    with pytest.raises(codec.CodecError, match=r"unknown class 'os\.system'"):
        codec.decode_value(forged)
    with pytest.raises(codec.CodecError, match="unknown event kind"):
        codec.decode_event("os.system", b"\x80")


# --- journal -----------------------------------------------------------------------------------


def _fresh(tmp_path: Path, name: str = "j.db") -> tuple[Journal, State[NeutralGrid]]:
    config = load_config()
    state = make_bot(config, epoch=config.market.start_ts)
    return Journal.create(tmp_path / name, state=state, meta={"config": "x"}), state


def _tick(ts: int, bid: str = "100.0") -> QuoteTicked:
    return QuoteTicked(
        ts=T + ts, venue="sim", symbol="BTC-PERP", bid=Decimal(bid), ask=Decimal(bid)
    )


def _place(cid: int, cloid: str) -> PlaceOrder:
    return PlaceOrder(
        command_id=cid,
        venue="sim",
        symbol="BTC-PERP",
        cloid=cloid,
        side=Side.BUY,
        position_side=PositionSide.BOTH,
        qty=Decimal("0.002"),
        price=Decimal("100.0"),
    )


def test_events_and_commands_read_back_in_order(tmp_path: Path) -> None:
    journal, state = _fresh(tmp_path)
    batch = Batch(command_id=9, venue="sim", commands=(_place(7, "c7"), _place(8, "c8")))
    note = Notify(command_id=10, level=Level.INFO, code="x", message="hello")
    last = journal.append([(Started(ts=T + 1), [batch, note]), (_tick(2), [])])
    assert last == 2 == journal.last_seq
    assert [e for _, e in journal.events()] == [Started(ts=T + 1), _tick(2)]
    rows = list(journal.commands())
    assert [r.command for r in rows] == [_place(7, "c7"), _place(8, "c8"), note]
    assert [(r.seq, r.batch_id) for r in rows] == [(1, 9), (1, 9), (1, None)]
    assert journal.placed_cloids() == ["c7", "c8"]
    assert journal.snapshot(0) == state
    journal.close()
    # Reopened, it knows where it was.
    again = Journal.open(tmp_path / "j.db")
    assert again.last_seq == 2 and again.meta()["config"] == "x"
    assert again.meta()["schema_version"] == "3"


def test_one_append_is_one_transaction(tmp_path: Path) -> None:
    journal, _ = _fresh(tmp_path)
    statements: list[str] = []
    journal.set_trace(statements.append)
    journal.append([(_tick(i), []) for i in range(1, 101)], snapshot=None)
    commits = [s for s in statements if s.strip().upper() == "COMMIT"]
    begins = [s for s in statements if s.strip().upper().startswith("BEGIN")]
    assert len(commits) == 1 and len(begins) == 1
    assert journal.last_seq == 100


def test_a_cloid_is_never_released_twice(tmp_path: Path) -> None:
    journal, _ = _fresh(tmp_path)
    journal.append([(_tick(1), [_place(1, "same")])])
    with pytest.raises(JournalError, match="placed before"):
        journal.append([(_tick(2), []), (_tick(3), [_place(2, "same")])])
    # Nothing of the refused transaction was written.
    assert journal.last_seq == 1
    assert journal.event_count() == 1
    assert journal.duplicate_cloids() == []


def test_another_schema_version_is_a_clear_error(tmp_path: Path) -> None:
    journal, _ = _fresh(tmp_path)
    journal.close()
    conn = sqlite3.connect(tmp_path / "j.db")
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match=r"j\.db: journal schema version 99 is not supported"):
        Journal.open(tmp_path / "j.db")


def _corrupt(path: Path, sql: str, *args: Any) -> None:
    conn = sqlite3.connect(path)
    conn.execute(sql, args)
    conn.commit()
    conn.close()


def test_a_damaged_event_payload_is_a_clear_error(tmp_path: Path) -> None:
    journal, _ = _fresh(tmp_path)
    journal.append([(_tick(1), []), (_tick(2), []), (_tick(3), [])])
    journal.close()
    _corrupt(tmp_path / "j.db", "UPDATE events SET payload = x'0001ff' WHERE seq = 2")
    for readonly in (False, True):
        with pytest.raises(JournalDamaged, match=r"event 2 is corrupt \(checksum mismatch\)"):
            Journal.open(tmp_path / "j.db", readonly=readonly)
    unverified = Journal.open(tmp_path / "j.db", verify=False)
    with pytest.raises(JournalDamaged, match=r"event 2 is corrupt \(checksum mismatch\)"):
        list(unverified.events())
    with pytest.raises(JournalDamaged, match="event 2"):
        recover(unverified)
    unverified.close()


def _forge_event(path: Path, seq: int, payload: bytes) -> None:
    """Replace event ``seq``'s payload and recompute the checksum chain from it on, as a
    forger who knows the format would."""
    conn = sqlite3.connect(path)
    prev = conn.execute(
        "SELECT coalesce((SELECT crc FROM events WHERE seq = ?), 0)", (seq - 1,)
    ).fetchone()[0]
    rows = conn.execute(
        "SELECT seq, ts, kind, payload FROM events WHERE seq >= ? ORDER BY seq", (seq,)
    )
    for row_seq, ts, kind, old in rows.fetchall():
        body = payload if row_seq == seq else old
        prev = _event_crc(prev, row_seq, ts, kind, body)
        conn.execute("UPDATE events SET payload = ?, crc = ? WHERE seq = ?", (body, prev, row_seq))
    conn.commit()
    conn.close()


def test_a_payload_that_does_not_decode_is_a_clear_error_even_with_a_valid_checksum(
    tmp_path: Path,
) -> None:
    journal, _ = _fresh(tmp_path)
    journal.append([(_tick(1), [])])
    journal.close()
    # The chain was recomputed, so the head's mark no longer matches event 1: that alone is
    # caught at open; without that check the payload itself is named when it is read.
    _forge_event(tmp_path / "j.db", 1, b"\x81\xa2ts\xa4oops")
    with pytest.raises(JournalDamaged, match="event 1 is not the event that was committed"):
        Journal.open(tmp_path / "j.db", readonly=True)
    unverified = Journal.open(tmp_path / "j.db", readonly=True, verify=False)
    with pytest.raises(CodecError, match=r"event 1 is corrupt .*QuoteTicked payload") as info:
        list(unverified.events())
    assert isinstance(info.value, JournalDamaged)
    unverified.close()


def test_a_damaged_snapshot_and_a_gap_are_clear_errors(tmp_path: Path) -> None:
    journal, _ = _fresh(tmp_path)
    journal.append([(_tick(1), []), (_tick(2), []), (_tick(3), [])])
    journal.close()
    _corrupt(tmp_path / "j.db", "UPDATE snapshots SET payload = x'00' WHERE seq = 0")
    with pytest.raises(JournalDamaged, match="snapshot 0 is corrupt"):
        Journal.open(tmp_path / "j.db")
    _corrupt(tmp_path / "j.db", "DELETE FROM events WHERE seq = 2")
    with pytest.raises(JournalDamaged, match="event sequence after 1 is corrupt"):
        Journal.open(tmp_path / "j.db")
    reopened = Journal.open(tmp_path / "j.db", verify=False)
    with pytest.raises(JournalDamaged, match="snapshot 0 is corrupt"):
        reopened.latest_snapshot()
    with pytest.raises(JournalDamaged, match="event sequence after 1 is corrupt"):
        list(reopened.events())
    reopened.close()


def test_a_file_that_is_not_a_journal_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not SQLite " * 100)
    with pytest.raises(JournalError, match="not a gridcore journal"):
        Journal.open(path)
    with pytest.raises(JournalError, match="no such journal"):
        Journal.open(tmp_path / "missing.db")


def test_a_creation_interrupted_by_a_crash_leaves_a_new_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    conn = sqlite3.connect(path)  # what a kill between connect and COMMIT leaves behind
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    assert path.exists() and is_new(path)
    with pytest.raises(JournalError, match="holds no journal"):
        Journal.open(path)
    journal, _ = _fresh(tmp_path)
    assert journal.snapshot_seqs() == [0]
    with pytest.raises(JournalError, match="exists here already"):
        _fresh(tmp_path)


def _recorded_run(seed: int) -> list[Event]:
    trace = backtest(
        load_config(), seed=seed, ticks=4_000, faults=profile("chaos"), record_events=True
    )
    assert trace.events is not None
    return list(trace.events)


@pytest.mark.parametrize("seed", [1, 5])
def test_latest_snapshot_plus_tail_equals_the_fold_from_snapshot_0(
    tmp_path: Path, seed: int
) -> None:
    journal, state = _fresh(tmp_path)
    events = _recorded_run(seed)
    live = state
    batch: list[tuple[Event, list[Any]]] = []
    for i, event in enumerate(events):
        live, _ = step(live, event)
        batch.append((event, []))
        if len(batch) == 50:
            # A snapshot every 8 batches, the way the runtime writes them: same transaction.
            journal.append(batch, snapshot=live if i % 400 == 399 else None)
            batch = []
    journal.append(batch)
    assert len(journal.snapshot_seqs()) > 5
    recovered, seq = recover(journal)
    assert seq == len(events)
    full: State[Any] = state
    for _, full in fold(journal, start=0):  # noqa: B007
        pass
    assert recovered == full == live
    assert codec.canonical(recovered) == codec.canonical(full) == codec.canonical(live)
    # Every stored snapshot is the fold at its seq.
    for snap_seq in journal.snapshot_seqs()[1:]:
        *_, (at, folded) = fold(journal, start=0, upto=snap_seq)
        assert at == snap_seq and journal.snapshot(snap_seq) == folded


def test_a_reducer_that_refuses_an_event_names_it(tmp_path: Path) -> None:
    journal, _ = _fresh(tmp_path)
    journal.append([(Started(ts=T + 1), []), (_tick(2), [])])

    def picky(state: State[Any], event: Event) -> tuple[State[Any], list[Any]]:
        if isinstance(event, QuoteTicked):
            raise ValueError("no quotes please")
        return step(state, event)

    reducer: Callable[[State[Any], Event], tuple[State[Any], list[Any]]] = picky
    with pytest.raises(JournalError, match=r"event 2 \(QuoteTicked\) cannot be applied"):
        recover(journal, reducer=reducer)


def test_ack_events_keep_their_command_ids(tmp_path: Path) -> None:
    journal, _ = _fresh(tmp_path)
    ack = OrderAccepted(ts=T + 5, venue="sim", cloid="c", venue_order_id="9", command_id=42)
    journal.append([(ack, [])])
    assert [e for _, e in journal.events()] == [ack]


def test_a_journal_has_one_writer_and_any_number_of_readers(tmp_path: Path) -> None:
    journal, _ = _fresh(tmp_path)
    journal.append([(_tick(1), [])])
    with pytest.raises(JournalLocked, match=rf"journal in use by pid {os.getpid()}") as info:
        Journal.open(tmp_path / "j.db")
    assert info.value.pid == os.getpid()
    with Journal.open(tmp_path / "j.db", readonly=True) as reader:
        assert reader.last_seq == 1
    journal.append([(_tick(2), [])])  # the writer was not disturbed
    journal.close()
    with Journal.open(tmp_path / "j.db") as again:  # released on close
        assert again.last_seq == 2


def test_a_garbled_head_file_is_refused(tmp_path: Path) -> None:
    journal, _ = _fresh(tmp_path)
    journal.append([(_tick(1), [])])
    journal.close()
    head = head_path(tmp_path / "j.db")
    data = bytearray(head.read_bytes())
    data[40] ^= 0x01
    head.write_bytes(bytes(data))
    for readonly in (True, False):
        with pytest.raises(
            JournalDamaged, match=r"j\.db\.head: the journal's head file is garbled"
        ):
            Journal.open(tmp_path / "j.db", readonly=readonly)


def test_the_head_marks_every_commit_and_a_rolled_back_journal_is_refused(tmp_path: Path) -> None:
    journal, _ = _fresh(tmp_path)
    journal.append([(_tick(1), [])])
    journal.close()
    shutil.copy(tmp_path / "j.db", tmp_path / "old.db")  # a backup after event 1
    with Journal.open(tmp_path / "j.db") as journal:
        journal.append([(_tick(2), []), (_tick(3), [])])
    assert "seq                    3 " in head_path(tmp_path / "j.db").read_text()
    # The journal restored from the older backup no longer holds what was committed.
    shutil.copy(tmp_path / "old.db", tmp_path / "j.db")
    with pytest.raises(JournalDamaged, match=r"committed events 2\.\.3 are missing"):
        Journal.open(tmp_path / "j.db", readonly=True)


def test_verify_reads_one_commit_while_the_writer_appends(tmp_path: Path) -> None:
    """A reader (``gridcore inspect`` on a running bot) verifies inside one read transaction:
    a commit that lands between its reads of the events and of the commands must not make an
    event's commands look orphaned (a live journal reported as damaged)."""
    journal, _ = _fresh(tmp_path)
    journal.append([(_tick(1), [_place(1, "c-1")])])
    reader = Journal.open(tmp_path / "j.db", readonly=True)
    landed: list[int] = []

    def commit_between_reads(sql: str) -> None:
        if "FROM commands" in sql and not landed:
            landed.append(1)
            journal.append([(_tick(2), [_place(2, "c-2")])])

    reader.set_trace(commit_between_reads)
    reader.verify()  # raised "command row 2 is corrupt (its event 2 is missing)" before
    reader.set_trace(None)
    assert landed == [1]
    reader.verify()  # a later verification sees the new commit whole
    assert reader.event_count() == 2
    reader.close()
    journal.close()
