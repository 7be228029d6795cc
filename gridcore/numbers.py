"""Decimal arithmetic with an explicit context.

Money, prices and sizes are :class:`decimal.Decimal` at every public boundary. Arithmetic that
can round (division, quantization) goes through :data:`CTX`, never the thread-local context, so a
user who changes ``decimal.getcontext()`` cannot change what the core computes. Addition,
subtraction and multiplication of exchange-sized numbers are exact at 40 digits; the one
inexact step, average entry, is confined by rounding realized PnL to :data:`MONEY_QUANTUM`.
"""

from __future__ import annotations

import decimal
from decimal import Decimal

from gridcore._enum import CoreEnum

__all__ = [
    "CTX",
    "MONEY_QUANTUM",
    "ONE",
    "ZERO",
    "Rounding",
    "add",
    "div",
    "mul",
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

ZERO = Decimal(0)
ONE = Decimal(1)

#: Realized PnL is rounded to this step (half-even) each time a fill realizes some: average
#: entry is a 40-digit division, and without the rounding a balance of 10**4 plus a PnL with 38
#: decimals would no longer add up exactly.
MONEY_QUANTUM = Decimal("1e-24")


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
