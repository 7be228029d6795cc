"""The runtime: one reducer task, one channel, the journal before every command.

Theory of operation
-------------------
Venue feeds, command executors, timers and signal handlers are tasks that only *send events*
into one anyio memory channel. One reducer task reads it; it is the only code that calls
``gridcore.step`` and the only writer of the state, so nothing is locked and there is no
check-then-act window (shared balances and positions mutated by many tasks drain margin twice).

The reducer takes every event waiting on the channel (up to ``max_batch``), steps each, and
appends all of them with the commands they produced to the journal in ONE transaction (group
commit). Only after the commit returns does it hand the commands out: an event is durable before
any command it produced is sent, so after a crash the state is a fold of the journal (no torn
state file, no blind re-send after a crash). Events that produced no command owe no durability
to anyone yet; they wait, bounded by ``max_batch`` and ``flush_ms``, for the next commit (a
crash loses at most that many market ticks, which recovery does not need: it reconciles with the
venue).

Group commit of a paper session: when every venue keeps its own state in this journal's
transactions (the in-process simulated venue, ``commits_with``), a command reaches nothing
outside the process before the next commit, and a crash loses its effect on the venue together
with its event. Then commands are handed out as soon as they are reduced and the events commit
in groups (``max_batch`` events, or when the loop is idle for ``flush_ms``), each commit running
behind the reducer (one at a time, in order) while it reduces the next group; groups that wait
meanwhile share the next transaction (one flush to disk; the rows are those of one
transaction per group, so a slow disk changes no byte of the journal). With any other
venue (every real one) each command waits for the commit of its event
(:attr:`Runtime.group_commit`), and the reducer waits for every commit.

Commands, in the order the core emitted them:

* order and request commands (and batches) go to the venue's adapter, at most
  ``max_concurrency`` at once per venue (one ``anyio.CapacityLimiter`` per adapter; the rest wait
  in FIFO order). Each gets exactly one terminal result event per order/request command it
  carries: the venue's answer, ``CommandTimedOut`` after ``command_timeout_ms``, or
  ``CommandFailed`` carrying the exception's text when the adapter raised one of its declared
  errors (:class:`~gridcore.shells.venue.VenueError`, ``not_applied`` only when it says so;
  :class:`~gridcore.shells.venue.TransportError`, outcome unknown). Answers missing from what
  the adapter returned become ``CommandFailed`` with an unknown outcome; duplicates are dropped
  (no failure returned as ``False`` and ignored). Any other exception from an adapter is a bug,
  not a venue failure: it would otherwise trip the core's error breaker and hide. The runtime
  commits the journal, cancels every task, writes the final snapshot and raises
  :class:`~gridcore.shells.venue.AdapterFailed` (the CLI prints it with its traceback).
* ``StartTimer`` / ``CancelTimer`` go to the timer service (timers die with the process; the core
  re-arms its maintenance timer on ``Started``).
* ``Notify`` and ``Halt`` go to the ``on_notice`` callback. Notices never carry secrets: the
  core never holds any.

Time comes from an injectable :class:`Clock`. :class:`WallClock` is the real one.
:class:`LockstepClock` is a simulated clock for the simulated venue: it advances to the next
sleeper only when no work is pending anywhere (every event reduced, every spawned task asleep
on the clock), and wakes sleepers one at a time in the order of an explicit key. Simulated time
therefore never runs ahead of the bot, and a paper session is a deterministic function of its
configuration, seed and fault profile — the same journal under asyncio and under trio, at any
``--speed`` (``speed`` only paces the wakeups against the wall clock). To keep that promise,
every task that uses the clock is started through :meth:`Sink.spawn` (or the runtime's own
spawner), which counts it as work until it sleeps on the clock.

On a lockstep clock the channel is used without anyio's checkpoints where they buy nothing: a
send that fits goes in at once (``send_nowait``; a full channel is awaited as usual), and the
reducer takes what is waiting before it awaits an empty channel. The clock wakes one sleeper at
a time, so the channel's order is decided by the clock, not by when the scheduler switches
tasks, and every event still holds a unit of work from its send until it is reduced (time does
not move, and a shutdown's ``settle`` does not return, while one is in the channel). This
halves the task switches per event of a ``--speed max`` session. Under the wall clock (every
real venue) sends and receives keep their checkpoints: there, stream readers, command tasks and
timers run truly concurrently, and a send is also where a cancelled reader stops.

Shutdown (SIGINT/SIGTERM, ``duration_ms`` or :meth:`Runtime.request_stop`): adapters are told
to stop market data (:meth:`VenueAdapter.quiesce`), optionally the core is asked to cancel every
order (``HaltRequested``), outstanding commands drain for ``drain_grace_ms``, then every task is
cancelled and a final snapshot is written. A second signal skips the drain.

A signal must never cut a shutdown short: a ``KeyboardInterrupt`` raised inside the final
snapshot, the venue's last save or a file's close leaves a traceback and files that depend on
where it struck. So the runtime's signal receiver stays open until the final snapshot is
written (a signal then is queued in it, never raised), and then a
:class:`ShutdownSignals` guard takes over: it ignores SIGINT and SIGTERM, and stays installed
after :meth:`Runtime.run` returns, so that the caller's own shutdown (closing
the venue and the journal) finishes too. A process that goes on after the runtime calls
:meth:`Runtime.release_signals`.

A poison event — one the reducer raises on — is never journaled as applied: a journal holding it
would make every restart fold into the same exception, and a bot that kept going would trade on
a state it could not compute. The runtime commits the events reduced before it (their commands
are not sent: recovery resolves them as in flight), stores the event in the journal's
quarantine, cancels every task, writes the final snapshot and raises :class:`EventRejected`
naming the event's would-be seq and type. A restart folds cleanly and reconciles with the venue;
if the venue's answer is still poison, the bot stops again at the same place with the same
message — never a crash loop, never a silent skip.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import signal
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeAlias, assert_never

import anyio
import anyio.abc
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from gridcore.commands import (
    Batch,
    CancelOrder,
    CancelTimer,
    Command,
    Halt,
    ModifyOrder,
    Notify,
    OrderCommand,
    PlaceOrder,
    RequestBalances,
    RequestCommand,
    RequestFills,
    RequestFunding,
    RequestOpenOrders,
    RequestOrderStatus,
    RequestPositions,
    StartTimer,
)
from gridcore.core import State, step
from gridcore.events import (
    CommandFailed,
    CommandTimedOut,
    Event,
    HaltRequested,
    Started,
    TimerFired,
)
from gridcore.halts import HaltCause
from gridcore.shells.journal import Journal, Reducer, Staged
from gridcore.shells.logs import SessionLog
from gridcore.shells.redact import redact
from gridcore.shells.venue import (
    AdapterFailed,
    ExecCommand,
    TransportError,
    VenueAdapter,
    VenueError,
)

__all__ = [
    "EXIT_HALT_REASON",
    "K_COMMAND",
    "K_DELIVERY",
    "K_FEED",
    "K_RUNTIME",
    "K_TIMER",
    "AdapterFailed",
    "Clock",
    "ClockExecutor",
    "Deadline",
    "EventRejected",
    "ExecCommand",
    "Finish",
    "LockstepClock",
    "Runtime",
    "RuntimeOptions",
    "RuntimeStats",
    "ShutdownSignals",
    "Sink",
    "SleepKey",
    "TransportError",
    "VenueAdapter",
    "VenueError",
    "WallClock",
]

#: Tie-breaker of sleepers due at the same time on a :class:`LockstepClock`: a tuple of ints
#: whose first element is one of the ``K_*`` ranks below. Keys must be unique among sleepers.
SleepKey: TypeAlias = tuple[int, ...]

K_COMMAND = 0
"""``(K_COMMAND, command_id, stage)``: a command's steps (the venue's and the timeout's)."""
K_DELIVERY = 1
"""``(K_DELIVERY, n)``: a delayed venue message."""
K_TIMER = 2
"""``(K_TIMER, command_id)``: a core timer."""
K_FEED = 3
"""``(K_FEED, index)``: a market-data tick."""
K_RUNTIME = 4
"""``(K_RUNTIME, n)``: the runtime's own deadlines (``duration_ms``)."""

