"""A sweep gives the same table whichever backend ran it: a small sweep (4 combinations, short
runs, a fault profile) on the local process pool and on a local Ray, compared exactly."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest

from gridcore.config import DEFAULT_TOML
from gridcore.shells.cli_sweep import expand, parse_grid, rank, run_sweep, run_task

GRID = [parse_grid("grid.spacing=0.001,0.003"), parse_grid("grid.levels=3..4")]


def _tasks() -> list[Any]:
    return expand(DEFAULT_TOML, GRID, ticks=1_500, faults="flaky")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def pool_rows() -> list[dict[str, object]]:
    done: list[int] = []
    rows = run_sweep(_tasks(), backend="process", workers=2, progress=done.append)
    assert sorted(done) == [1, 2, 3, 4]  # one progress report per finished run
    return rows


def test_the_pool_gives_what_each_run_gives_alone(pool_rows: list[dict[str, object]]) -> None:
    assert pool_rows == [run_task(t) for t in _tasks()]
    assert len({(r["grid.spacing"], r["grid.levels"]) for r in pool_rows}) == 4
    # The runs differ (the sweep is not four copies of one run).
    assert len({r["net_pnl"] for r in pool_rows}) > 1


def test_ray_gives_the_same_table_as_the_pool(
    local_ray: Any, pool_rows: list[dict[str, object]]
) -> None:
    assert local_ray.is_initialized()
    rows = run_sweep(_tasks(), backend="ray")
    assert rows == pool_rows
    keys = ["grid.spacing", "grid.levels"]
    assert rank(rows, keys) == rank(pool_rows, keys)
    assert local_ray.is_initialized()  # a Ray the caller started is left running


def test_ray_missing_is_a_clear_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from gridcore.shells import cli_sweep

    real = importlib.import_module

    def no_ray(name: str, package: str | None = None) -> Any:
        if name == "ray":
            raise ModuleNotFoundError("No module named 'ray'", name="ray")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", no_ray)
    with pytest.raises(cli_sweep.SweepError, match=r"pip install 'gridcore\[ray\]'"):
        run_sweep(_tasks()[:1], backend="ray")
