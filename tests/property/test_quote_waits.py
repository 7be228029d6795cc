"""A quote awaited for a refused order (failure `silent-quote-refusal`) sends only its own
instrument's quotes to the general path: every other quote keeps the fast paths, with the very
results the general path gives."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore import QuoteTicked, State, Submit
from gridcore.config import load_config
from gridcore.instruments import InstrumentKey, Side
from gridcore.kernel import general_step, step
from gridcore.numbers import CTX
from gridcore.sim import backtest, profile
from tests.unit.helpers import (
    EPOCH,
    VENUE,
    instrument,
    intend,
    kernel_config,
    quote,
    scripted_state,
    synced,
    working_copies,
)

ROOT = Path(__file__).resolve().parents[2]
#: An instrument no run quotes: a wait on it is never answered.
GHOST: InstrumentKey = ("sim", "GHOST-PERP")
#: A second instrument on the venue of ``tests.unit.helpers``: quoted once, then no more.
OTHER = instrument(symbol="ETH-PERP", tick_size=Decimal("0.01"), base="ETH")
NEVER: InstrumentKey = (VENUE, OTHER.symbol)


def _with_waits(state: State[Any], waits: dict[InstrumentKey, int]) -> State[Any]:
    return attrs.evolve(state, books=attrs.evolve(state.books, quote_waits=waits))


@settings(max_examples=6, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    config=st.sampled_from(["", "examples/funding_arb.toml", "examples/funding_arb_pairs.toml"]),
    faults=st.sampled_from(["none", "chaos"]),
    scale=st.sampled_from([Decimal("0.05"), Decimal("1.0001"), Decimal(20)]),
    draws=st.integers(min_value=0, max_value=2**32),
)
def test_every_quote_with_quotes_awaited_ends_as_the_general_path_ends(
    seed: int, config: str, faults: str, scale: Decimal, draws: int
) -> None:
    """Every quote of a run, from its state with waits put on a drawn set of instruments (the
    quote's own or others, a never-quoted one among them, refused up to 20 s before), and the
    same quote scaled so that it may have jumped, ends in the state and commands that the
    general path (``general_step``) gives. Now and then the run goes on from the state with
    the waits, so that states reached by steps while quotes are awaited are compared too."""
    cfg = load_config((ROOT / config).read_text(), source=config) if config else load_config()
    rnd = random.Random(draws)  # which instruments are awaited at each quote
    hot = awaited = due = 0

    def reducer(state: State[Any], event: Any) -> Any:
        nonlocal hot, awaited, due
        if type(event) is not QuoteTicked:
            return step(state, event)
        keys: list[InstrumentKey] = [*state.config.by_key, GHOST]
        waits = {k: state.now - rnd.randrange(20_000) for k in keys if rnd.random() < 0.5}
        waits = waits or {rnd.choice(keys): state.now}
        waiting = _with_waits(state, {**state.books.quote_waits, **waits})
        books = waiting.books
        if (event.venue, event.symbol) in books.quote_waits:
            awaited += 1
        elif event.ts < books.wake_at:
            hot += 1
        elif books.maintenance_due and event.ts >= books.maintenance_due:
            due += 1
        got = step(waiting, event)
        assert got == general_step(waiting, event)
        moved = attrs.evolve(
            event, bid=CTX.multiply(event.bid, scale), ask=CTX.multiply(event.ask, scale)
        )
        assert step(waiting, moved) == general_step(waiting, moved)
        if rnd.random() < 0.02:
            return got  # go on with quotes awaited (the ghost's for good)
        plain = step(state, event)
        assert plain == general_step(state, event)
        return plain

    backtest(cfg, seed=seed, ticks=1_000, faults=profile(faults), reducer=reducer)
    assert hot > 150 and awaited > 150 and due > 30


@pytest.mark.parametrize("reconcile_ms", [0, 60_000])
@pytest.mark.parametrize("early", [1_000, 0])
def test_a_quote_awaited_on_an_instrument_that_never_quotes_slows_no_other_tick(
    reconcile_ms: int, early: int
) -> None:
    """An order refused for want of a fresh quote on an instrument its venue quoted once and
    then no more (``stale_quote``) leaves the wait in place: the other instrument's quotes,
    between housekeepings and those that bring it, still take the fast paths (no working copy
    is built), with the general path's results; the awaited instrument's next quote takes the
    general path and answers the wait, between housekeepings or bringing it (``early`` ms
    before the due time)."""
    config = attrs.evolve(
        kernel_config(reconcile_ms=reconcile_ms), instruments=(instrument(), OTHER)
    )
    state, _ = synced(scripted_state(config))
    state, _ = step(state, _other(EPOCH + 1_000))  # its only quote, at the sync's time
    readies = state.strategy.readies
    t = EPOCH + 12_000  # older than max_quote_age_ms (10 s)
    refused = Submit(
        venue=VENUE, symbol=OTHER.symbol, side=Side.BUY, qty=Decimal(1), price=Decimal(2000)
    )
    state, _ = intend(state, [refused], ts=t)
    assert state.books.quote_waits == {NEVER: t}
    assert state.quotes[NEVER].ts == EPOCH + 1_000
    state, _ = step(state, quote(t + 100))  # arms the round's timer when one is owed
    assert state.books.wake_at == state.books.maintenance_due > t

    housekeepings = 0
    for ts in range(t + 250, t + 30_000, 250):  # six housekeepings, 5 s apart
        tick = quote(ts)
        with working_copies() as built:
            got = step(state, tick)
        assert built == [] and got == general_step(state, tick)
        housekeepings += got[0].books.maintenance_due != state.books.maintenance_due
        state = got[0]
    assert housekeepings == 6 and state.books.quote_waits == {NEVER: EPOCH + 12_000}
    assert state.strategy.readies == readies

    answer = _other(state.books.maintenance_due - early)
    with working_copies() as built:
        got = step(state, answer)
    assert built == [answer.ts] and got == general_step(state, answer)
    assert got[0].books.quote_waits == {} and got[0].strategy.readies == (*readies, VENUE)


def _other(ts: int) -> QuoteTicked:
    return QuoteTicked(
        ts=ts, venue=VENUE, symbol=OTHER.symbol, bid=Decimal(2000), ask=Decimal(2001)
    )
