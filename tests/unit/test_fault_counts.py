"""Faults leave a trace: the injector counts what it injected, by kind, and every fault profile
changes what the bot receives.

A profile can leave the PnL of a run unchanged and still be doing its job: a fill lost on the
stream comes back in the next reconciliation round (at most ``reconcile_ms`` later) and a
duplicate is deduplicated, so the bot only reacts late, which changes the money only when the
price trades back through a level in that window; an outage hides quotes, but the grid's orders
rest at the venue meanwhile. These tests therefore look at what the reducer was fed, not at the
PnL.
"""

from __future__ import annotations

import functools
from collections import Counter

import attrs
import pytest

from gridcore.config import load_config
from gridcore.events import (
    CommandFailed,
    CommandTimedOut,
    FeedDisconnected,
    FeedReconnected,
    FillsReported,
    OrderFilled,
    OrderPartiallyFilled,
    QuoteTicked,
)
from gridcore.shells import render
from gridcore.sim import PROFILES, FaultCounts, Trace, backtest, profile
from gridcore.sim.faults import Fate, FaultInjector, FaultPlan

TICKS = 30_000
SEED = 2  # a draw under which every profile injects each fault kind it enables at least once

# Which counters each rate of a plan feeds.
_KINDS_OF_RATE = {
    "drop_ppm": ("dropped",),
    "duplicate_ppm": ("duplicated",),
    "ack_delay_ppm": ("delayed",),
    "rest_error_ppm": ("rest_errors",),
    "timeout_lost_ppm": ("timeouts_lost",),
    "timeout_applied_ppm": ("timeouts_applied",),
    "disconnect_ppm": ("disconnects", "quotes_missed"),
}


@functools.cache
def run(name: str) -> Trace:
    return backtest(load_config(), seed=SEED, ticks=TICKS, faults=profile(name), record_events=True)


def stream_fill_ids(trace: Trace) -> Counter[str]:
    assert trace.events is not None
    return Counter(
        e.fill.fill_id for e in trace.events if isinstance(e, OrderFilled | OrderPartiallyFilled)
    )


def test_a_perfect_venue_injects_nothing() -> None:
    trace = run("none")
    assert trace.summary.injected == FaultCounts()
    assert trace.summary.injected.total == 0


@pytest.mark.parametrize("name", [n for n in PROFILES if n != "none"])
def test_every_profile_counts_each_kind_it_enables_and_changes_what_the_bot_sees(
    name: str,
) -> None:
    plan, trace, clean = PROFILES[name], run(name), run("none")
    counts = trace.summary.injected
    enabled = {
        kind for rate, kinds in _KINDS_OF_RATE.items() if getattr(plan, rate) for kind in kinds
    }
    assert enabled
    for kind in attrs.fields_dict(FaultCounts):
        value = getattr(counts, kind)
        if kind in enabled:
            assert value > 0, (name, kind)
        elif kind != "lost_in_outage":  # only outages lose messages that way
            assert value == 0, (name, kind)
    assert trace.events != clean.events
    assert trace.summary.invariant_violations == 0


def test_lossy_loses_and_duplicates_fills_on_the_stream_and_reconciliation_recovers_them() -> None:
    trace = run("lossy")
    counts = trace.summary.injected
    seen = stream_fill_ids(trace)
    venue_fills = {f.fill_id for f in trace.exchange.fills}
    missing = venue_fills - set(seen)
    # Duplicates only ever hit fills: every extra stream copy is one counted duplicate.
    assert sum(seen.values()) - len(seen) == counts.duplicated > 0
    # Drops hit any stream message (fills, venue-side cancels, funding-rate updates).
    assert 0 < len(missing) <= counts.dropped
    assert trace.events is not None
    reported = {f.fill_id for e in trace.events if isinstance(e, FillsReported) for f in e.fills}
    assert missing <= reported  # every lost fill came back in a fills report
    assert trace.state.ledger.fill_count == len(venue_fills)
    assert stream_fill_ids(run("none")) == Counter(venue_fills)  # no faults: each fill once


