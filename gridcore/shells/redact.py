"""Secrets never leak: text from a venue is redacted before it is journaled or printed.

An adapter's exception message, a venue's rejection reason or an unreadable message is kept
for the operator: it becomes a ``CommandFailed`` reason, a halt reason, an alert, and is
journaled for good. Such text can carry a credential (a request URL with ``?api_key=...``, an
echoed header, a private key in a signing error). The runtime passes every event's free-text
fields (``reason``, ``detail``) through :func:`redact` before the core sees them, and the CLI
passes every alert it prints through it too, so a secret reaches neither the journal nor the
screen.

What is redacted
----------------
* **Values of secret environment variables** — every variable whose name (in any case)
  contains ``KEY``, ``SECRET``, ``TOKEN``, ``PASSWORD``, ``PASSPHRASE``, ``PRIVATE``,
  ``MNEMONIC`` or ``CREDENTIAL``, or starts with ``GRIDCORE_`` (:func:`is_secret_name`), with a
  value of at least :data:`MIN_SECRET_LENGTH` characters. Each occurrence, plain or
  percent-encoded, becomes ``[redacted:NAME]``: the name says which secret it was, never the
  value. Keep credentials in such variables (the configuration never holds them).
* **Credential-looking pairs** — ``name=value`` and ``name: value`` (query strings, form
  bodies, headers, JSON) whose name contains ``key``, ``secret``, ``token``, ``passw``,
  ``passphrase``, ``sign`` (not ``signal``), ``auth``, ``credential``, ``private``, ``mnemonic`` or
  ``session``: the value becomes ``[redacted]``.
* **Bearer and basic credentials** (``Bearer eyJ...``) and the password of a URL's user info
  (``https://user:pass@host``).
* **Long hex strings** — 64 hex digits or more, with or without ``0x``: private keys (and, as
  a price of safety, 32-byte hashes).
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping

__all__ = ["MIN_SECRET_LENGTH", "REDACTED", "is_secret_name", "redact", "secret_values"]

REDACTED = "[redacted]"
"""What a redacted value is replaced with (environment secrets add the variable's name)."""

MIN_SECRET_LENGTH = 6
"""Shorter environment values are not treated as secrets: redacting ``1`` or ``true`` from
every message would make the messages unreadable and protect nothing."""

_SECRET_NAME_PARTS = (
    "KEY",
    "SECRET",
    "TOKEN",
    "PASSWORD",
    "PASSPHRASE",
    "PRIVATE",
    "MNEMONIC",
    "CREDENTIAL",
)
_SECRET_NAME_PREFIX = "GRIDCORE_"

_PAIR = re.compile(
    r"""(?P<name>["']?[\w.\-]*?(?:key|secret|token|passw|passphrase|sign(?!al)|auth|credential|private
         |mnemonic|session)[\w.\-]*["']?)
        (?P<sep>\s*[=:]\s*)
        (?P<quote>["']?)
        (?!\[redacted)(?P<value>[^\s&"',;}\]\[)]+)""",
    re.IGNORECASE | re.VERBOSE,
)
_BEARER = re.compile(r"\b(?P<scheme>bearer|basic)\s+(?!\[redacted)[A-Za-z0-9._~+/=\-]+", re.I)
_USERINFO = re.compile(r"(?P<head>://[^/\s:@]+):(?P<password>[^/\s@]+)@")
_HEX = re.compile(r"\b(?:0x)?[0-9a-fA-F]{64,}\b")


def is_secret_name(name: str) -> bool:
    """Whether an environment variable of this name holds a secret (see the module docs)."""
    upper = name.upper()
    return upper.startswith(_SECRET_NAME_PREFIX) or any(p in upper for p in _SECRET_NAME_PARTS)


def secret_values(environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """``(value, name)`` of every secret in ``environ`` (default ``os.environ``), longest value
    first, so that a secret containing another is replaced whole."""
    env = os.environ if environ is None else environ
    found = [
        (value, name)
        for name, value in env.items()
        if is_secret_name(name) and len(value) >= MIN_SECRET_LENGTH
    ]
    return sorted(found, key=lambda item: -len(item[0]))


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with every secret replaced (see the module docs); idempotent.

    ``environ`` defaults to ``os.environ``, read at each call.

    >>> redact("GET /v5/order?api_key=abc123&symbol=BTCUSDT")
    'GET /v5/order?api_key=[redacted]&symbol=BTCUSDT'
    """
    if not text:
        return text
    for value, name in secret_values(environ):
        marker = f"[redacted:{name}]"
        if value in text:
            text = text.replace(value, marker)
        quoted = urllib.parse.quote(value, safe="")
        if quoted != value and quoted in text:
            text = text.replace(quoted, marker)
    text = _USERINFO.sub(lambda m: f"{m['head']}:{REDACTED}@", text)
    text = _BEARER.sub(lambda m: f"{m['scheme']} {REDACTED}", text)
    text = _PAIR.sub(lambda m: f"{m['name']}{m['sep']}{m['quote']}{REDACTED}", text)
    return _HEX.sub(REDACTED, text)
