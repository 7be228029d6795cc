"""A small seeded generator (SplitMix64): deterministic on every platform, integer-only.

gridcore draws no entropy: simulations that need chance (synthetic markets, fault plans) take a
seed and use this generator, so the same seed gives the same run, bit for bit, everywhere.
"""

from __future__ import annotations

__all__ = ["SplitMix64"]

_MASK = (1 << 64) - 1


class SplitMix64:
    """SplitMix64 (Steele, Lea, Flood 2014). ``next()`` returns 64-bit unsigned integers."""

    __slots__ = ("_state",)

    def __init__(self, seed: int) -> None:
        self._state = seed & _MASK

    def next(self) -> int:
        """The next 64-bit value."""
        self._state = (self._state + 0x9E3779B97F4A7C15) & _MASK
        z = self._state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    @property
    def state(self) -> int:
        """The internal 64-bit state (for a generator that inlines :meth:`next`)."""
        return self._state

    def below(self, n: int) -> int:
        """A value in ``[0, n)`` (n > 0)."""
        return self.next() % n

    def chance(self, ppm: int) -> bool:
        """True with probability ``ppm`` parts per million."""
        return ppm > 0 and self.next() % 1_000_000 < ppm

    def fork(self, salt: int) -> SplitMix64:
        """An independent generator derived from this one's seed and ``salt``."""
        return SplitMix64(self.next() ^ (salt * 0xD1B54A32D192ED03 & _MASK))