def test_disconnects_hide_quotes_and_are_counted_exactly() -> None:
    trace = run("disconnects")
    counts = trace.summary.injected
    assert trace.events is not None
    kinds = Counter(type(e) for e in trace.events)
    assert kinds[FeedDisconnected] == counts.disconnects > 0
    assert kinds[FeedReconnected] == counts.disconnects
    assert kinds[QuoteTicked] == trace.summary.ticks - counts.quotes_missed
    assert counts.quotes_missed > 0
    assert Counter(type(e) for e in run("none").events or ())[FeedDisconnected] == 0


def test_flaky_rest_faults_reach_the_bot_as_failures_and_timeouts() -> None:
    trace = run("flaky")
    counts = trace.summary.injected
    assert trace.events is not None
    failed = [
        e
        for e in trace.events
        if isinstance(e, CommandFailed) and e.reason == "simulated REST error"
    ]
    timed_out = [e for e in trace.events if isinstance(e, CommandTimedOut)]
    # A batch is one request (one counted fault) but every command in it gets its result.
    assert len(failed) >= counts.rest_errors > 0
    assert len(timed_out) >= counts.timeouts_lost + counts.timeouts_applied > 0


def test_the_injector_counts_exactly_what_it_decides() -> None:
    plan = FaultPlan(
        name="test",
        drop_ppm=200_000,
        duplicate_ppm=200_000,
        ack_delay_ppm=300_000,
        rest_error_ppm=100_000,
        timeout_lost_ppm=100_000,
        timeout_applied_ppm=100_000,
        disconnect_ppm=100_000,
    )
    injector = FaultInjector(plan, seed=42)
    fates = Counter(injector.command_fate() for _ in range(2_000))
    delays = [injector.answer_delay() for _ in range(2_000)]
    streams = [injector.stream_delays(is_fill=True, feed_down=False) for _ in range(2_000)]
    outages = [injector.stream_delays(is_fill=False, feed_down=True) for _ in range(7)]
    downs = sum(injector.disconnect() for _ in range(2_000))
    injector.count("quotes_missed", 11)
    counts = injector.counts()
    assert counts == FaultCounts(
        dropped=sum(1 for s in streams if not s),
        lost_in_outage=len(outages),
        duplicated=sum(1 for s in streams if len(s) == 2),
        delayed=sum(1 for d in delays if d),
        rest_errors=fates[Fate.REST_ERROR],
        timeouts_lost=fates[Fate.TIMEOUT_LOST],
        timeouts_applied=fates[Fate.TIMEOUT_APPLIED],
        disconnects=downs,
        quotes_missed=11,
    )
    assert all(getattr(counts, k) > 0 for k in attrs.fields_dict(FaultCounts))
    injector.enabled = False  # the settling phase: nothing more is injected or counted
    injector.command_fate(), injector.answer_delay(), injector.disconnect()
    injector.stream_delays(is_fill=True, feed_down=False)
    assert injector.counts() == counts


def test_the_summary_reports_the_counts_in_json_and_in_the_table() -> None:
    summary = run("chaos").summary
    doc = render.summary_dict(summary)
    assert doc["injected"] == attrs.asdict(summary.injected)
    assert list(doc)[:3] == ["seed", "faults", "injected"]
    from rich.console import Console

    console = Console(width=120, record=True)
    console.print(render.summary_table(summary, render.Performance(events=1, wall_seconds=1.0)))
    text = console.export_text()
    for label, field in render.FAULT_ROWS:
        line = next(row for row in text.splitlines() if label in row)
        assert f"{getattr(summary.injected, field):,}" in line
    clean = Console(width=120, record=True)
    clean.print(
        render.summary_table(run("none").summary, render.Performance(events=1, wall_seconds=1.0))
    )
    assert "dropped" not in clean.export_text()  # a run without faults shows the table as before
