"""Instruments from Hyperliquid's ``meta`` and the price rule (5 significant figures, at most
6 - szDecimals decimals, integers always allowed) as the core's rounding applies it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridcore.instruments import Instrument
from gridcore.numbers import Rounding
from gridcore.shells.venues.hyperliquid.meta import instruments_from_meta, is_valid_price

META = {
    "universe": [
        {"name": "BTC", "szDecimals": 5, "maxLeverage": 40},
        {"name": "ETH", "szDecimals": 4, "maxLeverage": 25},
        {"name": "OLD", "szDecimals": 2, "maxLeverage": 3, "isDelisted": True},
        {"name": "kPEPE", "szDecimals": 0, "maxLeverage": 10},
    ]
}


def test_instruments_come_from_meta_with_wire_ids() -> None:
    assets = instruments_from_meta(META, venue="hyperliquid")
    assert sorted(assets) == ["BTC", "ETH", "kPEPE"]  # delisted ones are left out
    btc, eth, pepe = assets["BTC"], assets["ETH"], assets["kPEPE"]
    assert (btc.asset_id, eth.asset_id, pepe.asset_id) == (0, 1, 3)
    assert btc.instrument.tick_size == Decimal("0.1") and btc.instrument.lot_size == Decimal(
        "0.00001"
    )
    assert pepe.instrument.tick_size == Decimal("0.000001") and pepe.instrument.lot_size == 1
    assert eth.instrument.min_notional == 10 and eth.instrument.price_sig_figs == 5


@pytest.mark.parametrize(
    "meta", [{}, {"universe": [{"name": "X"}]}, {"universe": [{"name": "X", "szDecimals": 9}]}]
)
def test_a_malformed_meta_is_refused_with_the_entry_named(meta: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="universe"):
        instruments_from_meta(meta, venue="hyperliquid")


@pytest.mark.parametrize(
    ("price", "sz", "valid"),
    [
        ("1234.5", 1, True),
        ("1234.56", 1, False),  # 6 significant figures
        ("0.001234", 0, True),
        ("0.0012345", 0, False),  # 7 decimals > 6 - 0
        ("123456", 5, True),  # integers always pass
        ("0.12345", 2, False),  # 5 decimals > 6 - 2
        ("0.1234", 2, True),
    ],
)
def test_the_venue_rule_stated_directly(price: str, sz: int, valid: bool) -> None:
    assert is_valid_price(Decimal(price), sz) is valid


@given(
    st.integers(min_value=0, max_value=6),
    st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(10**7), places=8),
    st.sampled_from(list(Rounding)),
)
def test_core_rounding_yields_prices_the_venue_accepts(
    sz: int, raw: Decimal, rounding: Rounding
) -> None:
    asset = instruments_from_meta({"universe": [{"name": "X", "szDecimals": sz}]}, venue="hl")["X"]
    inst = asset.instrument
    price = inst.round_price(raw, rounding)
    if price <= 0:
        return  # below the finest step: nothing valid to round to
    assert is_valid_price(price, sz), (raw, price)
    assert inst.is_on_tick(price)
    if rounding is Rounding.DOWN:
        assert price <= raw
    elif rounding is Rounding.UP:
        assert price >= raw
    # And the rounding is tight: no valid price lies strictly between raw and the result
    # closer than one step.
    assert abs(price - raw) < inst.price_step(raw) + inst.price_step(price)


def test_without_the_cap_the_tick_alone_decides() -> None:
    inst = Instrument(venue="v", symbol="X", tick_size=Decimal("0.01"), lot_size=Decimal(1))
    assert inst.round_price(Decimal("12345.678"), Rounding.DOWN) == Decimal("12345.67")
    assert inst.price_step(Decimal("99999")) == Decimal("0.01")
    capped = Instrument(
        venue="v", symbol="X", tick_size=Decimal("0.01"), lot_size=Decimal(1), price_sig_figs=5
    )
    assert capped.round_price(Decimal("12345.678"), Rounding.DOWN) == Decimal("12345")
    assert capped.round_price(Decimal("1.23456"), Rounding.UP) == Decimal("1.24")
    assert not capped.is_on_tick(Decimal("12345.5"))
    with pytest.raises(ValueError, match="price_sig_figs"):
        Instrument(
            venue="v", symbol="X", tick_size=Decimal(1), lot_size=Decimal(1), price_sig_figs=0
        )
