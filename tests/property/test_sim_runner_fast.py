"""The backtest runner's fast path agrees with its general path: on a link that injects nothing
the runner schedules commands and answers itself (results after the latency, stream messages at
once) instead of asking the link; a run so scheduled is the run the link schedules, event for
event, with the same final state, summary and notices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore.config import load_config
from gridcore.sim import PROFILES, Trace, backtest
from gridcore.sim.faults import FaultPlan
from gridcore.sim.link import Link

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(config: Any, general: bool, **options: Any) -> Trace:
    with pytest.MonkeyPatch.context() as mp:
        if general:
            mp.setattr(Link, "quiet", property(lambda self: False))
        return backtest(config, record_events=True, **options)


def _same(fast: Trace, general: Trace) -> None:
    assert fast.events == general.events
    assert fast.state == general.state
    assert fast.summary == general.summary
    assert fast.notices == general.notices
    assert fast.violations == general.violations


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    ticks=st.integers(min_value=1, max_value=1_500),
    latency_ms=st.sampled_from([0, 1, 50, 1_500]),
    example=st.sampled_from(["", "hedge_grid.toml"]),
    settle_quotes_ms=st.sampled_from([0, 1_000]),
)
def test_a_quiet_link_scheduled_by_the_runner_is_the_link_s_run(
    seed: int, ticks: int, latency_ms: int, example: str, settle_quotes_ms: int
) -> None:
    config = load_config((EXAMPLES / example).read_text()) if example else load_config()
    options = {
        "seed": seed,
        "ticks": ticks,
        "faults": FaultPlan(),
        "latency_ms": latency_ms,
        "settle_quotes_ms": settle_quotes_ms,
    }
    _same(_run(config, False, **options), _run(config, True, **options))


def test_a_faulty_link_is_scheduled_by_the_link_until_it_heals() -> None:
    config = load_config()
    options = {"seed": 5, "ticks": 3_000, "faults": PROFILES["chaos"]}
    fast, general = _run(config, False, **options), _run(config, True, **options)
    _same(fast, general)
    assert fast.summary.injected.total > 0


def test_two_venues_on_a_quiet_link() -> None:
    config = load_config((EXAMPLES / "funding_arb.toml").read_text())
    options = {"seed": 2, "ticks": 2_000, "faults": FaultPlan()}
    _same(_run(config, False, **options), _run(config, True, **options))
