"""Liveness: the harness sees a bot that stops trading.

The invariant catalogue, the run monitor and the comparison with the venue check safety: a bot
that does nothing breaks none of them. A *working predicate* says whether a settled bot is
trading: it takes the state and returns why the bot is not working, or ``None``.
:func:`~gridcore.testing.make_state_machine` and :func:`~gridcore.testing.simulate` ask it
(``working=``) once the network healed, fresh quotes came and the heartbeat ran, and report a
reason as the invariant :data:`LIVENESS_INVARIANT`. The predicate decides itself when it has
nothing to say (a halted bot, a venue not ready, a market outside what the bot trades): the
harness stays generic.
"""

from __future__ import annotations

from typing import Any

from gridcore.core import State
from gridcore.strategies.grid import NeutralGrid

__all__ = ["LIVENESS_INVARIANT", "grid_is_working"]

LIVENESS_INVARIANT = "bot_keeps_working"
"""The name a working predicate's reason is reported under (failure `grid-idle-after-refusal`:
a grid that sat with no orders while the market stayed inside its bounds)."""


def grid_is_working(state: State[Any]) -> str | None:
    """The neutral grid's working predicate: :meth:`NeutralGrid.idle_reason
    <gridcore.strategies.grid.NeutralGrid.idle_reason>` of the bot's strategy (a
    :class:`~gridcore.strategies.grid.NeutralGrid` or a subclass). A strategy that keeps a
    grid inside it passes ``lambda s: s.strategy.grid.idle_reason(s)`` instead."""
    strategy = state.strategy
    if not isinstance(strategy, NeutralGrid):
        raise TypeError(
            f"grid_is_working judges a NeutralGrid, not a {type(strategy).__name__}: for a "
            "strategy that keeps a grid inside it, pass a predicate that calls the grid's "
            "idle_reason(state)"
        )
    return strategy.idle_reason(state)
