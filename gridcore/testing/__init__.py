"""gridcore.testing: the property-based harness gridcore is tested with, shipped to you.

Prove your own bot with the same tools (see ``docs/prove-your-bot.md``):

* **strategies** (:mod:`gridcore.testing.strategies`) — hypothesis strategies for instruments,
  configurations, market paths, fault plans, whole scenarios (one venue, or several:
  ``multi_venue_scenarios``) and venue event streams.
* **simulate** — run any bot reducer against the exchange model under a fault plan; every
  step is checked against the invariant catalogue; returns a :class:`~gridcore.sim.Trace`
  whose ``violations`` say what broke, and where. :func:`assert_no_violations` turns them into
  a readable failure.
* **the invariant catalogue** — :data:`CATALOGUE`, one named, documented invariant per failure of
  ``docs/failures.md`` that a reducer step can be judged by (``docs/invariants.md`` maps them), plus
  the whole-run checks of :mod:`gridcore.testing.differential`.
* **make_state_machine** — a :class:`~hypothesis.stateful.RuleBasedStateMachine` factory that
  drives any reducer against the exchange model with faults, checking every invariant after
  every step.
* **liveness** — ``working=`` (both of the above): a predicate over the settled state that
  says why the bot is not trading; :func:`grid_is_working` is the neutral grid's.
* **settings profiles** — ``gridcore-quick`` (CI) and ``gridcore-thorough``, registered on
  import.

A minimal proof::

    from hypothesis import given
    from hypothesis import strategies as st
    from gridcore.testing import assert_no_violations, simulate, strategies as gst

    @given(gst.scenarios(market=gst.market_paths(instrument=st.just(INSTRUMENT))))
    def test_my_bot_is_safe(scenario):
        assert_no_violations(simulate(my_bot(), scenario))

    TestMyBot = make_state_machine(initial_state=my_bot()).TestCase

This package needs hypothesis (``pip install gridcore[testing]``). The core never imports it.
"""

from gridcore.invariants import (
    CATALOGUE,
    STATE_INVARIANTS,
    STEP_INVARIANTS,
    TAKE_PROFIT_TAG,
    Invariant,
    StepRecord,
    Violation,
    check_against_venue,
    check_state,
    check_step,
    invariant_named,
    ledger_split_matches_venue,
    state_invariant,
    step_invariant,
)
from gridcore.testing import strategies
from gridcore.testing.differential import (
    check_fills_sum,
    check_reordering,
    check_replay,
    check_sync_interleaving,
    replay,
)
from gridcore.testing.liveness import LIVENESS_INVARIANT, grid_is_working
from gridcore.testing.machine import ALL_FAULTS, Fault, make_state_machine
from gridcore.testing.monitor import MONITOR_INVARIANTS, RunMonitor
from gridcore.testing.settings_profiles import (
    QUICK,
    QUICK_PROFILE,
    THOROUGH,
    THOROUGH_PROFILE,
    register_profiles,
)
from gridcore.testing.simulation import (
    RUNNER_INVARIANTS,
    InvariantViolations,
    MarketPath,
    MultiVenueScenario,
    Reducer,
    Scenario,
    VenueScenario,
    assert_no_violations,
    simulate,
)

__all__ = [
    "ALL_FAULTS",
    "CATALOGUE",
    "LIVENESS_INVARIANT",
    "MONITOR_INVARIANTS",
    "QUICK",
    "QUICK_PROFILE",
    "RUNNER_INVARIANTS",
    "STATE_INVARIANTS",
    "STEP_INVARIANTS",
    "TAKE_PROFIT_TAG",
    "THOROUGH",
    "THOROUGH_PROFILE",
    "Fault",
    "Invariant",
    "InvariantViolations",
    "MarketPath",
    "MultiVenueScenario",
    "Reducer",
    "RunMonitor",
    "Scenario",
    "StepRecord",
    "VenueScenario",
    "Violation",
    "assert_no_violations",
    "check_against_venue",
    "check_fills_sum",
    "check_reordering",
    "check_replay",
    "check_state",
    "check_step",
    "check_sync_interleaving",
    "grid_is_working",
    "invariant_named",
    "ledger_split_matches_venue",
    "make_state_machine",
    "register_profiles",
    "replay",
    "simulate",
    "state_invariant",
    "step_invariant",
    "strategies",
]
