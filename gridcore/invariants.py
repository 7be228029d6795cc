"""Invariants: properties that must hold after every step, whatever the events and faults.

Each invariant is a named function returning the violations it finds (an empty list when it
holds). :data:`STATE_INVARIANTS` need only the bot's state; :func:`check_against_venue` compares
the bot with the simulated venue's own account (it holds once both have settled: after a
reconciliation round with no fault in flight).

The row of ``DESIGN.md`` each one answers is named in its docstring.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs

from gridcore.core import State
from gridcore.grid import NeutralGrid, compute_spacing
from gridcore.instruments import Side
from gridcore.lifecycle import OrderStatus
from gridcore.numbers import CTX, ZERO
from gridcore.sim.exchange import SimExchange

__all__ = [
    "STATE_INVARIANTS",
    "Violation",
    "check_against_venue",
    "check_state",
    "grid_levels_never_cross",
    "grid_spacing_above_floor",
    "no_live_order_without_remainder",
    "reservations_match_live_orders",
    "reservations_within_balance",
    "unresolved_orders_have_status_requests",
]


@attrs.frozen(kw_only=True)
class Violation:
    """One broken invariant: its name, when (event ``ts``), and what was seen."""

    invariant: str
    ts: int
    detail: str


def reservations_within_balance(state: State[Any]) -> list[Violation]:
    """Reservations never exceed the last reported balance (seed 000 #1, 002 P0-2/3)."""
    out = []
    for venue, reserved in state.risk.reserved.items():
        balance = state.risk.balances.get(venue)
        if reserved and (balance is None or reserved > balance.equity):
            out.append(
                Violation(
                    invariant="reservations_within_balance",
                    ts=state.now,
                    detail=f"{venue}: reserved {reserved} > equity "
                    f"{None if balance is None else balance.equity}",
                )
            )
    return out


def reservations_match_live_orders(state: State[Any]) -> list[Violation]:
    """Every failure path releases its reservation (seed 002 P0-5): the reserved total per
    venue equals the reservations of its live orders, and done orders hold none."""
    totals: dict[str, Decimal] = {}
    out = []
    for order in state.orders.values():
        if order.is_live:
            totals[order.venue] = CTX.add(totals.get(order.venue, ZERO), order.reserved)
        elif order.reserved:
            out.append(
                Violation(
                    invariant="reservations_match_live_orders",
                    ts=state.now,
                    detail=f"order {order.cloid} is {order.status.name} but holds {order.reserved}",
                )
            )
    for venue in set(totals) | set(state.risk.reserved):
        if totals.get(venue, ZERO) != state.risk.reserved.get(venue, ZERO):
            out.append(
                Violation(
                    invariant="reservations_match_live_orders",
                    ts=state.now,
                    detail=f"{venue}: reserved {state.risk.reserved.get(venue, ZERO)} but live "
                    f"orders hold {totals.get(venue, ZERO)}",
                )
            )
    return out


def no_live_order_without_remainder(state: State[Any]) -> list[Violation]:
    """Σ fills of an order = its filled quantity; no open order with nothing left (004 C-2)."""
    return [
        Violation(
            invariant="no_live_order_without_remainder",
            ts=state.now,
            detail=f"order {o.cloid} is {o.status.name} with {o.filled_qty} of {o.qty} filled",
        )
        for o in state.orders.values()
        if o.is_live and o.filled_qty >= o.qty
    ]


def unresolved_orders_have_status_requests(state: State[Any]) -> list[Violation]:
    """No order stays in doubt or cancel-failed past two maintenance periods without a status
    request (seed 004 C-6)."""
    grace = 2 * state.config.maintenance_ms
    return [
        Violation(
            invariant="unresolved_orders_have_status_requests",
            ts=state.now,
            detail=f"order {o.cloid} is {o.status.name} since {o.updated_ts} with no status request",
        )
        for o in state.orders.values()
        if o.status in (OrderStatus.IN_DOUBT, OrderStatus.CANCEL_FAILED)
        and not o.status_requested
        and state.now - o.updated_ts > grace
    ]


def grid_levels_never_cross(state: State[Any]) -> list[Violation]:
    """Bids stay below asks: no live grid buy at or above a live grid sell (seed 004 C-4)."""
    if not isinstance(state.strategy, NeutralGrid):
        return []
    prefix = state.strategy.config.tag + ":"
    buys: list[Decimal] = []
    sells: list[Decimal] = []
    for o in state.orders.values():
        s = o.status
        if (
            s is OrderStatus.OPEN
            or s is OrderStatus.PARTIALLY_FILLED
            or s is OrderStatus.PENDING_NEW
        ) and o.tag.startswith(prefix):
            (buys if o.side is Side.BUY else sells).append(o.price)
    if buys and sells and max(buys) >= min(sells):
        return [
            Violation(
                invariant="grid_levels_never_cross",
                ts=state.now,
                detail=f"highest grid buy {max(buys)} >= lowest grid sell {min(sells)}",
            )
        ]
    return []


def grid_spacing_above_floor(state: State[Any]) -> list[Violation]:
    """Spacing never under its floor (tick, fee-aware minimum, configured minimum: 004 C-4)."""
    grid = state.strategy
    if not isinstance(grid, NeutralGrid) or grid.center is None:
        return []
    cfg = grid.config
    instrument = state.config.instrument(cfg.venue, cfg.symbol)
    floor = compute_spacing(
        grid.center,
        instrument,
        spacing=Decimal("1e-12"),
        min_spacing=cfg.min_spacing,
    )
    if grid.step < floor:
        return [
            Violation(
                invariant="grid_spacing_above_floor",
                ts=state.now,
                detail=f"step {grid.step} under floor {floor} at center {grid.center}",
            )
        ]
    return []


STATE_INVARIANTS: tuple[Callable[[State[Any]], list[Violation]], ...] = (
    reservations_within_balance,
    reservations_match_live_orders,
    no_live_order_without_remainder,
    unresolved_orders_have_status_requests,
    grid_levels_never_cross,
    grid_spacing_above_floor,
)
"""Invariants checked after every step."""


def check_state(state: State[Any]) -> list[Violation]:
    """Every state invariant's violations."""
    out: list[Violation] = []
    for invariant in STATE_INVARIANTS:
        out.extend(invariant(state))
    return out


def check_against_venue(state: State[Any], exchange: SimExchange) -> list[Violation]:
    """The ledger equals the venue's own account: positions, entry, realized PnL, fees and
    funding per position (seed 004 C-3, C-5); no order the venue rests is unknown to the core.
    Holds once both have settled."""
    out = []
    venue = exchange.config.venue
    keys = {k for k in state.ledger.positions if k[0] == venue}
    keys |= {(venue, symbol, side) for symbol, side in exchange.positions}
    for key in sorted(keys, key=lambda k: (k[1], k[2].value)):
        ours = state.ledger.position(*key)
        theirs = exchange.position(key[1], key[2])
        for field in ("qty", "avg_entry", "realized", "fees", "funding"):
            a, b = getattr(ours, field), getattr(theirs, field)
            if a != b:
                out.append(
                    Violation(
                        invariant="ledger_matches_venue",
                        ts=state.now,
                        detail=f"{key[1]} {key[2].value} {field}: ledger {a}, venue {b}",
                    )
                )
    for order in exchange.open_orders():
        ours_order = state.orders.get(order.cloid)
        if ours_order is None or not ours_order.is_live:
            out.append(
                Violation(
                    invariant="venue_orders_known",
                    ts=state.now,
                    detail=f"venue rests {order.cloid} ({order.side.value} {order.remaining} @ "
                    f"{order.price}) but the core has it "
                    f"{'unknown' if ours_order is None else ours_order.status.name}",
                )
            )
    return out
