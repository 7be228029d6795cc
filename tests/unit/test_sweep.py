"""``gridcore sweep``'s parts: the --grid syntax, the expansion validated by the configuration
loader, ranking over seeds, and the CSV of every run."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridcore.config import DEFAULT_TOML, load_config
from gridcore.errors import ConfigError
from gridcore.shells.cli_sweep import (
    ROW_KEYS,
    SweepError,
    expand,
    parse_grid,
    rank,
    write_rows,
)


def test_parse_lists_ranges_and_steps() -> None:
    assert parse_grid("grid.spacing=0.001,0.002,0.004") == (
        "grid.spacing",
        ["0.001", "0.002", "0.004"],
    )
    assert parse_grid("grid.levels=5..8") == ("grid.levels", [5, 6, 7, 8])
    assert parse_grid("grid.levels=5..20..5") == ("grid.levels", [5, 10, 15, 20])
    assert parse_grid("grid.max_inventory=off,0.01") == ("grid.max_inventory", ["off", "0.01"])
    assert parse_grid("core.cancel_unknown_orders=true,false")[1] == [True, False]


@pytest.mark.parametrize(
    "spec",
    [
        "grid.levels",
        "levels=5",
        "grid.levels=",
        "grid.levels=5,,6",
        "grid.levels=9..3",
        "grid.levels=5,5",
    ],
)
def test_parse_refuses_what_it_cannot_read(spec: str) -> None:
    with pytest.raises(SweepError, match="--grid"):
        parse_grid(spec)


def test_expand_is_the_product_times_seeds_each_config_validated() -> None:
    grid = [parse_grid("grid.spacing=0.001,0.002"), parse_grid("grid.levels=3..5")]
    tasks = expand(DEFAULT_TOML, grid, seeds=2, ticks=100)
    assert len(tasks) == 2 * 3 * 2
    assert [t.index for t in tasks] == list(range(12))
    assert {t.seed for t in tasks} == {1, 2}
    first = load_config(tasks[0].config)
    assert first.grid.spacing == Decimal("0.001") and first.grid.levels == 3
    # Everything not swept is the base configuration's.
    assert first.risk == load_config().risk and first.market == load_config().market
    assert dict(tasks[-1].params) == {"grid.spacing": "0.002", "grid.levels": 5}


def test_a_bad_value_or_field_is_named_before_anything_runs() -> None:
    with pytest.raises(ConfigError, match=r"with grid.levels=0: grid.levels: must be between"):
        expand(DEFAULT_TOML, [parse_grid("grid.levels=3,0")])
    with pytest.raises(ConfigError, match=r"grid.nope: unknown setting"):
        expand(DEFAULT_TOML, [parse_grid("grid.nope=1")])
    with pytest.raises(ConfigError, match=r"gridd: unknown table"):
        expand(DEFAULT_TOML, [parse_grid("gridd.levels=1")])
    with pytest.raises(SweepError, match="swept twice"):
        expand(DEFAULT_TOML, [parse_grid("grid.levels=1"), parse_grid("grid.levels=2")])


def _row(
    spacing: str, seed: int, pnl: str, dd: str = "1", violations: int = 0
) -> dict[str, object]:
    row: dict[str, object] = {k: None for k in ROW_KEYS}
    row.update(
        {
            "grid.spacing": spacing,
            "seed": seed,
            "net_pnl": pnl,
            "return_pct": pnl,
            "max_drawdown": dd,
            "max_drawdown_pct": dd,
            "fills": 10,
            "round_trips": 4,
            "invariant_violations": violations,
        }
    )
    return row


def test_rank_means_over_seeds_worst_drawdown_and_ties_in_order() -> None:
    rows = [
        _row("0.001", 1, "10", dd="5"),
        _row("0.001", 2, "-6", dd="7"),
        _row("0.002", 1, "2"),
        _row("0.002", 2, "4"),
        _row("0.003", 1, "3"),
        _row("0.003", 2, "3", violations=2),
    ]
    ranked = rank(rows, ["grid.spacing"])
    assert [dict(r.params)["grid.spacing"] for r in ranked] == ["0.002", "0.003", "0.001"]
    assert ranked[0].figures["net_pnl"] == Decimal(3) and ranked[0].runs == 2
    assert ranked[2].figures["max_drawdown"] == Decimal(7)
    assert ranked[1].violations == 2
    # Lower is better for drawdown; undefined figures rank last.
    by_dd = rank(rows, ["grid.spacing"], by="max_drawdown")
    assert dict(by_dd[-1].params)["grid.spacing"] == "0.001"
    assert [r.figures["sharpe_daily"] for r in rank(rows, ["grid.spacing"], by="sharpe_daily")] == [
        None,
        None,
        None,
    ]


@given(st.lists(st.integers(min_value=-1000, max_value=1000), min_size=1, max_size=12))
def test_rank_is_sorted_and_keeps_every_combination(pnls: list[int]) -> None:
    rows = [_row(f"0.{i + 1:03d}", 1, str(p)) for i, p in enumerate(pnls)]
    ranked = rank(rows, ["grid.spacing"])
    values = [r.figures["net_pnl"] for r in ranked]
    assert values == sorted((Decimal(p) for p in pnls), reverse=True)
    assert len(ranked) == len(pnls)


def test_csv_holds_every_run_exactly(tmp_path: Path) -> None:
    rows = [_row("0.001", 1, "-64.94703838"), _row("0.002", 1, "0.1")]
    rows[0]["halted"] = True
    out = tmp_path / "r.csv"
    write_rows(rows, str(out))
    with out.open(newline="") as f:
        back = list(csv.DictReader(f))
    assert [r["net_pnl"] for r in back] == ["-64.94703838", "0.1"]
    assert back[0]["halted"] == "true" and back[0]["sharpe_daily"] == ""
    assert list(back[0]) == list(rows[0])
