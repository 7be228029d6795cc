"""Several accounts on one shared lockstep clock and one shared market: real runtimes, real
SQLite journals, real simulated venues, under asyncio and trio.

One account is fed faults (a poison event, an adapter exception, a chaos fault profile); the
others must keep trading to the end of the session with journals whose replay equals their
state — byte for byte the journal they write when they run alone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridcore.commands import Command
from gridcore.config import DEFAULT_TOML, BotConfig, load_config
from gridcore.core import State, step
from gridcore.events import Event, FillsReported, HaltRequested, QuoteTicked
from gridcore.shells.accounts import (
    AccountClock,
    AccountOutcome,
    AccountSession,
    load_accounts,
    run_accounts,
    worst_exit,
)
from gridcore.shells.cli_run import replay_journal
from gridcore.shells.codec import canonical
from gridcore.shells.journal import Journal, Reducer, recover
from gridcore.shells.runtime import EventRejected, LockstepClock, Runtime, RuntimeOptions
from gridcore.shells.simvenue import (
    SharedMarket,
    SimVenue,
    VenueStore,
    market_key,
    open_venue_state,
    venue_path,
)
from gridcore.shells.venue import AdapterFailed
from gridcore.sim import make_bot


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


CONFIG = load_config()
START = CONFIG.market.start_ts
QUIET = RuntimeOptions(handle_signals=False)
HOUR = 3_600_000
_SHORT = DEFAULT_TOML.replace("ticks = 86400", "ticks = 600")


class _BrokenVenue(SimVenue):
    """A venue whose matching raises at a given tick: an adapter bug of its account alone."""

    def __init__(self, *args: Any, break_at: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.break_at = break_at

    async def _on_tick(self, index: int, tick: QuoteTicked) -> None:
        if index >= self.break_at:
            raise ZeroDivisionError("matching engine bug (injected)")
        await super()._on_tick(index, tick)


def _poison_after(n: int) -> Reducer:
    """A reducer that raises on the first fills answer after ``n`` events."""
    seen = 0

    def reducer(state: State[Any], event: Event) -> tuple[State[Any], list[Command]]:
        nonlocal seen
        seen += 1
        if seen > n and isinstance(event, FillsReported):
            raise ValueError("cannot fold this fills answer (injected)")
        return step(state, event)

    return reducer


@pytest.fixture
def opened() -> Any:
    closers: list[Callable[[], None]] = []
    yield closers
    for close in reversed(closers):
        close()


def _rows(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT seq, ts, kind, payload FROM events ORDER BY seq").fetchall()
    finally:
        conn.close()


async def _session(
    tmp_path: Path,
    accounts: dict[str, dict[str, Any]],
    *,
    duration_ms: int | None,
    closers: list[Callable[[], None]],
    config: BotConfig = CONFIG,
) -> tuple[list[AccountOutcome], dict[str, Runtime], dict[str, SimVenue], SharedMarket]:
    """``accounts``: name -> {"faults": profile, "reducer": reducer, "venue": class/kwargs}."""
    opened = []
    for name, spec in accounts.items():
        path = tmp_path / f"{name}.db"
        journal = (
            Journal.open(path)
            if path.exists()
            else Journal.create(
                path, state=make_bot(config, epoch=START, nonce=7), meta={"config": "default"}
            )
        )
        closers.append(journal.close)
        store = VenueStore(venue_path(path))
        venue_state, _ = open_venue_state(store, config, seed=5, faults=spec.get("faults", "none"))
        state, _ = recover(journal)
        opened.append((name, spec, journal, store, venue_state, state))
    start = max(SimVenue.resume_time(vs, st.now) for *_, vs, st in opened)
    clock = LockstepClock(start, shared=True)
    market = SharedMarket(config=config, seed=5, clock=clock)
    sessions, runtimes, venues = [], {}, {}
    for index, (name, spec, journal, store, venue_state, state) in enumerate(opened):
        view = AccountClock(clock, index)
        cls = spec.get("venue", SimVenue)
        venue = cls(
            config=config,
            state=venue_state,
            store=store,
            clock=view,
            market=market,
            **spec.get("venue_kwargs", {}),
        )
        closers.append(venue.close)
        runtime = Runtime(
            state=state,
            journal=journal,
            venues=[venue],
            clock=view,
            options=QUIET,
            reducer=spec.get("reducer", step),
            start_events=[HaltRequested(ts=start, reason="operator: halt")]
            if spec.get("halted")
            else [],
        )
        sessions.append(AccountSession(name=name, runtime=runtime, clock=view, venues=[venue]))
        runtimes[name] = runtime
        venues[name] = venue
    with anyio.fail_after(120):
        outcomes = await run_accounts(
            sessions,
            clock=clock,
            markets=[(market, list(venues.values()))],
            duration_ms=duration_ms,
            handle_signals=False,
        )
    return outcomes, runtimes, venues, market


def _exact(path: Path, runtime: Runtime) -> None:
    """The journal replays, and its recovery is the runtime's final state, exactly."""
    with Journal.open(path, readonly=True) as journal:
        assert replay_journal(journal).mismatch_seq is None
        recovered, _ = recover(journal)
    assert canonical(recovered) == canonical(runtime.state)


