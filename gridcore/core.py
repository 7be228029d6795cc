"""The public facade of the kernel: ``step(state, event) -> (state, commands)`` and the values
it works on.

Import the kernel from here (or from :mod:`gridcore`): every name below is public and stays.
The rules live in :mod:`gridcore.kernel`, one module per concern, each opening with the
documentation of its rules (see ``docs/architecture.md`` for the map "rule → module"); those
modules are private and may move.
"""

from gridcore.kernel import (
    CLOCK_TIMER,
    MAINTENANCE_TIMER,
    SHELL_CLOCK_EVENTS,
    Books,
    Cancel,
    CoreConfig,
    Inflight,
    Intent,
    OrderChange,
    ReactiveStrategy,
    Say,
    State,
    Strategy,
    Submit,
    cloid_prefix,
    fill_refusal,
    initial_state,
    step,
)

__all__ = [
    "CLOCK_TIMER",
    "MAINTENANCE_TIMER",
    "SHELL_CLOCK_EVENTS",
    "Books",
    "Cancel",
    "CoreConfig",
    "Inflight",
    "Intent",
    "OrderChange",
    "ReactiveStrategy",
    "Say",
    "State",
    "Strategy",
    "Submit",
    "cloid_prefix",
    "fill_refusal",
    "initial_state",
    "step",
]
