"""Memory does not grow with history (failure `unbounded-history`): counts of what the runner
and the synthetic market keep, after runs much longer than what they keep."""

from __future__ import annotations

import sys
from decimal import Decimal

import pytest

from gridcore.config import load_config
from gridcore.core import step
from gridcore.sim import make_bot, make_exchange, make_path
from gridcore.sim.backtest import _Run
from gridcore.sim.faults import FaultPlan
from gridcore.sim.market import synthetic_path


def test_the_runner_keeps_a_window_of_cloids_and_answers_not_the_whole_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The package exports a function named ``backtest`` that hides the module of that name.
    runner = sys.modules[_Run.__module__]
    monkeypatch.setattr(runner, "_RECENT_CAP", 64)
    monkeypatch.setattr(runner, "_RECENT_MS", 120_000)
    config = load_config()
    start = config.market.start_ts
    run = _Run(
        make_bot(config, epoch=start),
        {config.venue.name: make_exchange(config, start_ts=start)},
        FaultPlan(),
        1,
        50,
        False,
        False,
        step,
    )
    run.run(make_path(config, ticks=20_000), 0, 180_000, None, 1)
    assert run.commands > 1_000 and run.orders_sent > 150
    # Within the window of 2 minutes only: far fewer than everything sent and answered.
    assert len(run.answered) <= 2 * max(64, 200)
    assert len(run.cloids) <= 2 * max(64, 60)
    assert run.extra_results == {}


def test_a_walk_over_more_prices_than_the_market_cache_holds_stays_exact() -> None:
    """The price cache is cleared when full (bounded memory); quotes past that stay exact."""
    config = load_config()
    inst = config.make_instrument()
    quotes = list(synthetic_path(instrument=inst, ticks=6_000, volatility=Decimal("0.01"), seed=3))
    distinct = {q.bid for q in quotes} | {q.ask for q in quotes}
    assert len(distinct) > 4_096  # more than the cache ever holds at once
    assert all(q.bid == q.bid.quantize(inst.tick_size) for q in quotes)
