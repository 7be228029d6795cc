"""Forged and damaged row payloads: decoding is total — whatever the bytes, the codec returns a
value or raises ``CodecError``, and the journal turns that into a ``CorruptRow`` (a
``CodecError`` and a ``JournalDamaged``) naming the file and the row. Never a
``RecursionError``, ``decimal.InvalidOperation``, ``OverflowError``, msgspec error or a
validator's complaint that reads like a configuration mistake."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridcore.commands import Level, Notify
from gridcore.config import load_config
from gridcore.core import State, step
from gridcore.events import Started
from gridcore.shells import codec
from gridcore.shells.journal import (
    CodecError,
    CorruptRow,
    Journal,
    JournalDamaged,
    JournalError,
    _command_crc,
    _event_crc,
    _snapshot_crc,
)
from gridcore.sim import backtest, make_bot, profile

CONFIG = load_config()
T0 = CONFIG.market.start_ts

#: Anything msgpack can carry, including integers at and beyond the 64-bit edges.
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.sampled_from(["D", "t", "m", "f", "l", "s", "O", "E", "I", "NaN", "1e999999", "-0"]),
    st.sampled_from(sorted(codec.registered())),
)
_raw = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=30,
)

_encoder = msgspec.msgpack.Encoder()


def _state() -> State[Any]:
    """A state with orders, positions and fills in it: a real faulty run folded."""
    trace = backtest(CONFIG, seed=2, ticks=1_500, faults=profile("flaky"), record_events=True)
    assert trace.events is not None
    state: State[Any] = make_bot(CONFIG, epoch=CONFIG.market.start_ts)
    for event in trace.events:
        state, _ = step(state, event)
    return state


STATE = _state()
STATE_RAW = msgspec.msgpack.decode(codec.encode_value(STATE))


def _paths(raw: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(raw, list):
        for i, item in enumerate(raw):
            yield from _paths(item, (*path, i))
    elif isinstance(raw, dict):
        for key, item in raw.items():
            yield from _paths(item, (*path, key))


STATE_PATHS = [p for p in _paths(STATE_RAW) if p]


def _replace(raw: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(raw, list):
        return [_replace(x, rest, value) if i == head else x for i, x in enumerate(raw)]
    return {k: _replace(v, rest, value) if k == head else v for k, v in raw.items()}


def _decodes_or_codec_error(fn: Any, *args: Any) -> None:
    with contextlib.suppress(CodecError):  # the only exception a hostile payload may produce
        fn(*args)


@given(kind=st.sampled_from(sorted(codec.EVENT_CLASSES)), payload=st.binary(max_size=200))
def test_any_bytes_as_any_event_decode_or_raise_codec_error(kind: str, payload: bytes) -> None:
    _decodes_or_codec_error(codec.decode_event, kind, payload)


@given(kind=st.sampled_from(sorted(codec.COMMAND_CLASSES)), raw=_raw)
def test_forged_msgpack_as_any_command_decodes_or_raises_codec_error(kind: str, raw: Any) -> None:
    _decodes_or_codec_error(codec.decode_command, kind, _encoder.encode(raw))


@given(kind=st.sampled_from(sorted(codec.EVENT_CLASSES)), raw=_raw)
def test_forged_msgpack_as_any_event_decodes_or_raises_codec_error(kind: str, raw: Any) -> None:
    _decodes_or_codec_error(codec.decode_event, kind, _encoder.encode(raw))


@given(raw=_raw)
def test_forged_tagged_values_decode_or_raise_codec_error(raw: Any) -> None:
    _decodes_or_codec_error(codec.decode_value, _encoder.encode(raw))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(where=st.sampled_from(STATE_PATHS), value=_raw)
def test_a_snapshot_with_any_field_forged_decodes_or_raises_codec_error(
    where: tuple[Any, ...], value: Any
) -> None:
    _decodes_or_codec_error(codec.decode_value, _encoder.encode(_replace(STATE_RAW, where, value)))


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        (b"\x91" * 200_000 + b"\xc0", "payload"),  # nested far beyond any recursion limit
        (b"\x92\xa1t" * 5_000 + _encoder.encode(["D", "1"]), "payload"),  # deep tagged tuples
        (_encoder.encode(["D", "not a number"]), "'D'"),
        (_encoder.encode(["D", ["D", "1"]]), "'D'"),
        (_encoder.encode(["I", "9" * 10_000]), "'I'"),
        (_encoder.encode(["E", "Side", 7]), "Side"),
        (_encoder.encode(["E", "no.such.Enum", "X"]), "unknown enum"),
        (_encoder.encode(["O", "Fill", {"qty": ["D", "1"], "nope": 1}]), "Fill"),
        (_encoder.encode(["O", "Fill", []]), "Fill"),
        (_encoder.encode(["m", 1]), "mapping"),
        (_encoder.encode(["f", ["l"]]), "'f'"),  # an unhashable member
        (_encoder.encode(["m", ["l"], 1]), "payload"),  # an unhashable key
        (_encoder.encode([]), "tag"),
        (b"\xc1", "msgpack"),
    ],
)
def test_known_hostile_payloads_are_codec_errors(payload: bytes, text: str) -> None:
    with pytest.raises(CodecError, match=re.escape(text)):
        codec.decode_value(payload)


def test_a_time_beyond_64_bits_in_an_event_is_a_codec_error() -> None:
    # msgpack cannot carry it as an integer; a forger writes it as a float or a string.
    for ts in (float(2**70), str(2**70), -1.5):
        payload = _encoder.encode({"ts": ts, "venue": "sim", "symbol": "X", "bid": "1", "ask": "2"})
        with pytest.raises(CodecError, match="QuoteTicked payload"):
            codec.decode_event("QuoteTicked", payload)


# --- through the journal: the row is named ----------------------------------------------------


@pytest.fixture(scope="module")
def journal_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("forged") / "j.db"
    journal = Journal.create(path, state=make_bot(CONFIG, epoch=CONFIG.market.start_ts))
    journal.close()
    return path


def _forge_snapshot0(path: Path, payload: bytes) -> None:
    conn = sqlite3.connect(path)
    (ts,) = conn.execute("SELECT ts FROM snapshots WHERE seq = 0").fetchone()
    conn.execute(
        "UPDATE snapshots SET payload = ?, crc = ? WHERE seq = 0",
        (payload, _snapshot_crc(0, ts, payload)),
    )
    conn.commit()
    conn.close()


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(STATE_PATHS), value=_raw)
def test_a_forged_snapshot_row_is_a_corrupt_row_naming_it(
    journal_path: Path, where: tuple[Any, ...], value: Any
) -> None:
    _forge_snapshot0(journal_path, _encoder.encode(_replace(STATE_RAW, where, value)))
    with Journal.open(journal_path, readonly=True) as journal:
        try:
            journal.snapshot(0)
        except JournalError as exc:
            assert isinstance(exc, CorruptRow) and isinstance(exc, JournalDamaged), exc
            assert str(exc).startswith(f"{journal_path}: snapshot 0 is corrupt"), exc
            assert "do not resume trading" in str(exc)


def test_an_invalid_config_inside_a_snapshot_reads_as_a_corrupt_snapshot(
    journal_path: Path,
) -> None:
    # A negative tick size is refused by Instrument's own validation ("instrument X: tick_size
    # must be > 0"): stored in a snapshot, that is damage to the snapshot, not a configuration
    # the user could fix.
    forged = None
    for where in STATE_PATHS:
        if where and where[-1] == "tick_size":
            forged = _replace(forged or STATE_RAW, where, ["D", "-1"])
    assert forged is not None
    _forge_snapshot0(journal_path, _encoder.encode(forged))
    with (
        Journal.open(journal_path, readonly=True) as journal,
        pytest.raises(
            CorruptRow, match=r"snapshot 0 is corrupt \(.*cannot rebuild Instrument from stored"
        ),
    ):
        journal.snapshot(0)


def test_a_forged_event_row_is_a_corrupt_row_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = Journal.create(path, state=make_bot(CONFIG, epoch=CONFIG.market.start_ts))
    journal.close()
    conn = sqlite3.connect(path)
    payload = _encoder.encode({"ts": 1, "venue": ["D", "x"]})
    conn.execute(
        "INSERT INTO events (seq, ts, kind, crc, payload) VALUES (1, 1, 'QuoteTicked', ?, ?)",
        (_event_crc(0, 1, 1, "QuoteTicked", payload), payload),
    )
    conn.commit()
    conn.close()
    with (
        Journal.open(path, readonly=True) as journal,
        pytest.raises(CorruptRow, match="event 1 is corrupt") as info,
    ):
        list(journal.events())
    assert isinstance(info.value, CodecError)


@pytest.fixture(scope="module")
def rows_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A journal with one event and one command row, to forge in place."""
    path = tmp_path_factory.mktemp("rows") / "j.db"
    journal = Journal.create(path, state=make_bot(CONFIG, epoch=CONFIG.market.start_ts))
    notice = Notify(command_id=1, level=Level.INFO, code="x", message="hello")
    journal.append([(Started(ts=T0), [notice])])
    journal.close()
    return path


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    event_kind=st.sampled_from(sorted(codec.EVENT_CLASSES)),
    command_kind=st.sampled_from(sorted(codec.COMMAND_CLASSES)),
    raw=_raw,
)
def test_forged_event_and_command_rows_are_corrupt_rows_naming_them(
    rows_path: Path, event_kind: str, command_kind: str, raw: Any
) -> None:
    payload = _encoder.encode(raw)
    conn = sqlite3.connect(rows_path)
    conn.execute(
        "UPDATE events SET kind = ?, payload = ?, crc = ? WHERE seq = 1",
        (event_kind, payload, _event_crc(0, 1, T0, event_kind, payload)),
    )
    conn.execute(
        "UPDATE commands SET kind = ?, payload = ?, crc = ? WHERE id = 1",
        (command_kind, payload, _command_crc(1, 1, None, command_kind, None, None, payload)),
    )
    conn.commit()
    conn.close()
    # The head's mark no longer matches the forged chain: read past it to reach the decoder.
    with Journal.open(rows_path, readonly=True, verify=False) as journal:
        readers: list[tuple[Callable[[], object], str]] = [
            (lambda: list(journal.events()), "event 1"),
            (lambda: list(journal.commands()), "command row 1"),
        ]
        for read, name in readers:
            try:
                read()
            except JournalError as exc:
                assert isinstance(exc, CorruptRow), exc
                assert f"{rows_path}: {name} is corrupt" in str(exc), exc


