"""Prometheus metrics of a running bot: ``gridcore run --metrics-port N``.

Every value is derived from the bot's state after the events the runtime reduced and committed
(:func:`state_metrics`, a pure function of the state: no clock, no I/O), plus a few counters
an observer keeps over the events themselves (fills by side and by how they arrived, events,
the PnL at the start of the UTC day). The exporter serves them over HTTP with
``prometheus-client`` (``pip install 'gridcore[metrics]'``), computing them from the last
committed state when Prometheus scrapes, so the bot pays nothing per event beyond the counters.

:data:`CATALOG` names every metric with its type, labels and help; the dashboard
(``examples/grafana-dashboard.json``) and alert rules (``examples/prometheus-alerts.yml``)
reference only names in it (a test checks).

How fills arrive: ``source="stream"`` fills came on the venue's stream (``OrderFilled``,
``OrderPartiallyFilled``); ``source="rest"`` fills were missing from the stream and recovered by
a reconciliation's fills request (``FillsReported``): a high share of them means the stream
loses messages. Duplicates and replays the ledger did not book again are not counted.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from gridcore.commands import Command
from gridcore.core import State
from gridcore.events import Event, Fill, FillsReported, OrderFilled, OrderPartiallyFilled
from gridcore.instruments import Side
from gridcore.numbers import CTX, ZERO
from gridcore.risk import free_margin
from gridcore.shells.logs import SessionLog

__all__ = [
    "CATALOG",
    "DEFAULT_HOST",
    "Exporter",
    "MetricDef",
    "MetricsError",
    "MetricsLog",
    "Observer",
    "add_arguments",
    "start_exporter",
    "state_metrics",
]

DEFAULT_HOST = "127.0.0.1"
_DAY_MS = 86_400_000


@attrs.frozen
class MetricDef:
    """One exported metric: ``kind`` is ``gauge`` or ``counter`` (a counter's samples are
    exported as ``<name>_total``; ``name`` here already ends in ``_total``)."""

    name: str
    kind: str
    labels: tuple[str, ...]
    help: str


_POS = ("venue", "symbol", "side")
_INST = ("venue", "symbol")
_VENUE = ("venue",)

#: Every metric the exporter serves.
CATALOG: tuple[MetricDef, ...] = (
    # money and position, per position (venue, symbol, position side)
    MetricDef("gridcore_position", "gauge", _POS, "Position, signed (base units)"),
    MetricDef("gridcore_realized_pnl", "gauge", _POS, "Realized trading PnL (quote)"),
    MetricDef("gridcore_unrealized_pnl", "gauge", _POS, "Open position at the last mid (quote)"),
    MetricDef("gridcore_fees_paid", "gauge", _POS, "Fees paid, positive when paid (quote)"),
    MetricDef("gridcore_funding_paid", "gauge", _POS, "Funding paid, positive when paid (quote)"),
    # per instrument
    MetricDef(
        "gridcore_daily_pnl",
        "gauge",
        _INST,
        "Net PnL since the start of the UTC day or of the session, whichever is later (quote)",
    ),
    MetricDef("gridcore_mid", "gauge", _INST, "Mid of the last accepted quote (quote)"),
    MetricDef(
        "gridcore_data_age_seconds",
        "gauge",
        _INST,
        "Venue time since the last accepted quote (the core's clock minus the quote's time)",
    ),
    MetricDef("gridcore_orders_active", "gauge", _INST, "Live orders"),
    MetricDef(
        "gridcore_position_drift",
        "gauge",
        _POS,
        "Unconfirmed difference between the venue's position and the ledger's (base units)",
    ),
    MetricDef(
        "gridcore_position_drift_ratio",
        "gauge",
        _POS,
        "|drift| / the larger of |ledger position| and |venue position| (0..1)",
    ),
    # per venue
    MetricDef("gridcore_feed_up", "gauge", _VENUE, "1 while the market stream is up"),
    MetricDef("gridcore_synced", "gauge", _VENUE, "1 while the venue is reconciled and tradable"),
    MetricDef(
        "gridcore_margin_utilization",
        "gauge",
        _VENUE,
        "Margin in use (positions and live orders) / equity of the last balance report (0..1+)",
    ),
    # the bot
    MetricDef("gridcore_net_pnl", "gauge", (), "Realized - fees + funding + unrealized (quote)"),
    MetricDef("gridcore_halted", "gauge", (), "1 while the risk gate has halted trading"),
    MetricDef("gridcore_drawdown", "gauge", (), "Fall of net PnL from its peak now (quote)"),
    MetricDef("gridcore_max_drawdown", "gauge", (), "Largest fall of net PnL so far (quote)"),
    MetricDef("gridcore_drawdown_limit", "gauge", (), "risk.max_drawdown (quote; absent if off)"),
    MetricDef("gridcore_drawdown_ratio", "gauge", (), "Drawdown now / risk.max_drawdown (1 halts)"),
    MetricDef("gridcore_api_error_streak", "gauge", (), "Failed order/request commands in a row"),
    MetricDef("gridcore_api_error_streak_limit", "gauge", (), "risk.max_error_streak"),
    MetricDef(
        "gridcore_circuit_breaker_tripped",
        "gauge",
        (),
        "1 when the error streak reached risk.max_error_streak",
    ),
    MetricDef("gridcore_event_time_seconds", "gauge", (), "The core's clock (venue time, s)"),
    # the grid (any strategy whose metrics() has center, lower and upper)
    MetricDef(
        "gridcore_grid_width_ratio", "gauge", (), "(upper - lower bound) / center of the grid"
    ),
    MetricDef(
        "gridcore_grid_skew",
        "gauge",
        (),
        "(live buys - live sells) / live orders of the strategy (-1..1; 0 balanced)",
    ),
    MetricDef(
        "gridcore_grid_center_offset_ratio",
        "gauge",
        (),
        "(mid - grid center) / grid center",
    ),
    MetricDef(
        "gridcore_strategy_value",
        "gauge",
        ("strategy", "name"),
        "What the strategy's metrics() reports, by name",
    ),
    # counters over the events
    MetricDef(
        "gridcore_fills_total",
        "counter",
        ("side", "source"),
        "Fills booked, by side and by how they arrived (stream, or rest: a reconciliation)",
    ),
    MetricDef(
        "gridcore_fills_rest_ratio",
        "gauge",
        (),
        "Share of booked fills recovered by REST reconciliation, not seen on the stream (0..1)",
    ),
    MetricDef("gridcore_events_total", "counter", (), "Events reduced and committed"),
)

_BY_NAME = {m.name: m for m in CATALOG}

#: A sample: metric name, label values (in the metric's label order), value.
Sample = tuple[str, tuple[str, ...], float]


def _f(value: Decimal) -> float:
    return float(value)


def _ratio(part: Decimal, whole: Decimal) -> float:
    return float(CTX.divide(part, whole)) if whole else 0.0


def _instrument_nets(state: State[Any]) -> dict[tuple[str, str], Decimal]:
    nets: dict[tuple[str, str], Decimal] = {}
    for (venue, symbol, _side), pos in state.ledger.positions.items():
        net = pos.net
        quote = state.quotes.get((venue, symbol))
        if pos.qty and quote is not None:
            net = CTX.add(net, pos.unrealized(quote.mid))
        nets[(venue, symbol)] = CTX.add(nets.get((venue, symbol), ZERO), net)
    return nets


def state_metrics(state: State[Any]) -> list[Sample]:
    """Every state-derived metric of :data:`CATALOG` for ``state`` (pure: reads the state only).

    Counters and ``gridcore_daily_pnl`` need the events and are the :class:`Observer`'s."""
    out: list[Sample] = []
    add = out.append
    ledger, risk, config = state.ledger, state.risk, state.config
    for (venue, symbol, side), pos in sorted(
        ledger.positions.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2].value)
    ):
        labels = (venue, symbol, side.value)
        quote = state.quotes.get((venue, symbol))
        add(("gridcore_position", labels, _f(pos.qty)))
        add(("gridcore_realized_pnl", labels, _f(pos.realized)))
        unrealized = pos.unrealized(quote.mid) if quote is not None else ZERO
        add(("gridcore_unrealized_pnl", labels, _f(unrealized)))
        add(("gridcore_fees_paid", labels, _f(pos.fees)))
        add(("gridcore_funding_paid", labels, _f(-pos.funding)))
    live: dict[tuple[str, str], int] = {}
    for order in state.live_orders():
        key = (order.venue, order.symbol)
        live[key] = live.get(key, 0) + 1
    for inst in config.instruments:
        key = (inst.venue, inst.symbol)
        quote = state.quotes.get(key)
        if quote is not None:
            add(("gridcore_mid", key, _f(quote.mid)))
            add(("gridcore_data_age_seconds", key, max(0, state.now - quote.ts) / 1000))
        add(("gridcore_orders_active", key, float(live.get(key, 0))))
    for venue in config.venues:
        vs = state.venues.get(venue)
        add(("gridcore_feed_up", (venue,), float(vs is not None and vs.feed_up)))
        add(("gridcore_synced", (venue,), float(state.can_trade(venue))))
        balance = risk.balances.get(venue)
        free = free_margin(venue, risk, ledger, state.quotes, config.risk.leverage)
        if balance is not None and free is not None and balance.equity > 0:
            used = CTX.subtract(balance.equity, free)
            add(("gridcore_margin_utilization", (venue,), _ratio(used, balance.equity)))
        if vs is not None:
            for (v, symbol, side), (diff, _count, _seen) in vs.drift.items():
                labels = (v, symbol, side.value)
                mine = ledger.positions.get((v, symbol, side))
                qty = mine.qty if mine is not None else ZERO
                larger = max(abs(qty), abs(CTX.add(qty, diff)))
                add(("gridcore_position_drift", labels, _f(diff)))
                add(("gridcore_position_drift_ratio", labels, _ratio(abs(diff), larger)))
    net = state.net_pnl()
    add(("gridcore_net_pnl", (), _f(net)))
    add(("gridcore_halted", (), float(risk.halted)))
    fall = max(ZERO, CTX.subtract(risk.peak_pnl, net))
    add(("gridcore_drawdown", (), _f(fall)))
    add(("gridcore_max_drawdown", (), _f(max(risk.worst_drawdown, fall))))
    limit = config.risk.max_drawdown
    if limit is not None:
        add(("gridcore_drawdown_limit", (), _f(limit)))
        add(("gridcore_drawdown_ratio", (), _ratio(fall, limit)))
    streak_limit = config.risk.max_error_streak
    add(("gridcore_api_error_streak", (), float(risk.error_streak)))
    add(("gridcore_api_error_streak_limit", (), float(streak_limit)))
    add(("gridcore_circuit_breaker_tripped", (), float(risk.error_streak >= streak_limit)))
    add(("gridcore_event_time_seconds", (), state.now / 1000))
    out.extend(_strategy_metrics(state))
    return out


