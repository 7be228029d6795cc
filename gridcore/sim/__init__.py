"""The simulated venue and backtests: the exchange model, market paths, fault plans, the runner.

:func:`backtest` is the one-call entry point::

    from gridcore.config import load_config
    from gridcore.sim import backtest

    trace = backtest(load_config(), seed=7, ticks=20_000)
    print(trace.summary.net_pnl, trace.summary.invariant_violations)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gridcore.config import BotConfig
from gridcore.core import State, initial_state
from gridcore.events import QuoteTicked
from gridcore.sim.backtest import Sample, Summary, Trace, run_backtest
from gridcore.sim.exchange import SimConfig, SimExchange, SimOrder
from gridcore.sim.faults import PROFILES, FaultCounts, FaultPlan, profile
from gridcore.sim.market import synthetic_path
from gridcore.sim.rng import SplitMix64

__all__ = [
    "PROFILES",
    "FaultCounts",
    "FaultPlan",
    "Sample",
    "SimConfig",
    "SimExchange",
    "SimOrder",
    "SplitMix64",
    "Summary",
    "Trace",
    "backtest",
    "make_bot",
    "make_exchange",
    "make_path",
    "profile",
    "run_backtest",
    "synthetic_path",
]


def make_exchange(config: BotConfig, *, start_ts: int) -> SimExchange:
    """The simulated venue described by ``config``'s ``[venue]`` and ``[instrument]``."""
    v = config.venue
    return SimExchange(
        SimConfig(
            venue=v.name,
            instruments=(config.make_instrument(),),
            starting_balance=v.starting_balance,
            asset=config.instrument.quote,
            position_mode=v.position_mode,
            leverage=v.leverage,
            liquidity=v.liquidity,
            funding_interval_ms=v.funding_interval_ms,
            funding_rate=v.funding_rate,
        ),
        start_ts=start_ts,
    )


def make_bot(config: BotConfig, *, epoch: int, nonce: int = 0) -> State[Any]:
    """A fresh bot state for ``config``, running the strategy kind it names (the neutral grid
    by default; the registry's factory builds it, see :mod:`gridcore.registry`); ``nonce`` is
    the session nonce that keeps its cloids apart from other sessions' (see
    :func:`gridcore.core.cloid_prefix`)."""
    from gridcore.sim import funding  # two venues: the funding-rate arbitrage

    if funding.handles(config):
        return funding.make_bot(config, epoch=epoch, nonce=nonce)
    return initial_state(
        config.make_core_config(), config.make_strategy(), epoch=epoch, nonce=nonce
    )


def make_path(
    config: BotConfig, *, seed: int | None = None, ticks: int | None = None
) -> Iterable[QuoteTicked]:
    """The seeded synthetic market of ``config``'s ``[market]`` table."""
    m = config.market
    return synthetic_path(
        instrument=config.make_instrument(),
        seed=m.seed if seed is None else seed,
        ticks=m.ticks if ticks is None else ticks,
        start_price=m.start_price,
        volatility=m.volatility,
        spread_ticks=m.spread_ticks,
        start_ts=m.start_ts,
        interval_ms=m.interval_ms,
    )


def backtest(
    config: BotConfig,
    *,
    seed: int | None = None,
    ticks: int | None = None,
    faults: FaultPlan | Mapping[str, FaultPlan] | None = None,
    path: Iterable[QuoteTicked] | None = None,
    start_ts: int | None = None,
    **options: Any,
) -> Trace:
    """Run the configured strategy on ``path`` (default: the seeded synthetic market).

    ``seed`` seeds both the market and the fault plan; ``options`` go to :func:`run_backtest`
    (``sample_every``, ``record_events``, ``progress``, ...).
    """
    from gridcore.sim import funding  # two venues: the funding-rate arbitrage

    if funding.handles(config):
        return funding.funding_backtest(
            config, seed=seed, ticks=ticks, faults=faults, path=path, start_ts=start_ts, **options
        )
    seed = config.market.seed if seed is None else seed
    if path is None:
        path = make_path(config, seed=seed, ticks=ticks)
        start_ts = config.market.start_ts
    elif start_ts is None:
        path = list(path)
        start_ts = path[0].ts if path else config.market.start_ts
    progress: Callable[[int], None] | None = options.pop("progress", None)
    return run_backtest(
        make_bot(config, epoch=start_ts),
        make_exchange(config, start_ts=start_ts),
        path,
        faults=faults or FaultPlan(),
        seed=seed,
        progress=progress,
        **options,
    )
