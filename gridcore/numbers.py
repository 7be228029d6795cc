"""Decimal arithmetic with an explicit context, and the one place that says how numbers are shown.

Money, prices and sizes are :class:`decimal.Decimal` at every public boundary. Arithmetic that
can round (division, quantization) goes through :data:`CTX`, never the thread-local context, so a
user who changes ``decimal.getcontext()`` cannot change what the core computes.

Exact where it can be
---------------------
Addition, subtraction and multiplication of exchange-sized numbers (prices on a tick, sizes on
a lot, fee and funding rates) are exact at 40 digits: a fill's value ``qty × price``, its fee
``qty × price × rate``, a funding payment, a position's cost basis (the sum of the values of the
fills that opened it) and therefore realized plus unrealized PnL carry exactly the decimals of
their inputs and never a rounding artefact.

Quantized by a named rule where it cannot be
--------------------------------------------
Average entry is a quotient (cost ÷ size) and in general has no finite decimal form. It is
rounded once, half-even, by :func:`quantize_quotient` to :data:`ENTRY_EXTRA_PLACES` decimal
places finer than the finest fill price that went into it, and never coarser than that many
decimal places (a tick of 0.1 gives an entry on a 0.00001 grid, whole prices one on 0.0001). Realized PnL of a partial close is ``closed × (price − entry)``, a product of
finite decimals, so it is exact given the entry; a close to zero books what is left of the
exact cost basis, so over a whole round trip realized PnL is exactly the fills' cash flow.

How numbers are shown
---------------------
People see prices at the instrument's tick, sizes at its lot (:func:`format_step`) and money at
the currency's places (:func:`money_places`, :func:`format_money`: 2 for USD and the dollar
stablecoins, 8 for anything else). Machines (JSON) get the exact value as a normalized
fixed-point string (:func:`exact_str`): no exponent, no trailing zeros.
"""

from __future__ import annotations

import decimal
from decimal import Decimal

from gridcore._enum import CoreEnum

__all__ = [
    "CTX",
    "CURRENCY_PLACES",
    "DEFAULT_CURRENCY_PLACES",
    "ENTRY_EXTRA_PLACES",
    "EXACT",
    "ONE",
    "ZERO",
    "Rounding",
    "add",
    "div",
    "exact_str",
    "format_money",
    "format_step",
    "money_places",
    "mul",
    "places",
    "quantize_quotient",
    "relative_distance",
    "round_to_step",
    "sub",
    "to_decimal",
]

#: The context every rounding operation of gridcore uses.
CTX = decimal.Context(
    prec=40,
    rounding=decimal.ROUND_HALF_EVEN,
    Emin=-999_999,
    Emax=999_999,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)

#: A context that never rounds or clamps (no precision or exponent limit), for sums, products
#: and shifts that must be exact: ``quantize_quotient``'s integer <-> coefficient shifts, the
#: simulated venue's kept margin sum. Never for a division, which may not terminate.
EXACT = decimal.Context(
    prec=decimal.MAX_PREC,
    rounding=decimal.ROUND_HALF_EVEN,
    Emin=decimal.MIN_EMIN,
    Emax=decimal.MAX_EMAX,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)

ZERO = Decimal(0)
ONE = Decimal(1)

#: Average entry keeps this many decimal places beyond the finest fill price that built it
#: (rounded half-even). Four places below the tick move realized PnL of a partial close by at
#: most ``closed × tick × 0.00005``; a close to zero books the exact remainder of the cost.
ENTRY_EXTRA_PLACES = 4

#: Decimal places money is shown with, per currency (display only; the ledger is exact).
CURRENCY_PLACES: dict[str, int] = {
    "USD": 2,
    "USDT": 2,
    "USDC": 2,
    "USDE": 2,
    "FDUSD": 2,
    "DAI": 2,
    "EUR": 2,
    "GBP": 2,
    "JPY": 0,
}

#: Places for a currency missing from :data:`CURRENCY_PLACES` (crypto assets: satoshi-sized).
DEFAULT_CURRENCY_PLACES = 8


class Rounding(CoreEnum):
    """How a value is snapped to a step (tick or lot)."""

    DOWN = decimal.ROUND_FLOOR  # towards minus infinity: bids, sizes
    UP = decimal.ROUND_CEILING  # towards plus infinity: asks
    NEAREST = decimal.ROUND_HALF_EVEN  # closest step, ties to even


def add(a: Decimal, b: Decimal) -> Decimal:
    """``a + b`` in :data:`CTX`."""
    return CTX.add(a, b)


def sub(a: Decimal, b: Decimal) -> Decimal:
    """``a - b`` in :data:`CTX`."""
    return CTX.subtract(a, b)


def mul(a: Decimal, b: Decimal) -> Decimal:
    """``a * b`` in :data:`CTX`."""
    return CTX.multiply(a, b)


def div(a: Decimal, b: Decimal) -> Decimal:
    """``a / b`` in :data:`CTX` (40 significant digits, half-even)."""
    return CTX.divide(a, b)


