"""The quote check written out by hand (``gridcore.events._quote_ok``, run once per tick) says
exactly what the rules of ``QuoteTicked`` say, plus ``bid <= ask``: it drops two price
comparisons that ``bid <= ask`` makes redundant, so it is held here to the generated check of
the rules on values drawn on both sides of every bound."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridcore.events import MAX_MAGNITUDE, MIN_POSITIVE, TS_MAX, TS_MIN, QuoteTicked, fast_check
from gridcore.events import _quote_ok as quote_ok

_RULES = fast_check(QuoteTicked)

_PRICES = st.one_of(
    st.sampled_from(
        [
            MIN_POSITIVE,
            MAX_MAGNITUDE,
            Decimal("1E-19"),
            Decimal("1.0000000000000000001E+18"),
            Decimal(0),
            Decimal("-1"),
            Decimal("NaN"),
            Decimal("sNaN"),
            Decimal("Infinity"),
            Decimal("-Infinity"),
        ]
    ),
    st.decimals(min_value=Decimal("-1"), max_value=Decimal("2e18"), places=3),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.integers(min_value=1, max_value=10),
    st.floats(min_value=0.5, max_value=10),
    st.none(),
)
_TS = st.one_of(
    st.sampled_from([TS_MIN - 1, TS_MIN, TS_MAX - 1, TS_MAX, True]),
    st.integers(min_value=0, max_value=5 * 10**12),
    st.floats(min_value=1e12, max_value=2e12),
)
_NAMES = st.one_of(st.sampled_from(["", "sim", "BTC"]), st.none(), st.integers(0, 3))


def _by_the_rules(ts: object, venue: object, symbol: object, bid: object, ask: object) -> bool:
    fields = SimpleNamespace(ts=ts, venue=venue, symbol=symbol, bid=bid, ask=ask)
    if not _RULES(fields):
        return False
    assert isinstance(bid, Decimal) and isinstance(ask, Decimal)
    return bid <= ask


@given(ts=_TS, venue=_NAMES, symbol=_NAMES, bid=_PRICES, ask=_PRICES)
def test_quote_check_is_the_rules_and_bid_at_most_ask(
    ts: object, venue: object, symbol: object, bid: object, ask: object
) -> None:
    assert quote_ok(ts, venue, symbol, bid, ask) is _by_the_rules(ts, venue, symbol, bid, ask)


_VALID_PRICES = st.decimals(min_value=Decimal("1e-18"), max_value=Decimal("1e18"), places=18)


@given(
    bid=_VALID_PRICES,
    spread=st.decimals(min_value=Decimal(0), max_value=Decimal("1e18"), places=18),
    which=st.sampled_from([None, "ts", "venue", "symbol", "bid", "ask"]),
    data=st.data(),
)
def test_quote_check_on_a_valid_quote_with_at_most_one_field_changed(
    bid: Decimal, spread: Decimal, which: str | None, data: st.DataObject
) -> None:
    # The draws above mostly fail several rules at once; here every field is valid but at most
    # one, so that a check that refused good quotes, or forgot one field's rule, is caught.
    fields: dict[str, object] = {
        "ts": 1_700_000_000_000,
        "venue": "sim",
        "symbol": "BTC",
        "bid": bid,
        "ask": bid + spread,
    }
    if which is not None:
        drawn = {"ts": _TS, "venue": _NAMES, "symbol": _NAMES}.get(which, _PRICES)
        fields[which] = data.draw(drawn, label=which)
    values = list(fields.values())
    assert quote_ok(*values) is _by_the_rules(*values)


_EDGES: dict[str, list[object]] = {
    "ts": [TS_MIN - 1, TS_MIN, TS_MAX - 1, TS_MAX, True, 1.7e12, None],
    "venue": ["", "x", None, 1],
    "symbol": ["", "x", None, 1],
    "bid": [MIN_POSITIVE, Decimal("1E-19"), Decimal(0), Decimal("NaN"), 5, 5.0, None],
    "ask": [MAX_MAGNITUDE, Decimal("1.1E+18"), Decimal("Infinity"), Decimal("NaN"), 9, 9.0, None],
}


@pytest.mark.parametrize(
    ("which", "value"), [(name, value) for name, values in _EDGES.items() for value in values]
)
def test_quote_check_at_each_rules_edge(which: str, value: object) -> None:
    # Every bound and wrong type of each field, the others valid (bid 5, ask 9 in between): a
    # check that forgot one field's rule or moved one bound fails here on every run.
    fields: dict[str, object] = {
        "ts": 1_700_000_000_000,
        "venue": "sim",
        "symbol": "BTC",
        "bid": Decimal(5),
        "ask": Decimal(9),
    }
    fields[which] = value
    values = list(fields.values())
    assert quote_ok(*values) is _by_the_rules(*values)
