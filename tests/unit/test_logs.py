"""The run log (``shells.logs``): lines derived from reduced events, their format, redaction."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridcore import step
from gridcore.commands import Halt, Level, Notify
from gridcore.events import FeedDisconnected, FeedReconnected, FillsReported, OrderFilled
from gridcore.instruments import Side
from gridcore.shells import logs
from tests.unit.helpers import EPOCH, VENUE, fill, scripted_state, synced


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    out = io.StringIO()
    close = logs.configure(level=logging.DEBUG, json_lines=True, path=None, stream=out)
    yield out
    close()


def lines(out: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_utc_iso_has_milliseconds_and_z() -> None:
    assert logs.utc_iso(0.25) == "1970-01-01T00:00:00.250Z"
    assert logs.utc_iso(1_704_067_200.0) == "2024-01-01T00:00:00.000Z"


def test_a_booked_fill_is_logged_once_even_when_the_venue_repeats_it(
    captured: io.StringIO,
) -> None:
    state, _ = synced(scripted_state())
    log = logs.SessionLog()
    now = state.now
    event = OrderFilled(
        ts=now, fill=fill("f1", Side.BUY, "0.0123456", "49000.123", ts=now, fee="0.0149")
    )
    for _ in range(2):  # the second is a duplicate the ledger ignores
        before = state
        state, commands = step(state, event)
        log.observe(before, event, state, commands)
    again = FillsReported(ts=now, venue=VENUE, since=EPOCH, fills=(event.fill,))
    before = state
    state, commands = step(state, again)
    log.observe(before, again, state, commands)
    assert lines(captured) == []  # nothing before the journal has the events
    log.flush()
    got = [line for line in lines(captured) if line["logger"] == "gridcore.fills"]
    assert state.ledger.fill_count == 1
    assert log.fills == 1
    (line,) = got
    assert line["level"] == "INFO"
    assert line["side"] == "buy"
    assert line["fill_id"] == "f1"
    assert line["source"] == "stream"
    assert all(isinstance(v, str) for v in line.values())
    # Shown at the instrument's lot and tick, money at the currency's places.
    inst = state.config.by_key[(VENUE, line["symbol"])]
    assert Decimal(line["qty"]) % inst.lot_size == 0
    assert Decimal(line["price"]) % inst.tick_size == 0
    assert line["fee"] == "0.01"


def test_refusals_warn_halts_are_errors_reconnects_warn(captured: io.StringIO) -> None:
    state, _ = synced(scripted_state())
    log = logs.SessionLog()
    down = FeedDisconnected(ts=state.now, venue=VENUE, reason="socket closed")
    refused = Notify(command_id=1, level=Level.INFO, code="refused:max_position", message="no")
    log.observe(state, down, state, [refused, Halt(command_id=2, reason="drawdown")])
    log.observe(state, FeedReconnected(ts=state.now, venue=VENUE), state, [])
    log.flush()
    got = [(line["level"], line["logger"], line["message"]) for line in lines(captured)]
    assert got == [
        ("WARNING", f"gridcore.venue.{VENUE}", f"feed disconnected from {VENUE}: socket closed"),
        ("WARNING", "gridcore.run", "refused:max_position: no"),
        ("ERROR", "gridcore.run", "halted: drawdown"),
        ("WARNING", f"gridcore.venue.{VENUE}", f"feed reconnected to {VENUE}"),
    ]


def test_a_flush_of_a_count_writes_only_the_lines_noted_before_it(captured: io.StringIO) -> None:
    """A commit running behind the reducer writes the lines of its own events only: those
    noted when it took them, not those of events reduced since."""
    state, _ = synced(scripted_state())
    log = logs.SessionLog()
    log.observe(state, FeedDisconnected(ts=state.now, venue=VENUE, reason="a"), state, [])
    taken = log.noted
    log.observe(state, FeedReconnected(ts=state.now, venue=VENUE), state, [])
    assert (taken, log.noted) == (1, 2)
    log.flush(taken)
    assert [line["message"] for line in lines(captured)] == [f"feed disconnected from {VENUE}: a"]
    assert log.noted == 1
    log.flush()
    assert lines(captured)[-1]["message"] == f"feed reconnected to {VENUE}"
    assert log.noted == 0


def test_levels_follow_verbose_and_quiet() -> None:
    assert logs.level_for(verbose=False, quiet=False) == logging.INFO
    assert logs.level_for(verbose=True, quiet=False) == logging.DEBUG
    assert logs.level_for(verbose=False, quiet=True) == logging.WARNING


def test_secrets_in_messages_and_fields_are_redacted(
    captured: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXCHANGE_API_SECRET", "canary-s3cr3t-value")
    logging.getLogger("gridcore.run").warning(
        "venue said canary-s3cr3t-value", extra={"fields": {"url": "x?api_key=abc123"}}
    )
    text = captured.getvalue()
    assert "canary-s3cr3t-value" not in text
    assert "abc123" not in text
    (line,) = lines(captured)
    assert line["message"] == "venue said [redacted:EXCHANGE_API_SECRET]"


@given(message=st.text(max_size=200))
def test_every_json_line_is_one_parsable_object(message: str) -> None:
    record = logging.LogRecord("gridcore.run", logging.INFO, __file__, 1, message, None, None)
    out = logs.JsonFormatter().format(record)
    assert "\n" not in out
    assert set(json.loads(out)) == {"ts", "level", "logger", "message"}


def test_text_lines_start_with_the_utc_time() -> None:
    record = logging.LogRecord("gridcore.run", logging.ERROR, __file__, 1, "halted", None, None)
    record.created = 0.5
    assert logs.TextFormatter().format(record) == (
        "1970-01-01T00:00:00.500Z ERROR gridcore.run: halted"
    )