def relative_distance(price: Decimal, reference: Decimal) -> Decimal:
    """``|price − reference| / reference``: how far ``price`` is from ``reference`` (a mid), as
    a fraction of it, in the shared context. The risk gate's slippage cap and the invariants'
    slippage and band checks measure with this one rule."""
    return CTX.divide(abs(CTX.subtract(price, reference)), reference)


def round_to_step(value: Decimal, step: Decimal, rounding: Rounding) -> Decimal:
    """Snap ``value`` to a whole multiple of ``step`` in the given direction.

    >>> round_to_step(Decimal("101.37"), Decimal("0.5"), Rounding.DOWN)
    Decimal('101.0')
    """
    units = CTX.divide(value, step).to_integral_value(rounding=rounding.value, context=CTX)
    return CTX.multiply(units, step)


def to_decimal(value: object, *, field: str) -> Decimal:
    """Convert a str/int/Decimal to Decimal; floats are refused (they are not exact money).

    Raises ``ValueError`` naming ``field`` when the value is not a finite number.
    """
    if isinstance(value, (bool, float)):
        raise ValueError(
            f"{field}: got {value!r}; write money and sizes as strings or integers "
            f'(for example "0.001"), floats are not exact'
        )
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | str):
        try:
            result = Decimal(value)
        except decimal.InvalidOperation:
            raise ValueError(f"{field}: {value!r} is not a number") from None
    else:
        raise ValueError(f"{field}: expected a decimal number, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"{field}: {value!r} is not a finite number")
    return result


def places(value: Decimal) -> int:
    """Decimal places of ``value`` as written (``Decimal("1.50")`` has 2, ``Decimal("1E+2")`` 0)."""
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):
        raise ValueError(f"{value!r} is not a finite number")
    return max(0, -exponent)


def quantize_quotient(numerator: Decimal, denominator: Decimal, exponent: int) -> Decimal:
    """``numerator ÷ denominator`` rounded once, half-even, to a multiple of ``10**exponent``.

    Computed on integers, so there is no double rounding (a 40-digit quotient rounded again
    could land on the wrong side of a tie).

    >>> quantize_quotient(Decimal("301"), Decimal("3"), -2)
    Decimal('100.33')
    """
    if not denominator:
        raise ZeroDivisionError("quantize_quotient: denominator is zero")
    if not numerator.is_finite() or not denominator.is_finite():
        raise ValueError("quantize_quotient needs finite numbers")
    # The coefficients as integers: shifting by the value's own exponent is exact in a context
    # that never rounds, and much cheaper than joining the digits into a string.
    n_exp = numerator.as_tuple().exponent
    d_exp = denominator.as_tuple().exponent
    assert isinstance(n_exp, int) and isinstance(d_exp, int)  # finite, checked above
    n = int(numerator.copy_abs().scaleb(-n_exp, EXACT))
    d = int(denominator.copy_abs().scaleb(-d_exp, EXACT))
    shift = n_exp - d_exp - exponent
    if shift >= 0:
        n *= 10**shift
    else:
        d *= 10**-shift
    q, r = divmod(n, d)
    twice = 2 * r
    if twice > d or (twice == d and q % 2 == 1):
        q += 1
    if numerator.is_signed() != denominator.is_signed():
        q = -q  # an integer zero has no sign: a zero quotient stays "0E-10", never "-0E-10"
    return Decimal(q).scaleb(exponent, EXACT)


def money_places(currency: str) -> int:
    """Decimal places ``currency`` is shown with: :data:`CURRENCY_PLACES`, else
    :data:`DEFAULT_CURRENCY_PLACES`."""
    return CURRENCY_PLACES.get(currency.upper(), DEFAULT_CURRENCY_PLACES)


def _round_places(value: Decimal, n: int) -> Decimal:
    rounded = value.quantize(Decimal(1).scaleb(-n), context=_SHOW)
    return abs(rounded) if rounded == 0 else rounded  # no "-0.00"


def format_money(value: Decimal, currency: str, *, grouping: bool = False) -> str:
    """``value`` rounded half-even to the currency's places, for people (``-64.947038`` USD →
    ``"-64.95"``); ``grouping`` adds thousands separators. Never parse the result back."""
    rounded = _round_places(value, money_places(currency))
    return f"{rounded:,f}" if grouping else f"{rounded:f}"


def format_step(value: Decimal, step: Decimal) -> str:
    """``value`` rounded half-even to the decimal places of ``step``: prices at the tick, sizes at
    the lot (``49518.68125`` with a tick of 0.1 → ``"49518.7"``), for people."""
    return f"{_round_places(value, places(step)):f}"


def exact_str(value: Decimal) -> str:
    """The exact value as a normalized fixed-point string, for machines: no exponent, no
    trailing zeros, ``"0"`` for zero (``Decimal("0.0906229000")`` → ``"0.0906229"``)."""
    if not value.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    if not value:
        return "0"
    return f"{value.normalize(_SHOW):f}"


# Display and normalization only: wide enough that no value of the ledger is ever rounded by it.
_SHOW = decimal.Context(
    prec=100,
    rounding=decimal.ROUND_HALF_EVEN,
    Emin=-999_999,
    Emax=999_999,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)
