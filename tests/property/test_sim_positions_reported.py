"""The exchange model's positions report reuses the values it built last time while no position
changed: every report it gives equals one built afresh from the positions it holds."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore.commands import RequestPositions
from gridcore.events import PositionReport, QuoteTicked
from gridcore.numbers import CTX
from gridcore.sim import SimExchange
from tests.property.test_sim_exchange_fast import EPOCH, _command, _step, _venue


class _FreshExchange(SimExchange):
    """The venue that builds every positions report from scratch."""

    def _positions_reported(self) -> tuple[PositionReport, ...]:
        self.__dict__.pop("_last_positions", None)
        return super()._positions_reported()


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(st.tuples(_step, st.booleans()), max_size=60),
    hedge=st.booleans(),
    copy_at=st.integers(min_value=0, max_value=60),
)
def test_every_positions_report_equals_one_built_afresh(
    steps: list[tuple[tuple[Any, ...], bool]], hedge: bool, copy_at: int
) -> None:
    tick = Decimal("0.5")
    fast: SimExchange = _venue(SimExchange, tick, hedge, None)
    fresh: SimExchange = _venue(_FreshExchange, tick, hedge, None)
    mid = Decimal(500)
    ts = EPOCH
    for n, (step, ask) in enumerate(steps):
        ts += 10
        if n == copy_at:
            fast = fast.copy()  # a copied model keeps its own report values
        if step[0] == "tick":
            mid = max(Decimal(100), CTX.add(mid, CTX.multiply(Decimal(step[1]), tick)))
            q = QuoteTicked(ts=ts, venue="sim", symbol="X", bid=mid, ask=CTX.add(mid, tick))
            fast.on_tick(q)
            fresh.on_tick(q)
        else:
            command = _command(step, n, mid, tick, hedge)
            fast.handle(command, ts)
            fresh.handle(command, ts)
        if ask:
            request = RequestPositions(command_id=10_000 + n, venue="sim")
            assert fast.handle(request, ts) == fresh.handle(request, ts)
    final = RequestPositions(command_id=99_999, venue="sim")
    assert fast.handle(final, ts) == fresh.handle(final, ts)
