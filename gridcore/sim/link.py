"""The link between a bot and a simulated venue: what the bot hears, and when.

Theory of operation
-------------------
A command the bot sends crosses the network (``latency_ms``), the venue acts on it, and what the
venue says comes back in two kinds of message: *results* (an answer naming the command:
``OrderAccepted``, a report, ``CommandFailed``; exactly one terminal result per command) and
*stream messages* (fills, venue-side cancels, funding-rate updates), which name no command.
:class:`Link` is that crossing as a pure model: no clock, no I/O, its randomness drawn from a
seeded :class:`~gridcore.sim.rng.SplitMix64` (inside each venue's
:class:`~gridcore.sim.faults.FaultInjector`). It returns *deliveries*, ``(time, event)`` pairs
in the order they were decided, and leaves the waiting to its caller:

* the backtest runner (:mod:`gridcore.sim.backtest`) pushes them on its time-ordered queue;
* the paper venue (:mod:`gridcore.shells.simvenue`) sleeps on its lockstep clock until each
  one's time and sends it;
* the state machine of :mod:`gridcore.testing` has no latency: hypothesis picks each command's
  :class:`Fate` and each message's fault rule by rule, and :func:`carry` / :func:`lost_answer`
  say what that fate or fault turns into.

One vocabulary of faults, :class:`~gridcore.sim.faults.Fault`, names what can go wrong, and one
:class:`~gridcore.sim.faults.Fate` names what happens to a command:

* ``DELIVERED`` — the venue gets it after ``latency_ms`` and its results arrive ``latency_ms``
  later; with :attr:`Fault.REORDER` (``ack_delay_ppm``) a result is held back a drawn delay, so
  stream messages sent after it overtake it;
* ``REST_ERROR`` — it fails before the venue sees it: ``CommandFailed`` (not applied) after
  ``latency_ms``;
* ``TIMEOUT_LOST`` — it is lost on the way: the shell's timeout (``timeout_ms`` after sending)
  answers ``CommandTimedOut``, and the venue never saw it;
* ``TIMEOUT_APPLIED`` — the venue carries it out but its results are lost: the stream messages
  it caused still arrive, and the shell's timeout answers.

A stream message is delivered on time, lost (:attr:`Fault.DROP`, or sent while its venue's feed
is down: :attr:`Fault.DISCONNECT`) or, for a fill, delivered twice (:attr:`Fault.DUPLICATE`).
A funding payment is booked like a statement and never lost. Each venue's feed goes down on
its own: the link draws a disconnect once per quote of that venue and brings the feed back
``disconnect_ms`` later.

Faults per venue: a single :class:`~gridcore.sim.faults.FaultPlan` applies to every venue, all
drawn from one seeded stream; a mapping ``venue -> plan`` gives each venue its own plan and its
own stream (forked from the seed by the venue's name), so two venues fail independently and
adding a venue does not move the faults of another.

What the link is not: a venue refusing an order (rejected outright, filled only in part,
accepted then rejected, as :class:`gridcore.sim.funding.VenueFaults` draws them) is the
venue's *answer*, delivered intact by the link. It belongs to the exchange model, which decides
what the venue says; the link only decides whether and when the bot hears it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs

from gridcore.commands import Batch, Command
from gridcore.events import (
    CommandFailed,
    CommandTimedOut,
    Event,
    FundingPaid,
    OrderFilled,
    OrderPartiallyFilled,
)
from gridcore.sim.faults import ALL_FAULTS, Fate, Fault, FaultCounts, FaultInjector, FaultPlan

__all__ = [
    "ALL_FAULTS",
    "Delivery",
    "Fate",
    "Fault",
    "FeedChange",
    "Link",
    "Sent",
    "carry",
    "failures",
    "inner",
    "is_result",
    "lost_answer",
    "timeouts",
]

Delivery = tuple[int, Event]
"""``(time in ms, event)``: the bot hears ``event`` at that time."""

REST_ERROR_REASON = "simulated REST error"
_NO_FAULTS = FaultPlan()


def inner(command: Command) -> tuple[Command, ...]:
    """The commands that get a result: a batch's members, or the command itself."""
    return command.commands if isinstance(command, Batch) else (command,)


def is_result(event: Event) -> int | None:
    """The id of the command ``event`` answers, or ``None`` for a stream message."""
    cid = getattr(event, "command_id", None)
    return cid if isinstance(cid, int) else None


def failures(command: Command, at: int) -> list[Event]:
    """The results of a command that failed before the venue saw it (``REST_ERROR``)."""
    return [
        CommandFailed(ts=at, command_id=c.command_id, reason=REST_ERROR_REASON, not_applied=True)
        for c in inner(command)
    ]


def timeouts(command: Command, at: int) -> list[Event]:
    """The results of a command whose answer never came (``TIMEOUT_*``): the shell's verdict."""
    return [CommandTimedOut(ts=at, command_id=c.command_id) for c in inner(command)]


