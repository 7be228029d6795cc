"""The Hyperliquid adapter answers ``RequestFunding`` from the venue's ``userFunding`` history
(an in-process httpx transport plays the venue): pages walked to the end, each payment once,
under the identity the ``userFundings`` stream gives it, and what cannot be read an event."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import httpx
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

import gridcore.shells.venues.hyperliquid.adapter as adapter_module
from gridcore import step
from gridcore.commands import RequestFunding
from gridcore.events import (
    CommandFailed,
    Event,
    FundingPaid,
    FundingReported,
    MessageMalformed,
    Started,
)
from gridcore.shells.runtime import Clock, WallClock
from gridcore.shells.strategies import load_config
from gridcore.shells.venues.hyperliquid.adapter import (
    FUNDING_PAGE,
    HyperliquidAdapter,
    WeightLimiter,
)
from gridcore.shells.venues.hyperliquid.cli import DEMO_TOML
from gridcore.shells.venues.hyperliquid.nonces import NonceAllocator
from gridcore.sim import make_bot

KEY = "0x0123456789012345678901234567890123456789012345678901234567890123"  # SDK test key
META = {"universe": [{"name": c, "szDecimals": 4} for c in ("BTC", "ETH", "SOL", "DOGE")]}
T0 = 1_700_000_000_000


def _row(ts: int, coin: str, usdc: str = "-0.01") -> dict[str, Any]:
    """A ``userFunding`` history row, as the venue shapes it."""
    return {
        "time": ts,
        "hash": "0x" + "0" * 64,
        "delta": {
            "type": "funding",
            "coin": coin,
            "usdc": usdc,
            "szi": "1.5",
            "fundingRate": "0.0000125",
            "nSamples": None,
        },
    }


class History:
    """The venue's ``userFunding``: rows from ``startTime`` on, oldest first, ``page`` at most;
    with ``stuck`` it answers its first page whatever was asked."""

    def __init__(self, rows: Sequence[dict[str, Any]], page: int, *, stuck: bool = False) -> None:
        self.rows = sorted(rows, key=lambda r: (r["time"], r["delta"]["coin"]))
        self.page = page
        self.stuck = stuck
        self.starts: list[int] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body["type"] == "meta":
            return httpx.Response(200, json=META)
        assert body["type"] == "userFunding" and body["user"].startswith("0x")
        start = 0 if self.stuck else int(body["startTime"])
        self.starts.append(int(body["startTime"]))
        return httpx.Response(200, json=[r for r in self.rows if r["time"] >= start][: self.page])


def _adapter(venue: Callable[[httpx.Request], httpx.Response]) -> HyperliquidAdapter:
    clock: Clock = WallClock()
    return HyperliquidAdapter(
        base_url="http://venue.test",
        private_key=KEY,
        mainnet=False,
        coins=("ETH",),
        clock=clock,
        nonces=NonceAllocator(signer="0x0", now_ms=clock.now, path=None),
        transport=httpx.MockTransport(venue),
    )


async def _ask(venue: Callable[[httpx.Request], httpx.Response], request: Any) -> list[Event]:
    async with _adapter(venue) as adapter:
        return list(await adapter.execute(request))


def _report(events: list[Event]) -> FundingReported:
    (report,) = events
    assert isinstance(report, FundingReported), events
    return report


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@pytest.mark.anyio
async def test_a_full_page_is_followed_to_the_end_and_each_payment_reported_once() -> None:
    # Three coins paid at each funding time: a 500-row page ends inside a millisecond.
    coins = ("BTC", "ETH", "SOL")
    hour = 3_600_000
    rows = [_row(T0 + h * hour, c, f"-0.{h + 1:04d}") for h in range(401) for c in coins]
    venue = History(rows, FUNDING_PAGE)
    since = T0 - 1
    request = RequestFunding(command_id=7, venue="hyperliquid", since=since)
    report = _report(await _ask(venue, request))
    assert (report.command_id, report.venue, report.since) == (7, "hyperliquid", since)
    assert len(report.payments) == len(rows) == 1_203
    ids = [p.payment_id for p in report.payments]
    assert len(set(ids)) == len(ids)
    assert ids[0] == f"{T0}:BTC" and ids[-1] == f"{T0 + 400 * hour}:SOL"
    assert [p.ts for p in report.payments] == sorted(p.ts for p in report.payments)
    assert report.payments[3].amount == Decimal("-0.0002")  # the second hour, as sent
    # The first page ends inside hour 166 (2 of its 3 coins): the next starts *at* that time,
    # so its third coin is not skipped, and the overlap is dropped by payment id.
    assert venue.starts == [since, T0 + 166 * hour, T0 + 332 * hour]


@pytest.mark.anyio
async def test_a_venue_that_repeats_a_full_page_cannot_keep_the_walk_going() -> None:
    rows = [_row(T0 + i, "ETH") for i in range(FUNDING_PAGE + 40)]
    venue = History(rows, FUNDING_PAGE, stuck=True)
    report = _report(await _ask(venue, RequestFunding(command_id=1, venue="hyperliquid", since=T0)))
    assert len(report.payments) == FUNDING_PAGE  # what it gave, once
    # The repeat brought nothing new: one step past its last ms, the same page again, the end.
    assert venue.starts == [T0, T0 + FUNDING_PAGE - 1, T0 + FUNDING_PAGE]


@pytest.mark.anyio
async def test_a_full_page_inside_one_millisecond_steps_past_it() -> None:
    rows = [_row(T0, f"C{i}") for i in range(FUNDING_PAGE)] + [_row(T0 + 5, "ETH")]
    venue = History(rows, FUNDING_PAGE)
    report = _report(await _ask(venue, RequestFunding(command_id=1, venue="hyperliquid", since=T0)))
    assert len(report.payments) == FUNDING_PAGE + 1
    assert venue.starts == [T0, T0 + 1]


@pytest.mark.anyio
async def test_a_symbol_request_reports_that_coin_only() -> None:
    venue = History([_row(T0, "ETH"), _row(T0, "BTC"), _row(T0 + 1, "ETH")], FUNDING_PAGE)
    request = RequestFunding(command_id=1, venue="hyperliquid", since=T0, symbol="ETH")
    report = _report(await _ask(venue, request))
    assert [p.payment_id for p in report.payments] == [f"{T0}:ETH", f"{T0 + 1}:ETH"]


@pytest.mark.anyio
async def test_rows_older_than_asked_are_not_reported() -> None:
    # A venue that ignores startTime: what it lists before ``since`` is not this answer's.
    venue = History([_row(T0 - 5, "ETH"), _row(T0, "ETH")], FUNDING_PAGE, stuck=True)
    report = _report(await _ask(venue, RequestFunding(command_id=1, venue="hyperliquid", since=T0)))
    assert [p.payment_id for p in report.payments] == [f"{T0}:ETH"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "bad",
    [
        {"time": T0, "hash": "0x0", "delta": {"type": "funding", "coin": "ETH", "usdc": "NaN"}},
        {"time": T0, "delta": {"type": "funding", "usdc": "-0.1"}},
        {"time": "T0", "delta": {"type": "funding", "coin": "ETH", "usdc": "-0.1"}},
        {"time": T0, "delta": {"coin": "ETH", "usdc": "-0.1", "szi": []}},
        {"time": T0, "delta": "funding"},
        "funding",
    ],
)
async def test_a_malformed_history_entry_becomes_an_event(bad: Any) -> None:
    def venue(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["type"] == "meta":
            return httpx.Response(200, json=META)
        return httpx.Response(200, json=[_row(T0, "BTC"), bad])

    events = await _ask(venue, RequestFunding(command_id=3, venue="hyperliquid", since=T0))
    assert [type(e) for e in events] == [MessageMalformed, CommandFailed], events
    failed = events[1]
    assert isinstance(failed, CommandFailed) and failed.command_id == 3
    assert not failed.not_applied  # the answer was unreadable: its meaning is unknown


def test_the_stream_and_the_history_name_a_payment_alike_and_the_core_books_it_once() -> None:
    """A payment the stream delivered and the history lists again is one payment."""
    streamed: list[Event] = []

    class Sink:
        async def emit(self, event: Event) -> None:
            streamed.append(event)

    async def run() -> list[Event]:
        venue = History([_row(T0, "ETH", "-0.25"), _row(T0 + 3_600_000, "ETH", "0.5")], 500)
        async with _adapter(venue) as adapter:
            adapter.resume_fills_from(T0 - 1)  # a journal that has seen nothing after T0 - 1
            flat = {
                "time": T0,
                "coin": "ETH",
                "usdc": "-0.25",
                "szi": "1.5",
                "fundingRate": "0.0001",
            }
            message = {"channel": "userFundings", "data": {"user": "0x1", "fundings": [flat]}}
            await adapter.on_text(json.dumps(message), Sink())  # type: ignore[arg-type]
            return list(await adapter.execute(request))

    request = RequestFunding(command_id=99, venue="hyperliquid", since=T0 - 1)
    report = _report(trio.run(run))
    (paid,) = streamed
    assert isinstance(paid, FundingPaid)
    assert paid == report.payments[0], "the same payment, the same identity and amount"
    state = make_bot(load_config(DEMO_TOML, source="demo"), epoch=T0 - 10, nonce=1)
    state, _ = step(state, Started(ts=T0 - 10))
    for event in (paid, report, report):
        state, _ = step(state, event)
    funding = state.books.venues["hyperliquid"].funding
    assert (funding.paid, funding.recovered) == (2, 1)
    booked = sum((p.funding for p in state.ledger.positions.values()), Decimal(0))
    assert booked == Decimal("0.25")  # -0.25 once, +0.5 once


# --- a property: any history, any page boundary -------------------------------------------------

_SMALL_PAGE = 4


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Funding times (ms apart, some equal in effect: several coins paid at one time), each
    paying up to :data:`_SMALL_PAGE` coins."""
    times = draw(st.lists(st.integers(0, 60), min_size=0, max_size=30, unique=True))
    coins = ("BTC", "DOGE", "ETH", "SOL")
    rows: list[dict[str, Any]] = []
    for t in times:
        paid = draw(st.sets(st.sampled_from(coins), min_size=1, max_size=_SMALL_PAGE))
        rows.extend(_row(T0 + t, c) for c in sorted(paid))
    return rows


