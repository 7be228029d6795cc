"""What the command line shows: invariant violations as a table and as JSON, money of a bot that
settles in several currencies, values with no JSON form, and the progress bar on a real
terminal (a pseudo-terminal here)."""

from __future__ import annotations

import os
from decimal import Decimal

import pytest
from rich.console import Console

from gridcore.core import CoreConfig
from gridcore.instruments import Instrument
from gridcore.invariants import Violation
from gridcore.shells import render

D = Decimal


def _text(renderable: object) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_violations_are_listed_with_how_many_were_kept() -> None:
    kept = [
        Violation(invariant="no_negative_balance", ts=1_700_000_000_001, detail="equity -3"),
        Violation(invariant="one_result_per_command", ts=1_700_000_000_002, detail="cid 7 twice"),
    ]
    some = _text(render.violations_table(kept, total=5))
    assert "invariant violations (first 2 of 5)" in some
    assert "no_negative_balance" in some and "equity -3" in some
    assert "1700000000002" in some and "cid 7 twice" in some
    every = _text(render.violations_table(kept, total=2))
    assert "invariant violations (2)" in every
    assert [render.violation_dict(v) for v in kept][1] == {
        "invariant": "one_result_per_command",
        "ts": 1_700_000_000_002,
        "detail": "cid 7 twice",
    }


def test_a_value_with_no_json_form_is_named() -> None:
    with pytest.raises(TypeError, match=r"no JSON form for list: \[1\]"):
        render.json_value([1])
    assert render.json_value(D("1E+1")) == "10"
    assert render.json_value(None) is None


def _instrument(symbol: str, quote: str, venue: str = "sim") -> Instrument:
    return Instrument(
        venue=venue, symbol=symbol, tick_size=D("0.1"), lot_size=D("0.001"), quote=quote
    )


def test_money_of_a_bot_in_several_currencies_is_exact_where_no_currency_applies() -> None:
    config = CoreConfig(
        # One venue account settles in one currency: the EUR instrument trades on another.
        instruments=(_instrument("BTC-USDT", "USDT"), _instrument("BTC-EUR", "EUR", "eu"))
    )
    display = render.Display(config)
    assert display.currency is None
    assert display.money("eu", "BTC-EUR", D("-12.3456")) == "-12.35"
    # A total over both currencies has no one currency: it keeps its exact digits.
    assert display.money(None, None, D("-12.3456000")) == "-12.3456"
    assert display.price("eu", "BTC-EUR", D("100.06")) == "100.1"
    assert display.price("other", "X", D("100.06")) == "100.06"


def test_the_progress_bar_draws_on_a_terminal_and_not_on_a_pipe() -> None:
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w", closefd=False) as tty:
            console = Console(file=tty, force_terminal=True, width=80)
            with render.progress_bar(console, 10, description="backtest") as update:
                assert update is not None
                for done in range(1, 11):
                    update(done)
        os.set_blocking(master, False)
        drawn = os.read(master, 1 << 16)
        assert b"backtest" in drawn
    finally:
        os.close(master)
        os.close(slave)
    piped = Console(file=open(os.devnull, "w"), force_terminal=True)  # noqa: SIM115
    with render.progress_bar(piped, 10) as update:
        assert update is None
    piped.file.close()