EXIT_HALT_REASON = "operator: cancel-on-exit at shutdown"
"""The ``HaltRequested`` reason of a ``cancel_on_exit`` shutdown; the CLI resumes a bot halted
for exactly this reason when it is started again."""

_OUT_OF_BAND = (StartTimer, CancelTimer, Notify, Halt)

Finish: TypeAlias = Callable[[list[Event] | Exception], None]
"""What a command carried on the clock ends with: the adapter's answers, or the exception its
``execute`` would have raised."""
ClockExecutor: TypeAlias = Callable[[ExecCommand, Finish], Callable[[], None]]
"""Carries a command as callbacks of a :class:`LockstepClock` instead of a task (an adapter's
optional ``executor_on_clock()``): it calls ``finish`` once, at the answer's time and turn,
unless the command or its answer is lost; it returns what cancels the steps still to come."""


# --- clocks ------------------------------------------------------------------------------------


class Clock(Protocol):
    """Where the runtime and the adapters get time from (integer ms since the epoch).

    ``hold``/``release`` count pending work for a lockstep clock; a wall clock ignores them.
    """

    def now(self) -> int:
        """The current time, ms."""
        ...

    async def sleep_until(self, ts: int, key: SleepKey) -> None:
        """Return at ``ts`` (``key`` orders sleepers due at the same time)."""
        ...

    async def park(self) -> None:
        """Sleep until cancelled, without holding simulated time back."""
        ...

    def hold(self) -> None:
        """One more unit of pending work."""
        ...

    def release(self) -> None:
        """One unit of pending work is done."""
        ...

    async def run(self) -> None:
        """The clock's own task (a lockstep clock's scheduler); runs until cancelled."""
        ...

    async def settle(self, done: Callable[[], bool], deadline: int) -> None:
        """Return once ``done()`` holds while nothing is pending, or at ``deadline``."""
        ...


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class WallClock:
    """Real time. Timers and timeouts sleep on the event loop's clock."""

    def __init__(self, time_ms: Callable[[], int] = _wall_ms) -> None:
        self._time_ms = time_ms

    def now(self) -> int:
        """Milliseconds since the Unix epoch."""
        return self._time_ms()

    async def sleep_until(self, ts: int, key: SleepKey) -> None:
        """Sleep until ``ts`` (``key`` is ignored)."""
        delay = (ts - self._time_ms()) / 1000
        if delay > 0:
            await anyio.sleep(delay)
        else:
            await anyio.lowlevel.checkpoint()

    async def park(self) -> None:
        """Sleep until cancelled."""
        await anyio.sleep_forever()

    def hold(self) -> None:
        """Nothing to count in real time."""

    def release(self) -> None:
        """Nothing to count in real time."""

    async def run(self) -> None:
        """Real time needs no task."""
        await anyio.sleep_forever()

    async def settle(self, done: Callable[[], bool], deadline: int) -> None:
        """Poll ``done`` every 10 ms until it holds or ``deadline`` passes."""
        while not done() and self._time_ms() < deadline:
            await anyio.sleep(0.01)


class Deadline:
    """A sleeper of a :class:`LockstepClock`: a task's :meth:`LockstepClock.sleep_until` (its
    ``event``), or a callback scheduled with :meth:`LockstepClock.call_at` (its ``fire``),
    which :meth:`cancel` withdraws."""

    __slots__ = ("_clock", "_ident", "dead", "event", "fire", "woken")

    def __init__(
        self,
        clock: LockstepClock,
        ident: tuple[int, SleepKey],
        event: anyio.Event | None,
        fire: Callable[[], None] | None = None,
    ) -> None:
        self._clock = clock
        self._ident = ident
        self.event = event
        self.fire = fire  # a deadline (call_at): called when due instead of waking a task
        self.woken = False
        self.dead = False

    def cancel(self) -> None:
        """Do not call it (idempotent; too late once it was called)."""
        if not self.woken and not self.dead:
            self.dead = True
            self._clock._keys.discard(self._ident)


