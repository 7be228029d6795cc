"""The kernel: ``step(state, event) -> (state, commands)`` for every bot kind.

Import it through the public facade :mod:`gridcore.core` (or :mod:`gridcore`); the modules
here are private and may move. Each owns one concern and opens with the documentation of its
rules:

=====================  ===========================================================================
module                 rules
=====================  ===========================================================================
``_reducer``           :func:`step`: the tick hot path, the clock, and which rules apply each event
``_orders``            naming and sending orders, lifecycle moves (:mod:`gridcore.lifecycle`),
                       venue answers, lost commands, modify
``_ledger``            booking fills: dedup, implausible fills, fill → lifecycle
``_funding``           funding payments: booked once, recovered from the venue's history,
                       checked against rate × position × mark (drift)
``_risk``              the gate call and reservations, breakers (drawdown, error streak,
                       margin), halt policy (:mod:`gridcore.halts`), resume, flatten
``_sync``              reconciliation rounds, drift policy, orphans, feed up/down
``_requests``          requests in flight, fills-since window, refresh, maintenance
``_intents``           running a strategy's intents, telling it changes and stimuli, its timers
``_plausible``         what one venue message is believed (:mod:`gridcore.plausibility`)
``_model``             the values: ``CoreConfig``, ``State``, ``Books``, intents, ``Strategy``
``_tx``                mechanics of one step (copy-on-write, ids, snapshots): no rules
=====================  ===========================================================================

Theory of operation
-------------------
One reducer consumes one ordered stream of events, so there is nothing to lock and no
check-then-act window. Each call of :func:`step`:

1. applies the event to the order registry, the ledger, the risk counters and the per-venue
   reconciliation state;
2. tells the strategy what changed (a tick, order changes, a venue becoming ready, a timer) and
   collects its *intents* (``Submit``, ``Cancel``, ``Say``, ``Modify``, timers, ``Refresh``);
3. passes every ``Submit`` through the risk gate, names the order (its cloid is derived from the
   state's session prefix and id counter), reserves its margin and emits the command, all in
   the same step;
4. returns the new state and the commands, order commands for one venue grouped in a
   :class:`~gridcore.commands.Batch`.

The strategy is a value inside the state: any attrs class implementing ``Strategy``. The state is
never mutated; a raise (a broken contract) leaves the caller's state as it was. A tick is the hot
path: it stores the quote and asks the strategy whether the tick matters, and touches nothing
else. The reducer is total: any event that can be built is absorbed without an exception
escaping. The kernel imports only the vocabulary (events, commands, instruments, numbers,
lifecycle, ledger, risk, halts, sync, exposure, plausibility, api); never a strategy, a shell,
the simulator or the testing harness (``tests/unit/test_layering.py``).
"""

from gridcore.kernel._ledger import fill_refusal
from gridcore.kernel._model import (
    CLOCK_TIMER,
    MAINTENANCE_TIMER,
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
    initial_state,
    replace,
)
from gridcore.kernel._reducer import SHELL_CLOCK_EVENTS, general_step, step

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
    "general_step",
    "initial_state",
    "replace",
    "step",
]
