"""The simulated venue's file and adapter refuse what would silently change a resumed venue
(another configuration or seed, a file that is not a venue, a state from another version), and
the adapter ends its feed with the market, asking the runtime to stop."""

from __future__ import annotations

import itertools
import pickle
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from gridcore.commands import RequestPositions
from gridcore.config import load_config
from gridcore.events import QuoteTicked
from gridcore.shells.journal import Journal
from gridcore.shells.runtime import LockstepClock, Runtime, RuntimeOptions
from gridcore.shells.simvenue import (
    _QUOTE,
    _TICK,
    SimVenue,
    VenueStore,
    VenueStoreError,
    describe,
    open_venue_state,
)
from gridcore.sim import make_bot, make_path

CONFIG = load_config()
START = CONFIG.market.start_ts


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_a_file_that_is_not_sqlite_is_not_a_venue(tmp_path: Path) -> None:
    path = tmp_path / "venue.db"
    path.write_text("not a database " * 200)
    with pytest.raises(VenueStoreError, match="not a simulated-venue file"):
        VenueStore(path)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x80\x05garbage", "the simulated venue's state cannot be read"),
        (pickle.dumps({"exchange": None}), "written by another gridcore version"),
    ],
)
def test_a_venue_state_that_cannot_be_read_is_refused(
    tmp_path: Path, payload: bytes, message: str
) -> None:
    path = tmp_path / "venue.db"
    VenueStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO venue (id, saved_ms, payload) VALUES (1, 0, ?)", (payload,))
    conn.commit()
    conn.close()
    store = VenueStore(path)
    try:
        with pytest.raises(VenueStoreError, match=message):
            store.load()
    finally:
        store.close()


def test_a_saved_venue_resumes_only_with_its_configuration_and_seed(tmp_path: Path) -> None:
    store = VenueStore(tmp_path / "venue.db")
    try:
        state, notes = open_venue_state(store, CONFIG, seed=None, faults=None)
        assert notes == []
        assert describe(state) == {
            "now": START,
            "orders": 0,
            "open_orders": 0,
            "fills": 0,
            "cash": str(state.exchange.cash),
            "faults": "none",
            "seed": CONFIG.market.seed,
            "max_sends_per_cloid": 0,
        }
        other_market = attrs.evolve(
            CONFIG, market=attrs.evolve(CONFIG.market, start_price=CONFIG.market.start_price * 2)
        )
        with pytest.raises(VenueStoreError, match="created with another"):
            open_venue_state(store, other_market, seed=None, faults=None)
        with pytest.raises(VenueStoreError, match=r"runs seed 1, not 2; omit --seed"):
            open_venue_state(store, CONFIG, seed=2, faults=None)
        again, notes = open_venue_state(store, CONFIG, seed=1, faults="flaky")
        assert notes == ["fault profile none -> flaky"]
        assert again.faults == "flaky"
    finally:
        store.close()


def test_an_adapter_refuses_a_negative_latency_and_commands_before_its_feed(
    tmp_path: Path,
) -> None:
    store = VenueStore(tmp_path / "venue.db")
    state, _ = open_venue_state(store, CONFIG, seed=None, faults=None)
    clock = LockstepClock(START)
    with pytest.raises(ValueError, match="latency_ms must be >= 0, got -1"):
        SimVenue(config=CONFIG, state=state, store=store, clock=clock, latency_ms=-1)
    venue = SimVenue(config=CONFIG, state=state, store=None, clock=clock)
    with pytest.raises(RuntimeError, match=r"execute called before run\(\)"):
        anyio.run(venue.execute, RequestPositions(command_id=1, venue="sim"))
    venue.close()
    venue.close()  # idempotent
    store.close()


@pytest.mark.anyio
async def test_the_feed_ends_with_the_market_and_asks_the_runtime_to_stop(tmp_path: Path) -> None:
    config = attrs.evolve(CONFIG, market=attrs.evolve(CONFIG.market, ticks=20))
    store = VenueStore(tmp_path / "venue.db")
    state, _ = open_venue_state(store, config, seed=None, faults=None)
    clock = LockstepClock(START)
    venue = SimVenue(config=config, state=state, store=store, clock=clock)
    bot: Any = make_bot(config, epoch=START)
    with Journal.create(tmp_path / "j.db", state=bot) as journal:
        runtime = Runtime(
            state=bot,
            journal=journal,
            venues=[venue],
            clock=clock,
            options=RuntimeOptions(handle_signals=False),
        )
        with anyio.fail_after(60):
            await runtime.run()  # no duration: only the market's end stops it
        quotes = [e for _, e in journal.events() if isinstance(e, QuoteTicked)]
    venue.close()
    assert runtime.stats.stop_reason == "sim: the synthetic market ended (market.ticks)"
    assert venue.ticks == 20
    assert len(quotes) == 20
    assert quotes[-1].ts == START + 19 * config.market.interval_ms


def test_a_venue_log_of_ticks_in_either_stored_form_loads_to_the_same_venue(
    tmp_path: Path,
) -> None:
    """Ticks are logged as flat tuples of their fields; rows written before that (the
    ``QuoteTicked`` itself) still load, to the same venue."""
    ticks = list(itertools.islice(make_path(CONFIG, seed=CONFIG.market.seed), 5))
    forms: dict[str, list[tuple[Any, ...]]] = {
        "instance": [(_TICK, t) for t in ticks],
        "fields": [(_QUOTE, t.ts, t.venue, t.symbol, t.bid, t.ask) for t in ticks],
    }
    loaded: dict[str, bytes] = {}
    fresh = b""
    for name, ops in forms.items():
        store = VenueStore(tmp_path / f"{name}.db")
        try:
            state, _ = open_venue_state(store, CONFIG, seed=None, faults=None)
            fresh = pickle.dumps(state.exchange)
            store.append(state, ops)
        finally:
            store.close()
        store = VenueStore(tmp_path / f"{name}.db")
        try:
            again = store.load()
        finally:
            store.close()
        assert again is not None
        loaded[name] = pickle.dumps(again.exchange)
    assert loaded["instance"] == loaded["fields"] != fresh
