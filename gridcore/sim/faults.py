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

__all__ = ["PROFILES", "FaultPlan", "profile"]


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
