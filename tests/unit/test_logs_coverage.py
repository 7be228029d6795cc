"""The run log's edges: a fills report that repeats a booked fill next to a new one logs only
the new one, and a plain line without structured fields passes the redaction filter intact."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from gridcore import step
from gridcore.events import FillsReported, OrderFilled
from gridcore.instruments import Side
from gridcore.shells import logs
from tests.unit.helpers import EPOCH, VENUE, fill, scripted_state, synced


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    out = io.StringIO()
    close = logs.configure(level=logging.DEBUG, json_lines=True, path=None, stream=out)
    yield out
    close()


def _lines(out: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_report_repeating_a_booked_fill_beside_a_new_one_logs_only_the_new_one(
    captured: io.StringIO,
) -> None:
    state, _ = synced(scripted_state())
    log = logs.SessionLog()
    now = state.now
    first = fill("f1", Side.BUY, "0.001", "49000", ts=now)
    second = fill("f2", Side.SELL, "0.002", "49010", ts=now)
    state, _ = step(state, OrderFilled(ts=now, fill=first))
    report = FillsReported(ts=now, venue=VENUE, since=EPOCH, fills=(first, second))
    before = state
    state, commands = step(state, report)
    log.observe(before, report, state, commands)
    log.flush()
    assert state.ledger.fill_count == 2
    got = [line for line in _lines(captured) if line["logger"] == "gridcore.fills"]
    assert [line["fill_id"] for line in got] == ["f2"]
    assert log.fills == 1


def test_a_plain_line_passes_the_redaction_filter_unchanged(captured: io.StringIO) -> None:
    logging.getLogger("gridcore.run").warning("feed is back after %d s", 3)
    (line,) = _lines(captured)
    assert line["message"] == "feed is back after 3 s"
    assert line["level"] == "WARNING"
    assert "code" not in line and "url" not in line
