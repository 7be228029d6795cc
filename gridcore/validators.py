"""The value rules shared by the configuration and the command line.

A rule is a function that returns its (already typed) value when it is acceptable and raises
:class:`ValueError` with a message that says what is accepted otherwise. The configuration
loader turns that into a :class:`~gridcore.errors.ConfigError` naming the field
(``market.ticks: must be at least 1, got 0``); the command line turns it into an argparse error
naming the flag (``--ticks: must be at least 1, got 0``). One function per rule, so that
``[market] ticks = 0`` and ``--ticks 0`` can never again be judged differently.

The ``parse_*`` functions read a command-line word into the type a rule takes.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import TypeVar

__all__ = [
    "MAX_SEED",
    "OFF",
    "duration_seconds",
    "non_negative",
    "parse_float",
    "parse_int",
    "parse_speed",
    "positive",
    "seed",
    "speed",
    "ticks",
]

N = TypeVar("N", int, Decimal)

#: The word that switches a limit off in a configuration file (``max_drawdown = "off"``).
#: In Python a limit is switched off by passing ``None`` explicitly; no default is ``None``.
OFF = "off"

#: Seeds are unsigned 64-bit integers: the seeded generators of markets and faults take them.
MAX_SEED = 2**64 - 1


def seed(value: int) -> int:
    """A market or fault seed: a whole number from 0 to 2**64 - 1."""
    if not 0 <= value <= MAX_SEED:
        raise ValueError(f"must be between 0 and 2**64 - 1, got {value}")
    return value


def ticks(value: int) -> int:
    """A number of market quotes: at least 1 (a run with no quotes cannot trade)."""
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def positive(value: N) -> N:
    """A count, period or amount that must be greater than zero."""
    if not value > 0:
        raise ValueError(f"must be > 0, got {value}")
    return value


def non_negative(value: N) -> N:
    """A count, period or amount that may be zero but not negative."""
    if value < 0:
        raise ValueError(f"must be >= 0, got {value}")
    return value


def speed(value: float) -> float:
    """Simulated seconds per wall second: greater than zero; infinity means as fast as possible."""
    if not value > 0:
        raise ValueError(f"must be > 0 (or 'max'), got {value}")
    return value


def duration_seconds(value: float) -> float:
    """A duration in seconds: greater than zero and finite."""
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"must be a finite number of seconds > 0, got {value}")
    return value


def parse_int(text: str) -> int:
    """A whole number written in decimal digits (``"42"``, ``"-3"``)."""
    try:
        return int(text, 10)
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None


def parse_float(text: str) -> float:
    """A number (``"2.5"``); ``nan`` is refused because no rule can compare it."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if math.isnan(value):
        raise ValueError(f"expected a number, got {text!r}")
    return value


def parse_speed(text: str) -> float:
    """A speed factor, or ``max`` / ``inf`` for as fast as possible."""
    if text in ("max", "inf"):
        return math.inf
    try:
        return parse_float(text)
    except ValueError:
        raise ValueError(f"expected a number or 'max', got {text!r}") from None