def test_an_event_time_beyond_its_row_is_a_corrupt_row(tmp_path: Path) -> None:
    # msgpack carries 2^64 - 1; SQLite's column cannot. A payload time beyond the row's would
    # decode, then make every later snapshot fail to store (OverflowError) on every restart.
    path = tmp_path / "j.db"
    Journal.create(path, state=make_bot(CONFIG, epoch=CONFIG.market.start_ts)).close()
    # Written by hand: the event class itself refuses such a time (it must never be built).
    payload = msgspec.msgpack.encode({"ts": 2**64 - 1})
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO events (seq, ts, kind, crc, payload) VALUES (1, 1, 'Started', ?, ?)",
        (_event_crc(0, 1, 1, "Started", payload), payload),
    )
    conn.commit()
    conn.close()
    with (
        Journal.open(path, readonly=True, verify=False) as journal,
        pytest.raises(CorruptRow, match=r"event 1 is corrupt \(.*18446744073709551615"),
    ):
        list(journal.events())


def test_a_snapshot_time_beyond_64_bits_is_a_corrupt_row(journal_path: Path) -> None:
    forged = dict(STATE_RAW[2])
    forged["now"] = ["I", str(2**70)]
    _forge_snapshot0(journal_path, _encoder.encode(["O", STATE_RAW[1], forged]))
    with (
        Journal.open(journal_path, readonly=True) as journal,
        pytest.raises(CorruptRow, match=r"snapshot 0 is corrupt \(its state's time 1180"),
    ):
        journal.snapshot(0)
