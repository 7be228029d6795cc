"""A strategy refused for a quote that will pass is woken when it passes (failure
`silent-quote-refusal`).

The risk gate refuses an order with ``no_quote`` or ``stale_quote`` when its instrument has no
quote yet, only one older than ``max_quote_age_ms``, or only one seen before the venue's feed
last came up (failure `quote-from-before-a-gap`). The venue's next fresh quote lifts the cause;
the kernel then tells the strategy ``on_ready`` for the venue, once, whatever path the refused
order took (a submit with or without a ``ref``, a modify's increase).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Self, TypeVar

import attrs
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore import (
    Command,
    Intent,
    OrderAccepted,
    OrderChange,
    PlaceOrder,
    QuoteTicked,
    Started,
    State,
    Strategy,
    Submit,
    TimerFired,
    initial_state,
    step,
)
from gridcore.api import Modify, ModifyRefused, Stimulus, SubmitRefused
from gridcore.commands import ModifyOrder, Notify
from gridcore.core import CLOCK_TIMER
from gridcore.events import Event
from gridcore.instruments import Side
from gridcore.kernel import general_step
from gridcore.shells.codec import canonical, decode_value, encode_value, register
from gridcore.strategies import grid as grid_module
from tests.unit.helpers import (
    ASK,
    BID,
    EPOCH,
    SYMBOL,
    VENUE,
    answer_sync,
    feed,
    grid_config,
    kernel_config,
    of_type,
    quote,
    synced,
)

D = Decimal
SYNC_TS = EPOCH + 1_000
KEY = (VENUE, SYMBOL)
GO = "test:go"
MAX_AGE = 10_000  # RiskConfig's default max_quote_age_ms, which kernel_config keeps

WANT = Submit(venue=VENUE, symbol=SYMBOL, side=Side.BUY, qty=D("0.01"), price=D(49000), tag="w")


@attrs.frozen(kw_only=True)
class Wanting:
    """Wants one order resting once a test fires :data:`GO`: submits it then, and again on every
    ``on_ready`` while none with its tag is live. ``script`` maps other timer ids to intents.
    Records every venue made ready, every stimulus and every order change."""

    want: Submit = WANT
    active: bool = False
    script: Mapping[str, tuple[Intent, ...]] = attrs.field(factory=dict)
    readies: tuple[str, ...] = ()
    stimuli: tuple[Stimulus, ...] = ()
    changes: tuple[OrderChange, ...] = ()

    def on_tick(self, view: State[Self], tick: QuoteTicked) -> tuple[Self, Sequence[Intent]] | None:
        return None

    def on_changes(
        self, view: State[Self], changes: Sequence[OrderChange]
    ) -> tuple[Self, Sequence[Intent]]:
        return attrs.evolve(self, changes=(*self.changes, *changes)), ()

    def on_ready(self, view: State[Self], venue: str) -> tuple[Self, Sequence[Intent]]:
        return attrs.evolve(self, readies=(*self.readies, venue)), self._missing(view)

    def on_timer(self, view: State[Self], timer_id: str) -> tuple[Self, Sequence[Intent]]:
        if timer_id == GO:
            active = attrs.evolve(self, active=True)
            return active, active._missing(view)
        return self, self.script.get(timer_id, ())

    def on_event(self, view: State[Self], event: Event) -> tuple[Self, Sequence[Intent]]:
        return self, ()

    def on_stimulus(self, view: State[Self], stimulus: Stimulus) -> tuple[Self, Sequence[Intent]]:
        return attrs.evolve(self, stimuli=(*self.stimuli, stimulus)), ()

    def _missing(self, view: State[Self]) -> Sequence[Intent]:
        if not self.active or view.live_orders(self.want.tag):
            return ()
        return (self.want,)


def _synced(want: Submit = WANT) -> State[Wanting]:
    """A bot wanting ``want``, synced at :data:`SYNC_TS` with a quote at that time."""
    state, _ = synced(initial_state(kernel_config(), Wanting(want=want), epoch=EPOCH))
    return state


def _restarted(state: State[Wanting], ts: int) -> State[Wanting]:
    """A restart at ``ts`` whose reconciliation answers all arrive before any quote: the venue
    is synced and its only quote predates its feed coming up."""
    state, started = step(state, Started(ts=ts))
    state, _ = feed(state, answer_sync(started, ts=ts))
    return state


def _go(state: State[Wanting], ts: int) -> tuple[State[Wanting], list[Any]]:
    return step(state, TimerFired(ts=ts, timer_id=GO))


def _refusals(commands: Sequence[Any]) -> list[str]:
    return [n.code for n in of_type(commands, Notify) if n.code.startswith("refused:")]


St = TypeVar("St", bound=Strategy)


def _tick(state: State[St], event: QuoteTicked) -> tuple[State[St], list[Command]]:
    """One quote through :func:`step`, checked against the general path (no fast path may skip
    what a waiting quote must do)."""
    got = step(state, event)
    assert got == general_step(state, event)
    return got


def test_a_submit_without_a_ref_before_the_first_fresh_quote_is_woken_by_it() -> None:
    """After a restart the only quote predates the feed: the order is refused silently (no ref,
    no stimulus). The venue's first fresh quote tells the strategy ``on_ready`` once, and its
    resubmit goes out; later quotes tell nothing more and the tick fast path is back."""
    restart = SYNC_TS + 2_000  # the journaled quote is 2 s old: young, but from before the gap
    state = _restarted(_synced(), restart)
    readies = state.strategy.readies
    state, commands = _go(state, restart)
    assert of_type(commands, PlaceOrder) == []
    assert _refusals(commands) == ["refused:stale_quote"]
    assert state.books.quote_waits == {KEY: restart}
    # The wait leaves the wake-up time alone: only this instrument's quotes leave the hot path.
    assert state.books.wake_at == state.books.maintenance_due
    # A quote no newer than the one held when the feed came up lifts nothing.
    state, commands = _tick(state, quote(SYNC_TS))
    assert state.strategy.readies == readies and KEY in state.books.quote_waits
    assert of_type(commands, PlaceOrder) == []
    state, commands = _tick(state, quote(restart + 50))
    assert state.strategy.readies == (*readies, VENUE)
    assert state.books.quote_waits == {}
    assert [p.price for p in of_type(commands, PlaceOrder)] == [WANT.price]
    assert state.books.wake_at == state.books.maintenance_due
    for t in (restart + 100, restart + 150):
        state, _ = _tick(state, quote(t))
    assert state.strategy.readies == (*readies, VENUE)


def test_a_submit_refused_for_a_quote_too_old_is_woken_by_the_next_fresh_one() -> None:
    state = _synced()
    late = SYNC_TS + 2 * MAX_AGE
    state, _ = step(state, TimerFired(ts=late, timer_id=CLOCK_TIMER))
    readies = state.strategy.readies
    state, commands = _go(state, late)
    assert _refusals(commands) == ["refused:stale_quote"] and KEY in state.books.quote_waits
    # A quote the venue stamped too long ago is accepted but prices nothing: still waiting.
    state, commands = _tick(state, quote(late - MAX_AGE - 1))
    assert state.strategy.readies == readies and of_type(commands, PlaceOrder) == []
    state, commands = _tick(state, quote(late - MAX_AGE))
    assert state.strategy.readies == (*readies, VENUE)
    assert len(of_type(commands, PlaceOrder)) == 1
    assert state.books.quote_waits == {}


def test_the_quote_that_brings_housekeeping_wakes_too() -> None:
    """The fresh quote arrives in the step its housekeeping falls due: the heartbeat and the
    wake both reach the strategy (the housekeeping tick's fast path must not skip the wake)."""
    state = _synced()
    late = SYNC_TS + 2 * MAX_AGE
    state, _ = step(state, TimerFired(ts=late, timer_id=CLOCK_TIMER))
    state, _ = _go(state, late)
    assert KEY in state.books.quote_waits
    readies = state.strategy.readies
    due = state.books.maintenance_due
    state, commands = _tick(state, quote(due))
    assert state.books.maintenance_due > due  # housekeeping ran in this step
    assert state.strategy.readies == (*readies, VENUE)
    assert len(of_type(commands, PlaceOrder)) == 1


def test_a_submit_with_a_ref_is_told_the_refusal_and_woken_when_it_passes() -> None:
    want = attrs.evolve(WANT, ref="entry")
    restart = SYNC_TS + 2_000
    state = _restarted(_synced(want), restart)
    readies = state.strategy.readies
    state, _ = _go(state, restart)
    refused = [s for s in state.strategy.stimuli if isinstance(s, SubmitRefused)]
    assert [(s.ref, s.code) for s in refused] == [("entry", "stale_quote")]
    assert KEY in state.books.quote_waits
    state, commands = _tick(state, quote(restart + 1))
    assert state.strategy.readies == (*readies, VENUE)
    assert len(of_type(commands, PlaceOrder)) == 1
    assert [c.after.ref for c in state.strategy.changes if c.before is None] == ["entry"]


def test_a_modify_increase_refused_for_a_stale_quote_is_woken_when_it_passes() -> None:
    state = _synced()
    state, commands = _go(state, SYNC_TS)
    (place,) = of_type(commands, PlaceOrder)
    accepted = OrderAccepted(ts=SYNC_TS, venue=VENUE, cloid=place.cloid, venue_order_id="v1")
    state, _ = step(state, accepted)
    late = SYNC_TS + 2 * MAX_AGE
    state, _ = step(state, TimerFired(ts=late, timer_id=CLOCK_TIMER))
    bigger = Modify(cloid=place.cloid, qty=D("0.02"))
    state = attrs.evolve(state, strategy=attrs.evolve(state.strategy, script={"mod": (bigger,)}))
    readies = state.strategy.readies
    state, commands = step(state, TimerFired(ts=late, timer_id="mod"))
    assert of_type(commands, ModifyOrder) == []
    refused = [s for s in state.strategy.stimuli if isinstance(s, ModifyRefused)]
    assert [s.code for s in refused] == ["stale_quote"]
    assert KEY in state.books.quote_waits
    state, _ = _tick(state, quote(late))
    assert state.strategy.readies == (*readies, VENUE)
    assert state.books.quote_waits == {}


def test_a_submit_before_any_quote_is_woken_by_the_first() -> None:
    """``no_quote``: synced with no quote at all (the venue's answers came first)."""
    state, started = step(
        initial_state(kernel_config(), Wanting(), epoch=EPOCH), Started(ts=SYNC_TS)
    )
    state, _ = feed(state, answer_sync(started, ts=SYNC_TS))
    state, commands = _go(state, SYNC_TS)
    assert _refusals(commands) == ["refused:no_quote"] and KEY in state.books.quote_waits
    state, commands = _tick(state, quote(SYNC_TS + 1))
    assert state.strategy.readies == (VENUE, VENUE)
    assert len(of_type(commands, PlaceOrder)) == 1


@settings(max_examples=80, deadline=None)
@given(
    lags=st.lists(st.integers(min_value=-3_000, max_value=2 * MAX_AGE), min_size=1, max_size=12),
    refused_late=st.booleans(),
)
def test_one_wake_at_the_first_quote_the_gate_would_price_from(
    lags: list[int], refused_late: bool
) -> None:
    """Property: after a quote refusal (from before the feed came up, or too old), quotes stamped
    ``lag`` ms before the core's clock arrive one by one. The strategy is told ``on_ready``
    exactly once, at the first quote seen after the feed came up and at most
    ``max_quote_age_ms`` old, and its resubmit goes out in that step; never before, never again.
    Every step agrees with the general path."""
    restart = SYNC_TS + 2_000
    state = _restarted(_synced(), restart)
    clock = restart
    if refused_late:  # the journaled quote is also too old by the time of the order
        clock = restart + MAX_AGE + 1
        state, _ = step(state, TimerFired(ts=clock, timer_id=CLOCK_TIMER))
    state, _ = _go(state, clock)
    assert KEY in state.books.quote_waits
    readies = len(state.strategy.readies)
    before = state.venues[VENUE].quotes_before
    woken = False
    for lag in lags:
        clock += 100
        state, _ = step(state, TimerFired(ts=clock, timer_id=CLOCK_TIMER))
        ts = clock - lag
        lifts = ts > before and max(clock, ts) - ts <= MAX_AGE
        state, commands = _tick(
            state, QuoteTicked(ts=ts, venue=VENUE, symbol=SYMBOL, bid=BID, ask=ASK)
        )
        clock = max(clock, ts)
        wakes = lifts and not woken
        assert len(state.strategy.readies) == readies + (1 if woken or wakes else 0)
        assert len(of_type(commands, PlaceOrder)) == (1 if wakes else 0)
        assert (KEY in state.books.quote_waits) == (not woken and not wakes)
        woken = woken or wakes


def test_the_grid_without_its_own_guard_places_its_levels_on_the_first_fresh_quote(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The neutral grid as it was before it learnt to wait for a fresh quote itself (failure
    `grid-idle-after-refusal`): it rebuilds on the reconciliation's ``on_ready`` from the
    journaled quote, every level is refused silently, and the fresh quotes that follow lie
    inside its bounds. The kernel's wake rebuilds it on the first of them."""
    from gridcore.sim import make_bot

    monkeypatch.setattr(grid_module, "predates_feed", lambda quote, quotes_before: False)
    bot = make_bot(grid_config(), epoch=EPOCH)
    state, _ = step(bot, quote(EPOCH))  # a quote from before the start, as a journal holds one
    restart = EPOCH + 2_000
    state, started = step(state, Started(ts=restart))
    state, commands = feed(state, answer_sync(started, ts=restart))
    assert of_type(commands, PlaceOrder) == []
    assert "refused:stale_quote" in _refusals(commands)
    assert state.strategy.center is not None  # built its lattice: the next quote lies inside
    state, commands = _tick(state, quote(restart + 100))
    places = of_type(commands, PlaceOrder)
    assert len(places) == 2 * state.strategy.config.levels
    assert len(state.live_orders()) == len(places)


def test_a_wait_survives_the_journal_and_a_journal_without_it_still_loads() -> None:
    register(Wanting, "tests.quote_wake.Wanting")
    state = _restarted(_synced(), SYNC_TS + 2_000)
    state, _ = _go(state, SYNC_TS + 2_000)
    assert state.books.quote_waits
    back = decode_value(encode_value(state))
    assert back.books.quote_waits == state.books.quote_waits
    assert canonical(back) == canonical(state)
    # A state written before the field existed: its books lack it, and it loads with none.
    raw = msgspec.msgpack.decode(encode_value(state))
    books = raw[2]["books"]
    assert books[0] == "O" and "quote_waits" in books[2]
    del books[2]["quote_waits"]
    old = decode_value(msgspec.msgpack.encode(raw))
    assert old.books.quote_waits == {}
    assert canonical(
        attrs.evolve(old, books=attrs.evolve(old.books, quote_waits=state.books.quote_waits))
    ) == canonical(state)
