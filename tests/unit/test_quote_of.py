"""``QuoteTicked.of`` is the constructor, positional: the same value, or the same error."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from gridcore.errors import InvalidEvent
from gridcore.events import QuoteTicked

_PRICES = st.one_of(
    st.decimals(min_value=Decimal("-1"), max_value=Decimal("1e19"), places=6),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.just(Decimal("1E-19")),
)
_TS = st.one_of(st.integers(min_value=0, max_value=5 * 10**12), st.just(True))


@given(ts=_TS, bid=_PRICES, ask=_PRICES)
def test_of_builds_what_the_constructor_builds_or_raises_what_it_raises(
    ts: int, bid: Decimal, ask: Decimal
) -> None:
    try:
        want: QuoteTicked | str = QuoteTicked(ts=ts, venue="sim", symbol="BTC", bid=bid, ask=ask)
    except InvalidEvent as exc:
        want = str(exc)
    try:
        got: QuoteTicked | str = QuoteTicked.of(ts, "sim", "BTC", bid, ask)
    except InvalidEvent as exc:
        got = str(exc)
    assert got == want
    if isinstance(got, QuoteTicked):
        assert type(got) is QuoteTicked and repr(got) == repr(want)
