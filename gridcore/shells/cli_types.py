"""Argument types of the command line, built from the rules the configuration uses.

Each flag that has a configuration counterpart (``--seed`` and ``[market] seed``, ``--ticks``
and ``[market] ticks``) is checked by the same function of :mod:`gridcore.validators`, so the
command line and the file can never again accept different values. A failing rule becomes an
argparse error naming the flag: ``gridcore backtest: error: argument --ticks: must be at least
1, got 0`` (exit 2).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from gridcore import validators

__all__ = ["POSITIVE_INT", "SECONDS", "SEED", "SPEED", "TICKS", "flag_type"]

T = TypeVar("T")


def flag_type(parse: Callable[[str], T], *rules: Callable[[T], T], name: str) -> Callable[[str], T]:
    """An argparse ``type=``: ``parse`` the word, then apply each rule; a ``ValueError`` becomes
    an :class:`argparse.ArgumentTypeError` carrying the rule's message."""

    def convert(text: str) -> T:
        try:
            value = parse(text)
            for rule in rules:
                value = rule(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    convert.__name__ = name  # argparse shows it in its own messages
    return convert


SEED = flag_type(validators.parse_int, validators.seed, name="seed")
TICKS = flag_type(validators.parse_int, validators.ticks, name="ticks")
POSITIVE_INT = flag_type(validators.parse_int, validators.positive, name="positive integer")
SPEED = flag_type(validators.parse_speed, validators.speed, name="speed")
SECONDS = flag_type(validators.parse_float, validators.duration_seconds, name="seconds")
