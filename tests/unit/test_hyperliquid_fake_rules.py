"""The Hyperliquid fake's rules as properties (driven in-process, without sockets): every order
of an action gets exactly one status, the price rule matches the venue's statement of it, what
rests is what openOrders lists, and nonces follow the venue's set rule."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore.shells.venues.hyperliquid.fake import HyperliquidFake
from gridcore.shells.venues.hyperliquid.meta import is_valid_price
from gridcore.shells.venues.hyperliquid.signing import address_of, sign_l1_action

KEY = "0x0123456789012345678901234567890123456789012345678901234567890123"  # SDK test key
ADDRESS = address_of(KEY)
NOW = 1_750_000_000_000


def _fake(**kwargs: Any) -> HyperliquidFake:
    return HyperliquidFake(account=ADDRESS, now_ms=lambda: NOW, **kwargs)


def _send(fake: HyperliquidFake, action: dict[str, Any], nonce: int) -> Any:
    body = {
        "action": action,
        "nonce": nonce,
        "signature": sign_l1_action(KEY, action, nonce=nonce, mainnet=False),
        "vaultAddress": None,
        "expiresAfter": None,
    }
    return fake._exchange(body)


_prices = st.builds(
    lambda units, exp: Decimal(units).scaleb(exp),
    st.integers(min_value=1, max_value=9_999_999),
    st.integers(min_value=-7, max_value=0),
)
_sizes = st.sampled_from(["0.001", "0.01", "0.0123", "0.00001", "0.1", "1"])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(_prices, _sizes, st.booleans(), st.sampled_from(["Gtc", "Alo", "Ioc"])),
        min_size=1,
        max_size=6,
    )
)
def test_every_order_gets_one_status_and_the_rules_hold(
    orders: list[tuple[Decimal, str, bool, str]],
) -> None:
    fake = _fake()
    wires = [
        {
            "a": 1,
            "b": buy,
            "p": format(price.normalize(), "f"),
            "s": size,
            "r": False,
            "t": {"limit": {"tif": tif}},
        }
        for price, size, buy, tif in orders
    ]
    answer = _send(fake, {"type": "order", "orders": wires, "grouping": "na"}, NOW)
    assert answer["status"] == "ok", answer
    statuses = answer["response"]["data"]["statuses"]
    assert len(statuses) == len(wires)
    resting = set()
    for (price, size, _buy, _tif), status in zip(orders, statuses, strict=True):
        assert isinstance(status, dict) and len(status) == 1
        (kind,) = status
        assert kind in ("resting", "filled", "error")
        if not is_valid_price(price, 4):
            assert status == {"error": "Price must be divisible by tick size."}
        elif kind != "error":
            assert price * Decimal(size) >= 10  # the $10 minimum held
        if kind == "resting":
            resting.add(status["resting"]["oid"])
    listed = {o["oid"] for o in fake._info({"type": "openOrders", "user": ADDRESS})}
    assert listed == resting


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=NOW - 50, max_value=NOW + 50), min_size=1, max_size=12))
def test_nonces_follow_the_set_rule(nonces: list[int]) -> None:
    size = 4
    fake = _fake(nonce_set_size=size)
    kept: list[int] = []
    for nonce in nonces:
        answer = _send(fake, {"type": "noop"}, nonce)
        if nonce in kept:
            assert answer == {
                "status": "err",
                "response": f"Invalid nonce: duplicate nonce {nonce}",
            }
        elif len(kept) >= size and nonce < min(kept):
            assert answer == {
                "status": "err",
                "response": f"Invalid nonce: nonce too low {nonce} < {min(kept)}",
            }
        else:
            assert answer["status"] == "ok", answer
            kept = sorted([*kept, nonce])[-size:]
