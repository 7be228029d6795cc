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


@pytest.mark.parametrize("faults", ["none", "chaos"])
def test_the_venue_model_forgets_old_orders_and_fills_but_counts_them(
    monkeypatch: pytest.MonkeyPatch, faults: str
) -> None:
    """A run whose venue model keeps a few orders and fills has the summary and the round trips
    of the same run with a model that keeps everything; what it keeps stays small."""
    from gridcore.sim import backtest, profile
    from gridcore.sim import exchange as model
    from gridcore.sim.results import results

    config = load_config()

    def run() -> tuple[object, object, int, int]:
        trace = backtest(config, ticks=30_000, faults=profile(faults))
        ex = trace.exchange
        figures = results(
            starting_balance=config.venue.starting_balance,
            net_pnl=trace.summary.net_pnl,
            realized_pnl=trace.summary.realized_pnl,
            fees=trace.summary.fees,
            curve=[],
            fills=ex.fills,
            trips=ex.forgotten.trips,
            start_ts=trace.summary.start_ts,
            end_ts=trace.summary.end_ts,
        )
        return trace.summary, figures, len(ex.orders), len(ex.fills)

    summary, figures, _, _ = run()
    monkeypatch.setattr(model, "KEEP_DONE_ORDERS", 8)
    monkeypatch.setattr(model, "KEEP_FILLS", 8)
    monkeypatch.setattr(model, "KEEP_FILLS_MS", 60_000)
    short, short_figures, orders, fills = run()
    assert short == summary and short_figures == figures
    # The paper venue's status line counts the whole session, not what the model still holds.
    from gridcore.shells.simvenue import VenueState, describe
    from gridcore.sim.faults import FaultInjector

    ex = backtest(config, ticks=30_000, faults=profile(faults)).exchange
    status = describe(
        VenueState(
            exchange=ex,
            injector=FaultInjector(FaultPlan(), seed=1),
            seed=1,
            faults=faults,
            fingerprint="",
            now=0,
        )
    )
    assert status["fills"] == summary.fills > len(ex.fills)  # type: ignore[attr-defined]
    assert status["orders"] > len(ex.orders)
    assert summary.fills > 100 and summary.orders > 150  # type: ignore[attr-defined]
    assert orders <= 2 * 8 + 20 and fills <= 2 * 8 + 20  # open orders, and what a cap allows


def test_a_long_runs_picture_draws_fills_from_the_whole_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A venue model that forgot most fills still gives a plot its early fills (an even sample)
    and the exact count of buys and sells, and the sample stays bounded."""
    import numpy as np

    from gridcore.instruments import Side
    from gridcore.shells.plot import trace_figure
    from gridcore.sim import backtest
    from gridcore.sim import exchange as model

    monkeypatch.setattr(model, "KEEP_FILLS", 8)
    monkeypatch.setattr(model, "KEEP_FILLS_MS", 60_000)
    monkeypatch.setattr(model, "SAMPLE_FILLS", 16)
    trace = backtest(load_config(), ticks=30_000, sample_every=50)
    ex = trace.exchange
    gone = ex.forgotten
    assert gone.fills > 32 and len(gone.sample) <= 16 + 1 and gone.stride > 1
    assert [f.ts for f in gone.sample] == sorted(f.ts for f in gone.sample)
    buys, sells = ex.fills_by_side(Side.BUY), ex.fills_by_side(Side.SELL)
    assert buys + sells == trace.summary.fills

    fig = trace_figure(trace)
    price = fig.axes[0]
    legend = price.get_legend()
    assert legend is not None
    labels = [t.get_text() for t in legend.get_texts()]
    assert f"buy fills ({buys})" in labels and f"sell fills ({sells})" in labels
    xs = [float(x) for c in price.collections for x in np.asarray(c.get_offsets())[:, 0]]
    remembered = min(f.ts for f in ex.fills)
    # The first marker is from the forgotten part of the run, not from what the model holds.
    assert min(xs) < remembered / 86_400_000  # matplotlib's dates: days since 1970