def _strategy_metrics(state: State[Any]) -> Iterator[Sample]:
    strategy = state.strategy
    offered = getattr(strategy, "metrics", None)
    if not callable(offered):
        return
    values: Mapping[str, Decimal] = offered()
    name = type(strategy).__name__
    for key in sorted(values):
        yield ("gridcore_strategy_value", (name, key), _f(values[key]))
    center, lower, upper = values.get("center"), values.get("lower"), values.get("upper")
    if center is None or lower is None or upper is None or not center:
        return
    yield ("gridcore_grid_width_ratio", (), _ratio(CTX.subtract(upper, lower), center))
    buys = sells = 0
    tag = getattr(getattr(strategy, "config", None), "tag", "")
    for order in state.live_orders(str(tag)):
        if order.side is Side.BUY:
            buys += 1
        else:
            sells += 1
    skew = (buys - sells) / (buys + sells) if buys + sells else 0.0
    yield ("gridcore_grid_skew", (), skew)
    mids = [q.mid for q in state.quotes.values()]
    if len(mids) == 1:
        yield (
            "gridcore_grid_center_offset_ratio",
            (),
            _ratio(CTX.subtract(mids[0], center), center),
        )


# --- the observer: counters over events ----------------------------------------------------------


class Observer:
    """Counts over the reduced events (fills by side and source, events) and the PnL at the
    start of the UTC day; :meth:`publish` makes the last observed state the one served.

    :meth:`observe` runs on the runtime's reducer task; :meth:`snapshot` on the HTTP server's
    thread: they share only what :meth:`publish` swaps under a lock."""

    def __init__(self) -> None:
        self._fills: dict[tuple[str, str], int] = {}
        self._events = 0
        self._state: State[Any] | None = None
        self._day = -1
        self._day_start: dict[tuple[str, str], Decimal] = {}
        self._lock = threading.Lock()
        self._published: tuple[State[Any] | None, dict[tuple[str, str], int], int, dict[Any, Any]]
        self._published = (None, {}, 0, {})

    def observe(self, before: State[Any], event: Event, after: State[Any]) -> None:
        """Note one reduced event (``before`` and ``after`` are the states around it)."""
        self._events += 1
        day = event.ts // _DAY_MS
        if day != self._day:
            # The day's baseline is the state before its first event (the session's start).
            self._day = day
            self._day_start = _instrument_nets(before)
        match event:
            case OrderFilled(fill=fill) | OrderPartiallyFilled(fill=fill):
                self._fills_booked(before, after, (fill,), "stream")
            case FillsReported(fills=fills):
                self._fills_booked(before, after, fills, "rest")
            case _:
                pass
        self._state = after

    def _fills_booked(
        self, before: State[Any], after: State[Any], fills: Sequence[Fill], source: str
    ) -> None:
        booked = after.ledger.fill_count - before.ledger.fill_count
        for fill in fills:
            if booked <= 0:
                return
            if before.ledger.has_seen(fill):
                continue
            booked -= 1
            key = (fill.side.value, source)
            self._fills[key] = self._fills.get(key, 0) + 1

    def publish(self) -> None:
        """Serve what was observed so far (called once the events are journaled)."""
        with self._lock:
            self._published = (self._state, dict(self._fills), self._events, self._day_start)

    def samples(self) -> list[Sample]:
        """Every metric of the published state and counters."""
        with self._lock:
            state, fills, events, day_start = self._published
        out: list[Sample] = []
        for side in (Side.BUY.value, Side.SELL.value):
            for source in ("stream", "rest"):
                out.append(
                    ("gridcore_fills_total", (side, source), float(fills.get((side, source), 0)))
                )
        total = sum(fills.values())
        rest = sum(n for (_side, source), n in fills.items() if source == "rest")
        out.append(("gridcore_fills_rest_ratio", (), rest / total if total else 0.0))
        out.append(("gridcore_events_total", (), float(events)))
        if state is None:
            return out
        for key, net in sorted(_instrument_nets(state).items()):
            start = day_start.get(key, ZERO)
            out.append(("gridcore_daily_pnl", key, _f(CTX.subtract(net, start))))
        out.extend(state_metrics(state))
        return out


