"""Secret redaction (``gridcore.shells.redact``): what counts as a secret, and that none survives."""

from __future__ import annotations

import urllib.parse

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gridcore.shells.redact import REDACTED, is_secret_name, redact, secret_values

ENV = {
    "BYBIT_API_KEY": "kq9ZpT3xLw",
    "HL_PRIVATE_KEY": "0x" + "1f" * 32,
    "EXCHANGE_SECRET": "s3cr3t/with+symbols=",
    "GRIDCORE_WEBHOOK": "https://hooks.example.test/T000/B000",
    "OPS_PASSWORD": "hunter2hunter2",
    "WALLET_MNEMONIC": "abandon ability able about above absent",
    "TOKENIZERS_PARALLELISM": "false",  # too short to be a secret
    "HOME": "/home/trader",  # not a secret name
}


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("BYBIT_API_KEY", True),
        ("binance_secret", True),
        ("GH_TOKEN", True),
        ("DB_PASSWORD", True),
        ("OKX_PASSPHRASE", True),
        ("HL_PRIVATE_KEY", True),
        ("WALLET_MNEMONIC", True),
        ("AWS_CREDENTIALS", True),
        ("GRIDCORE_ANYTHING", True),
        ("HOME", False),
        ("PATH", False),
        ("GRID_SPACING", False),
    ],
)
def test_the_naming_rule(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_secret_values_are_the_long_enough_values_of_secret_names_longest_first() -> None:
    found = secret_values(ENV)
    names = [name for _, name in found]
    assert set(names) == {
        "BYBIT_API_KEY",
        "HL_PRIVATE_KEY",
        "EXCHANGE_SECRET",
        "GRIDCORE_WEBHOOK",
        "OPS_PASSWORD",
        "WALLET_MNEMONIC",
    }
    lengths = [len(value) for value, _ in found]
    assert lengths == sorted(lengths, reverse=True)


def test_environment_secrets_are_replaced_by_their_name_plain_or_percent_encoded() -> None:
    secret = ENV["EXCHANGE_SECRET"]
    text = f"sent {secret} as {urllib.parse.quote(secret, safe='')}"
    assert redact(text, ENV) == ("sent [redacted:EXCHANGE_SECRET] as [redacted:EXCHANGE_SECRET]")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "GET https://api.bybit.test/v5/order?api_key=AbC123&timestamp=1&sign=ffee01",
            "GET https://api.bybit.test/v5/order?api_key=[redacted]&timestamp=1&sign=[redacted]",
        ),
        (
            "POST /exchange?signature=0a1b2c&apiKey=xyz789 failed",
            "POST /exchange?signature=[redacted]&apiKey=[redacted] failed",
        ),
        (
            'body {"api_secret": "zzz999", "qty": "1"}',
            'body {"api_secret": "[redacted]", "qty": "1"}',
        ),
        ("X-BAPI-API-KEY: abc123def", "X-BAPI-API-KEY: [redacted]"),
        ("Authorization: Bearer eyJhbGciOi.J9.x", "Authorization: [redacted] [redacted]"),
        ("wss://bot:pa55word@stream.test/ws", "wss://bot:[redacted]@stream.test/ws"),
        ("signer 0x" + "ab" * 32 + " refused", f"signer {REDACTED} refused"),
        ("key " + "cd" * 40, f"key {REDACTED}"),
        # Ordinary venue messages pass untouched.
        (
            "insufficient margin for order BTC-PERP qty 0.002 (code 110007)",
            "insufficient margin for order BTC-PERP qty 0.002 (code 110007)",
        ),
        ("order id 0xdeadbeef not found", "order id 0xdeadbeef not found"),
        ("", ""),
    ],
)
def test_credential_looking_text_is_redacted(text: str, expected: str) -> None:
    assert redact(text, {}) == expected


SECRET_CHARS = st.characters(
    min_codepoint=33, max_codepoint=126, blacklist_characters="&\"',;}][)="
)
AROUND = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@given(
    secret=st.text(alphabet=SECRET_CHARS, min_size=8, max_size=40),
    before=AROUND,
    after=AROUND,
    encoded=st.booleans(),
)
def test_an_environment_secret_never_survives_in_any_text(
    secret: str, before: str, after: str, encoded: bool
) -> None:
    env = {"VENUE_API_SECRET": secret}
    assume(secret not in "[redacted:VENUE_API_SECRET]")  # a secret spelling the marker
    shown = urllib.parse.quote(secret, safe="") if encoded else secret
    out = redact(f"{before}{shown}{after}", env)
    assert secret not in out
    assert redact(out, env) == out  # idempotent


@given(
    name=st.sampled_from(["api_key", "apiKey", "signature", "sign", "token", "passphrase"]),
    value=st.text(alphabet=SECRET_CHARS, min_size=1, max_size=30),
    before=AROUND,
)
def test_a_credential_parameter_never_survives(name: str, value: str, before: str) -> None:
    out = redact(f"{before} https://venue.test/x?{name}={value}&b=1", {})
    assert f"{name}={value}&" not in out
    assert f"{name}={REDACTED}&b=1" in out


def test_ordinary_words_that_contain_a_keyword_are_left_alone() -> None:
    """A stop reason names its signal; redacting it would hide what happened, not a secret."""
    assert redact("stop: signal: SIGINT", environ={}) == "stop: signal: SIGINT"
    assert redact("signature=abc123", environ={}) == "signature=[redacted]"
