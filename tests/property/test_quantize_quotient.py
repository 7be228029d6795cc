"""``quantize_quotient`` reads the coefficients as integers by shifting them in a context that
never rounds; these properties hold it to the plain digit-by-digit reading it replaced (the
coefficient's digits joined into an integer, the result's digits split back out), on drawn
finite numbers of any sign, size and exponent, ties included."""

from __future__ import annotations

import decimal
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore.numbers import quantize_quotient


def _by_digits(numerator: Decimal, denominator: Decimal, exponent: int) -> Decimal:
    """The reference: the digit tuples read and written as strings."""
    n_sign, n_digits, n_exp = numerator.as_tuple()
    d_sign, d_digits, d_exp = denominator.as_tuple()
    assert isinstance(n_exp, int) and isinstance(d_exp, int)
    n = int("".join(map(str, n_digits)) or "0")
    d = int("".join(map(str, d_digits)))
    shift = n_exp - d_exp - exponent
    if shift >= 0:
        n *= 10**shift
    else:
        d *= 10**-shift
    q, r = divmod(n, d)
    twice = 2 * r
    if twice > d or (twice == d and q % 2 == 1):
        q += 1
    negative = (n_sign != d_sign) and q != 0
    return Decimal((1 if negative else 0, tuple(int(c) for c in str(q)), exponent))


def _decimals(nonzero: bool) -> st.SearchStrategy[Decimal]:
    coefficients = st.integers(min_value=-(10**40), max_value=10**40)
    if nonzero:
        coefficients = coefficients.filter(bool)
    signs = st.booleans()
    return st.builds(
        lambda c, e, negative_zero: (
            Decimal(f"-0E{e}") if negative_zero and not c else Decimal(c).scaleb(e)
        ),
        coefficients,
        st.integers(min_value=-40, max_value=40),
        signs,
    )


@settings(max_examples=500, deadline=None)
@given(
    numerator=_decimals(nonzero=False),
    denominator=_decimals(nonzero=True),
    exponent=st.integers(min_value=-40, max_value=40),
)
def test_quantize_quotient_matches_digit_reading(
    numerator: Decimal, denominator: Decimal, exponent: int
) -> None:
    # A narrow ambient context must not matter: the function reads no global decimal state.
    with decimal.localcontext() as ctx:
        ctx.prec = 6
        got = quantize_quotient(numerator, denominator, exponent)
    assert got.as_tuple() == _by_digits(numerator, denominator, exponent).as_tuple()


@settings(max_examples=300, deadline=None)
@given(
    half=st.integers(min_value=-(10**12), max_value=10**12),
    exponent=st.integers(min_value=-12, max_value=0),
)
def test_ties_round_half_even_like_digit_reading(half: int, exponent: int) -> None:
    """``(2k + 1) ÷ 2`` lands exactly halfway between two multiples: the rounding branch."""
    numerator = Decimal(2 * half + 1).scaleb(exponent)
    denominator = Decimal(2)
    got = quantize_quotient(numerator, denominator, exponent)
    assert got.as_tuple() == _by_digits(numerator, denominator, exponent).as_tuple()
