"""Fault plans: what goes wrong between the bot and the simulated venue, from a seed.

Rates are in parts per million (ppm) per opportunity: per command sent, per stream message, per
tick. Every draw comes from a seeded :class:`~gridcore.sim.rng.SplitMix64`, so a plan and a seed
replay the same faults exactly.

* ``drop_ppm`` — a stream message (fill, venue-side cancel, funding) is lost.
* ``duplicate_ppm`` — a stream fill is delivered twice.
* ``ack_delay_ppm`` / ``ack_delay_ms`` — a REST answer arrives late, after later stream messages.
* ``rest_error_ppm`` — a command fails before the venue sees it (``CommandFailed``, not applied).
* ``timeout_applied_ppm`` — the venue carries the command out but the answer is lost
  (``CommandTimedOut``): the order was in fact placed.
* ``timeout_lost_ppm`` — the command is lost and times out.
* ``disconnect_ppm`` / ``disconnect_ms`` — the stream goes down for a while: quotes and stream
  messages in that window are lost, then the feed reconnects.
"""

from __future__ import annotations

import attrs

from gridcore._enum import CoreEnum
from gridcore.sim.rng import SplitMix64

__all__ = ["PROFILES", "Fate", "FaultInjector", "FaultPlan", "profile"]


@attrs.frozen(kw_only=True)
class FaultPlan:
    """Fault rates (ppm) and durations (ms); all zero means a perfect venue."""

    name: str = "none"
    drop_ppm: int = 0
    duplicate_ppm: int = 0
    ack_delay_ppm: int = 0
    ack_delay_ms: int = 1_500
    rest_error_ppm: int = 0
    timeout_applied_ppm: int = 0
    timeout_lost_ppm: int = 0
    timeout_ms: int = 5_000
    disconnect_ppm: int = 0
    disconnect_ms: int = 20_000

    @property
    def active(self) -> bool:
        """True when any fault can happen."""
        return any(
            (
                self.drop_ppm,
                self.duplicate_ppm,
                self.ack_delay_ppm,
                self.rest_error_ppm,
                self.timeout_applied_ppm,
                self.timeout_lost_ppm,
                self.disconnect_ppm,
            )
        )


PROFILES: dict[str, FaultPlan] = {
    "none": FaultPlan(),
    "flaky": FaultPlan(
        name="flaky",
        duplicate_ppm=50_000,
        ack_delay_ppm=200_000,
        rest_error_ppm=20_000,
        timeout_applied_ppm=10_000,
        timeout_lost_ppm=10_000,
    ),
    "disconnects": FaultPlan(name="disconnects", disconnect_ppm=300, disconnect_ms=20_000),
    "lossy": FaultPlan(name="lossy", drop_ppm=20_000, duplicate_ppm=20_000),
    "chaos": FaultPlan(
        name="chaos",
        drop_ppm=10_000,
        duplicate_ppm=50_000,
        ack_delay_ppm=200_000,
        rest_error_ppm=30_000,
        timeout_applied_ppm=20_000,
        timeout_lost_ppm=10_000,
        disconnect_ppm=300,
        disconnect_ms=15_000,
    ),
}
"""The named profiles ``--faults`` accepts."""


def profile(name: str) -> FaultPlan:
    """The named profile; raises ``ValueError`` listing the names when unknown."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown fault profile {name!r}; choose one of: {', '.join(PROFILES)}"
        ) from None


class Fate(CoreEnum):
    """What happens to one command on its way to the venue."""

    DELIVERED = "delivered"  # the venue gets it and the answer comes back
    REST_ERROR = "rest_error"  # fails before the venue sees it (CommandFailed, not applied)
    TIMEOUT_LOST = "timeout_lost"  # lost on the way: CommandTimedOut, the venue never saw it
    TIMEOUT_APPLIED = "timeout_applied"  # the venue acts on it, the answer is lost


class FaultInjector:
    """Draws the faults of a :class:`FaultPlan` from a seed, one decision at a time.

    The backtest runner and the simulated venue adapter of the runtime shell both use it, so a
    profile means the same thing in a backtest and in paper trading. ``enabled`` turns every
    fault off (the backtest's settling phase).
    """

    def __init__(self, plan: FaultPlan, seed: int) -> None:
        self.plan = plan
        self.rng = SplitMix64(seed).fork(0xFA)
        self.enabled = plan.active

    def command_fate(self) -> Fate:
        """The fate of one command (a batch shares one fate: it is one request)."""
        p = self.plan
        if not self.enabled:
            return Fate.DELIVERED
        if self.rng.chance(p.rest_error_ppm):
            return Fate.REST_ERROR
        if self.rng.chance(p.timeout_lost_ppm):
            return Fate.TIMEOUT_LOST
        if self.rng.chance(p.timeout_applied_ppm):
            return Fate.TIMEOUT_APPLIED
        return Fate.DELIVERED

    def answer_delay(self) -> int:
        """Extra milliseconds before a REST answer arrives (0 most of the time)."""
        p = self.plan
        if self.enabled and self.rng.chance(p.ack_delay_ppm):
            return self.rng.below(p.ack_delay_ms + 1)
        return 0

    def stream_delays(self, *, is_fill: bool, feed_down: bool) -> tuple[int, ...]:
        """Delivery delays (ms) of one stream message: ``()`` lost, ``(0,)`` on time, two
        entries when a fill is duplicated."""
        if not self.enabled:
            return (0,)
        p = self.plan
        if feed_down or self.rng.chance(p.drop_ppm):
            return ()
        if is_fill and self.rng.chance(p.duplicate_ppm):
            return (0, 1 + self.rng.below(3_000))
        return (0,)

    def disconnect(self) -> bool:
        """True when the feed should go down now (drawn once per tick)."""
        return self.enabled and self.rng.chance(self.plan.disconnect_ppm)
