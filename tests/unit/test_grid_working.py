"""The neutral grid's working predicate (``NeutralGrid.idle_reason``, ``grid_is_working``): the
liveness check the harness asks of a settled grid (failure `grid-idle-after-refusal`)."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridcore import HaltRequested, Side, Started, State, step
from gridcore.sim import make_bot
from gridcore.testing import grid_is_working
from tests.unit.helpers import EPOCH, answer_sync, feed, grid_config, quote

FRESH = EPOCH + 2_000


def _trading() -> State[Any]:
    """A synced grid that placed its levels on a fresh quote (orders pending at the venue)."""
    state = make_bot(grid_config(), epoch=EPOCH)
    state, started = step(state, Started(ts=EPOCH + 1_000))
    state, _ = feed(state, answer_sync(started, ts=EPOCH + 1_000))
    state, _ = step(state, quote(FRESH))
    return state


def _without(state: State[Any], cloids: set[str]) -> State[Any]:
    """``state`` with the orders ``cloids`` gone from the live set (as if canceled unseen)."""
    live = {c: q for c, q in state.live.items() if c not in cloids}
    return attrs.evolve(state, books=attrs.evolve(state.books, live=live))


TRADING = _trading()
LIVE = sorted(TRADING.live)


def test_a_grid_with_its_levels_is_working() -> None:
    assert {TRADING.orders[c].side for c in LIVE} == {Side.BUY, Side.SELL}
    assert grid_is_working(TRADING) is None


@given(gone=st.sets(st.sampled_from(LIVE)))
def test_a_side_without_any_order_is_named(gone: set[str]) -> None:
    """Flat, with a fresh quote inside its bounds: the risk gate lets the nearest level of
    either side through, so a side left with no live order is not working."""
    state = _without(TRADING, gone)
    kept = {state.orders[c].side for c in state.live}
    reason = grid_is_working(state)
    assert (reason is None) == (kept == {Side.BUY, Side.SELL})
    missing = {Side.BUY, Side.SELL} - kept
    if missing:
        assert reason is not None
        assert any(f"no live {side.value} order" in reason for side in missing)


def test_an_idle_grid_is_not_asked_when_it_may_rightly_be_idle() -> None:
    idle = _without(TRADING, set(LIVE))
    assert grid_is_working(idle) is not None
    halted, _ = step(idle, HaltRequested(ts=FRESH + 1, reason="operator"))
    assert grid_is_working(_without(halted, set(LIVE))) is None
    outside = attrs.evolve(idle, quotes={k: quote(FRESH, "90000", "90001") for k in idle.quotes})
    assert grid_is_working(outside) is None
    stale = attrs.evolve(idle, now=FRESH + idle.config.risk.max_quote_age_ms + 1)
    assert grid_is_working(stale) is None


def test_only_a_neutral_grid_is_judged() -> None:
    bot = make_bot(grid_config(), epoch=EPOCH)
    with pytest.raises(TypeError, match="NeutralGrid"):
        grid_is_working(attrs.evolve(bot, strategy=object()))
