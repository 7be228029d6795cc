"""Hyperliquid L1 signing equals the official SDK byte for byte (26 recorded vectors: 13 actions,
mainnet and testnet), and signer recovery finds the signer, or someone else for a bad one."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridcore.shells.venues.hyperliquid import signing

_DATA = json.loads((Path(__file__).parent / "test_hyperliquid_vectors.json").read_text())
VECTORS: list[dict[str, Any]] = _DATA["vectors"]


def _id(vector: dict[str, Any]) -> str:
    return f"{vector['name']}-{vector['network']}"


def test_all_vectors_are_here() -> None:
    assert len(VECTORS) == 26
    assert {v["network"] for v in VECTORS} == {"mainnet", "testnet"}


@pytest.mark.parametrize("vector", VECTORS, ids=_id)
def test_signing_matches_the_sdk_byte_for_byte(vector: dict[str, Any]) -> None:
    mainnet = vector["network"] == "mainnet"
    action = vector["action"]
    assert msgpack.packb(action).hex() == vector["msgpack_hex"]
    connection = signing.action_hash(
        action, vector["vaultAddress"], vector["nonce"], vector["expiresAfter"]
    )
    assert "0x" + connection.hex() == vector["connectionId"]
    assert (
        signing.phantom_agent(connection, mainnet=mainnet)["source"]
        == (vector["phantom_agent_source"])
    )
    signature = signing.sign_l1_action(
        vector["private_key"],
        action,
        nonce=vector["nonce"],
        mainnet=mainnet,
        vault_address=vector["vaultAddress"],
        expires_after=vector["expiresAfter"],
    )
    assert signature == vector["signature"]
    # The body the SDK posts carries exactly this signature.
    assert vector["exchange_body"]["signature"] == signature
    assert signing.address_of(vector["private_key"]) == vector["signer_address"]


@pytest.mark.parametrize("vector", VECTORS, ids=_id)
def test_recovery_finds_the_signer_and_only_for_the_right_network(vector: dict[str, Any]) -> None:
    mainnet = vector["network"] == "mainnet"
    kwargs: dict[str, Any] = {
        "nonce": vector["nonce"],
        "vault_address": vector["vaultAddress"],
        "expires_after": vector["expiresAfter"],
    }
    sig = vector["signature"]
    assert (
        signing.recover_signer(vector["action"], sig, mainnet=mainnet, **kwargs)
        == (vector["signer_address"])
    )
    # The other network's source, or another nonce, recovers someone else.
    assert (
        signing.recover_signer(vector["action"], sig, mainnet=not mainnet, **kwargs)
        != (vector["signer_address"])
    )
    kwargs["nonce"] += 1
    assert (
        signing.recover_signer(vector["action"], sig, mainnet=mainnet, **kwargs)
        != (vector["signer_address"])
    )


def test_a_short_r_is_accepted_padded_or_not() -> None:
    (vector,) = [v for v in VECTORS if _id(v) == "order_gtc_cloid1_nonce0-mainnet"]
    sig = dict(vector["signature"])
    assert len(sig["r"]) == 65  # the SDK drops the leading zero nibble
    padded = {**sig, "r": "0x" + sig["r"][2:].rjust(64, "0")}
    for form in (sig, padded):
        assert (
            signing.recover_signer(vector["action"], form, nonce=0, mainnet=True)
            == (vector["signer_address"])
        )


def test_a_malformed_signature_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="malformed signature"):
        signing.recover_signer(
            {"type": "noop"}, {"r": "zz", "s": "0x1", "v": 27}, nonce=1, mainnet=True
        )


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        ("100.0", "100"),
        ("0.00012", "0.00012"),
        ("0.000120", "0.00012"),
        ("1E+3", "1000"),
        ("0", "0"),
    ],
)
def test_wire_numbers_drop_trailing_zeros(value: str, wire: str) -> None:
    assert signing.decimal_to_wire(Decimal(value)) == wire


def test_wire_numbers_refuse_more_than_8_decimals() -> None:
    with pytest.raises(ValueError, match="more than 8 decimals"):
        signing.decimal_to_wire(Decimal("0.000000001"))


@given(st.decimals(min_value=0, max_value=10**9, places=8, allow_nan=False))
def test_wire_numbers_round_trip(value: Decimal) -> None:
    wire = signing.decimal_to_wire(value)
    assert Decimal(wire) == value
    assert "e" not in wire.lower() and not (("." in wire) and wire.endswith("0"))
