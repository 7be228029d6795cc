"""Hyperliquid L1 action signing and signer recovery.

An L1 action (order, cancel, cancelByCloid, modify, batchModify, scheduleCancel, ...) is signed
in three steps:

1. the *connection id*: ``keccak256(msgpack(action) ‖ nonce(8 bytes, big-endian) ‖ vault ‖
   expiry)``, where ``vault`` is ``0x00`` without a vault address and ``0x01`` + its 20 bytes
   with one, and ``expiry`` is nothing without ``expiresAfter`` and ``0x00`` + its 8 bytes with
   one. msgpack keeps the dict's key order, so the action must be built with the venue's key
   order (see :func:`order_wire`);
2. the *phantom agent* ``{source: "a" (mainnet) | "b" (testnet), connectionId}``;
3. an EIP-712 signature of the phantom agent under the domain ``Exchange`` / version ``1`` /
   chain id 1337 / verifying contract zero, primary type ``Agent``.

The signature is ``{"r": hex, "s": hex, "v": 27|28}``; ``r`` and ``s`` are *not* zero-padded
(a leading zero nibble is dropped), and a verifier must accept both forms.

Numbers on the wire are decimal strings with trailing zeros removed (:func:`decimal_to_wire`):
the hash covers the exact characters, so ``"100.0"`` and ``"100"`` are different actions.

Needs the ``hyperliquid`` extra (``eth-account``, ``msgpack``); the core never imports this.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgpack
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak

__all__ = [
    "action_hash",
    "address_of",
    "decimal_to_wire",
    "phantom_agent",
    "recover_signer",
    "sign_l1_action",
]

_DOMAIN = {
    "chainId": 1337,
    "name": "Exchange",
    "verifyingContract": "0x0000000000000000000000000000000000000000",
    "version": "1",
}
_TYPES = {
    "Agent": [
        {"name": "source", "type": "string"},
        {"name": "connectionId", "type": "bytes32"},
    ],
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
}


def decimal_to_wire(value: Decimal) -> str:
    """A price or size as the venue hashes it: plain decimal, no exponent, no trailing zeros
    (``Decimal("100.0")`` → ``"100"``, ``Decimal("0.000120")`` → ``"0.00012"``).

    Raises ``ValueError`` for a negative, non-finite value or one with more than 8 decimals
    (the venue's wire precision): round to the instrument first."""
    if not value.is_finite() or value < 0:
        raise ValueError(f"wire number must be finite and >= 0, got {value}")
    if value != value.quantize(Decimal("1e-8")):
        raise ValueError(f"wire number {value} has more than 8 decimals; round it first")
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _address_bytes(address: str) -> bytes:
    raw = bytes.fromhex(address[2:] if address.startswith("0x") else address)
    if len(raw) != 20:
        raise ValueError(f"address {address!r} is not 20 bytes of hex")
    return raw


def action_hash(
    action: dict[str, Any], vault_address: str | None, nonce: int, expires_after: int | None
) -> bytes:
    """The connection id of ``action`` (32 bytes): see the module docstring."""
    data: bytes = msgpack.packb(action)
    data += nonce.to_bytes(8, "big")
    if vault_address is None:
        data += b"\x00"
    else:
        data += b"\x01" + _address_bytes(vault_address)
    if expires_after is not None:
        data += b"\x00" + expires_after.to_bytes(8, "big")
    return bytes(keccak(data))


def phantom_agent(connection_id: bytes, *, mainnet: bool) -> dict[str, Any]:
    """The message actually signed: ``source`` "a" on mainnet, "b" on testnet."""
    return {"source": "a" if mainnet else "b", "connectionId": connection_id}


def _typed(agent: dict[str, Any]) -> Any:
    return encode_typed_data(
        full_message={"domain": _DOMAIN, "types": _TYPES, "primaryType": "Agent", "message": agent}
    )


def sign_l1_action(
    private_key: str,
    action: dict[str, Any],
    *,
    nonce: int,
    mainnet: bool,
    vault_address: str | None = None,
    expires_after: int | None = None,
) -> dict[str, Any]:
    """Sign ``action`` as ``private_key``'s wallet: ``{"r", "s", "v"}`` as the venue expects."""
    agent = phantom_agent(action_hash(action, vault_address, nonce, expires_after), mainnet=mainnet)
    signed = Account.sign_message(_typed(agent), private_key=private_key)
    return {"r": hex(signed.r), "s": hex(signed.s), "v": signed.v}


def recover_signer(
    action: dict[str, Any],
    signature: dict[str, Any],
    *,
    nonce: int,
    mainnet: bool,
    vault_address: str | None = None,
    expires_after: int | None = None,
) -> str:
    """The address that signed ``action`` (checksummed). A wrong signature recovers *some other*
    address rather than failing, as on the venue; a malformed one raises ``ValueError``."""
    try:
        r = int(str(signature["r"]), 16)
        s = int(str(signature["s"]), 16)
        v = int(signature["v"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed signature {signature!r}: {exc}") from exc
    agent = phantom_agent(action_hash(action, vault_address, nonce, expires_after), mainnet=mainnet)
    try:
        return str(Account.recover_message(_typed(agent), vrs=(v, r, s)))
    except Exception as exc:  # eth-keys raises several types for an impossible signature
        raise ValueError(f"signature does not recover: {exc}") from exc


def address_of(private_key: str) -> str:
    """The checksummed address of ``private_key``."""
    return str(Account.from_key(private_key).address)
