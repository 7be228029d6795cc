"""The arithmetic helpers of :mod:`gridcore.numbers` compute in gridcore's own context whatever
the caller did to ``decimal.getcontext()``, and ``to_decimal`` refuses everything that is not an
exact, finite number with a message naming the field."""

from __future__ import annotations

import decimal
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridcore.numbers import CTX, add, div, mul, places, quantize_quotient, sub, to_decimal

# Exchange-sized decimals: up to 18 digits, 0 to 12 places, either sign.
decimals = st.builds(
    lambda n, p: Decimal(n).scaleb(-p),
    st.integers(min_value=-(10**18), max_value=10**18),
    st.integers(min_value=0, max_value=12),
)


@given(a=decimals, b=decimals)
def test_add_sub_mul_are_exact_even_under_a_coarse_thread_context(a: Decimal, b: Decimal) -> None:
    with decimal.localcontext(decimal.Context(prec=3, rounding=decimal.ROUND_DOWN)):
        total, difference, product = add(a, b), sub(a, b), mul(a, b)
    assert Fraction(total) == Fraction(a) + Fraction(b)
    assert Fraction(difference) == Fraction(a) - Fraction(b)
    assert Fraction(product) == Fraction(a) * Fraction(b)


@given(a=decimals, b=decimals.filter(bool))
def test_div_rounds_in_gridcores_context_not_the_callers(a: Decimal, b: Decimal) -> None:
    with decimal.localcontext(decimal.Context(prec=3, rounding=decimal.ROUND_DOWN)):
        got = div(a, b)
    assert got == CTX.divide(a, b)
    # 40 significant digits, half-even: within half a unit of the last digit of the exact value.
    exact = Fraction(a) / Fraction(b)
    if exact:
        exponent = got.adjusted() - (CTX.prec - 1)
        assert abs(Fraction(got) - exact) <= Fraction(10) ** exponent / 2


def test_div_by_zero_is_trapped() -> None:
    with pytest.raises(decimal.DivisionByZero):
        div(Decimal(1), Decimal(0))


@given(value=decimals)
def test_to_decimal_reads_strings_ints_and_decimals_exactly(value: Decimal) -> None:
    assert to_decimal(str(value), field="f") == value
    assert to_decimal(value, field="f") is value
    whole = int(value)
    assert to_decimal(whole, field="f") == whole


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (True, "floats are not exact"),
        (0.1, "floats are not exact"),
        ("ten", "'ten' is not a number"),
        ([1], "expected a decimal number, got list"),
        (None, "expected a decimal number, got NoneType"),
        ("NaN", "'NaN' is not a finite number"),
        ("-Infinity", "is not a finite number"),
        (Decimal("Infinity"), "is not a finite number"),
    ],
)
def test_to_decimal_refuses_what_is_not_an_exact_finite_number(value: object, hint: str) -> None:
    with pytest.raises(ValueError, match=r"^grid\.step: ") as caught:
        to_decimal(value, field="grid.step")
    assert hint in str(caught.value)


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_places_of_a_non_finite_number_is_an_error(value: Decimal) -> None:
    with pytest.raises(ValueError, match="not a finite number"):
        places(value)


@pytest.mark.parametrize(
    ("numerator", "denominator"),
    [(Decimal("Infinity"), Decimal(1)), (Decimal(1), Decimal("Infinity"))],
)
def test_quantize_quotient_refuses_non_finite_operands(
    numerator: Decimal, denominator: Decimal
) -> None:
    with pytest.raises(ValueError, match="finite"):
        quantize_quotient(numerator, denominator, -2)