class MetricsLog(SessionLog):
    """The runtime's session log, also feeding an :class:`Observer`: it sees every reduced
    event and publishes when the log flushes, that is once the events are journaled (on
    paper, where a commit runs behind the reducer, with those of the next group reduced so
    far)."""

    def __init__(self, observer: Observer) -> None:
        super().__init__()
        self.observer = observer

    def observe(
        self, before: State[Any], event: Event, after: State[Any], commands: Sequence[Command]
    ) -> None:
        super().observe(before, event, after, commands)
        self.observer.observe(before, event, after)

    def flush(self, count: int | None = None) -> None:
        super().flush(count)
        self.observer.publish()


# --- the HTTP exporter ---------------------------------------------------------------------------


class MetricsError(Exception):
    """The exporter cannot start: prometheus-client missing, or the address cannot be bound."""


class Exporter:
    """Serves an :class:`Observer`'s metrics at ``http://HOST:PORT/metrics`` (a daemon thread
    of ``prometheus_client``) until :meth:`close`."""

    def __init__(self, observer: Observer, host: str, port: int) -> None:
        try:
            from prometheus_client import start_http_server
            from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
            from prometheus_client.registry import Collector, CollectorRegistry
        except ModuleNotFoundError:
            raise MetricsError(
                "--metrics-port needs prometheus-client, which is not installed; install it "
                "with: pip install 'gridcore[metrics]'"
            ) from None

        class _Collector(Collector):
            def collect(self) -> Iterator[Any]:
                families: dict[str, Any] = {}
                for m in CATALOG:
                    name = m.name.removesuffix("_total") if m.kind == "counter" else m.name
                    kind = CounterMetricFamily if m.kind == "counter" else GaugeMetricFamily
                    families[m.name] = kind(name, m.help, labels=list(m.labels))
                for name, labels, value in observer.samples():
                    families[name].add_metric(list(labels), value)
                yield from families.values()

        self.observer = observer
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector())
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise MetricsError(
                f"--metrics-port {port}: cannot serve metrics on {host}:{port}: "
                f"{exc.strerror or exc}; choose another port"
            ) from None
        self.host, self.port = host, self._server.server_port

    @property
    def url(self) -> str:
        """Where Prometheus scrapes."""
        return f"http://{self.host}:{self.port}/metrics"

    def session_log(self) -> MetricsLog:
        """The runtime's ``log`` that feeds this exporter."""
        return MetricsLog(self.observer)

    def close(self) -> None:
        """Stop serving (idempotent)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--metrics-port`` and ``--metrics-host`` of ``gridcore run``."""
    parser.add_argument(
        "--metrics-port",
        type=_port,
        metavar="N",
        help="serve Prometheus metrics at http://HOST:N/metrics (needs gridcore[metrics]; "
        "0 picks a free port, printed at start)",
    )
    parser.add_argument(
        "--metrics-host",
        default=DEFAULT_HOST,
        metavar="HOST",
        help=f"address the metrics endpoint listens on (default {DEFAULT_HOST}: this machine "
        "only; 0.0.0.0 exposes it to the network)",
    )


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a port number 0-65535, got {text!r}") from None
    if not 0 <= value <= 65_535:
        raise argparse.ArgumentTypeError(f"a port number 0-65535, got {value}")
    return value


def start_exporter(args: argparse.Namespace) -> Exporter | None:
    """The exporter ``gridcore run`` asked for (``None`` without ``--metrics-port``), serving
    already; its address is printed on stderr."""
    port = getattr(args, "metrics_port", None)
    if port is None:
        return None
    exporter = Exporter(Observer(), getattr(args, "metrics_host", DEFAULT_HOST), port)
    print(f"gridcore: metrics at {exporter.url}", file=sys.stderr, flush=True)
    return exporter
