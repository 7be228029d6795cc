"""The reducer is total: no event a venue can send crashes it or poisons its state.

Every event class is drawn with hostile field values (:mod:`tests.property.hostile`): zero,
negative, NaN, infinite, 1e30 and 1e-30 numbers, huge integers, timestamps in seconds,
microseconds or the far future, unknown cloids, symbols and venues, reused ids, in any order.
What construction refuses reaches the core as ``MessageMalformed``, as a shell delivers it.
After every step:

* no exception escaped ``step``;
* no invariant of the catalogue (:mod:`gridcore.invariants`) broke, except the two a venue can
  break by itself (a balance below the reservations, which makes the core halt; a fill of an
  order the bot never sent that takes a position past ``max_position``, after which the gate
  refuses every order that adds to it);
* the input state is unchanged (its canonical encoding is the same bytes);
* a venue-stamped event never moves the core's clock by more than the plausibility lead
  (:mod:`gridcore.plausibility`).

The default run steps ``GRIDCORE_FUZZ_EXAMPLES`` × ``GRIDCORE_FUZZ_EVENTS`` events (60 × 100);
``nox -s fuzz`` (or ``HYPOTHESIS_PROFILE=thorough``) steps 2,000 × 500 = 10⁶.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from gridcore import FlattenRequested, Halt, PlaceOrder, TimerFired, step
from gridcore.core import MAINTENANCE_TIMER, SHELL_CLOCK_EVENTS, State
from gridcore.events import TS_MAX
from gridcore.invariants import CATALOGUE, StepRecord, check_step
from gridcore.shells.codec import canonical, register
from tests.property.hostile import hostile_events
from tests.unit.helpers import EPOCH, Scripted, flat, scripted_state, submit, synced, synced_grid

_THOROUGH = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"
EXAMPLES = int(os.environ.get("GRIDCORE_FUZZ_EXAMPLES", "2000" if _THOROUGH else "60"))
#: Set GRIDCORE_FUZZ_SHRINK=0 to report a failure unshrunk (shrinking 100-event runs is slow).
SHRINK = os.environ.get("GRIDCORE_FUZZ_SHRINK", "1") != "0"
EVENTS = int(os.environ.get("GRIDCORE_FUZZ_EVENTS", "500" if _THOROUGH else "100"))

register(Scripted)

T0 = EPOCH + 2_000

#: The catalogue, less the two invariants a venue can break by itself: a balance report below
#: what open orders reserve (the core's answer, a halt that cancels them, releasing the
#: reservations once the cancels are confirmed, is checked in test_hostile_regressions), and a
#: position past ``max_position`` made by fills of orders the bot never sent (the risk gate
#: then refuses what would add to it; ``position_within_limits`` judges the bot's own orders in
#: the harness, where the venue fills only what it was sent).
VENUE_BREAKABLE = frozenset({"reservations_within_balance", "position_within_limits"})
INVARIANTS = tuple(i for i in CATALOGUE if i.name not in VENUE_BREAKABLE)


def _scripted_bot() -> tuple[State[Any], list[str]]:
    state, _ = synced(scripted_state())
    cloids = []
    for i in range(3):
        state, _, place = submit(state, ts=T0 + i, qty="0.001", price=str(49000 + i))
        assert place is not None
        cloids.append(place.cloid)
    return state, cloids


def _grid_bot() -> tuple[State[Any], list[str]]:
    state, commands = synced_grid()
    return state, [c.cloid for c in flat(commands) if isinstance(c, PlaceOrder)]


def _fuzz(data: st.DataObject, state: State[Any], cloids: list[str]) -> None:
    events = hostile_events(cloids=cloids, start_ts=T0, max_command_id=state.seq + 20)
    for _ in range(EVENTS):
        event = data.draw(events)
        before = canonical(state)
        after, commands = step(state, event)
        assert canonical(state) == before, f"step mutated its input on {event!r}"
        if type(event) not in SHELL_CLOCK_EVENTS:
            assert after.now - state.now <= state.config.clock_lead_ms, event
        violations = check_step(
            StepRecord(before=state, event=event, after=after, commands=tuple(commands)),
            INVARIANTS,
        )
        assert violations == [], f"{event!r} broke {violations!r}"
        state = after
    # Whatever came before, housekeeping and an operator's flatten still work.
    end = min(state.now + 5_000, TS_MAX - 2)
    state, _ = step(state, TimerFired(ts=end, timer_id=MAINTENANCE_TIMER))
    halted_before = state.risk.halted
    state, commands = step(state, FlattenRequested(ts=end + 1))
    assert state.risk.halted
    assert halted_before or any(isinstance(c, Halt) for c in commands)


@settings(max_examples=EXAMPLES, phases=tuple(p for p in Phase if SHRINK or p is not Phase.shrink))
@given(data=st.data(), grid=st.booleans())
def test_hostile_events_never_crash_or_poison_the_reducer(data: st.DataObject, grid: bool) -> None:
    state, cloids = _grid_bot() if grid else _scripted_bot()
    _fuzz(data, state, cloids)
