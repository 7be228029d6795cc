"""Clean numbers wherever a person or a program looks: the one rounding of the ledger (average
entry) rounds once and correctly, people see money at the currency's places, prices at the tick
and sizes at the lot, and JSON carries exact values with no artefact of a 40-digit context."""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from gridcore import OrderPartiallyFilled, RiskConfig, Side, TimerFired, step
from gridcore.commands import Halt, Notify
from gridcore.core import MAINTENANCE_TIMER
from gridcore.numbers import (
    CURRENCY_PLACES,
    DEFAULT_CURRENCY_PLACES,
    exact_str,
    format_money,
    format_step,
    money_places,
    places,
    quantize_quotient,
)
from gridcore.shells import render
from gridcore.shells.cli_run import _money, _position
from gridcore.sim import FaultCounts, Summary
from tests.unit.helpers import (
    EPOCH,
    SYMBOL,
    VENUE,
    fill,
    kernel_config,
    of_type,
    only,
    quote,
    scripted_state,
    submit,
    synced,
)

D = Decimal

# Decimals as a ledger can make them: up to 30 digits, 0 to 20 places, either sign.
decimals = st.builds(
    lambda n, p: Decimal(n).scaleb(-p),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=0, max_value=20),
)
nonzero = st.integers(min_value=1, max_value=10**12).flatmap(
    lambda n: st.builds(
        lambda sign, p: Decimal(sign * n).scaleb(-p),
        st.sampled_from([1, -1]),
        st.integers(min_value=0, max_value=8),
    )
)


def _half_even(x: Fraction) -> int:
    floor = x.numerator // x.denominator
    rest = x - floor
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2 == 1):
        return floor + 1
    return floor


# --- the one rounding: average entry -------------------------------------------------------------


@given(numerator=decimals, denominator=nonzero, exponent=st.integers(min_value=-12, max_value=2))
def test_quantize_quotient_rounds_once_half_even(
    numerator: Decimal, denominator: Decimal, exponent: int
) -> None:
    """Against exact rational arithmetic: no double rounding through a 40-digit quotient."""
    exact = Fraction(numerator) / Fraction(denominator) / Fraction(10) ** exponent
    got = quantize_quotient(numerator, denominator, exponent)
    assert got.as_tuple().exponent == exponent
    assert Fraction(got) == _half_even(exact) * Fraction(10) ** exponent


def test_quantize_quotient_examples() -> None:
    assert quantize_quotient(D(301), D(3), -2) == D("100.33")
    assert quantize_quotient(D("0.125"), D(1), -2) == D("0.12")  # tie to even
    assert quantize_quotient(D("0.135"), D(1), -2) == D("0.14")
    assert quantize_quotient(D(-1), D(3), -4) == D("-0.3333")
    assert str(quantize_quotient(D(0), D(7), -3)) == "0.000"
    with pytest.raises(ZeroDivisionError):
        quantize_quotient(D(1), D(0), 0)


def test_places() -> None:
    assert places(D("1.50")) == 2
    assert places(D("1E+2")) == 0
    assert places(D("0.001")) == 3


# --- what machines see ----------------------------------------------------------------------------


@given(value=decimals)
def test_exact_str_is_exact_plain_and_normalized(value: Decimal) -> None:
    text = exact_str(value)
    assert Decimal(text) == value
    assert re.fullmatch(r"-?\d+(\.\d*[1-9])?", text), text
    assert text != "-0"


def test_exact_str_examples() -> None:
    assert exact_str(D("-64.947038380")) == "-64.94703838"
    assert exact_str(D("0.0906229000")) == "0.0906229"
    assert exact_str(D("1E+3")) == "1000"
    assert exact_str(D("-0.000")) == "0"
    with pytest.raises(ValueError):
        exact_str(D("NaN"))


# --- what people see ------------------------------------------------------------------------------


@given(value=decimals, currency=st.sampled_from([*CURRENCY_PLACES, "BTC", "eth", "XYZ"]))
def test_money_is_shown_at_the_currency_places(value: Decimal, currency: str) -> None:
    n = money_places(currency)
    text = format_money(value, currency)
    assert re.fullmatch(rf"-?\d+\.\d{{{n}}}" if n else r"-?\d+", text), text
    assert abs(Decimal(text) - value) <= Decimal(1).scaleb(-n) / 2
    assert not re.fullmatch(r"-0(\.0*)?", text)
    grouped = format_money(value, currency, grouping=True)
    assert grouped.replace(",", "") == text


def test_money_places_rule() -> None:
    assert money_places("USD") == money_places("usdt") == 2
    assert money_places("JPY") == 0
    assert money_places("BTC") == DEFAULT_CURRENCY_PLACES == 8
    assert format_money(D("-64.947038380000000000000001"), "USD") == "-64.95"
    assert format_money(D("-0.001"), "USD") == "0.00"
    assert format_money(D("1000.54362534"), "USD", grouping=True) == "1,000.54"


@given(value=decimals, step=st.sampled_from([D("0.1"), D("0.001"), D("1"), D("0.00005"), D(5)]))
def test_prices_and_sizes_are_shown_at_the_step_places(value: Decimal, step: Decimal) -> None:
    text = format_step(value, step)
    assert places(Decimal(text)) == places(step)
    assert "E" not in text