def lost_answer(event: Event, at: int) -> Event | None:
    """What the bot hears instead of ``event`` when the message is lost (:attr:`Fault.DROP`):
    nothing for a stream message; the shell's ``CommandTimedOut`` for a venue's answer. A
    funding payment (a statement) and the shell's own verdicts are never lost: ``event``."""
    if isinstance(event, FundingPaid | CommandFailed | CommandTimedOut):
        return event
    cid = is_result(event)
    return None if cid is None else CommandTimedOut(ts=at, command_id=cid)


def carry(fate: Fate, command: Command, answers: Sequence[Event] | None, at: int) -> list[Event]:
    """What the bot hears, in order and without time, about ``command`` meeting ``fate``.

    ``answers`` is what the venue said when it acted on the command (``None`` when it never
    saw it: ``REST_ERROR`` and ``TIMEOUT_LOST``). With ``TIMEOUT_APPLIED`` the stream messages
    the command caused arrive, then the shell's timeouts.
    """
    if fate is Fate.REST_ERROR:
        return failures(command, at)
    if fate is Fate.TIMEOUT_LOST:
        return timeouts(command, at)
    said = list(answers or ())
    if fate is Fate.TIMEOUT_APPLIED:
        return [e for e in said if is_result(e) is None] + timeouts(command, at)
    return said


@attrs.frozen(kw_only=True)
class Sent:
    """A command on its way: its ``fate``, when it reaches the venue (``arrives_at``, ``None``
    when it never does) and what the bot hears without the venue (``deliveries``)."""

    fate: Fate
    arrives_at: int | None
    deliveries: tuple[Delivery, ...] = ()


@attrs.frozen(kw_only=True)
class FeedChange:
    """A venue's feed went down (``up`` False) or came back at a quote."""

    venue: str
    up: bool


