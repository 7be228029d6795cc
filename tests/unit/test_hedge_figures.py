"""The hedge grid's per-side figures (``side_figures``) on a scripted run, figure by figure,
and how people see them (``gridcore.shells.render``): the backtest's table and the run's
stop lines are the same rows at the instrument's precision."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rich.console import Console

from gridcore import (
    CancelOrder,
    Event,
    ModifyOrder,
    OrderCanceled,
    OrderFilled,
    OrderModified,
    OrderRejected,
    PlaceOrder,
    PositionSide,
    Side,
    State,
    TimeInForce,
    step,
)
from gridcore.config import BotConfig
from gridcore.shells import render
from gridcore.sim import make_bot
from gridcore.strategies.hedge_grid import SideFigures, SidePhase, order_role, side_figures

from .helpers import EPOCH, SYMBOL, VENUE, fill, of_type, quote, synced
from .test_hedge_grid import T0, accept, config, placed, started

LONG, SHORT = PositionSide.LONG, PositionSide.SHORT


def paid(place: PlaceOrder, qty: str, price: str, fee: str, ts: int) -> Event:
    """``place`` filled by ``qty`` at ``price``, paying ``fee`` (quote)."""
    return OrderFilled(
        ts=ts,
        fill=fill(
            f"f-{place.cloid}-{ts}",
            place.side,
            qty,
            price,
            ts=ts,
            cloid=place.cloid,
            fee=fee,
            position_side=place.position_side,
        ),
    )


def by_side(state: State[Any]) -> dict[PositionSide, SideFigures]:
    figures = side_figures(state)
    assert [f.side for f in figures] == [LONG, SHORT]
    return {f.side: f for f in figures}


def scripted() -> tuple[State[Any], dict[str, Any]]:
    """LONG: two entries, one take-profit refused then placed again, hit. SHORT: one entry,
    then a jump of the market past max_loss stops it. Every fill pays a fee."""
    state, commands = started(config(max_loss='"5"', retry_ms="1", max_tp_failures="5"))
    long0 = placed(commands, LONG, reduce_only=False)
    short0 = placed(commands, SHORT, reduce_only=False)
    state, _ = accept(state, long0, T0 + 10)
    state, _ = accept(state, short0, T0 + 10)
    state, commands = step(state, paid(long0, "0.002", "49999.9", "0.02", T0 + 20))
    refused = placed(commands, LONG, reduce_only=True)
    long1 = placed(commands, LONG, reduce_only=False)
    state, _ = accept(state, long1, T0 + 25)
    state, _ = step(state, OrderRejected(ts=T0 + 30, venue=VENUE, cloid=refused.cloid, reason="x"))
    state, commands = step(state, quote(T0 + 40))  # after retry_ms: the take-profit again
    tp = placed(commands, LONG, reduce_only=True)
    state, _ = accept(state, tp, T0 + 45)
    state, commands = step(state, paid(long1, "0.002", "49749.9", "0.02", T0 + 50))
    long2 = placed(commands, LONG, reduce_only=False)
    (modify,) = of_type(commands, ModifyOrder)
    assert modify.qty is not None and modify.price is not None
    state, _ = step(
        state,
        OrderModified(
            ts=T0 + 55,
            venue=VENUE,
            cloid=tp.cloid,
            price=modify.price,
            qty=modify.qty,
            command_id=modify.command_id,
        ),
    )
    state, commands = step(state, paid(short0, "0.002", "50000.1", "0.03", T0 + 60))
    short_tp = placed(commands, SHORT, reduce_only=True)
    short1 = placed(commands, SHORT, reduce_only=False)
    midway = state
    state, commands = step(state, paid(tp, "0.004", str(modify.price), "0.01", T0 + 70))
    # The cycle ends: both sides' entries are canceled; the SHORT position stays.
    for order in (long2, short1):
        state, _ = step(state, OrderCanceled(ts=T0 + 80, venue=VENUE, cloid=order.cloid))
    # The market jumps: the SHORT loses 0.002 × 3000 > max_loss and is stopped.
    state, commands = step(state, quote(T0 + 100, "53000", "53000.2"))
    assert short_tp.cloid in {c.cloid for c in of_type(commands, CancelOrder)}
    state, commands = step(state, OrderCanceled(ts=T0 + 110, venue=VENUE, cloid=short_tp.cloid))
    close = placed(commands, SHORT, reduce_only=True)
    assert close.tif is TimeInForce.IOC and close.side is Side.BUY
    state, _ = step(state, paid(close, "0.002", str(close.price), "0.04", T0 + 120))
    orders = {"long2": long2, "tp": tp, "short_tp": short_tp, "modify": modify, "close": close}
    return state, {"midway": midway, **orders}


def test_per_side_figures_of_a_scripted_run_are_exact() -> None:
    state, seen = scripted()
    mid = by_side(seen["midway"])
    # Midway: each side's live entry and take-profit, where the plot draws them.
    assert mid[LONG].pending_entry == seen["long2"].price == Decimal("49501.1")
    assert mid[LONG].pending_level == 2
    assert mid[LONG].take_profit == seen["modify"].price
    assert (mid[LONG].position, mid[LONG].avg_entry) == (Decimal("0.004"), Decimal("49874.90"))
    assert mid[SHORT].take_profit == seen["short_tp"].price
    assert (mid[SHORT].position, mid[SHORT].avg_entry) == (Decimal("-0.002"), Decimal("50000.10"))

    end = by_side(state)
    long, short = end[LONG], end[SHORT]
    tp_price = seen["modify"].price
    assert (long.entries, long.max_depth, long.take_profits, long.tp_failures, long.stops) == (
        2,
        2,
        1,
        1,
        0,
    )
    # 0.004 sold at the take-profit against a cost of 0.002 × 49999.9 + 0.002 × 49749.9.
    assert tp_price == Decimal("50074.4")  # average entry 49874.9 + 0.4 %, rounded up
    assert long.realized == Decimal("0.004") * tp_price - Decimal("199.4996") == Decimal("0.798")
    assert long.fees == Decimal("0.05")
    assert (long.position, long.pending_entry, long.take_profit) == (Decimal(0), None, None)
    assert long.phase is SidePhase.TRADING
    assert (short.entries, short.max_depth, short.take_profits, short.tp_failures) == (1, 1, 0, 0)
    assert (short.stops, short.phase) == (1, SidePhase.STOPPED)
    # Bought back at the ask 53000.2 what was sold at 50000.1.
    assert seen["close"].price == Decimal("53000.2")
    assert short.realized == Decimal("-6.0002")
    assert short.fees == Decimal("0.07")
    assert (short.position, short.take_profit) == (Decimal(0), None)
    assert {f.currency for f in end.values()} == {"USD"}
    assert {(f.venue, f.symbol) for f in end.values()} == {(VENUE, SYMBOL)}
    # The figures the backtest's --json carries come from the same function.
    metrics = state.strategy.summary_figures(state)
    assert metrics["long take-profit failures"] == "1"
    assert metrics["short stops"] == "1"
    assert metrics["short realized PnL"] == "-6.0002"
    assert metrics["long fees"] == "0.05"


def test_order_roles_name_the_grid_orders_only() -> None:
    state, seen = scripted()
    roles = {order_role(o) for o in state.orders.values()}
    assert roles <= {"entry", "tp", "stop"}
    assert order_role(state.orders[seen["close"].cloid]) == "stop"


def test_the_table_and_the_stop_lines_show_the_same_rows_at_the_instrument_precision() -> None:
    state, _ = scripted()
    figures = side_figures(state)
    shown = render.Display(state.config)
    rows = render.side_rows(figures, shown)
    as_dict = {label: (unit, values) for label, unit, values in rows}
    assert as_dict["realized PnL"][0] == "USD"
    # two places, the currency's: not the exact 0.798 and -6.0002
    assert as_dict["realized PnL"][1] == ["0.80", "-6.00"]
    assert as_dict["fees paid"][1] == ["0.05", "0.07"]
    assert as_dict["take-profit failures"][1] == ["1", "0"]
    assert as_dict["stops"][1] == ["0", "1"]
    assert as_dict["phase"][1] == ["trading", "stopped"]
    assert as_dict["average entry"][1] == ["-", "-"]  # both flat
    lines = render.side_lines(figures, shown)
    assert lines[0].startswith("LONG: phase trading, entries filled 2, averaging depth (max) 2, ")
    assert "realized PnL -6.00 USD" in lines[1] and "stops 1" in lines[1]
    console = Console(width=120, record=True)
    console.print(render.side_table(figures, shown, caption="cycles 2, halted: no"))
    text = console.export_text()
    for label in ("LONG", "SHORT", "realized PnL (USD)", "take-profit failures", "-6.00"):
        assert label in text
    doc = render.side_dict(figures)
    assert doc["short"]["realized_pnl"] == "-6.0002" and doc["short"]["stops"] == 1
    assert doc["long"]["take_profit_failures"] == 1 and doc["long"]["currency"] == "USD"


def test_other_strategies_have_no_side_figures() -> None:
    state, _ = synced(make_bot(BotConfig(), epoch=EPOCH), ts=T0)
    assert side_figures(state) == ()
    assert render.side_lines((), render.Display(state.config)) == []
