"""The machine's speed at the time of a benchmark: a fixed pure-Python workload measured in the
same run, so that figures from different days (or machines) can be compared through it.

A shared machine's speed moves by a factor of two from hour to hour, and a benchmark's own
figure moves with it. The reference is the cost of a minimal frozen-attrs reducer step
(``state, event -> new state``: one attrs instance built, one `Decimal` carried), the floor any
immutable reducer in CPython pays; it exercises the interpreter the way gridcore's fold does
and touches nothing of gridcore's. A figure divided by the reference ("× reference") is the
part of a change between two runs that is not the machine's.

Measured in CPU seconds of this process (``time.process_time``), the median of ``repeat``
runs, like the figures beside it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from decimal import Decimal

import attrs

__all__ = ["REFERENCE_LABEL", "reference_rate"]

REFERENCE_LABEL = "machine reference: minimal frozen-attrs reducer steps per CPU second"


@attrs.frozen
class MiniState:
    """The reference reducer's state."""

    seq: int
    last: Decimal
    count: int


@attrs.frozen
class MiniEvent:
    """The reference reducer's event."""

    price: Decimal


def mini_step(state: MiniState, event: MiniEvent) -> tuple[MiniState, list[object]]:
    """The reference reducer: one new frozen state per event, no commands."""
    return MiniState(seq=state.seq + 1, last=event.price, count=state.count + 1), []


def reference_rate(
    n: int = 200_000, repeat: int = 5, clock: Callable[[], float] = time.process_time
) -> float:
    """Reference steps per second of ``clock`` (CPU seconds unless told): the median of
    ``repeat`` folds of ``n`` events."""
    events = [MiniEvent(price=Decimal(50_000 + i % 7)) for i in range(n)]
    rates = []
    for _ in range(repeat):
        state = MiniState(seq=0, last=Decimal(0), count=0)
        t0 = clock()
        for event in events:
            state, _ = mini_step(state, event)
        rates.append(n / max(clock() - t0, 1e-9))
    return statistics.median(rates)
