"""Metrics (gridcore.shells.metrics): values derived from real states, the observer's counters
over fills by side and source, and the shipped dashboard and alert rules referencing only
metrics that exist."""

from __future__ import annotations

import importlib
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

from gridcore.config import load_config
from gridcore.core import State, step
from gridcore.events import Event, FillsReported, OrderFilled, OrderPartiallyFilled
from gridcore.grid import NeutralGrid
from gridcore.instruments import PositionSide
from gridcore.shells.metrics import CATALOG, Observer, Sample, state_metrics
from gridcore.sim import backtest, profile

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMES = {m.name for m in CATALOG}


def _by_name(samples: list[Sample]) -> dict[str, dict[tuple[str, ...], float]]:
    out: dict[str, dict[tuple[str, ...], float]] = {}
    for name, labels, value in samples:
        out.setdefault(name, {})[labels] = value
    return out


class _Watch:
    """A reducer that feeds an Observer, as the runtime's log does."""

    def __init__(self) -> None:
        self.observer = Observer()
        self.by_kind: dict[str, int] = {}

    def __call__(self, state: State[Any], event: Event) -> tuple[State[Any], list[Any]]:
        after, commands = step(state, event)
        self.observer.observe(state, event, after)
        if after.ledger.fill_count != state.ledger.fill_count:
            kind = type(event).__name__
            self.by_kind[kind] = self.by_kind.get(kind, 0) + (
                after.ledger.fill_count - state.ledger.fill_count
            )
        return after, commands


@pytest.fixture(scope="module")
def lossy() -> tuple[Any, _Watch]:
    watch = _Watch()
    trace = backtest(load_config(), ticks=8_000, seed=3, faults=profile("lossy"), reducer=watch)
    watch.observer.publish()
    return trace, watch


def test_every_sample_is_in_the_catalog_with_its_labels(lossy: tuple[Any, _Watch]) -> None:
    _, watch = lossy
    labels = {m.name: m.labels for m in CATALOG}
    for name, values, _ in watch.observer.samples():
        assert name in labels
        assert len(values) == len(labels[name]), name


def test_state_metrics_agree_with_the_state(lossy: tuple[Any, _Watch]) -> None:
    trace, _ = lossy
    state = trace.state
    got = _by_name(state_metrics(state))
    key = ("sim", "BTC-PERP", "both")
    pos = state.ledger.positions[("sim", "BTC-PERP", PositionSide.BOTH)]
    assert got["gridcore_position"][key] == float(pos.qty)
    assert got["gridcore_realized_pnl"][key] == float(pos.realized)
    assert got["gridcore_funding_paid"][key] == float(-pos.funding)
    assert got["gridcore_net_pnl"][()] == float(state.net_pnl())
    assert got["gridcore_halted"][()] == 0.0
    assert got["gridcore_orders_active"][("sim", "BTC-PERP")] == len(state.live_orders())
    assert got["gridcore_api_error_streak"][()] == state.risk.error_streak
    assert got["gridcore_drawdown_limit"][()] == 1000.0
    grid = state.strategy
    assert isinstance(grid, NeutralGrid) and grid.center is not None
    assert got["gridcore_strategy_value"][("NeutralGrid", "center")] == float(grid.center)
    width = (grid.upper - grid.lower) / grid.center
    assert got["gridcore_grid_width_ratio"][()] == pytest.approx(float(width))
    assert -1 <= got["gridcore_grid_skew"][()] <= 1
    assert 0 <= got["gridcore_margin_utilization"][("sim",)] <= 1


def test_fills_are_counted_by_side_and_by_how_they_arrived(lossy: tuple[Any, _Watch]) -> None:
    trace, watch = lossy
    got = _by_name(watch.observer.samples())
    fills = got["gridcore_fills_total"]
    assert sum(fills.values()) == trace.state.ledger.fill_count  # each booked fill once
    stream = watch.by_kind.get(OrderFilled.__name__, 0) + watch.by_kind.get(
        OrderPartiallyFilled.__name__, 0
    )
    rest = watch.by_kind.get(FillsReported.__name__, 0)
    assert rest > 0, "the lossy profile should make reconciliation recover fills"
    assert fills[("buy", "rest")] + fills[("sell", "rest")] == rest
    assert fills[("buy", "stream")] + fills[("sell", "stream")] == stream
    assert got["gridcore_fills_rest_ratio"][()] == pytest.approx(rest / (rest + stream))
    buys = sum(1 for f in trace.exchange.fills if f.side.value == "buy")
    assert fills[("buy", "stream")] + fills[("buy", "rest")] == buys


