"""No fact crashes the loop (lifecycle theory of operation; a broken contract raises, a fact never does).

A venue may say anything at any time: late acks, stream rejections after a cancel, reports
that disagree with what the core believes, results for commands it no longer tracks. Every
such event is an expected outcome, so ``step`` must never raise on it, and the books must stay
consistent after every step: reservations equal what live orders hold (failure `unreleased-funds`) and no
live order has nothing left (failure `partial-fill-threshold`). The sequence ends with a maintenance round and an
operator flatten, which must work whatever came before.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gridcore import FlattenRequested, Halt, TimerFired, step
from gridcore.core import MAINTENANCE_TIMER
from tests.property.helpers import venue_events
from tests.unit.helpers import EPOCH, reservation_problems, scripted_state, submit, synced

T0 = EPOCH + 2_000


@given(data=st.data(), count=st.integers(min_value=1, max_value=12))
def test_any_sequence_of_venue_facts_is_absorbed(data: st.DataObject, count: int) -> None:
    state, _ = synced(scripted_state())
    cloids = []
    for i in range(3):
        state, _, place = submit(state, ts=T0 + i, qty="0.001", price=str(49000 + i))
        assert place is not None
        cloids.append(place.cloid)
    events = venue_events(cloids=cloids, start_ts=EPOCH)
    for _ in range(count):
        state, _ = step(state, data.draw(events))
        assert reservation_problems(state) == []
        assert not any(o.is_live and o.remaining == 0 for o in state.orders.values())
        assert all(amount >= 0 for amount in state.risk.reserved.values())
    state, _ = step(state, TimerFired(ts=EPOCH + 200_000, timer_id=MAINTENANCE_TIMER))
    halted_before = state.risk.halted
    state, commands = step(state, FlattenRequested(ts=EPOCH + 200_001))
    assert state.risk.halted
    assert halted_before or any(isinstance(c, Halt) for c in commands)