@settings(max_examples=60, deadline=None)
@given(rows=histories(), since=st.integers(0, 60))
def test_the_walk_reports_every_payment_since_once_whatever_the_pages(
    rows: list[dict[str, Any]], since: int
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(adapter_module, "FUNDING_PAGE", _SMALL_PAGE)
        venue = History(rows, _SMALL_PAGE)
        request = RequestFunding(command_id=1, venue="hyperliquid", since=T0 + since)
        report = _report(trio.run(_ask, venue, request))
    want = sorted(f"{r['time']}:{r['delta']['coin']}" for r in rows if r["time"] >= T0 + since)
    assert sorted(p.payment_id for p in report.payments) == want
    assert len(venue.starts) <= 2 * len(want) + 2  # bounded: no page is asked for forever


class _Spending(WeightLimiter):
    """A limiter that notes every weight it is charged (and never waits)."""

    def __init__(self) -> None:
        super().__init__(capacity=10**9)
        self.spent: list[int] = []

    def spend(self, weight: int, now: int) -> None:
        self.spent.append(weight)
        super().spend(weight, now)


@pytest.mark.anyio
async def test_a_history_walk_is_charged_per_items_returned() -> None:
    """The venue charges a list answer one more weight per 20 items: a walk of three pages
    (500, 500 and 207 rows, the boundary milliseconds fetched again) spends 20 per request and
    25 + 25 + 10 after the answers, so a long catch-up slows down instead of meeting HTTP 429."""
    coins = ("BTC", "ETH", "SOL")
    rows = [_row(T0 + h * 3_600_000, c) for h in range(401) for c in coins]
    venue = History(rows, FUNDING_PAGE)
    clock: Clock = WallClock()
    limiter = _Spending()
    adapter = HyperliquidAdapter(
        base_url="http://venue.test",
        private_key=KEY,
        mainnet=False,
        coins=("ETH",),
        clock=clock,
        nonces=NonceAllocator(signer="0x0", now_ms=clock.now, path=None),
        transport=httpx.MockTransport(venue),
        limiter=limiter,
    )
    async with adapter:
        limiter.spent.clear()  # what connecting cost is not this test's
        await adapter.execute(RequestFunding(command_id=1, venue="hyperliquid", since=T0 - 1))
    pages = [min(FUNDING_PAGE, sum(1 for r in rows if r["time"] >= s)) for s in venue.starts]
    assert pages == [500, 500, 207]
    assert limiter.spent == [20, 25, 20, 25, 20, 10]