def test_format_step_examples() -> None:
    assert format_step(D("49518.6812500000000000000000000000000000"), D("0.1")) == "49518.7"
    assert format_step(D("-0.014"), D("0.001")) == "-0.014"
    assert format_step(D("0.02"), D("0.001")) == "0.020"


# --- the backtest summary, both renderings ---------------------------------------------------------

_MONEY_FIELDS = (
    "volume",
    "realized_pnl",
    "unrealized_pnl",
    "fees",
    "funding",
    "net_pnl",
    "max_drawdown",
)


@st.composite
def summaries(draw: st.DrawFn) -> Summary:
    values: dict[str, object] = {
        f.name: draw(st.integers(min_value=0, max_value=10**6))
        for f in attrs.fields(Summary)
        if f.type in (int, "int")
    }
    values.update({name: draw(decimals) for name in _MONEY_FIELDS})
    lots = st.integers(min_value=-(10**6), max_value=10**6).map(lambda n: D(n) * D("0.001"))
    values.update(
        seed=draw(st.integers(min_value=0, max_value=2**64 - 1)),
        faults=draw(st.sampled_from(["none", "lossy"])),
        injected=FaultCounts(dropped=draw(st.integers(min_value=0, max_value=10**6))),
        max_position=abs(draw(lots)),
        final_position=draw(lots),
        halted=draw(st.booleans()),
    )
    return Summary(**values)  # type: ignore[arg-type]


@given(summary=summaries())
def test_renderers_never_print_more_than_the_precision_rule_allows(summary: Summary) -> None:
    doc = render.summary_dict(summary)
    for name in (*_MONEY_FIELDS, "max_position", "final_position"):
        text = doc[name]
        assert isinstance(text, str)
        assert text == exact_str(getattr(summary, name))  # exact, normalized
    console = Console(width=200, record=True)
    console.print(
        render.summary_table(
            summary,
            render.Performance(events=1, wall_seconds=1.0),
            quote="USD",
            base="BTC",
            lot_size=D("0.001"),
        )
    )
    rows = {}
    for line in console.export_text().splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 2:
            rows[cells[0]] = cells[1]
    money_rows = [k for k in rows if k.endswith("(USD)")]
    assert len(money_rows) == len(_MONEY_FIELDS)
    for key in money_rows:
        assert re.fullmatch(r"-?\d{1,3}(,\d{3})*\.\d{2}", rows[key]), (key, rows[key])
    for key in ("max position (BTC)", "final position (BTC)"):
        assert re.fullmatch(r"-?\d+\.\d{3}", rows[key]), (key, rows[key])


# --- the halt alert and the paper-trading status line -------------------------------------------


def test_the_drawdown_halt_alert_shows_money_at_the_currency_places() -> None:
    """Long 0.013 from 50,000.3 and the mid falls to 48,000.05: a drawdown of 26.0032... quote
    (exact: 0.013 × 2,000.25 plus the fee), shown as cents, never with 40 digits."""
    t0 = EPOCH + 2_000
    state, _ = synced(
        scripted_state(kernel_config(risk=RiskConfig(leverage=D(10), max_drawdown=D(10))))
    )
    state, _ = step(
        state,
        OrderPartiallyFilled(
            ts=t0, fill=fill("m", Side.BUY, "0.013", "50000.3", ts=t0, fee="0.13000078")
        ),
    )
    state, _ = step(state, quote(t0 + 2, "48000", "48000.1"))
    state, commands = step(state, TimerFired(ts=t0 + 5_000, timer_id=MAINTENANCE_TIMER))
    assert state.risk.halted
    assert state.risk.worst_drawdown == D("26.13325078")  # 0.013 × 2000.25 + 0.13000078
    halt = only(commands, Halt)
    assert halt.reason == "drawdown 26.13 USD reached max_drawdown 10.00 USD"
    alerts = [n.message for n in of_type(commands, Notify) if n.code == "halted"]
    assert alerts == [f"trading halted: {halt.reason}; open orders canceled"]


def test_the_status_line_shows_money_at_cents_and_positions_at_tick_and_lot() -> None:
    state, _ = synced(scripted_state())
    assert _money(D("49518.68125000000000000000000000000"), state) == "49518.68 USD"
    assert _money(D("-0.004"), state) == "0.00 USD"
    assert (
        _position(state, VENUE, SYMBOL, D("0.0140"), D("49518.6812500000000000000000000000000000"))
        == "0.014 @ 49518.7"
    )
    assert _position(state, VENUE, "UNKNOWN", D("0.0140"), D("1.50")) == "0.014 @ 1.5"


def test_a_margin_refusal_shows_money_at_the_currency_places() -> None:
    """0.007 at 49,000.1 at 3x needs 343.0007 / 3 + 5 bps = 114.5050670166... quote: a quotient
    with no finite form, shown as cents."""
    state, _ = synced(scripted_state(kernel_config(risk=RiskConfig(leverage=D(3)))), equity="100")
    _, commands, place = submit(state, ts=EPOCH + 2_000, qty="0.007", price="49000.1")
    assert place is None
    note = only(commands, Notify)
    assert note.code == "refused:insufficient_margin"
    assert note.message.endswith("order needs 114.51 USD margin, 100.00 free on sim")
