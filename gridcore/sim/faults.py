"""Fault plans: what goes wrong between the bot and the simulated venue, from a seed.

Rates are in parts per million (ppm) per opportunity: per command sent, per stream message, per
tick. Every draw comes from a seeded :class:`~gridcore.sim.rng.SplitMix64`, so a plan and a seed
replay the same faults exactly.

Each rate injects one kind of the fault vocabulary, :class:`Fault` (the state machine of
:mod:`gridcore.testing` uses the same kinds); :mod:`gridcore.sim.link` carries them out.

* ``drop_ppm`` — a stream message (fill, venue-side cancel, funding-rate update) is lost.
  Funding payments are booked like a statement and never lost.
* ``duplicate_ppm`` — a stream fill is delivered twice.
* ``ack_delay_ppm`` / ``ack_delay_ms`` — a REST answer arrives late, after later stream messages.
* ``rest_error_ppm`` — a command fails before the venue sees it (``CommandFailed``, not applied).
* ``timeout_applied_ppm`` — the venue carries the command out but the answer is lost
  (``CommandTimedOut``): the order was in fact placed.
* ``timeout_lost_ppm`` — the command is lost and times out.
* ``disconnect_ppm`` / ``disconnect_ms`` — the stream goes down for a while: quotes and stream
  messages in that window are lost, then the feed reconnects.

The injector counts what it injected (:class:`FaultCounts`), so a run can say what went wrong
instead of leaving no trace.
"""

from __future__ import annotations

import attrs

from gridcore._enum import CoreEnum
from gridcore.sim.rng import SplitMix64

__all__ = [
    "ALL_FAULTS",
    "PROFILES",
    "Fate",
    "Fault",
    "FaultCounts",
    "FaultInjector",
    "FaultPlan",
    "profile",
]


class Fault(CoreEnum):
    """The one vocabulary of what can go wrong between a bot and a venue.

    A :class:`FaultPlan` gives some of them a rate (the backtest and the paper venue draw them
    from a seed); the state machine of :mod:`gridcore.testing` lets hypothesis choose them rule
    by rule. Both carry them out through the same link model (:mod:`gridcore.sim.link`).
    """

    DROP = "drop"  # a stream message is lost; a lost REST answer becomes a timeout
    DUPLICATE = "duplicate"  # a stream message or a report arrives twice
    REORDER = "reorder"  # an answer arrives late, after stream messages sent after it
    REST_ERROR = (
        "rest_error"  # a command fails before the venue sees it, or the venue refuses an order
    )
    TIMEOUT = "timeout"  # a command times out, carried out by the venue or not
    DISCONNECT = "disconnect"  # the feed goes down (stream messages lost) and comes back
    STALL = "stall"  # time passes without quotes (quotes and reports grow old)
    RESTART = "restart"  # the bot's process restarts from its journal; in-flight words are lost


ALL_FAULTS = frozenset(Fault)
"""Every fault kind."""


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

    @property
    def kinds(self) -> frozenset[Fault]:
        """The fault kinds this plan can inject (those with a rate above zero)."""
        rates = (
            (Fault.DROP, self.drop_ppm),
            (Fault.DUPLICATE, self.duplicate_ppm),
            (Fault.REORDER, self.ack_delay_ppm),
            (Fault.REST_ERROR, self.rest_error_ppm),
            (Fault.TIMEOUT, self.timeout_applied_ppm + self.timeout_lost_ppm),
            (Fault.DISCONNECT, self.disconnect_ppm),
        )
        return frozenset(kind for kind, rate in rates if rate > 0)


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
    """What happens to one command on its way to the venue (a :attr:`Fault.REST_ERROR` or a
    :attr:`Fault.TIMEOUT`, or nothing)."""

    DELIVERED = "delivered"  # the venue gets it and the answer comes back
    REST_ERROR = "rest_error"  # fails before the venue sees it (CommandFailed, not applied)
    TIMEOUT_LOST = "timeout_lost"  # lost on the way: CommandTimedOut, the venue never saw it
    TIMEOUT_APPLIED = "timeout_applied"  # the venue acts on it, the answer is lost


@attrs.frozen(kw_only=True)
class FaultCounts:
    """How many faults of each kind were injected into one run.

    Stream messages: ``dropped`` (lost to ``drop_ppm``), ``lost_in_outage`` (sent while the feed
    was down), ``duplicated`` (a fill delivered twice). REST: ``delayed`` (an answer that came
    late), ``rest_errors`` (failed before the venue saw it), ``timeouts_lost`` (never reached the
    venue), ``timeouts_applied`` (executed, answer lost); a batch is one request. Feed:
    ``disconnects`` (outages begun) and ``quotes_missed`` (market quotes the bot did not get
    because its feed was down).
    """

    dropped: int = 0
    lost_in_outage: int = 0
    duplicated: int = 0
    delayed: int = 0
    rest_errors: int = 0
    timeouts_lost: int = 0
    timeouts_applied: int = 0
    disconnects: int = 0
    quotes_missed: int = 0

    @property
    def total(self) -> int:
        """Every injected fault (each missed quote counts once)."""
        return sum(getattr(self, f.name) for f in attrs.fields(FaultCounts))


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
        self._counts: dict[str, int] = dict.fromkeys(attrs.fields_dict(FaultCounts), 0)

    def counts(self) -> FaultCounts:
        """What was injected so far."""
        return FaultCounts(**self._counts)

    def count(self, kind: str, n: int = 1) -> None:
        """Record ``n`` faults of ``kind`` (a :class:`FaultCounts` field) that the caller
        injected itself (``quotes_missed``: only the caller knows which quotes it held back)."""
        self._counts[kind] += n

    def command_fate(self) -> Fate:
        """The fate of one command (a batch shares one fate: it is one request)."""
        p = self.plan
        if not self.enabled:
            return Fate.DELIVERED
        if self.rng.chance(p.rest_error_ppm):
            self._counts["rest_errors"] += 1
            return Fate.REST_ERROR
        if self.rng.chance(p.timeout_lost_ppm):
            self._counts["timeouts_lost"] += 1
            return Fate.TIMEOUT_LOST
        if self.rng.chance(p.timeout_applied_ppm):
            self._counts["timeouts_applied"] += 1
            return Fate.TIMEOUT_APPLIED
        return Fate.DELIVERED

    def answer_delay(self) -> int:
        """Extra milliseconds before a REST answer arrives (0 most of the time)."""
        p = self.plan
        if self.enabled and self.rng.chance(p.ack_delay_ppm):
            delay = self.rng.below(p.ack_delay_ms + 1)
            if delay:
                self._counts["delayed"] += 1
            return delay
        return 0

    def stream_delays(self, *, is_fill: bool, feed_down: bool) -> tuple[int, ...]:
        """Delivery delays (ms) of one stream message: ``()`` lost, ``(0,)`` on time, two
        entries when a fill is duplicated."""
        if not self.enabled:
            return (0,)
        p = self.plan
        if feed_down:
            self._counts["lost_in_outage"] += 1
            return ()
        if self.rng.chance(p.drop_ppm):
            self._counts["dropped"] += 1
            return ()
        if is_fill and self.rng.chance(p.duplicate_ppm):
            self._counts["duplicated"] += 1
            return (0, 1 + self.rng.below(3_000))
        return (0,)

    def disconnect(self) -> bool:
        """True when the feed should go down now (drawn once per tick)."""
        if self.enabled and self.rng.chance(self.plan.disconnect_ppm):
            self._counts["disconnects"] += 1
            return True
        return False