def test_drift_breaker_halt_and_data_age_from_a_state(lossy: tuple[Any, _Watch]) -> None:
    trace, _ = lossy
    state = trace.state
    key = ("sim", "BTC-PERP", "both")
    pkey = ("sim", "BTC-PERP", PositionSide.BOTH)
    qty = state.ledger.positions[pkey].qty
    vs = state.venues["sim"]
    drifted = attrs.evolve(vs, drift={pkey: (Decimal("0.001"), 0, state.now)})
    books = attrs.evolve(
        state.books,
        venues={"sim": drifted},
        risk=attrs.evolve(state.risk, error_streak=8, halted=True),
    )
    later = attrs.evolve(state, books=books, now=state.now + 25_000)
    got = _by_name(state_metrics(later))
    larger = max(abs(qty), abs(qty + Decimal("0.001")))
    assert got["gridcore_position_drift"][key] == 0.001
    assert got["gridcore_position_drift_ratio"][key] == pytest.approx(0.001 / float(larger))
    assert got["gridcore_circuit_breaker_tripped"][()] == 1.0
    assert got["gridcore_halted"][()] == 1.0
    quote = state.quotes[("sim", "BTC-PERP")]
    age = got["gridcore_data_age_seconds"][("sim", "BTC-PERP")]
    assert age == (state.now + 25_000 - quote.ts) / 1000 and age >= 25


def test_nothing_is_served_before_the_first_publish() -> None:
    got = _by_name(Observer().samples())
    assert "gridcore_position" not in got
    assert got["gridcore_events_total"][()] == 0


# --- the shipped dashboard and alert rules --------------------------------------------------

_METRIC = re.compile(r"\bgridcore_[a-z_]+\b")


def _dashboard_exprs() -> list[str]:
    doc = json.loads((EXAMPLES / "grafana-dashboard.json").read_text(encoding="utf-8"))
    exprs: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for p in panels:
            exprs.extend(t["expr"] for t in p.get("targets", []))
            walk(p.get("panels", []))

    walk(doc["panels"])
    return exprs


def _alert_rules() -> list[dict[str, Any]]:
    text = (EXAMPLES / "prometheus-alerts.yml").read_text(encoding="utf-8")
    try:
        yaml = importlib.import_module("yaml")  # comes with ray (dev extra); untyped
    except ModuleNotFoundError:  # pragma: no cover - pyyaml comes with the dev extra (ray)
        rules = re.findall(r"- alert: (\S+)\n(?:.*\n)*?\s+expr: (.+)", text)
        return [{"alert": a, "expr": e} for a, e in rules]
    doc = yaml.safe_load(text)
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_the_dashboard_references_only_metrics_that_exist() -> None:
    exprs = _dashboard_exprs()
    assert len(exprs) >= 20
    used = {name for e in exprs for name in _METRIC.findall(e)}
    assert used <= NAMES, used - NAMES
    # Each family an operator needs is on it.
    assert {"gridcore_fills_total", "gridcore_position_drift_ratio", "gridcore_halted"} <= used


def test_the_alert_rules_are_valid_and_cover_what_they_promise() -> None:
    rules = _alert_rules()
    by_expr = {r["expr"].strip(): r["alert"] for r in rules}
    for rule in rules:
        assert rule["alert"] and rule["expr"]
        assert set(_METRIC.findall(rule["expr"])) <= NAMES, rule["expr"]
    for expr in (
        "gridcore_position_drift_ratio > 0.01",
        "gridcore_data_age_seconds > 20",
        "gridcore_api_error_streak > 3",
        "gridcore_circuit_breaker_tripped == 1",
    ):
        assert expr in by_expr, expr
