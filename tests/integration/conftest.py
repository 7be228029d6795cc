"""Shared fixtures of the integration tests.

``fake``: the Hyperliquid fake over loopback for the SDK test key's account, listing ETH alone
(4 size decimals, starting at 3200) and ticking every 50 ms. A module that needs another fake
defines its own ``fake`` fixture, which takes precedence over this one.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from gridcore.shells.venues.hyperliquid.fake import HyperliquidFake

#: The official SDK's test key: the account every Hyperliquid integration test trades.
HL_KEY = "0x0123456789012345678901234567890123456789012345678901234567890123"


@pytest.fixture
def fake() -> Iterator[HyperliquidFake]:
    # Imported here: the fake needs the hyperliquid-fake extra, which only its tests use.
    from gridcore.shells.venues.hyperliquid.fake import CoinSpec, HyperliquidFake
    from gridcore.shells.venues.hyperliquid.signing import address_of

    coins = (CoinSpec("ETH", 4, Decimal(3200)),)
    with HyperliquidFake(account=address_of(HL_KEY), coins=coins, tick_ms=50) as running:
        yield running
