"""How the proof tests search: deterministic hypothesis runs within the CI example budget.

A broken bot is "caught" when the shipped harness, left to search on its own, reports a
violation: :func:`simulated_violations` runs :func:`gridcore.testing.simulate` over drawn
scenarios, :func:`machine_violations` runs a state machine from
:func:`gridcore.testing.make_state_machine`. Both search with ``derandomize=True`` (the same
examples on every run, so CI never flakes) and without shrinking (the proof needs the failure,
not its smallest form), and return the names of the invariants that broke.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test
from hypothesis.strategies import SearchStrategy

from gridcore import State
from gridcore.testing import (
    InvariantViolations,
    Reducer,
    Scenario,
    assert_no_violations,
    simulate,
)
from gridcore.testing import strategies as gst

from .bots import grid_config

__all__ = [
    "CI_BUDGET",
    "INSTRUMENT",
    "PROOF_SEED",
    "SEARCH",
    "default_scenarios",
    "machine_violations",
    "run_proof",
    "scenarios",
    "simulated_violations",
]

CI_BUDGET = 60
"""Examples a proof may use: the ``ci`` profile's budget."""

PROOF_SEED = os.environ.get("GRIDCORE_PROOF_SEED")
"""Unset (CI): the deterministic search. An integer: a search seeded with it instead (the proofs
must hold on any seed; ``GRIDCORE_PROOF_SEED=1 pytest -m "" tests/harness`` tries another)."""

SEARCH = settings(
    max_examples=CI_BUDGET,
    stateful_step_count=30,
    derandomize=PROOF_SEED is None,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    report_multiple_bugs=False,
)
"""Deterministic search settings for the proofs."""

INSTRUMENT = grid_config().make_instrument()
"""BTC-PERP on the simulated venue, tick 1, lot 0.001."""


def default_scenarios() -> SearchStrategy[Scenario]:
    """The shipped default scenarios on :data:`INSTRUMENT`: what a user gets from
    ``gst.scenarios(market=gst.market_paths(instrument=st.just(INSTRUMENT)))``."""
    return gst.scenarios(market=gst.market_paths(instrument=st.just(INSTRUMENT)))


def scenarios(
    *,
    kinds: frozenset[str] = gst.FAULT_KINDS,
    max_ppm: int = 100_000,
    max_disconnect_ppm: int = 5_000,
    max_ticks: int = 400,
    liquidity: SearchStrategy[Decimal | None] | None = None,
) -> SearchStrategy[Scenario]:
    """Scenarios on :data:`INSTRUMENT`: a lively market (5 to 20 bps per tick), drawn faults
    of ``kinds``, and a settle long enough for one periodic reconciliation."""
    return gst.scenarios(
        market=gst.market_paths(
            instrument=st.just(INSTRUMENT),
            max_ticks=max_ticks,
            volatility=st.sampled_from([Decimal("0.0005"), Decimal("0.001"), Decimal("0.002")]),
        ),
        faults=gst.fault_plans(kinds=kinds, max_ppm=max_ppm, max_disconnect_ppm=max_disconnect_ppm),
        liquidity=st.none() if liquidity is None else liquidity,
        # A reconciliation round owed when the data stops runs one period after it was due
        # (60 s late at most): two periods and the answers land before the end.
        settle_ms=st.just(130_000),
    )


@contextmanager
def _same_draws_in_any_run() -> Iterator[None]:
    """Searches that draw the same examples whatever else the test run imported.

    Hypothesis draws some values from the literal constants of the local modules loaded so
    far (and caches what it found): a search then draws differently in a run of one file and
    in a run of the whole suite, and a proof could pass in one and fail in the other. For the
    duration of a proof the pool of local constants is empty. (Hypothesis internals: without
    them, nothing is changed.)
    """
    try:
        from hypothesis.internal.conjecture import providers as loaded
    except ImportError:  # pragma: no cover - another hypothesis
        yield
        return
    providers: Any = loaded
    get = getattr(providers, "_get_local_constants", None)
    cache = getattr(providers, "CONSTANTS_CACHE", None)
    if get is None or cache is None:  # pragma: no cover - another hypothesis
        yield
        return
    empty = copy.deepcopy(providers._local_constants)
    for values in (empty.integers, empty.floats, empty.bytes, empty.strings):
        values.clear()
    providers._get_local_constants = lambda: empty
    providers.CONSTANTS_CACHE = type(cache)(1024)
    try:
        yield
    finally:
        providers._get_local_constants = get
        providers.CONSTANTS_CACHE = cache


def run_proof(search: Callable[[], None]) -> None:
    """Run a hypothesis search (a ``@SEARCH @given(...)`` function) as a proof: the same draws
    in a run of one file and of the whole suite, seeded with ``GRIDCORE_PROOF_SEED`` when set."""
    if PROOF_SEED is not None:
        search = seed(int(PROOF_SEED))(search)
    with _same_draws_in_any_run():
        search()


def simulated_violations(
    bot: Callable[[], State[Any]],
    reducer: Reducer,
    drawn: SearchStrategy[Scenario],
    *,
    working: Callable[[State[Any]], str | None] | None = None,
) -> set[str]:
    """Names of the invariants :func:`simulate` reports for ``bot`` stepped by ``reducer`` on
    the first failing scenario of a deterministic search (empty: none failed), with the
    liveness check ``working`` when given."""

    @SEARCH
    @given(scenario=drawn)
    def search(scenario: Scenario) -> None:
        assert_no_violations(simulate(bot(), scenario, reducer=reducer, working=working))

    try:
        run_proof(search)
    except InvariantViolations as failure:
        return {v.invariant for v in failure.violations}
    return set()


def machine_violations(machine: type[RuleBasedStateMachine]) -> set[str]:
    """Names of the invariants the state machine reports on its first failing run of a
    deterministic search (empty: none failed)."""
    if PROOF_SEED is not None:
        machine = seed(int(PROOF_SEED))(machine)  # hypothesis reads the seed off the class
    try:
        with _same_draws_in_any_run():
            run_state_machine_as_test(machine, settings=SEARCH)  # type: ignore[no-untyped-call,unused-ignore]
    except AssertionError as failure:
        lines = str(failure).splitlines()
        return {line.split()[1] for line in lines if line.startswith("  - ")}
    return set()
