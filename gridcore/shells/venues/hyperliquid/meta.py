"""Instruments from Hyperliquid's ``meta``, and the venue's price/size rules.

A perp's ``szDecimals`` fixes its lot (``10**-szDecimals``) and its finest price step
(``10**-(6 - szDecimals)``); prices also carry at most 5 significant figures, an integer price
always being allowed (:attr:`gridcore.instruments.Instrument.price_sig_figs`). Every order must be
worth at least $10. The asset id on the wire is the coin's index in ``meta.universe``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from gridcore.instruments import Instrument

__all__ = [
    "MIN_NOTIONAL",
    "PERP_MAX_DECIMALS",
    "PRICE_SIG_FIGS",
    "Asset",
    "instruments_from_meta",
    "is_valid_price",
]

MIN_NOTIONAL = Decimal(10)
PRICE_SIG_FIGS = 5
PERP_MAX_DECIMALS = 6
#: Base-tier fee rates (fractions); a funded account's real tier may be lower.
MAKER_FEE = Decimal("0.00015")
TAKER_FEE = Decimal("0.00045")


@attrs.frozen(kw_only=True)
class Asset:
    """One perp of ``meta.universe``: its wire id, coin name and the instrument built from it."""

    asset_id: int
    coin: str
    sz_decimals: int
    instrument: Instrument


def instruments_from_meta(meta: Mapping[str, Any], *, venue: str) -> dict[str, Asset]:
    """Every listed (not delisted) perp of a ``meta`` answer, by coin name.

    Raises ``ValueError`` naming the entry when ``meta`` is not shaped as the venue sends it."""
    universe = meta.get("universe")
    if not isinstance(universe, list):
        raise ValueError("meta: 'universe' must be a list of assets")
    out: dict[str, Asset] = {}
    for index, entry in enumerate(universe):
        try:
            coin = str(entry["name"])
            sz = int(entry["szDecimals"])
            delisted = bool(entry.get("isDelisted", False))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"meta.universe[{index}]: {exc!r} (needs name, szDecimals)") from exc
        if not 0 <= sz <= PERP_MAX_DECIMALS:
            raise ValueError(f"meta.universe[{index}] ({coin}): szDecimals {sz} out of 0..6")
        if delisted:
            continue
        instrument = Instrument(
            venue=venue,
            symbol=coin,
            tick_size=Decimal(1).scaleb(-(PERP_MAX_DECIMALS - sz)),
            lot_size=Decimal(1).scaleb(-sz),
            min_notional=MIN_NOTIONAL,
            maker_fee=MAKER_FEE,
            taker_fee=TAKER_FEE,
            base=coin,
            quote="USDC",
            price_sig_figs=PRICE_SIG_FIGS,
        )
        out[coin] = Asset(asset_id=index, coin=coin, sz_decimals=sz, instrument=instrument)
    return out


def is_valid_price(price: Decimal, sz_decimals: int) -> bool:
    """The venue's own rule, stated directly: a positive price with at most
    ``6 - szDecimals`` decimals and at most 5 significant figures, or any integer."""
    if price <= 0:
        return False
    if price == price.to_integral_value():
        return True
    normal = price.normalize()
    decimals = max(0, -normal.as_tuple().exponent)  # type: ignore[operator]
    figures = len(normal.as_tuple().digits)
    return decimals <= PERP_MAX_DECIMALS - sz_decimals and figures <= PRICE_SIG_FIGS