class Link:
    """The bot<->venue link of one run (see the module documentation).

    ``faults`` is one plan for every venue (one draw stream) or a mapping ``venue -> plan``
    (one stream per venue; a venue not named has no faults). ``injectors`` instead hands the
    link draw streams that already exist (the paper venue keeps its injector in its file).
    """

    def __init__(
        self,
        faults: FaultPlan | Mapping[str, FaultPlan] = _NO_FAULTS,
        *,
        seed: int = 0,
        latency_ms: int = 50,
        injectors: FaultInjector | Mapping[str, FaultInjector] | None = None,
    ) -> None:
        if latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {latency_ms}")
        self.latency = latency_ms
        self._shared: FaultInjector | None = None
        self._by_venue: dict[str, FaultInjector] = {}
        if injectors is not None:
            if isinstance(injectors, FaultInjector):
                self._shared = injectors
            else:
                self._by_venue = dict(injectors)
        elif isinstance(faults, FaultPlan):
            self._shared = FaultInjector(faults, seed)
        else:
            self._by_venue = {
                venue: FaultInjector(plan, seed ^ _venue_salt(venue))
                for venue, plan in sorted(faults.items())
            }
        self._none = FaultInjector(FaultPlan(), seed)
        self.down: dict[str, int] = {}
        """Venue -> when its feed comes back (only venues whose feed is down)."""

    # --- the plans -------------------------------------------------------------------------------

    def injector(self, venue: str) -> FaultInjector:
        """The draw stream of ``venue``'s faults."""
        if self._shared is not None:
            return self._shared
        return self._by_venue.get(venue, self._none)

    def _injectors(self) -> list[FaultInjector]:
        return [self._shared] if self._shared is not None else list(self._by_venue.values())

    @property
    def name(self) -> str:
        """The plan's name, or ``venue=name`` pairs for per-venue plans."""
        if self._shared is not None:
            return self._shared.plan.name
        return ",".join(f"{v}={i.plan.name}" for v, i in self._by_venue.items()) or "none"

    @property
    def disconnects(self) -> bool:
        """True when any venue's feed can go down on its own."""
        return any(i.plan.active and i.plan.disconnect_ppm > 0 for i in self._injectors())

    def counts(self) -> FaultCounts:
        """What was injected so far, every venue together."""
        injectors = self._injectors()
        if len(injectors) == 1:
            return injectors[0].counts()
        totals = [i.counts() for i in injectors]
        return FaultCounts(
            **{f.name: sum(getattr(c, f.name) for c in totals) for f in attrs.fields(FaultCounts)}
        )

    @property
    def quiet(self) -> bool:
        """True when no venue's link injects anything (no plan, or the run is settling): every
        command is delivered, its results arrive ``latency_ms`` later and every stream message
        on time, so that a caller may schedule them without asking (what :meth:`send`,
        :meth:`answer` and :meth:`route` then say, with no draw)."""
        return not self._none.enabled and not any(i.enabled for i in self._injectors())

    def count(self, venue: str, kind: str, n: int = 1) -> None:
        """Record ``n`` faults of ``kind`` the caller injected itself on ``venue``'s link."""
        self.injector(venue).count(kind, n)

    def heal(self) -> list[str]:
        """No more faults; every feed is up. Returns the venues whose feed comes back (sorted)."""
        for injector in self._injectors():
            injector.enabled = False
        self._none.enabled = False
        back = sorted(self.down)
        self.down.clear()
        return back

    # --- commands --------------------------------------------------------------------------------

    def send(self, command: Command, now: int, fate: Fate | None = None) -> Sent:
        """``command`` leaves the bot at ``now``: its fate is drawn (or ``fate`` imposed)."""
        injector = self.injector(getattr(command, "venue", ""))
        if fate is None:
            fate = injector.command_fate()
        if fate is Fate.REST_ERROR:
            at = now + self.latency
            return Sent(fate=fate, arrives_at=None, deliveries=_at(at, failures(command, at)))
        if fate is Fate.TIMEOUT_LOST:
            at = now + injector.plan.timeout_ms
            return Sent(fate=fate, arrives_at=None, deliveries=_at(at, timeouts(command, at)))
        return Sent(fate=fate, arrives_at=now + self.latency)

    def refused(self, command: Command, now: int, reason: str) -> list[Delivery]:
        """The venue cannot take ``command`` at all (no such venue): ``CommandFailed`` for each
        member, ``latency_ms`` after it arrived at ``now``."""
        at = now + self.latency
        return [
            (at, CommandFailed(ts=at, command_id=c.command_id, reason=reason, not_applied=True))
            for c in inner(command)
        ]

    def answer(
        self, sent: Sent, command: Command, events: Sequence[Event], now: int
    ) -> list[Delivery]:
        """The venue acted on ``command`` at ``now`` and said ``events``: what the bot hears
        when. With ``TIMEOUT_APPLIED`` the results are lost: the shell's timeout answers
        ``timeout_ms`` after the command was sent, and only the stream messages arrive."""
        out: list[Delivery] = []
        if sent.fate is Fate.TIMEOUT_APPLIED:
            plan = self.injector(getattr(command, "venue", "")).plan
            at = now - self.latency + plan.timeout_ms
            out.extend(_at(at, timeouts(command, at)))
            events = [e for e in events if getattr(e, "command_id", None) is None]
        out.extend(self.route(events, now, getattr(command, "venue", "")))
        return out

    # --- what the venue says ---------------------------------------------------------------------

    def route(self, events: Iterable[Event], now: int, venue: str) -> list[Delivery]:
        """Deliveries of what ``venue`` said at ``now``: results after ``latency_ms`` (plus a
        drawn delay), funding payments at once, stream messages on time, lost or twice."""
        out: list[Delivery] = []
        latency = self.latency
        injector = self.injector(venue)
        for event in events:
            if getattr(event, "command_id", None) is not None:
                out.append((now + latency + injector.answer_delay(), event))
            elif isinstance(event, FundingPaid):
                # Funding is booked like a statement, not a stream message: never lost.
                out.append((now, event))
            else:
                is_fill = isinstance(event, OrderFilled | OrderPartiallyFilled)
                feed = event.fill.venue if is_fill else getattr(event, "venue", "")  # type: ignore[union-attr]
                for delay in injector.stream_delays(is_fill=is_fill, feed_down=feed in self.down):
                    out.append((now + delay, event))
        return out

    # --- the feed --------------------------------------------------------------------------------

    def tick(self, venue: str, ts: int) -> FeedChange | None:
        """A quote of ``venue`` at ``ts``: its feed comes back when its outage is over, or goes
        down when a disconnect is drawn (once per quote while it is up)."""
        until = self.down.get(venue)
        if until is not None:
            if ts >= until:
                del self.down[venue]
                return FeedChange(venue=venue, up=True)
            return None
        injector = self.injector(venue)
        if injector.disconnect():
            self.down[venue] = ts + injector.plan.disconnect_ms
            return FeedChange(venue=venue, up=False)
        return None

    def force_down(self, venue: str, ts: int, down_ms: int) -> FeedChange:
        """``venue``'s feed goes down at ``ts`` for ``down_ms`` (a test's control, no draw)."""
        self.down[venue] = ts + down_ms
        return FeedChange(venue=venue, up=False)

    def feed_up(self, venue: str) -> bool:
        """Whether ``venue``'s feed is up."""
        return venue not in self.down


def _at(at: int, events: list[Event]) -> tuple[Delivery, ...]:
    return tuple((at, e) for e in events)


def _venue_salt(venue: str) -> int:
    """A stable 64-bit salt from a venue's name (FNV-1a): its fault stream's fork."""
    h = 0xCBF29CE484222325
    for byte in venue.encode():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h