class LockstepClock:
    """Simulated time that advances only when every piece of pending work is done.

    ``start_ms`` is the simulated time at start. ``speed`` is simulated seconds per wall second
    (``math.inf``: as fast as the bot goes). ``wall`` (seconds, monotonic) is injectable for
    tests. See the module docstring for the contract.
    """

    def __init__(
        self,
        start_ms: int,
        *,
        speed: float = math.inf,
        wall: Callable[[], float] = time.monotonic,
        shared: bool = False,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0 (simulated seconds per wall second), got {speed}")
        self._now = start_ms
        self.speed = speed
        self._wall = wall
        self._heap: list[tuple[int, SleepKey, int, Deadline]] = []
        self._keys: set[tuple[int, SleepKey]] = set()
        self._counter = 0
        self._busy = 0
        self._poke: anyio.Event | None = None
        self._settle: tuple[Callable[[], bool], int, anyio.Event] | None = None
        self.shared = shared
        """Several runtimes (accounts) run on this clock: each one's shutdown ``settle`` is
        answered on its own and time goes on for the others (see :meth:`settle`)."""
        self._settles: list[tuple[Callable[[], bool], int, anyio.Event]] = []
        self._event_cls: Callable[[], anyio.Event] | None = None
        self.wakeups = 0
        """Sleepers woken so far."""

    def now(self) -> int:
        """The simulated time, ms."""
        return self._now

    def _event(self) -> anyio.Event:
        """A new ``anyio.Event`` of the running backend. ``anyio.Event()`` looks the backend up
        on every call; the clock makes one or two per step of simulated time, so it asks once
        per run and then builds the backend's event class directly."""
        if self._event_cls is None:
            event = anyio.Event()
            self._event_cls = type(event)
            return event
        return self._event_cls()

    @property
    def pending(self) -> int:
        """Units of work pending (0 when time may advance)."""
        return self._busy

    def hold(self) -> None:
        """One more unit of pending work: time stands still until it is released."""
        self._busy += 1

    def release(self) -> None:
        """One unit of pending work is done."""
        self._busy -= 1
        if self._busy < 0:
            raise RuntimeError("LockstepClock released more often than held (a runtime bug)")
        if self._busy == 0 and self._poke is not None:
            self._poke.set()

    def release_and_advance(self) -> None:
        """:meth:`release`, and when that leaves nothing pending at ``speed`` max, wake the
        next sleeper right here instead of on the scheduler task's next turn: one task switch
        less per step of simulated time. Only for a caller that does nothing but wait after
        it (the runtime's reducer, between events), so that the scheduler's turn would have
        found exactly what this call finds."""
        self._busy -= 1
        if self._busy < 0:
            raise RuntimeError("LockstepClock released more often than held (a runtime bug)")
        if self._busy == 0 and self._poke is not None and not self._wake_now():
            self._poke.set()

    def _wake_now(self) -> bool:
        """Wake the next sleeper as the scheduler would, when it has nothing else to decide
        (``speed`` max: no pacing; no settle waiting); False when the scheduler must decide."""
        if self.speed != math.inf or self._settle is not None or self._settles:
            return False
        heap = self._heap
        while True:
            while heap and heap[0][3].dead:
                heapq.heappop(heap)
            if not heap:
                return False
            self._wake_next(heap)
            if self._busy:
                return True
            # A deadline's callback that left nothing to do: the next sleeper is due now.

    def _wake_next(self, heap: list[tuple[int, SleepKey, int, Deadline]]) -> None:
        """Pop the earliest sleeper, move the clock to its time and wake it."""
        ts, _, _, sleeper = heapq.heappop(heap)
        self._keys.discard(sleeper._ident)
        if ts > self._now:
            self._now = ts
        sleeper.woken = True
        self.wakeups += 1
        if sleeper.fire is not None:
            sleeper.fire()  # runs here, at its time; it holds what it starts
            return
        self._busy += 1  # the sleeper's unit, held on its behalf before it runs
        assert sleeper.event is not None
        sleeper.event.set()

    async def sleep_until(self, ts: int, key: SleepKey) -> None:
        """Sleep until the scheduler reaches ``ts``; the caller's held unit is released while
        it sleeps and held again (by the scheduler, before it wakes) when it returns."""
        ts = max(ts, self._now)
        ident = (ts, key)
        if ident in self._keys:
            raise RuntimeError(f"two sleepers share key {key} at {ts}: keys must be unique")
        event = self._event()
        sleeper = Deadline(self, ident, event)
        self._keys.add(ident)
        self._counter += 1
        heapq.heappush(self._heap, (ts, key, self._counter, sleeper))
        self.release()
        try:
            await event.wait()
        except BaseException:
            if not sleeper.woken:
                sleeper.dead = True
                self._keys.discard(ident)
                self.hold()
            raise

    def call_at(self, ts: int, key: SleepKey, fire: Callable[[], None]) -> Deadline:
        """Call ``fire()`` when the clock reaches ``ts``, in ``key``'s turn among the sleepers
        due then, as a sleeper woken there would run — without a task: ``fire`` runs inside
        the clock's step and must not block; what it starts (a cancellation) it must count
        with :meth:`hold`. The caller holds nothing for it while it waits."""
        ts = max(ts, self._now)
        ident = (ts, key)
        if ident in self._keys:
            raise RuntimeError(f"two sleepers share key {key} at {ts}: keys must be unique")
        sleeper = Deadline(self, ident, None, fire)
        self._keys.add(ident)
        self._counter += 1
        heapq.heappush(self._heap, (ts, key, self._counter, sleeper))
        return sleeper

    async def park(self) -> None:
        """Sleep until cancelled; simulated time goes on without the caller."""
        self.release()
        try:
            await anyio.sleep_forever()
        finally:
            self.hold()

    async def run(self) -> None:
        """The scheduler: wait for quiescence, pace, wake the next sleeper; repeat."""
        wall0, sim0 = self._wall(), self._now
        heap = self._heap
        self._event_cls = None  # this run's backend
        while True:
            if self._busy:
                self._poke = self._event()
                await self._poke.wait()
                continue
            while heap and heap[0][3].dead:
                heapq.heappop(heap)
            if self._settles and self._answer_settles():
                continue
            if self._settle is not None:
                done, deadline, settled = self._settle
                if done() or not heap or heap[0][0] > deadline:
                    self._settle = None
                    settled.set()
                    await anyio.sleep_forever()
            if not heap:
                self._poke = self._event()
                await self._poke.wait()
                continue
            ts = heap[0][0]
            if self.speed != math.inf:
                delay = wall0 + (ts - sim0) / 1000 / self.speed - self._wall()
                if delay > 0:
                    # Short slices: work arriving from outside (a signal) is noticed promptly.
                    await anyio.sleep(min(delay, 0.05))
                    continue
            self._wake_next(heap)

    def _answer_settles(self) -> bool:
        """Shared clock, nothing pending: wake every settle whose condition holds, each with a
        unit held on its behalf (time waits until its runtime has cancelled its tasks)."""
        heap = self._heap
        waiting: list[tuple[Callable[[], bool], int, anyio.Event]] = []
        woke = False
        for entry in self._settles:
            done, deadline, settled = entry
            if done() or not heap or heap[0][0] > deadline:
                self._busy += 1
                settled.set()
                woke = True
            else:
                waiting.append(entry)
        self._settles = waiting
        return woke

    async def settle(self, done: Callable[[], bool], deadline: int) -> None:
        """Return when, with nothing pending, ``done()`` holds or the next sleeper is due after
        ``deadline``; time then stops advancing. On a ``shared`` clock time goes on for the
        other runtimes: the caller returns holding nothing, and must cancel its own tasks
        before its next checkpoint (the runtime does)."""
        settled = anyio.Event()
        if not self.shared:
            self._settle = (done, deadline, settled)
            if self._poke is not None:
                self._poke.set()
            await settled.wait()
            return
        entry = (done, deadline, settled)
        self._settles.append(entry)
        if self._poke is not None:
            self._poke.set()
        try:
            await settled.wait()
        except BaseException:
            if entry in self._settles:
                self._settles.remove(entry)
                raise
            self.release()  # woken and cancelled at once: the unit held for us
            raise
        self.release()  # the unit the scheduler held for us when it answered


# --- venue adapters ------------------------------------------------------------------------------


class EventRejected(Exception):
    """The reducer raised on an event: the runtime stopped without applying it.

    ``seq`` is the seq the event would have had, ``kind`` its type; the event is in the
    journal's quarantine. The message says what to do.
    """

    def __init__(self, message: str, *, seq: int, kind: str, error: str) -> None:
        super().__init__(message)
        self.seq = seq
        self.kind = kind
        self.error = error


class Sink:
    """What the runtime offers an adapter: send events, start clock-aware tasks, ask to stop."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    @property
    def clock(self) -> Clock:
        """The runtime's clock."""
        return self._runtime.clock

    async def emit(self, event: Event) -> None:
        """Send one event to the reducer (waits when the channel is full)."""
        await self._runtime._send(event)

    def send_now(self, event: Event) -> bool:
        """Send one event to the reducer without waiting: False (nothing sent) when the channel
        is full, then send it with :meth:`emit`. For code that cannot await: a callback that
        the lockstep clock calls at its time (:meth:`LockstepClock.call_at`)."""
        return self._runtime._send_now(event)

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start ``fn(*args)`` in the runtime's task group, counted as work until it sleeps on
        the clock (use this for every task that sleeps on the clock or emits events)."""
        self._runtime._spawn(fn, *args)

    def stop(self, reason: str) -> None:
        """Ask for a graceful stop (the feed ended, for example)."""
        self._runtime.request_stop(reason)


# --- the runtime --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RuntimeOptions:
    """Knobs of the runtime; the defaults suit paper and live trading alike.

    ``max_batch``: most events per transaction. ``snapshot_every``: events between snapshots.
    ``command_timeout_ms``: clock ms before a silent command is ``CommandTimedOut``.
    ``max_concurrency``: commands in flight at once, per venue. ``flush_ms``: wall ms that
    command-free events may wait for a commit. ``drain_grace_ms``: clock ms to drain at shutdown.
    ``offload_commits``: commit in a worker thread so feeds keep flowing meanwhile.
    ``handle_signals``: SIGINT/SIGTERM stop the run (main thread only); from the final snapshot
    on they are ignored, until :meth:`Runtime.release_signals`.
    """

    max_batch: int = 256
    snapshot_every: int = 1_000
    command_timeout_ms: int = 5_000
    max_concurrency: int = 16
    flush_ms: int = 200
    drain_grace_ms: int = 10_000
    cancel_on_exit: bool = False
    handle_signals: bool = True
    offload_commits: bool = True
    channel_size: int = 10_000

    def __attrs_post_init__(self) -> None:
        for name in (
            "max_batch",
            "snapshot_every",
            "command_timeout_ms",
            "max_concurrency",
            "channel_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"RuntimeOptions.{name} must be >= 1, got {getattr(self, name)}")
        if self.flush_ms < 0 or self.drain_grace_ms < 0:
            raise ValueError("RuntimeOptions.flush_ms and drain_grace_ms must be >= 0")


@attrs.define(kw_only=True)
class RuntimeStats:
    """Counters of one run."""

    events: int = 0
    commits: int = 0
    snapshots: int = 0
    commands_sent: int = 0
    timeouts: int = 0
    failures: int = 0
    notices: int = 0
    stop_reason: str = ""
    signals: int = 0
    """SIGINT/SIGTERM received while running (the first one starts the stop)."""
    started_wall: float = attrs.field(factory=time.monotonic)


NoticeHandler: TypeAlias = Callable[[Notify | Halt], None]

#: A group taken for a commit: the events with their commands, the snapshot after them (or
#: ``None``), the venue's staged writes, the log lines to write once it is committed.
_Taken: TypeAlias = tuple[
    list[tuple[Event, list[Command]]], "State[Any] | None", list[Staged], int | None
]
_BEHIND_GROUPS = 4
"""Groups that may wait for the commit running behind the reducer before the reducer waits
too (memory, and what a crash of a paper session may lose, stay bounded)."""

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ShutdownSignals:
    """SIGINT and SIGTERM ignored: what keeps a second Ctrl-C from cutting a shutdown in half.

    :meth:`install` (main thread) sets both to ``SIG_IGN``, a kernel-level disposition: no
    Python code runs for them, so nothing can be raised into the code writing the final
    snapshot, saving the venue or closing a file, and it holds through interpreter exit (where
    Python's own handlers are reset to the default). :meth:`restore` puts the previous handlers
    back. Both are idempotent.
    """

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    @property
    def installed(self) -> bool:
        """Whether the signals are being ignored."""
        return bool(self._previous)

    def install(self) -> None:
        """Ignore SIGINT and SIGTERM from now on (again, if something replaced the handlers
        since; :meth:`restore` still restores the first ones found)."""
        for signum in _STOP_SIGNALS:
            previous = signal.signal(signum, signal.SIG_IGN)
            self._previous.setdefault(signum, previous)

    def restore(self) -> None:
        """Put back the handlers found by :meth:`install`."""
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


class Runtime:
    """Runs one bot: ``state`` (recovered or fresh, already in ``journal`` as its last
    snapshot or fold), the venues' adapters and a clock.

    ``start_events`` are fed right after ``Started`` (the CLI's resume of a cancel-on-exit
    halt). ``on_notice`` receives every ``Notify`` and ``Halt``. ``log`` (optional) observes
    every reduced event and writes its lines once the event is journaled
    (:mod:`gridcore.shells.logs`).
    """

    callbacks_on_clock = True
    """On a :class:`LockstepClock`, core timers and the commands of an adapter that offers
    ``executor_on_clock()`` run as callbacks of the clock, at the times and in the turns of the
    sleeps of the tasks they replace (a task per timer and per command cost more than the rest
    of the runtime's work). ``False``: tasks, as on any other clock (the reference that tests
    compare the callbacks with)."""

    def __init__(
        self,
        *,
        state: State[Any],
        journal: Journal,
        venues: Sequence[VenueAdapter],
        clock: Clock,
        options: RuntimeOptions | None = None,
        reducer: Reducer = step,
        on_notice: NoticeHandler | None = None,
        start_events: Sequence[Event] = (),
        on_stop: Callable[[str], None] | None = None,
        log: SessionLog | None = None,
    ) -> None:
        self.clock = clock
        self._log = log  # log lines derived from reduced events, written once journaled
        self.options = options or RuntimeOptions()
        self.stats = RuntimeStats()
        self._state = state
        self._journal = journal
        self._venues: Mapping[str, VenueAdapter] = {v.name: v for v in venues}
        self._reducer = reducer
        self._on_notice = on_notice
        self._start_events = tuple(start_events)
        self._sink = Sink(self)
        self._pending: list[tuple[Event, list[Command]]] = []
        self._pending_commands = False
        self._committing = 0
        # Grouped: set when the commits running behind the reducer are over (see _commit).
        self._behind: anyio.Event | None = None
        self._queued: list[_Taken] = []  # groups waiting for the commit behind
        # The last seq and the last snapshot's seq of the events taken for commits (committed
        # or queued): where the next group's snapshot falls.
        self._taken_seq = journal.last_seq
        self._taken_snapshot = journal.last_snapshot_seq
        self._outstanding = 0
        # Events handed to the channel and not yet reduced: the shutdown's drain must not end
        # while one is on its way (the cancel-on-exit halt's cancels come from reducing it).
        self._unreduced = 0
        # One limiter and one FIFO queue per venue: a slow venue never starves another.
        self._queues: dict[str, deque[tuple[ExecCommand, object]]] = {
            name: deque() for name in self._venues
        }
        self._timers: dict[str, anyio.CancelScope | _ClockTimer] = {}
        self._stopping = False
        self._hurry = False
        self._on_stop = on_stop
        self.shutdown_signals = ShutdownSignals()
        """Installed once the final snapshot is written, when ``handle_signals`` is set."""
        self.finished = False
        """The run ended with its final snapshot written (set before :meth:`run` hands the
        signals back, so it holds even when a signal interrupts what follows)."""
        self._ran = False
        self._tg: anyio.abc.TaskGroup | None = None
        self._drain_scope: anyio.CancelScope | None = None
        self._stop_event: anyio.Event | None = None
        self._tx: MemoryObjectSendStream[Event | None] | None = None
        self._rx: MemoryObjectReceiveStream[Event | None] | None = None
        self._last_receive = 0.0  # monotonic time of the reducer's last batch (the flusher's)
        self._pending_since: anyio.Event | None = None  # set when events start waiting
        self._limiters: dict[str, anyio.CapacityLimiter] = {}
        # Adapters that carry commands as callbacks of the lockstep clock (no task each).
        self._on_clock: dict[str, ClockExecutor] = {}
        self._rejected: EventRejected | None = None
        self._failed: AdapterFailed | None = None
        # Every venue keeps its state in this journal's commits (the in-process simulated
        # venue): a command may leave before its event is committed (see _reduce_loop).
        self._grouped = bool(self._venues) and all(
            getattr(v, "commits_with", None) is journal for v in self._venues.values()
        )
        self._lockstep = isinstance(clock, LockstepClock)

    @property
    def group_commit(self) -> bool:
        """Whether commands are sent before their events are committed, the commit taking many
        of them at once: only when every venue's own state is written in this journal's
        transactions (``commits_with``, the in-process simulated venue), so that a crash loses
        a command's event and its effect on the venue together. With any other venue (every
        real one) each command waits for the commit of the event that produced it."""
        return self._grouped

    @property
    def state(self) -> State[Any]:
        """The state after the last event reduced."""
        return self._state

    @property
    def backlog(self) -> int:
        """Events handed to the reducer and not yet reduced (waiting in the channel, or taken
        from it and being reduced: their commands are not out yet), plus events reduced but not
        yet committed. Zero with nothing :attr:`outstanding` means only the clock or a venue's
        stream can bring the next event."""
        return self._unreduced + len(self._pending) + self._committing

    @property
    def outstanding(self) -> int:
        """Order/request commands handed out and not yet answered."""
        return self._outstanding

    # --- plumbing ----------------------------------------------------------------------------

    def _spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        assert self._tg is not None, "the runtime is not running"
        clock = self.clock
        clock.hold()

        async def held() -> None:
            try:
                await fn(*args)
            finally:
                clock.release()

        self._tg.start_soon(held)

    async def _send(self, event: Event) -> None:
        assert self._tx is not None, "the runtime is not running"
        event = _redacted(event)
        self.clock.hold()
        self._unreduced += 1
        if self._lockstep:
            # Simulated time: the clock wakes one sender at a time, so the channel's order does
            # not depend on the scheduler and the send needs no checkpoint of its own (one task
            # switch less per event). A full channel waits below, as any send does.
            try:
                self._tx.send_nowait(event)
                return
            except anyio.WouldBlock:
                pass
            except BaseException:
                self._unreduced -= 1
                self.clock.release()
                raise
        try:
            await self._tx.send(event)
        except BaseException:
            self._unreduced -= 1
            self.clock.release()
            raise

    def _send_now(self, event: Event) -> bool:
        assert self._tx is not None, "the runtime is not running"
        event = _redacted(event)
        self.clock.hold()
        self._unreduced += 1
        try:
            self._tx.send_nowait(event)
        except BaseException as exc:
            self._unreduced -= 1
            self.clock.release()
            if isinstance(exc, anyio.WouldBlock):
                return False
            raise
        return True

    async def emit(self, event: Event) -> None:
        """Feed one event (an operator request, for example) to the running bot."""
        await self._send(event)

    @property
    def stopping(self) -> bool:
        """Whether a shutdown has begun."""
        return self._stopping

    def hurry(self) -> None:
        """Stop waiting for outstanding commands (a second signal): the shutdown goes straight
        to the final snapshot. Used by a caller that handles the signals itself."""
        self._hurry = True
        if self._drain_scope is not None:
            self._drain_scope.cancel()

    def release_signals(self) -> None:
        """Give SIGINT and SIGTERM back to the handlers they had before :meth:`run` (a process
        that goes on after the runtime; the CLI's process simply exits)."""
        self.shutdown_signals.restore()

    def request_stop(self, reason: str) -> None:
        """Begin a graceful shutdown (idempotent). ``on_stop`` hears the reason once."""
        if self._stopping or self._stop_event is None:
            return
        self._stopping = True
        self.stats.stop_reason = reason
        if self._on_stop is not None:
            self._on_stop(reason)
        # Held until the shutdown sequence has told the adapters and the core, so that a
        # lockstep clock does not advance meanwhile.
        self.clock.hold()
        self._stop_event.set()

    # --- the run -----------------------------------------------------------------------------

    async def run(self, *, duration_ms: int | None = None) -> State[Any]:
        """Run until stopped (signal, ``duration_ms`` of clock time, a feed ending, or
        :meth:`request_stop`); returns the final state, journaled with a final snapshot.
        Raises :class:`EventRejected` (after the final snapshot) when the reducer raised on an
        event, and :class:`AdapterFailed` (after the final snapshot) when an adapter raised
        outside its declared errors. Exceptions from any other task propagate (after which
        nothing more is written)."""
        if self._ran:
            raise RuntimeError("a Runtime runs once; build a new one to run again")
        self._ran = True
        tx, rx = anyio.create_memory_object_stream[Event | None](self.options.channel_size)
        self._tx, self._rx = tx, rx
        self._limiters = {
            name: anyio.CapacityLimiter(self.options.max_concurrency) for name in self._venues
        }
        self._on_clock = {}
        if self._lockstep and self.callbacks_on_clock:
            for name, adapter in self._venues.items():
                offer = getattr(adapter, "executor_on_clock", None)
                executor = None if offer is None else offer()
                if executor is not None:
                    self._on_clock[name] = executor
        self._stop_event = anyio.Event()
        if self.options.handle_signals:
            # The receiver puts back, on closing, the handlers it found, and trio re-raises
            # there the signals still queued in it: let those be "ignore", not a
            # KeyboardInterrupt after the final snapshot. Until it opens, a few statements on,
            # signals are ignored.
            self.shutdown_signals.install()
        receiver = (
            anyio.open_signal_receiver(*_STOP_SIGNALS)
            if self.options.handle_signals
            else contextlib.nullcontext()
        )
        try:
            # The receiver outlives the task group: a signal during the final snapshot is
            # queued in it, never raised into the journal's write.
            with receiver as signals:
                await self._run(tx, rx, signals, duration_ms)
                self._final_flush()
                # From here a signal can only cut short what follows the final snapshot (the
                # receiver's closing hands the signals back for an instant): the caller reads
                # this to report such a stop as finished, not as a run cut in the middle.
                self.finished = True
        finally:
            if self.options.handle_signals and self._stopping:
                # The receiver's handlers are gone (asyncio leaves Python's default, which
                # raises KeyboardInterrupt): ignore signals from here, through the caller's own
                # closing of the venue and the journal.
                self.shutdown_signals.install()
            elif self.options.handle_signals:
                self.shutdown_signals.restore()  # a crash: signals work as before the run
        if self._rejected is not None:
            raise self._rejected
        if self._failed is not None:
            raise self._failed
        return self._state

    async def _run(
        self,
        tx: MemoryObjectSendStream[Event | None],
        rx: MemoryObjectReceiveStream[Event | None],
        signals: AsyncIterator[int] | None,
        duration_ms: int | None,
    ) -> None:
        assert self._stop_event is not None
        async with tx, rx, anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._reduce_loop)
            if self.options.flush_ms > 0:
                tg.start_soon(self._flusher)
            if signals is not None:
                tg.start_soon(self._signals, signals)
            await self._send(Started(ts=self.clock.now()))
            for event in self._start_events:
                await self._send(event)
            for adapter in self._venues.values():
                self._spawn(self._feed, adapter)
            if duration_ms is not None:
                self._spawn(self._stop_at, self.clock.now() + duration_ms)
            tg.start_soon(self.clock.run)
            await self._stop_event.wait()
            for adapter in self._venues.values():
                adapter.quiesce()
            if self.options.cancel_on_exit:
                await self._send(
                    HaltRequested(
                        ts=self.clock.now(), reason=EXIT_HALT_REASON, cause=HaltCause.EXIT_CANCEL
                    )
                )
            self.clock.release()  # the unit request_stop held
            with anyio.CancelScope() as self._drain_scope:
                if self._hurry:  # a second signal came before the drain began
                    self._drain_scope.cancel()
                await self.clock.settle(
                    self._drained, self.clock.now() + self.options.drain_grace_ms
                )
            if self._behind is not None:
                # The groups taken for commits behind the reducer commit as they were taken
                # (cancelled, they would be put back and committed with the final snapshot:
                # the same events, but not the snapshots they took).
                await self._behind.wait()
            tg.cancel_scope.cancel()

    def _drained(self) -> bool:
        # Nothing on its way to the reducer either: a wall clock's settle polls this without
        # knowing what is pending, and the halt just sent may still be in the channel.
        return self._outstanding == 0 and not self._pending_commands and self._unreduced == 0

    async def _feed(self, adapter: VenueAdapter) -> None:
        try:
            await adapter.run(self._sink)
        except Exception as exc:
            # Venue data never raises (it becomes MessageMalformed): this is a bug.
            self._adapter_bug(adapter, "run()", exc)
            return
        self.request_stop(f"{adapter.name}: feed ended")

    def _adapter_bug(self, adapter: VenueAdapter, call: str, exc: Exception) -> None:
        """An adapter raised outside its declared vocabulary: commit the journal and stop with
        :class:`AdapterFailed` (never a ``CommandFailed`` that would trip the core's error
        breaker and hide the bug)."""
        assert self._tg is not None
        if self._failed is None:
            self.stats.stop_reason = f"{adapter.name}: adapter bug in {call}"
            self._failed = AdapterFailed(
                redact(
                    f"venue adapter {adapter.name!r}: {call} raised {type(exc).__name__}: {exc}; "
                    f"an adapter may raise only VenueError or TransportError, so this is a bug "
                    f"in the adapter (its traceback comes with this error). The journal is "
                    f"committed; starting "
                    f"again reconciles with the venue"
                ),
                venue=adapter.name,
            )
            self._failed.__cause__ = exc
        self._tg.cancel_scope.cancel()

    async def _stop_at(self, deadline: int) -> None:
        await self.clock.sleep_until(deadline, (K_RUNTIME, 0))
        self.request_stop("duration reached")

    async def _signals(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            self.stats.signals += 1
            if not self._stopping:
                self.request_stop(f"signal {signal.Signals(signum).name}")
            else:  # a second signal: stop draining now
                self.hurry()

    def _final_flush(self) -> None:
        journal = self._journal
        if self._pending:
            journal.append(self._pending, snapshot=self._state)
            self._pending = []
            if self._log is not None:
                self._log.flush()
            self.stats.commits += 1
            self.stats.snapshots += 1
        elif journal.last_snapshot_seq != journal.last_seq:
            journal.write_snapshot(journal.last_seq, self._state)
            self.stats.snapshots += 1
        else:
            journal.commit_staged()  # the venue's last effects (grouped), if any

    # --- the reducer ---------------------------------------------------------------------------

    async def _flusher(self) -> None:
        """Commit events that produced no command once ``flush_ms`` of wall time passed without
        a new event (a ``None`` in the channel asks the reducer to). One long-lived task
        instead of a timeout around every receive, which cost more than reducing a quote."""
        assert self._tx is not None
        tx = self._tx
        flush_s = self.options.flush_ms / 1000
        while True:
            if not self._pending:
                self._pending_since = anyio.Event()
                await self._pending_since.wait()
            idle = time.monotonic() - self._last_receive
            if idle < flush_s:
                await anyio.sleep(flush_s - idle)
                continue
            if self._pending:
                try:
                    tx.send_nowait(None)
                except anyio.WouldBlock:
                    pass  # the channel is full: the reducer is busy and commits soon anyway
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return
                # Until the reducer has taken it: no second request.
                await anyio.sleep(flush_s)

    async def _reduce_loop(self) -> None:
        assert self._rx is not None
        rx = self._rx
        max_batch = self.options.max_batch
        flush_s = self.options.flush_ms / 1000
        reducer = self._reducer
        clock = self.clock
        lockstep = clock if isinstance(clock, LockstepClock) else None
        monotonic = time.monotonic
        grouped = self._grouped
        while True:
            first: Event | None = None
            waiting = False
            if lockstep is not None and self._unreduced:
                # Simulated time: what is waiting is taken without a checkpoint (one task
                # switch less per event); an empty channel is awaited below, whose checkpoint
                # lets the sender just woken run first.
                try:
                    first = rx.receive_nowait()
                    waiting = True
                except anyio.WouldBlock:
                    pass
            if waiting:
                pass
            elif flush_s > 0 or not self._pending:
                first = await rx.receive()  # None: the flusher asks for a commit
            else:  # flush_ms 0: commit as soon as nothing is waiting
                with anyio.move_on_after(0):
                    first = await rx.receive()
            flush = first is None
            batch: list[Event] = [] if first is None else [first]
            # On a lockstep clock every event sent and not yet reduced is in the channel (or a
            # sender waits there): no receive that could only raise WouldBlock (a flusher's
            # None left behind is taken first in the next turn).
            while len(batch) < max_batch and (lockstep is None or self._unreduced > len(batch)):
                try:
                    item = rx.receive_nowait()
                except anyio.WouldBlock:
                    break
                if item is None:
                    flush = True
                else:
                    batch.append(item)
            if not batch:
                if flush and self._pending:
                    await self._commit(behind=grouped)
                continue
            self._last_receive = monotonic()
            try:
                state = self._state
                pending = self._pending
                if not pending and self._pending_since is not None:
                    self._pending_since.set()
                for index, event in enumerate(batch):
                    before = state
                    try:
                        state, commands = reducer(state, event)
                    except Exception as exc:
                        # A poison event: stop with it unapplied (see the module docstring).
                        self._state = state
                        self.stats.events += index
                        await self._reject(event, exc)
                        return
                    pending.append((event, commands))
                    if self._log is not None:
                        self._log.observe(before, event, state, commands)
                    if commands:
                        self._pending_commands = True
                self._state = state
                self.stats.events += len(batch)
                if grouped and self._pending_commands:
                    # The venue is in the journal's commits: nothing outside this process sees
                    # these commands before the next commit, and a crash loses their effects
                    # with their events. They go now; the events commit with the group.
                    self._pending_commands = False
                    for _, commands in pending[len(pending) - len(batch) :]:
                        for command in commands:
                            self._dispatch(command)
                if self._pending_commands or len(pending) >= max_batch or flush:
                    await self._commit(behind=grouped)
            finally:
                self._unreduced -= len(batch)
                for _ in range(len(batch) - 1):
                    clock.release()
                if lockstep is not None:
                    lockstep.release_and_advance()
                else:
                    clock.release()

    async def _reject(self, event: Event, exc: Exception) -> None:
        """Commit what came before ``event`` (sending nothing), quarantine ``event``, stop."""
        assert self._tg is not None
        if self._pending or self._behind is not None:
            await self._commit(dispatch=False)  # after the commit behind, if one runs
        error = f"{type(exc).__name__}: {exc}"
        seq = self._journal.quarantine(event, error)
        kind = type(event).__name__
        self.stats.stop_reason = f"event {seq} ({kind}) rejected by the reducer"
        self._rejected = EventRejected(
            f"{self._journal.path}: event {seq} ({kind}, ts {event.ts}) made the reducer raise "
            f"{error}; the bot stopped without applying it (events before it are journaled; "
            f"it is kept in the journal's quarantine, `gridcore inspect` lists it). Report it "
            f"with the journal. Starting again reconciles with the venue; if the venue still "
            f"sends it, the bot stops here again instead of trading on a state it cannot compute",
            seq=seq,
            kind=kind,
            error=error,
        )
        self._tg.cancel_scope.cancel()

    async def _commit(self, *, dispatch: bool = True, behind: bool = False) -> None:
        """Commit the pending events (with the venue's staged writes and, when due, a
        snapshot) in one transaction; then, unless grouped, send their commands.

        ``behind`` (grouped only): the group is committed by a task of its own while the
        reducer goes on, so that the disk's flush overlaps the reducing of the next groups
        instead of stopping the bot. Its content is taken here all the same (the entries, the
        venue's writes staged for exactly those events, the state after the last of them), so
        the rows written are the same however the commits fall behind. The groups commit in
        order; those that wait while a transaction is in its thread go together in the next
        one (:meth:`Journal.append_groups`: one flush to disk for all, the same rows), and the
        reducer waits once ``_BEHIND_GROUPS`` of them wait. A crash loses at most the groups
        not yet committed, with the venue's effects of the events in them (their commands
        reached nothing outside the process)."""
        offload = behind and self.options.offload_commits and self._tg is not None
        if self._behind is not None and not offload:
            await self._behind.wait()
        if not self._pending:
            return  # the commit behind took what was pending (and put nothing back)
        entries, self._pending = self._pending, []
        journal = self._journal
        snapshot = None
        if self._taken_seq + len(entries) - self._taken_snapshot >= self.options.snapshot_every:
            snapshot = self._state
        self._taken_seq += len(entries)
        if snapshot is not None:
            self._taken_snapshot = self._taken_seq
        self._committing += len(entries)
        # Taken here, in the loop's thread, at the same instant as the entries: the venue's
        # writes in this transaction are exactly its effects of the events in it.
        staged = journal.take_staged()
        # The log lines of these events, and of none reduced after them, go once committed.
        lines = None if self._log is None else self._log.noted
        if offload:
            assert self._tg is not None
            self._queued.append((entries, snapshot, staged, lines))
            if self._behind is None:
                done = self._behind = anyio.Event()
                self._tg.start_soon(self._commit_behind, done)
            if len(self._queued) >= _BEHIND_GROUPS:
                await self._behind.wait()
            else:
                # One turn of the event loop: the commit task starts this group's transaction
                # (or, if one is still in its thread, takes it in the next) now, instead of
                # when the reducer next waits, which on a lockstep clock may be never.
                await anyio.lowlevel.checkpoint()
            return
        await self._append(entries, snapshot, staged, lines)
        self._pending_commands = False
        if not dispatch or self._grouped:  # grouped: they left when reduced
            return
        # Durable: now, and only now, the commands leave, in the order the core emitted them.
        for _, commands in entries:
            for command in commands:
                self._dispatch(command)

    def _put_back(self, groups: Sequence[_Taken]) -> None:
        """Groups whose commit did not happen (cancelled before its thread ran, or failed):
        their events are pending again, ahead of any reduced since, so that the final
        snapshot never describes events the journal lacks, and the venue's writes are staged
        again with them, ahead of any staged since."""
        journal = self._journal
        self._pending[:0] = [entry for group in groups for entry in group[0]]
        journal.restage([write for group in groups for write in group[2]])
        self._committing = 0
        self._taken_seq, self._taken_snapshot = journal.last_seq, journal.last_snapshot_seq

    def _committed(self, groups: Sequence[_Taken]) -> None:
        self._committing -= sum(len(group[0]) for group in groups)
        self.stats.commits += 1
        self.stats.snapshots += sum(1 for group in groups if group[1] is not None)
        if self._log is not None:
            self._log.flush(groups[-1][3])

    async def _commit_behind(self, done: anyio.Event) -> None:
        """Commit the groups :meth:`_commit` queued, in order, all those waiting in each
        transaction, until none waits (``done``: set then)."""
        journal = self._journal
        try:
            while self._queued:
                groups, self._queued = self._queued, []
                committed = False

                def append(groups: list[_Taken] = groups) -> None:
                    nonlocal committed
                    if len(groups) == 1:
                        entries, snapshot, staged, _ = groups[0]
                        journal.append(entries, snapshot=snapshot, staged=staged)
                    else:
                        journal.append_groups([(g[0], g[1], g[2]) for g in groups])
                    committed = True

                try:
                    await anyio.to_thread.run_sync(append)
                except BaseException:
                    if committed:
                        self._committed(groups)
                    else:
                        self._put_back([*groups, *self._queued])
                        self._queued = []
                    raise
                self._committed(groups)
        finally:
            self._behind = None
            done.set()

    async def _append(
        self,
        entries: list[tuple[Event, list[Command]]],
        snapshot: State[Any] | None,
        staged: list[Staged],
        lines: int | None,
    ) -> None:
        """Append one group taken by :meth:`_commit`, the reducer waiting for it."""
        journal = self._journal
        committed = False

        def append() -> None:
            nonlocal committed
            journal.append(entries, snapshot=snapshot, staged=staged)
            committed = True

        group: _Taken = (entries, snapshot, staged, lines)
        try:
            if self.options.offload_commits:
                await anyio.to_thread.run_sync(append)
            else:
                append()
        except BaseException:
            if committed:
                self._committed([group])
            else:
                # Cancelled at the thread's own checkpoint, before it ran (or the append
                # failed).
                self._put_back([group])
            raise
        self._committed([group])

    def _dispatch(self, command: Command) -> None:
        match command:
            case StartTimer():
                self._start_timer(command)
            case CancelTimer():
                self._cancel_timer(command.timer_id)
            case Notify() | Halt():
                self.stats.notices += 1
                if self._on_notice is not None:
                    self._on_notice(command)
            case (
                Batch()
                | PlaceOrder()
                | CancelOrder()
                | ModifyOrder()
                | RequestPositions()
                | RequestBalances()
                | RequestOpenOrders()
                | RequestFills()
                | RequestOrderStatus()
                | RequestFunding()
            ):
                self._submit(command)
            case _:
                assert_never(command)

    # --- timers --------------------------------------------------------------------------------

    def _cancel_timer(self, timer_id: str) -> None:
        timer = self._timers.pop(timer_id, None)
        if isinstance(timer, _ClockTimer):
            timer.cancel()
        elif timer is not None:
            # The timer's task is asleep on the clock: hold a unit for it until it has woken
            # from the cancellation (it releases it), so time cannot move in between.
            self.clock.hold()
            timer.cancel()

    def _start_timer(self, command: StartTimer) -> None:
        self._cancel_timer(command.timer_id)  # starting an id again replaces it
        clock = self.clock
        if isinstance(clock, LockstepClock) and self.callbacks_on_clock:
            # A callback of the clock at the time and in the turn of the task's sleep.
            timer = _ClockTimer(self, clock, command)
            self._timers[command.timer_id] = timer
            timer.arm()
            return
        scope = anyio.CancelScope()
        self._timers[command.timer_id] = scope
        self._spawn(self._timer, command, scope)

    async def _timer(self, command: StartTimer, scope: anyio.CancelScope) -> None:
        fire_at = command.fire_at
        every = command.every_ms
        try:
            await self._timer_loop(command, scope, fire_at, every)
        finally:
            if scope.cancel_called:
                self.clock.release()  # the unit _cancel_timer held for us

    async def _timer_loop(
        self, command: StartTimer, scope: anyio.CancelScope, fire_at: int, every: int | None
    ) -> None:
        with scope:
            while True:
                await self.clock.sleep_until(fire_at, (K_TIMER, command.command_id))
                if not every and self._timers.get(command.timer_id) is scope:
                    # One-shot: forget it first, so that a restart of the id while the event is
                    # on its way does not cancel the delivery.
                    del self._timers[command.timer_id]
                await self._send(
                    TimerFired(ts=max(self.clock.now(), fire_at), timer_id=command.timer_id)
                )
                if not every:
                    return
                fire_at += every  # periodic: on its own schedule, like the backtest runner

    # --- commands ------------------------------------------------------------------------------

    def _submit(self, command: ExecCommand) -> None:
        self._outstanding += 1
        adapter = self._venues.get(command.venue)
        if adapter is None:
            self._spawn(self._refuse, command)
            return
        token = object()
        try:
            self._limiters[adapter.name].acquire_on_behalf_of_nowait(token)
        except anyio.WouldBlock:
            self._queues[adapter.name].append((command, token))
            return
        self._start(adapter, command, token)

    def _start(self, adapter: VenueAdapter, command: ExecCommand, token: object) -> None:
        executor = self._on_clock.get(adapter.name)
        if executor is None:
            self._spawn(self._execute, adapter, command, token)
        else:
            self._execute_on_clock(adapter, executor, command, token)

    async def _refuse(self, command: ExecCommand) -> None:
        try:
            reason = f"no venue adapter for {command.venue!r}; configured: {sorted(self._venues)}"
            for inner in _inner(command):
                await self._send(
                    CommandFailed(
                        ts=self.clock.now(),
                        command_id=inner.command_id,
                        reason=reason,
                        not_applied=True,
                    )
                )
        finally:
            self._outstanding -= 1

    async def _execute(self, adapter: VenueAdapter, command: ExecCommand, token: object) -> None:
        limiter = self._limiters[adapter.name]
        try:
            self.stats.commands_sent += 1
            for event in await self._call(adapter, command):
                await self._send(event)
        finally:
            limiter.release_on_behalf_of(token)
            self._outstanding -= 1
            self._next_queued(adapter)

    def _next_queued(self, adapter: VenueAdapter) -> None:
        """A command of ``adapter`` is over: start the first one waiting for its place."""
        queue = self._queues[adapter.name]
        if queue:
            queued, queued_token = queue.popleft()
            self._limiters[adapter.name].acquire_on_behalf_of_nowait(queued_token)
            self._start(adapter, queued, queued_token)

    def _execute_on_clock(
        self, adapter: VenueAdapter, executor: ClockExecutor, command: ExecCommand, token: object
    ) -> None:
        """:meth:`_execute` without a task, on a lockstep clock: the adapter's steps and the
        timeout are callbacks of the clock at the times and in the turns the task's sleeps
        would have (the timeout's as in :meth:`_call_lockstep`), so the same events reach the
        channel in the same order; the results go out with :meth:`_send_now`, or, when the
        channel is full, from a task in their order."""
        clock = self.clock
        assert isinstance(clock, LockstepClock)
        self.stats.commands_sent += 1
        over = False
        cancel_steps: Callable[[], None] | None = None

        def finish(outcome: list[Event] | Exception | None, timed_out: bool = False) -> None:
            nonlocal over
            if over:
                return
            over = True
            deadline.cancel()
            events = self._outcome(adapter, command, outcome, timed_out)
            for i, event in enumerate(events):
                if not self._send_now(event):
                    self._spawn(self._send_each, events[i:])
                    break
            self._limiters[adapter.name].release_on_behalf_of(token)
            self._outstanding -= 1
            self._next_queued(adapter)

        def expire() -> None:
            if cancel_steps is not None:
                cancel_steps()
            finish(None, timed_out=True)

        deadline = clock.call_at(
            clock.now() + self.options.command_timeout_ms,
            (K_COMMAND, command.command_id, 9),
            expire,
        )
        try:
            cancel_steps = executor(command, finish)
        except Exception as exc:
            finish(exc)

    async def _send_each(self, events: Sequence[Event]) -> None:
        for event in events:
            await self._send(event)

    async def _call(self, adapter: VenueAdapter, command: ExecCommand) -> list[Event]:
        clock = self.clock
        if isinstance(clock, LockstepClock):
            return await self._call_lockstep(clock, adapter, command)
        deadline = clock.now() + self.options.command_timeout_ms
        outcome: list[Event] | Exception | None = None
        timed_out = False
        async with anyio.create_task_group() as tg:

            async def watchdog() -> None:
                nonlocal timed_out
                await clock.sleep_until(deadline, (K_COMMAND, command.command_id, 9))
                timed_out = True
                # The adapter may be asleep on the clock: hold a unit for it until it has woken
                # from the cancellation (released below), so time cannot move in between.
                clock.hold()
                tg.cancel_scope.cancel()

            started = False

            async def held_watchdog() -> None:
                nonlocal started
                started = True
                try:
                    await watchdog()
                finally:
                    clock.release()

            clock.hold()
            tg.start_soon(held_watchdog)
            try:
                outcome = list(await adapter.execute(command))
            except Exception as exc:
                outcome = exc
            tg.cancel_scope.cancel()
        if not started:
            # Cancelled before it ran (asyncio never runs such a task): its unit is ours to free.
            clock.release()
        if timed_out:
            clock.release()  # the unit the watchdog held for us
        return self._outcome(adapter, command, outcome, timed_out)

    async def _call_lockstep(
        self, clock: LockstepClock, adapter: VenueAdapter, command: ExecCommand
    ) -> list[Event]:
        """:meth:`_call` on simulated time: the timeout is a deadline on the clock (same time,
        same turn as the watchdog task it replaces) instead of a task and a task group per
        command."""
        outcome: list[Event] | Exception | None = None
        timed_out = False
        scope = anyio.CancelScope()

        def expire() -> None:
            nonlocal timed_out
            timed_out = True
            # The adapter is asleep on the clock: hold a unit for it until it has woken from
            # the cancellation (released below), so time cannot move in between.
            clock.hold()
            scope.cancel()

        deadline = clock.call_at(
            clock.now() + self.options.command_timeout_ms,
            (K_COMMAND, command.command_id, 9),
            expire,
        )
        try:
            with scope:
                try:
                    outcome = list(await adapter.execute(command))
                except Exception as exc:
                    outcome = exc
        finally:
            deadline.cancel()
        if timed_out:
            clock.release()  # the unit expire held for us
        return self._outcome(adapter, command, outcome, timed_out)

    def _outcome(
        self,
        adapter: VenueAdapter,
        command: ExecCommand,
        outcome: list[Event] | Exception | None,
        timed_out: bool,
    ) -> list[Event]:
        if isinstance(outcome, Exception) and not isinstance(outcome, VenueError | TransportError):
            call = f"execute({type(command).__name__} {command.command_id})"
            self._adapter_bug(adapter, call, outcome)
            return []
        return self._results(command, outcome, timed_out)

    def _results(
        self, command: ExecCommand, outcome: list[Event] | Exception | None, timed_out: bool
    ) -> list[Event]:
        """Exactly one terminal result per inner command, whatever the adapter did."""
        now = self.clock.now()
        inner = _inner(command)
        if outcome is None or isinstance(outcome, Exception):
            if isinstance(outcome, Exception):
                self.stats.failures += 1
                # Only VenueError / TransportError get here (anything else stopped the bot).
                # An exception message can carry a credential (a request URL, a header).
                reason = redact(f"{type(outcome).__name__}: {outcome}")
                not_applied = isinstance(outcome, VenueError) and outcome.not_applied
                return [
                    CommandFailed(
                        ts=now, command_id=c.command_id, reason=reason, not_applied=not_applied
                    )
                    for c in inner
                ]
            assert timed_out
            self.stats.timeouts += 1
            return [CommandTimedOut(ts=now, command_id=c.command_id) for c in inner]
        wanted = {c.command_id for c in inner}
        answered: set[int] = set()
        out: list[Event] = []
        for event in outcome:
            cid = getattr(event, "command_id", None)
            if cid is None:
                out.append(event)  # a stream-like message the answer carried (a fill)
            elif cid in wanted and cid not in answered:
                answered.add(cid)
                out.append(event)
            # else: a second answer, or one for another command: exactly one result each.
        for c in inner:
            if c.command_id not in answered:
                out.append(
                    CommandFailed(
                        ts=now,
                        command_id=c.command_id,
                        reason=f"{command.venue}: the venue's answer did not mention this command",
                    )
                )
        return out


class _ClockTimer:
    """A core timer on a lockstep clock: what :meth:`Runtime._timer_loop` does after each of
    its sleeps, as a callback of the clock at that sleep's time and key (no task)."""

    __slots__ = ("clock", "command", "deadline", "fire_at", "runtime")

    def __init__(self, runtime: Runtime, clock: LockstepClock, command: StartTimer) -> None:
        self.runtime = runtime
        self.clock = clock
        self.command = command
        self.fire_at = command.fire_at
        self.deadline: Deadline | None = None

    def arm(self) -> None:
        self.deadline = self.clock.call_at(
            self.fire_at, (K_TIMER, self.command.command_id), self.fire
        )

    def cancel(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def fire(self) -> None:
        self.deadline = None
        command, runtime = self.command, self.runtime
        every = command.every_ms
        timers = runtime._timers
        if not every and timers.get(command.timer_id) is self:
            # One-shot: forget it first (as the task does).
            del timers[command.timer_id]
        fired = TimerFired(ts=max(self.clock.now(), self.fire_at), timer_id=command.timer_id)
        if not runtime._send_now(fired):
            runtime._spawn(runtime._send_each, (fired,))  # a full channel: it waits its turn
        if every:
            self.fire_at += every  # periodic: on its own schedule, like the backtest runner
            self.arm()


def _redacted(event: Event) -> Event:
    """``event`` with its free text from the venue (``reason``, ``detail``) redacted: it is
    journaled for good and shown to the operator, and must never carry a secret."""
    for field in ("reason", "detail"):
        text = getattr(event, field, None)
        if text:
            clean = redact(text)
            if clean != text:
                changed: Any = event
                event = attrs.evolve(changed, **{field: clean})
    return event


def _inner(command: ExecCommand) -> tuple[OrderCommand | RequestCommand, ...]:
    if type(command) is Batch:
        return command.commands
    return (command,)  # type: ignore[return-value]
