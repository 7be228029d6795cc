"""Money in different settlement currencies is never added together.

Every instrument names the currency it settles in (default: its quote currency). Net PnL, the
ledger's totals, the drawdown peak and the drawdown halt are kept per currency; a bot trading
instruments that settle in two currencies is valid, and its one-currency figures refuse to
answer rather than add USDT to USDC.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
import pytest

from gridcore import (
    CoreConfig,
    Instrument,
    OrderPartiallyFilled,
    QuoteTicked,
    RiskConfig,
    Side,
    Started,
    State,
    TimerFired,
    step,
)
from gridcore.core import MAINTENANCE_TIMER
from gridcore.errors import ConfigError, ContractError
from gridcore.halts import HaltCause
from gridcore.risk import RiskState
from gridcore.shells import cli_run, codec
from tests.unit.helpers import (
    EPOCH,
    SYMBOL,
    Scripted,
    answer_sync,
    feed,
    fill,
    instrument,
    scripted_state,
)

D = Decimal
SYNC_TS = EPOCH + 1_000
T0 = EPOCH + 2_000
A, B = "venue-a", "venue-b"


def test_an_instrument_settles_in_its_quote_currency_unless_told_otherwise() -> None:
    assert instrument(quote="USDT").settlement == "USDT"
    assert instrument(quote="USD", settlement="USDC").settlement == "USDC"
    with pytest.raises(ValueError, match="settlement must name a currency"):
        instrument(settlement="")


def test_a_configuration_settling_in_two_currencies_is_valid() -> None:
    config = CoreConfig(
        instruments=(instrument(venue=A, quote="USDT"), instrument(venue=B, quote="USDC"))
    )
    assert config.currencies == ("USDT", "USDC")
    assert config.venue_currency == {A: "USDT", B: "USDC"}


def test_one_venue_with_instruments_in_two_currencies_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="settle in 'USDT' and 'USDC'") as raised:
        CoreConfig(
            instruments=(
                instrument(venue=A, quote="USDT"),
                instrument(venue=A, symbol="ETH-PERP", quote="USDC"),
            )
        )
    assert "instruments.settlement" in str(raised.value)


def two_currencies(max_drawdown: str | None = None) -> State[Scripted]:
    """A bot on venue A (settling in USDT) and venue B (USDC), synced, BTC at 50,000 on both."""
    config = CoreConfig(
        instruments=(instrument(venue=A, quote="USDT"), instrument(venue=B, quote="USDC")),
        risk=RiskConfig(
            max_position=None,
            max_order_notional=None,
            max_drawdown=None if max_drawdown is None else D(max_drawdown),
        ),
        reconcile_ms=0,
    )
    state, started = step(scripted_state(config), Started(ts=SYNC_TS))
    for venue in (A, B):
        state, _ = step(state, tick(venue, SYNC_TS, "50000"))
    state, _ = feed(state, answer_sync(started, ts=SYNC_TS))
    return state


def tick(venue: str, ts: int, mid: str) -> QuoteTicked:
    m = D(mid)
    return QuoteTicked(ts=ts, venue=venue, symbol=SYMBOL, bid=m - D("0.1"), ask=m + D("0.1"))


def bought(state: State[Scripted], venue: str, qty: str, price: str, fee: str = "0") -> Any:
    f = attrs.evolve(fill(f"{venue}-{qty}", Side.BUY, qty, price, ts=T0, fee=fee), venue=venue)
    return step(state, OrderPartiallyFilled(ts=T0, fill=f))[0]


def test_net_pnl_is_kept_per_currency_and_never_summed() -> None:
    state = bought(two_currencies(), A, "0.01", "50000", fee="1")
    state = bought(state, B, "0.02", "50000", fee="2")
    state, _ = step(state, tick(A, T0 + 1, "49000"))  # A: 0.01 × -1000 - 1 = -11 USDT
    state, _ = step(state, tick(B, T0 + 1, "51000"))  # B: 0.02 × +1000 - 2 = +18 USDC
    assert state.pnl_by_currency() == {"USDT": D(-11), "USDC": D(18)}
    assert state.net_pnl("USDT") == D(-11)
    assert state.net_pnl("USDC") == D(18)
    assert state.net_pnl("EUR") == 0
    with pytest.raises(ContractError, match="settles in USDT, USDC"):
        state.net_pnl()
    totals = state.ledger.totals_by_currency(state.config.venue_currency)
    assert {c: t.fees for c, t in totals.items()} == {"USDT": D(1), "USDC": D(2)}


def test_the_drawdown_halt_applies_per_currency() -> None:
    """A 60 USDT loss halts at max_drawdown 50 even though a 100 USDC gain would more than
    cover it if the two were (wrongly) added."""
    state = bought(two_currencies(max_drawdown="50"), A, "0.01", "50000")
    state = bought(state, B, "0.01", "50000")
    state, _ = step(state, tick(B, T0 + 1, "60000"))  # +100 USDC
    state, _ = step(state, tick(A, T0 + 1, "44000"))  # -60 USDT
    state, _ = step(state, TimerFired(ts=T0 + 2, timer_id=MAINTENANCE_TIMER))
    assert state.risk.halted and state.risk.halt_cause is HaltCause.DRAWDOWN
    assert "drawdown 60.00 USDT reached max_drawdown 50.00 USDT" in state.risk.halt_reason
    assert state.risk.drawdowns == {"USDT": D(60)}
    assert state.risk.peaks == {"USDC": D(100)}


def test_losses_in_two_currencies_are_not_added_into_one_drawdown() -> None:
    """30 USDT and 30 USDC down: each is under max_drawdown 50, so no halt (their sum, 60,
    is not a figure in any currency)."""
    state = bought(two_currencies(max_drawdown="50"), A, "0.01", "50000")
    state = bought(state, B, "0.01", "50000")
    state, _ = step(state, tick(A, T0 + 1, "47000"))
    state, _ = step(state, tick(B, T0 + 1, "47000"))
    state, _ = step(state, TimerFired(ts=T0 + 2, timer_id=MAINTENANCE_TIMER))
    assert not state.risk.halted
    assert state.risk.drawdowns == {"USDT": D(30), "USDC": D(30)}


def test_a_state_saved_before_currencies_keeps_its_drawdown_peak() -> None:
    """An older snapshot knows only ``peak_pnl``: it is the peak of the first currency."""
    state = bought(two_currencies(max_drawdown="50"), A, "0.01", "50000")
    old_risk = RiskState(balances=state.risk.balances, peak_pnl=D(40))
    state = attrs.evolve(state, books=attrs.evolve(state.books, risk=old_risk))
    state, _ = step(state, tick(A, T0 + 1, "49000"))  # -10 USDT: 50 below the old peak of 40
    state, _ = step(state, TimerFired(ts=T0 + 2, timer_id=MAINTENANCE_TIMER))
    assert state.risk.halted and "drawdown 50.00 USDT" in state.risk.halt_reason


def test_the_one_currency_figures_are_unchanged_for_a_one_currency_bot() -> None:
    config = CoreConfig(
        instruments=(instrument(),),
        risk=RiskConfig(max_position=None, max_order_notional=None, max_drawdown=None),
    )
    state = scripted_state(config)
    assert state.config.currencies == ("USD",)
    assert state.net_pnl() == 0 and state.pnl_by_currency() == {"USD": D(0)}


def test_the_run_summary_shows_each_currency_on_its_own() -> None:
    state = bought(two_currencies(), A, "0.01", "50000", fee="1")
    state = bought(state, B, "0.02", "50000", fee="2")
    shown = [
        (c, cli_run._money(net, state, c), cli_run._money(t.fees, state, c))
        for c, net, t in cli_run._pnl(state)
    ]
    assert shown == [
        ("USDT", "-1.00 USDT", "1.00 USDT"),
        ("USDC", "-2.00 USDC", "2.00 USDC"),
    ]


def test_instruments_with_a_settlement_field_round_trip_through_the_codec() -> None:
    inst = Instrument(
        venue=A, symbol=SYMBOL, tick_size=D("0.1"), lot_size=D("0.001"), settlement="USDC"
    )
    assert codec.decode_value(codec.encode_value(inst)) == inst