@pytest.mark.anyio
async def test_a_poisoned_and_a_broken_account_never_stop_the_healthy_one(
    tmp_path: Path, opened: list[Callable[[], None]]
) -> None:
    accounts: dict[str, dict[str, Any]] = {
        "alice": {},
        "bob": {"reducer": _poison_after(300)},
        "carol": {"venue": _BrokenVenue, "venue_kwargs": {"break_at": 900}},
    }
    outcomes, runtimes, venues, market = await _session(
        tmp_path, accounts, duration_ms=2 * HOUR, closers=opened
    )
    by_name = {o.name: o for o in outcomes}
    assert by_name["alice"].code == 0 and by_name["alice"].error is None
    assert isinstance(by_name["bob"].error, EventRejected) and by_name["bob"].code == 4
    assert isinstance(by_name["carol"].error, AdapterFailed) and by_name["carol"].code == 70
    assert worst_exit([o.code for o in outcomes]) == 70
    # alice traded to the end of the session: every tick of two hours, and fills.
    assert runtimes["alice"].stats.stop_reason == "duration reached"
    # (the market goes on for the others while alice drains: it quiesced, so it saw fewer)
    assert venues["alice"].ticks == 2 * 3600 + 1
    assert market.ticks >= venues["alice"].ticks
    assert runtimes["alice"].state.ledger.fill_count > 0
    # the broken ones stopped early, their journals intact too
    assert venues["carol"].ticks == 900
    for name in accounts:
        _exact(tmp_path / f"{name}.db", runtimes[name])


@pytest.mark.anyio
async def test_a_healthy_account_writes_the_journal_it_writes_alone(
    tmp_path: Path, opened: list[Callable[[], None]]
) -> None:
    alone, together = tmp_path / "alone", tmp_path / "together"
    alone.mkdir()
    together.mkdir()
    await _session(alone, {"alice": {}}, duration_ms=HOUR, closers=opened)
    outcomes, runtimes, _, _ = await _session(
        together,
        {
            "alice": {},
            "bob": {"faults": "chaos"},
            "carol": {"reducer": _poison_after(200)},
            "dave": {"halted": True},
        },
        duration_ms=HOUR,
        closers=opened,
    )
    assert [o.code for o in outcomes] == [0, 0, 4, 0]
    # dave halted at once and stays halted (no order), while alice trades on
    assert runtimes["dave"].state.risk.halted and not runtimes["alice"].state.risk.halted
    assert runtimes["dave"].state.ledger.fill_count == 0
    assert runtimes["alice"].state.ledger.fill_count > 0
    rows = _rows(together / "alice.db")
    assert len(rows) > 3_000
    assert rows == _rows(alone / "alice.db")
    # the chaos account met its faults and still ended exactly
    assert runtimes["bob"].stats.stop_reason == "duration reached"
    for name in ("alice", "bob", "carol", "dave"):
        _exact(together / f"{name}.db", runtimes[name])


@pytest.mark.anyio
async def test_each_account_resumes_from_its_own_journal(
    tmp_path: Path, opened: list[Callable[[], None]]
) -> None:
    accounts: dict[str, dict[str, Any]] = {"alice": {}, "bob": {"faults": "chaos"}, "carol": {}}
    first, runtimes1, _, _ = await _session(tmp_path, accounts, duration_ms=HOUR, closers=opened)
    for close in reversed(opened):
        close()
    opened.clear()
    seqs = {}
    for name in accounts:
        with Journal.open(tmp_path / f"{name}.db", readonly=True) as journal:
            seqs[name] = journal.last_seq
    second, runtimes2, _, _ = await _session(tmp_path, accounts, duration_ms=HOUR, closers=opened)
    assert [o.code for o in first + second] == [0] * 6
    for name in accounts:
        runtime = runtimes2[name]
        assert runtime.state.now > runtimes1[name].state.now
        _exact(tmp_path / f"{name}.db", runtime)
        with Journal.open(tmp_path / f"{name}.db", readonly=True) as journal:
            assert journal.last_seq > seqs[name]


@pytest.mark.anyio
async def test_the_end_of_the_market_stops_every_account_also_on_resume(
    tmp_path: Path, opened: list[Callable[[], None]]
) -> None:
    short = load_config(_SHORT)
    accounts: dict[str, dict[str, Any]] = {"alice": {}, "bob": {"faults": "chaos"}}
    for _ in range(2):  # the second run starts after the market's end: it stops at once
        outcomes, runtimes, _, _ = await _session(
            tmp_path, accounts, duration_ms=None, closers=opened, config=short
        )
        assert [o.code for o in outcomes] == [0, 0]
        for name in accounts:
            assert runtimes[name].stats.stop_reason.endswith(
                "the synthetic market ended (market.ticks)"
            )
            _exact(tmp_path / f"{name}.db", runtimes[name])
        for close in reversed(opened):
            close()
        opened.clear()


@given(st.lists(st.tuples(st.integers(0, 2), st.booleans()), max_size=40))
def test_a_detached_account_leaves_nothing_held_on_the_shared_clock(
    ops: list[tuple[int, bool]],
) -> None:
    clock = LockstepClock(START, shared=True)
    views = [AccountClock(clock, i) for i in range(3)]
    held = [0, 0, 0]
    for index, hold in ops:
        if hold:
            views[index].hold()
            held[index] += 1
        elif held[index]:
            views[index].release()
            held[index] -= 1
    assert clock.pending == sum(held)
    views[1].detach()
    assert clock.pending == held[0] + held[2]
    views[1].hold()  # a late hold of a finished account counts for nothing
    views[1].release()
    assert clock.pending == held[0] + held[2]
    views[0].detach()
    views[2].detach()
    assert clock.pending == 0


def test_accounts_share_a_market_unless_their_market_differs() -> None:
    text = """
[market]
seed = 3
[[accounts]]
name = "a"
[[accounts]]
name = "b"
[accounts.venue]
leverage = "3"
[accounts.risk]
max_drawdown = "50"
[[accounts]]
name = "c"
[accounts.market]
seed = 4
"""
    a, b, c = load_accounts(text, source="t.toml", journal_dir="runs")
    assert market_key(a.config, 3) == market_key(b.config, 3)
    assert market_key(a.config, 3) != market_key(c.config, 3)
    assert market_key(a.config, 3) != market_key(a.config, 4)
