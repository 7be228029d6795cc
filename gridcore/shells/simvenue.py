"""The simulated venue adapter: the exchange model, a synthetic market, latency and faults.

Theory of operation
-------------------
:class:`SimVenue` implements :class:`~gridcore.shells.runtime.VenueAdapter` over
:class:`gridcore.sim.SimExchange` and the seeded market of :func:`gridcore.sim.make_path`,
on a :class:`~gridcore.shells.runtime.LockstepClock` (simulated time; ``speed`` simulated seconds per wall
second). It behaves like the backtest runner (:mod:`gridcore.sim.backtest`), in real tasks:

* what crosses between the bot and the venue, and when, is decided by the same pure link model
  as the backtest's (:class:`gridcore.sim.link.Link`, over the venue's
  :class:`gridcore.sim.FaultInjector`); this shell only waits, on the lockstep clock, until
  each delivery's time and sends it;
* the feed waits until each tick's time, lets the exchange match it, sends the stream
  messages that produced (fills first, then the quote, as the backtest does) and lets the link
  draw the feed's disconnects: while the feed is down quotes and stream messages are lost, then
  ``FeedReconnected`` arrives. On the lockstep clock each tick is a callback the clock calls in
  the tick's turn (no task is woken per tick: a quiet tick costs no task switch); on any other
  clock a feed task sleeps until each tick;
* a command's fate — delivered, failed before the venue saw it, lost, or applied with the
  answer lost — is drawn when it reaches the venue, ``latency_ms`` after it was sent; its answers
  come back ``latency_ms`` (plus a drawn delay, each) later, returned together when the last is
  due; each stream message is on time, lost, or duplicated. A lost answer is left to the
  runtime's timeout, as it would be with a real venue. Every draw happens at a point of
  simulated time the lockstep clock orders, so a seed replays the same faults.

The simulated venue stands for an external exchange, so it must survive the bot: its state
(the exchange with its resting orders, positions and fills, the fault injector, the market's
position, the clock, and how many times each client order id was received) is stored and read
back when ``gridcore run`` starts again, so a killed and restarted bot continues against the
same venue. Messages in flight when the bot died are lost, as on a closed connection. Two homes
(:class:`VenueStore`):

* **in the journal** (``gridcore run`` on paper): the ``venue`` and ``venue_log`` tables of the
  journal itself for the one venue of a session, or each venue's rows of the ``venues`` and
  ``venues_log`` tables (keyed by the venue's name) for the two venues of a funding arbitrage;
  written in the journal's own transactions (staged at every commit: one row per venue of
  what it applied since the last one). The venues' state and the events that caused it are
  durable together or not at all, which lets the runtime send commands before their events
  commit and commit many events at once (``commits_with``);
* **its own file** ``JOURNAL.venue`` (and ``JOURNAL.<venue_b>.venue``; journals written before
  the venues moved into the journal keep resuming on them): written in its own transaction
  after every change and *before* the venue answers; the runtime then commits every command's
  event before sending it, as for a real venue.

The state is the simulation's private state and is pickled (standard library): never load a
``.venue`` file or a journal you did not write.

The store is a base snapshot plus an append-only log. Each write appends one row: the operations
the exchange applied since the previous write (the ticks it matched, the commands it handled,
each with its time) and the small rest of the state (the fault injector, the clock, the
market's position). Reading the file unpickles the snapshot and applies the rows in order: the
exchange model is deterministic, so the same operations rebuild exactly the state that was
written. Every ``_COMPACT_EVERY`` rows (or ``_COMPACT_OPS`` operations) the whole state is
written again as the new snapshot and the log emptied, in one transaction, so a write costs the
same however long the session has traded (rewriting the whole pickle at every write grew with every fill ever made).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import attrs

from gridcore.commands import Batch, CancelOrder, ModifyOrder, PlaceOrder
from gridcore.config import BotConfig
from gridcore.errors import InvalidEvent
from gridcore.events import (
    Event,
    FeedDisconnected,
    FeedReconnected,
    MessageMalformed,
    QuoteTicked,
)
from gridcore.shells.journal import Journal
from gridcore.shells.runtime import (
    K_COMMAND,
    K_DELIVERY,
    K_FEED,
    Clock,
    ClockExecutor,
    Deadline,
    ExecCommand,
    Finish,
    LockstepClock,
    Sink,
)
from gridcore.sim import FaultPlan, SimExchange, make_exchange, make_path, profile
from gridcore.sim.faults import Fate, FaultInjector
from gridcore.sim.link import FeedChange, Link, Sent, is_result

__all__ = [
    "SharedMarket",
    "SimVenue",
    "VenueState",
    "VenueStore",
    "VenueStoreError",
    "market_key",
    "saved_venue",
    "venue_path",
]

_VERSION = 2  # 2: positions keep their exact cost basis; fault counts
_PERSIST_EVERY_TICKS = 50
_COMPACT_EVERY = 2_000
"""Log rows after which the venue's whole state is written again as its snapshot."""
_COMPACT_OPS = 100_000
"""Operations (ticks, commands) logged after which the same happens: a row of the venue kept in
the journal holds everything since the last commit (hundreds of ticks), and a load replays
every operation logged since the snapshot."""

_TICK = 0
_COMMAND = 1
_QUOTE = 2
#: One operation the exchange applied: ``(_QUOTE, ts, venue, symbol, bid, ask)`` (a tick, as its
#: fields: pickled as a flat tuple it costs half what the ``QuoteTicked`` instance costs, on the
#: event loop at every commit of a paper session), ``(_COMMAND, command, now)``, or, in rows
#: written before quotes were stored flat, ``(_TICK, tick)``.
VenueOp = tuple[Any, ...]


class VenueStoreError(Exception):
    """The venue file cannot be used with this session (wrong configuration, damaged)."""


def venue_path(journal: str | os.PathLike[str]) -> Path:
    """Where the simulated venue of the journal at ``journal`` keeps its state."""
    return Path(f"{os.fspath(journal)}.venue")


def fingerprint(config: BotConfig) -> str:
    """What must not change between runs against one venue file: venue, instrument, market."""
    return repr((config.venue, config.instrument, config.market))


@attrs.define(kw_only=True)
class VenueState:
    """Everything the simulated venue is, pickled whole into its file."""

    exchange: SimExchange
    injector: FaultInjector
    seed: int
    faults: str
    fingerprint: str
    now: int
    next_index: int = 0
    placed: dict[str, int] = attrs.field(factory=dict)
    """How many times each client order id arrived in a ``PlaceOrder`` (1, unless a bot re-sent
    one: the crash test checks)."""
    version: int = _VERSION

    @property
    def touched(self) -> bool:
        """True once any command reached the venue."""
        return bool(self.exchange.orders) or bool(self.placed)


def _apply(state: VenueState, entry: tuple[Any, ...]) -> None:
    """Apply one log row (see the module docstring) to ``state``, as the venue did."""
    ops, injector, now, next_index = entry
    exchange = state.exchange
    for op in ops:
        if op[0] == _QUOTE:
            # On InvalidEvent the venue sent MessageMalformed; the exchange is as it left it.
            _, ts, venue, symbol, bid, ask = op
            with contextlib.suppress(InvalidEvent):
                exchange.on_tick(QuoteTicked(ts=ts, venue=venue, symbol=symbol, bid=bid, ask=ask))
        elif op[0] == _TICK:
            with contextlib.suppress(InvalidEvent):
                exchange.on_tick(op[1])
        else:
            command, at = op[1], op[2]
            inner = command.commands if isinstance(command, Batch) else (command,)
            for c in inner:
                if isinstance(c, PlaceOrder):
                    state.placed[c.cloid] = state.placed.get(c.cloid, 0) + 1
            exchange.handle(command, at)
    state.injector = injector
    state.now = now
    state.next_index = next_index


class VenueStore:
    """The venue's storage: a snapshot row (replaced atomically) and an append-only log.

    Two homes. ``VenueStore(path)``: its own SQLite file (``JOURNAL.venue``), each write its
    own transaction made before the venue answers — the venue survives the bot like an
    external exchange. :meth:`in_journal`: the same in the bot's journal (its ``venue`` and
    ``venue_log`` tables; with ``name``, that venue's rows of ``venues`` and ``venues_log``,
    for sessions of several simulated venues), each write *staged* into the journal's next
    commit (:meth:`Journal.stage <gridcore.shells.journal.Journal.stage>`), so the venue's
    state and the events that caused it become durable in one transaction or not at all —
    which lets the runtime group-commit a paper session (see :attr:`SimVenue.commits_with`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        journal: Journal | None = None,
        name: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.journal = journal
        """The journal whose transactions carry this venue's writes (``None``: its own file)."""
        self.name = name
        """The venue's key in the journal's ``venues`` tables (``None``: the one venue of the
        ``venue`` tables, or its own file)."""
        if name is not None and journal is None:
            raise ValueError("a named venue store lives in a journal: use VenueStore.in_journal")
        self._ops_logged = 0  # since this process opened the store: a bound, not an exact count
        self._conn: sqlite3.Connection | None = None
        # The statements of this home: the one venue's tables, or one venue's rows of the
        # tables keyed by venue name (the same statements, with the name as first parameter).
        self._key: tuple[str, ...] = ()
        self._select = "SELECT payload FROM venue WHERE id = 1"
        self._select_log = "SELECT n, payload FROM venue_log ORDER BY n"
        self._count_log = "SELECT count(*) FROM venue_log"
        self._replace = "INSERT OR REPLACE INTO venue (id, saved_ms, payload) VALUES (1, ?, ?)"
        self._clear_log = "DELETE FROM venue_log"
        self._insert_log = "INSERT INTO venue_log (payload) VALUES (?)"
        if name is not None:
            self._key = (name,)
            self._select = "SELECT payload FROM venues WHERE name = ?"
            self._select_log = "SELECT n, payload FROM venues_log WHERE name = ? ORDER BY n"
            self._count_log = "SELECT count(*) FROM venues_log WHERE name = ?"
            self._replace = (
                "INSERT OR REPLACE INTO venues (name, saved_ms, payload) VALUES (?, ?, ?)"
            )
            self._clear_log = "DELETE FROM venues_log WHERE name = ?"
            self._insert_log = "INSERT INTO venues_log (name, payload) VALUES (?, ?)"
        if journal is not None:
            self._logged = int(self._rows(self._count_log)[0][0])
            return
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            # A process kill (the failure simulated here) cannot lose a committed WAL
            # transaction even without an fsync; the venue stands in for a remote service.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS venue "
                "(id INTEGER PRIMARY KEY CHECK (id = 1), saved_ms INTEGER, payload BLOB)"
            )
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS venue_log (n INTEGER PRIMARY KEY, payload BLOB NOT NULL)"
            )
            self._logged = int(self._conn.execute(self._count_log).fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise VenueStoreError(f"{self.path}: not a simulated-venue file ({exc})") from None

    @classmethod
    def in_journal(cls, journal: Journal, name: str | None = None) -> VenueStore:
        """The venue kept in ``journal``, every write committed with the journal's events: the
        one venue of a session (its ``venue`` and ``venue_log`` tables), or, with ``name``, the
        venue of that name among several (its rows of ``venues`` and ``venues_log``)."""
        return cls(journal.path, journal=journal, name=name)

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self.journal is not None:
            return self.journal.side_rows(sql, self._key)
        assert self._conn is not None
        return self._conn.execute(sql, self._key).fetchall()

    def load(self) -> VenueState | None:
        """The saved venue, or ``None`` when nothing was saved yet."""
        rows = self._rows(self._select)
        if not rows:
            return None
        where = self.path if self.name is None else f"{self.path} (venue {self.name!r})"
        return _restore(where, rows[0][0], self._rows(self._select_log))

    def save(self, state: VenueState) -> None:
        """Replace the saved venue with ``state`` whole and empty the log (one transaction)."""
        payload = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        replace = (*self._key, int(time.time() * 1000), payload)
        self._logged = self._ops_logged = 0
        if self.journal is not None:
            self.journal.stage(self._replace, replace)
            self.journal.stage(self._clear_log, self._key)
            return
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(self._replace, replace)
            conn.execute(self._clear_log, self._key)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def append(self, state: VenueState, ops: Sequence[VenueOp]) -> None:
        """Record that ``ops`` were applied to the saved venue, giving ``state`` (one
        transaction: one appended row; every ``_COMPACT_EVERY`` rows, :meth:`save` instead)."""
        if self._logged >= _COMPACT_EVERY or self._ops_logged >= _COMPACT_OPS:
            self.save(state)
            return
        self._ops_logged += len(ops)
        entry = (ops, state.injector, state.now, state.next_index)
        row = (*self._key, pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL))
        self._logged += 1
        if self.journal is not None:
            self.journal.stage(self._insert_log, row)
            return
        assert self._conn is not None
        self._conn.execute(self._insert_log, row)

    def close(self) -> None:
        """Close the file (in the journal: nothing to close; what is still staged is dropped
        with the journal, as a crash would drop it)."""
        if self._conn is not None:
            self._conn.close()


def _restore(where: object, snapshot: bytes, log: Sequence[tuple[Any, ...]]) -> VenueState:
    """The venue from its snapshot payload and its log rows ``(n, payload)`` (``where``: the
    file, named in errors)."""
    try:
        state = pickle.loads(snapshot)
    except Exception as exc:
        raise VenueStoreError(
            f"{where}: the simulated venue's state cannot be read ({exc}); delete the "
            f"file only together with its journal"
        ) from None
    if not isinstance(state, VenueState) or state.version != _VERSION:
        raise VenueStoreError(f"{where}: written by another gridcore version")
    for n, payload in log:
        try:
            _apply(state, pickle.loads(payload))
        except Exception as exc:
            raise VenueStoreError(
                f"{where}: the simulated venue's log row {n} cannot be applied ({exc}); "
                f"delete the file only together with its journal"
            ) from None
    return state


def _journal_venue(path: Path, name: str | None) -> VenueState | None:
    """The venue kept in the journal at ``path`` (read-only; ``name``: that venue's rows of
    the ``venues`` tables), ``None`` when the journal holds none (or predates those tables)."""
    key: tuple[str, ...]
    if name is None:
        select, select_log, key = (
            "SELECT payload FROM venue WHERE id = 1",
            "SELECT n, payload FROM venue_log ORDER BY n",
            (),
        )
    else:
        select, select_log, key = (
            "SELECT payload FROM venues WHERE name = ?",
            "SELECT n, payload FROM venues_log WHERE name = ? ORDER BY n",
            (name,),
        )
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        # One read transaction: the snapshot and its log as one commit left them, even while
        # the bot writes (a compaction replaces both).
        conn.execute("BEGIN")
        try:
            row = conn.execute(select, key).fetchone()
        except sqlite3.OperationalError:
            return None  # a journal without these tables
        if row is None:
            return None
        log = conn.execute(select_log, key).fetchall()
        where = path if name is None else f"{path} (venue {name!r})"
        return _restore(where, row[0], log)
    finally:
        conn.close()


def saved_venue(journal: str | os.PathLike[str], name: str | None = None) -> VenueState | None:
    """The simulated venue saved for the journal at ``journal`` (read-only): kept in the journal
    itself, or in its ``.venue`` file (journals written before the venue moved into the
    journal); ``None`` when neither holds one. With ``name``: the venue of that name among the
    several of a session kept in the journal (the two venues of a funding arbitrage;
    :func:`gridcore.shells.simpair.saved_pair_venue` also reads their older files)."""
    p = Path(journal)
    if p.exists():
        state = _journal_venue(p, name)
        if state is not None or name is not None:
            return state
    elif name is not None:
        return None
    vpath = venue_path(p)
    if not vpath.exists():
        return None
    store = VenueStore(vpath)
    try:
        return store.load()
    finally:
        store.close()


def open_venue_state(
    store: VenueStore,
    config: BotConfig,
    *,
    seed: int | None,
    faults: str | None,
) -> tuple[VenueState, list[str]]:
    """The saved venue (or a fresh one for ``config``), with notes on what changed.

    ``seed`` and ``faults`` of ``None`` keep the saved ones (fresh: the market seed and no
    faults). A different seed or configuration for an existing venue is an error; a different
    fault profile is applied from now on (the venue's fault plan is a test knob).
    """
    notes: list[str] = []
    saved = store.load()
    if saved is None:
        use_seed = config.market.seed if seed is None else seed
        plan = profile(faults or "none")
        state = VenueState(
            exchange=make_exchange(config, start_ts=config.market.start_ts),
            injector=FaultInjector(plan, use_seed),
            seed=use_seed,
            faults=plan.name,
            fingerprint=fingerprint(config),
            now=config.market.start_ts,
        )
        store.save(state)
        return state, notes
    if saved.fingerprint != fingerprint(config):
        raise VenueStoreError(
            f"{store.path}: this simulated venue was created with another [venue], [instrument] "
            f"or [market] configuration; resume with the journal's configuration"
        )
    if seed is not None and seed != saved.seed:
        raise VenueStoreError(
            f"{store.path}: this simulated venue runs seed {saved.seed}, not {seed}; omit "
            f"--seed to resume it"
        )
    if faults is not None and faults != saved.faults:
        new_plan: FaultPlan = profile(faults)
        saved.injector.plan = new_plan
        saved.injector.enabled = new_plan.active
        notes.append(f"fault profile {saved.faults} -> {new_plan.name}")
        saved.faults = new_plan.name
        store.save(saved)
    return saved, notes


class SimVenue:
    """The simulated venue as a :class:`~gridcore.shells.runtime.VenueAdapter`.

    ``state`` comes from :func:`open_venue_state`; ``clock`` should be a
    :class:`~gridcore.shells.runtime.LockstepClock` started at :meth:`resume_time`.
    """

    callbacks_on_clock = True
    """On a :class:`~gridcore.shells.runtime.LockstepClock`, commands (:meth:`executor_on_clock`) and
    delayed stream messages are callbacks of the clock at the times and turns of the sleeps of
    the tasks they replace. ``False``: tasks (the reference tests compare them with)."""

    def __init__(
        self,
        *,
        config: BotConfig,
        state: VenueState,
        store: VenueStore | None,
        clock: Clock,
        latency_ms: int = 50,
        market: SharedMarket | None = None,
    ) -> None:
        if latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {latency_ms}")
        self.config = config
        self.name = config.venue.name
        self.venue = state
        self._store = store
        self._clock = clock
        self._latency = latency_ms
        self._sink: Sink | None = None
        self._quiesced = False
        # The venue's file keeps the injector: the link draws from it (never a copy).
        self._link = Link(injectors=state.injector, latency_ms=latency_ms)
        self._deliveries = 0
        self._ticks_since_save = 0
        self._closed = False
        self._ops: list[VenueOp] = []  # applied to the exchange since the last write
        self._forced_fates: deque[Fate] = deque()
        self._force_down_ms: int | None = None
        self._force_malformed = False
        self._market = market
        self._wake: anyio.Event | None = None
        self._failure: BaseException | None = None
        self.ticks = 0
        """Ticks matched by this process."""
        self.commits_with: Journal | None = None if store is None else store.journal
        """The journal whose commits carry this venue's state (its store is
        :meth:`VenueStore.in_journal`), else ``None``. Nothing outside the process sees a
        command this venue receives before that journal's next commit, and a crash loses the
        venue's effects together with the events that caused them: the runtime may then send
        commands before their events are committed and commit in groups (a real venue is
        never such a venue: every command waits for its commit)."""
        if self.commits_with is not None:
            self.commits_with.before_commit(self._stage)

    @property
    def exchange(self) -> SimExchange:
        """The exchange model."""
        return self.venue.exchange

    @staticmethod
    def resume_time(state: VenueState, bot_now: int) -> int:
        """Where simulated time continues: never before the venue's or the bot's last time."""
        return max(state.now, bot_now)

    def _save(self) -> None:
        self._ticks_since_save = 0
        if self.commits_with is None:
            self._write()
        # else: staged at the journal's next commit (_stage), durable with the events

    def _write(self) -> None:
        self.venue.now = self._clock.now()
        ops, self._ops = self._ops, []
        if self._store is not None:
            self._store.append(self.venue, ops)

    def _stage(self) -> None:
        """The journal is about to commit: stage one log row of everything applied since the
        last one (one row per commit, however many ticks and commands it covers)."""
        if self._ops or self.venue.now != self._clock.now():
            self._write()

    def close(self) -> None:
        """Save the venue one last time and close its file (idempotent: a shutdown that runs
        twice saves once)."""
        if self._closed:
            return
        self._closed = True
        self._save()
        if self._store is not None:
            self._store.close()

    # --- the feed ----------------------------------------------------------------------------

    def _ticks(self) -> Iterator[tuple[int, QuoteTicked]]:
        m = self.config.market
        now = self._clock.now()
        by_time = 0
        if now > m.start_ts:
            # The first tick at or after now. Seeing the tick at ``now`` again is harmless: the
            # same quote matches nothing new and funding is booked once (next_funding_ts).
            by_time = -((m.start_ts - now) // m.interval_ms)
        start = max(self.venue.next_index, by_time)
        path = make_path(self.config, seed=self.venue.seed)
        return itertools.islice(enumerate(path), start, None)

    async def run(self, sink: Sink) -> None:
        """Feed ticks and stream messages until cancelled; returns when the market path ends
        (after asking the runtime to stop)."""
        self._sink = sink
        clock = self._clock
        venue = self.name
        # The feed reports its own state: up now (the core never assumes it).
        await sink.emit(FeedReconnected(ts=clock.now(), venue=venue))
        if self._market is not None:
            await self._follow_market()
            return
        # A subclass that adds to _on_tick (a pair's venue) keeps the feed task that calls it.
        if isinstance(clock, LockstepClock) and type(self)._on_tick is SimVenue._on_tick:
            await self._feed_on_clock(clock, sink)
            return
        for index, tick in self._ticks():
            await clock.sleep_until(tick.ts, (K_FEED, index))
            if self._quiesced:
                await clock.park()
            await self._on_tick(index, tick)
        sink.stop(f"{venue}: the synthetic market ended (market.ticks)")
        await clock.park()

    async def _feed_on_clock(self, clock: LockstepClock, sink: Sink) -> None:
        """The feed on a lockstep clock: each tick is a callback the clock calls at the tick's
        time, in the tick's turn (:meth:`LockstepClock.call_at`), which matches it, sends what
        it produced at once and schedules the next one — what the feed task's loop does after
        each wakeup, without waking a task for every tick. This task only waits, holding
        nothing, as the loop's task parks once the market has ended, or until a callback
        failed (raised here, as the loop would have raised it)."""
        ticks = iter(self._ticks())
        failed = anyio.Event()
        failure: list[Exception] = []

        def schedule() -> None:
            item = next(ticks, None)
            if item is None:
                sink.stop(f"{self.name}: the synthetic market ended (market.ticks)")
                return
            index, tick = item
            clock.call_at(tick.ts, (K_FEED, index), lambda: fire(index, tick))

        def fire(index: int, tick: QuoteTicked) -> None:
            if self._quiesced:
                return  # the feed stopped (shutdown): nothing more is scheduled
            try:
                self._send_now(self._tick_events(index, tick))
                schedule()
            except Exception as exc:
                failure.append(exc)
                clock.hold()  # for this task, until it has woken to raise it
                failed.set()

        schedule()
        clock.release()
        woke = False
        try:
            await failed.wait()
            woke = True
        finally:
            if not woke:
                clock.hold()
        raise failure[0]

    async def _emit_all(self, events: Sequence[Event]) -> None:
        assert self._sink is not None
        for event in events:
            await self._sink.emit(event)

    def _send_now(self, events: Sequence[Event]) -> None:
        """Send ``events`` without waiting (from a callback of the lockstep clock); when the
        channel is full, the rest wait their turn in a task."""
        sink = self._sink
        assert sink is not None
        for i, event in enumerate(events):
            if not sink.send_now(event):
                sink.spawn(self._emit_all, events[i:])
                return

    async def _on_tick(self, index: int, tick: QuoteTicked) -> None:
        """Match one market tick and send what it produced (own feed or shared market)."""
        await self._emit_all(self._tick_events(index, tick))

    def _tick_events(self, index: int, tick: QuoteTicked) -> list[Event]:
        """Match one market tick: what it produced, to send now, in order (what the link
        delivers later is started here, on its own)."""
        sink = self._sink
        assert sink is not None
        venue = self.name
        out: list[Event] = []
        self.venue.next_index = index + 1
        self.ticks += 1
        self._ops.append((_QUOTE, tick.ts, tick.venue, tick.symbol, tick.bid, tick.ask))
        try:
            events = self.exchange.on_tick(tick)
        except InvalidEvent as exc:
            # What the venue would say cannot be built: the core hears it as unreadable
            # (and reconciles), the loop goes on.
            events = [MessageMalformed(ts=tick.ts, venue=venue, detail=str(exc))]
        self._ticks_since_save += 1
        if events or self._ticks_since_save >= _PERSIST_EVERY_TICKS:
            self._save()
        ts = tick.ts
        link = self._link
        out.extend(self._due_now(link.route(events, ts, venue), ts))
        change: FeedChange | None
        if self._force_down_ms is not None and link.feed_up(venue):
            change = link.force_down(venue, ts, self._force_down_ms)
            self._force_down_ms = None
        else:
            change = link.tick(venue, ts)
        if change is not None:
            out.append(
                FeedReconnected(ts=ts, venue=venue)
                if change.up
                else FeedDisconnected(ts=ts, venue=venue, reason="simulated outage")
            )
        if link.feed_up(venue):
            if self._force_malformed:
                self._force_malformed = False
                detail = f"unreadable quote message at tick {index} (injected)"
                out.append(MessageMalformed(ts=ts, venue=venue, detail=detail))
            else:
                out.append(tick)
        return out

    # --- the shared market ---------------------------------------------------------------------

    async def _follow_market(self) -> None:
        """Shared market: ticks arrive from the :class:`SharedMarket`'s task; this task only
        waits, without holding simulated time, until the account is stopped or the market
        reports a failure of this venue (raised here: the runtime stops this account alone)."""
        market = self._market
        assert market is not None
        self._wake = anyio.Event()
        market.subscribe(self)
        try:
            woke = False
            self._clock.release()
            try:
                await self._wake.wait()
                woke = True
            finally:
                if not woke:
                    self._clock.hold()
            # The market held our unit when it woke us.
            if self._failure is not None:
                raise self._failure
            await self._clock.park()
        finally:
            market.unsubscribe(self)

    @property
    def market(self) -> SharedMarket | None:
        """The shared market this venue follows (``None``: its own feed)."""
        return self._market

    @property
    def following(self) -> bool:
        """Whether the shared market should deliver ticks to this venue now."""
        return self._wake is not None and not self._wake.is_set() and not self._quiesced

    def _fail(self, exc: BaseException | None) -> None:
        """Wake :meth:`_follow_market` (with ``exc`` to raise, or ``None``: market ended)."""
        if self._wake is not None and not self._wake.is_set():
            self._failure = exc
            self._clock.hold()
            self._wake.set()

    def quiesce(self) -> None:
        """Stop the market (shutdown); answers and order updates still flow."""
        self._quiesced = True

    # --- the fake-venue controls of the adapter conformance suite ----------------------------

    def force_fate(self, fate: Fate) -> None:
        """The next command meets ``fate`` instead of a drawn one (no random draw is used)."""
        self._forced_fates.append(fate)

    def force_disconnect(self, down_ms: int) -> None:
        """The feed drops at the next tick and is back ``down_ms`` later."""
        self._force_down_ms = down_ms

    def force_malformed(self) -> None:
        """The next quote arrives unreadable."""
        self._force_malformed = True

    def _due_now(self, deliveries: Sequence[tuple[int, Event]], now: int) -> list[Event]:
        """What the link delivers ``now``, in order; each later one is started on its own,
        to be sent when its time comes."""
        sink = self._sink
        assert sink is not None
        clock = self._clock
        out: list[Event] = []
        for at, event in deliveries:
            if at <= now:
                out.append(event)
            else:
                self._deliveries += 1
                if isinstance(clock, LockstepClock) and self.callbacks_on_clock:
                    # A callback in the turn the delivery task would sleep to: no task.
                    clock.call_at(at, (K_DELIVERY, self._deliveries), _Deliver(self, event))
                else:
                    sink.spawn(self._deliver_later, at, self._deliveries, event)
        return out

    async def _deliver_later(self, ts: int, n: int, event: Event) -> None:
        assert self._sink is not None
        await self._clock.sleep_until(ts, (K_DELIVERY, n))
        await self._sink.emit(event)

    # --- commands ------------------------------------------------------------------------------

    async def execute(self, command: ExecCommand) -> Sequence[Event]:
        """Carry ``command`` to the exchange after the latency; answer after the latency."""
        if self._sink is None:
            raise RuntimeError("SimVenue.execute called before run(): start the feed first")
        clock = self._clock
        cid = command.command_id
        sent_at = clock.now()
        # The fate is drawn once the latency has passed, at a point of simulated time the
        # lockstep clock orders (when the command was sent depends on task scheduling, which
        # differs between asyncio and trio); the link computes every time from ``sent_at``.
        await clock.sleep_until(sent_at + self._latency, (K_COMMAND, cid, 0))
        sent, stream, answers = self._arrive(command, sent_at)
        if sent.arrives_at is None:
            if sent.fate is not Fate.REST_ERROR:
                await clock.park()  # lost on the way: only the runtime's timeout answers
            return [e for _, e in sent.deliveries]  # due now: failed before the venue
        await self._emit_all(stream)
        if sent.fate is Fate.TIMEOUT_APPLIED:
            await clock.park()  # applied, but the answer is lost: the runtime's timeout answers
        await clock.sleep_until(self._answer_due(answers), (K_COMMAND, cid, 1))
        return [e for _, e in answers]

    def _arrive(
        self, command: ExecCommand, sent_at: int
    ) -> tuple[Sent, list[Event], list[tuple[int, Event]]]:
        """``command`` reaches the venue (``latency_ms`` after ``sent_at``): its fate is drawn
        and, unless it never arrives, the exchange carries it out. Returns the link's verdict,
        the stream messages due now (later ones are started on their own) and the answers
        with their times."""
        forced = self._forced_fates.popleft() if self._forced_fates else None
        sent = self._link.send(command, sent_at, forced)
        if sent.arrives_at is None:
            return sent, [], []
        now = self._clock.now()
        changes = False
        inner = command.commands if isinstance(command, Batch) else (command,)
        for c in inner:
            if isinstance(c, PlaceOrder):
                self.venue.placed[c.cloid] = self.venue.placed.get(c.cloid, 0) + 1
            changes = changes or isinstance(c, PlaceOrder | CancelOrder | ModifyOrder)
        self._ops.append((_COMMAND, command, now))
        events = self.exchange.handle(command, now)
        if changes:
            self._save()  # durable before the venue says anything about it
        deliveries = self._link.answer(sent, command, events, now)
        stream = self._due_now([d for d in deliveries if is_result(d[1]) is None], now)
        answers = [d for d in deliveries if is_result(d[1]) is not None]
        return sent, stream, answers

    def _answer_due(self, answers: Sequence[tuple[int, Event]]) -> int:
        """When the answers go back together: when the last is due."""
        return max((t for t, _ in answers), default=self._clock.now() + self._latency)

    def executor_on_clock(self) -> ClockExecutor | None:
        """How the runtime carries a command on a lockstep clock without a task
        (:meth:`_start_on_clock`), or ``None`` (any other clock, or an :meth:`execute` other
        than this class's own: a subclass's, or one replaced on the class)."""
        if (
            not isinstance(self._clock, LockstepClock)
            or not self.callbacks_on_clock
            or type(self).execute is not _EXECUTE
        ):
            return None
        return self._start_on_clock

    def _start_on_clock(self, command: ExecCommand, finish: Finish) -> Callable[[], None]:
        """:meth:`execute` as callbacks of the lockstep clock, at the times and in the turns of
        its two sleeps (the arrival, the answer): ``finish`` gets what ``execute`` would have
        returned or raised; a lost command or answer never calls it (the runtime's timeout
        answers). Returns what cancels the steps still to come (the timeout). The runtime
        may start one before the feed's task has run (``execute`` would not have run yet
        either): nothing is sent before the arrival, and the clock cannot reach it first."""
        call = _OnClock(self, command, finish)
        clock = self._clock
        assert isinstance(clock, LockstepClock)
        call.sent_at = sent_at = clock.now()
        call.deadline = clock.call_at(
            sent_at + self._latency, (K_COMMAND, command.command_id, 0), call.arrive
        )
        return call.cancel


_EXECUTE = SimVenue.execute
"""The ``execute`` the clock executor stands for: a venue whose ``execute`` is another (a
subclass's, or one replaced on the class) is carried by a task calling it."""


def describe(state: VenueState) -> dict[str, Any]:
    """A small summary of the venue for status lines and tests (``orders`` and ``fills``
    count the whole session, including what the model has stopped remembering)."""
    ex = state.exchange
    return {
        "now": state.now,
        "orders": len(ex.orders) + sum(ex.forgotten.orders.values()),
        "open_orders": len(ex.open_orders()),
        "fills": ex.fill_totals()[0],
        "cash": str(ex.cash),
        "faults": state.faults,
        "seed": state.seed,
        "max_sends_per_cloid": max(state.placed.values(), default=0),
    }


def market_key(config: BotConfig, seed: int) -> str:
    """What accounts must have in common to share one market feed: the venue's name, the
    instrument, the ``[market]`` table and the market seed (the ticks depend on nothing
    else; accounts that differ in leverage, balance, strategy or risk share it)."""
    return repr((config.venue.name, config.instrument, config.market, seed))


class SharedMarket:
    """One synthetic market feeding several accounts' simulated venues (one public market-data
    connection per venue, its quotes fanned out to every account).

    Each account keeps its own :class:`SimVenue` (its exchange: orders, positions, fills; its
    fault profile; its venue file): the market task sleeps once per tick on the shared clock
    (``clock``, the :class:`~gridcore.shells.runtime.LockstepClock` every account runs on) and
    hands the tick to each subscribed venue in the order they subscribed, which matches it and
    sends the account what it produced. A venue whose matching raises something unexpected is
    a bug of that account's venue: it is dropped from the market and its ``run`` raises it
    (that account stops with ``AdapterFailed``); the others keep their ticks. A venue whose
    account stopped (or quiesced) gets no more ticks.
    """

    def __init__(self, *, config: BotConfig, seed: int, clock: Clock) -> None:
        self.config = config
        self.seed = seed
        self._clock = clock
        self._venues: list[SimVenue] = []
        self._expected: set[int] = set()
        self._all_in: anyio.Event | None = None
        self._ended = False
        self.ticks = 0
        """Ticks this market produced in this process."""

    def subscribe(self, venue: SimVenue) -> None:
        """Deliver ticks to ``venue`` from now on (once the market has ended: ask its account
        to stop, as its own feed would)."""
        if self._ended:
            if venue._sink is not None:
                venue._sink.stop(f"{venue.name}: the synthetic market ended (market.ticks)")
            return
        if venue not in self._venues:
            self._venues.append(venue)
        self._arrived(venue)

    def unsubscribe(self, venue: SimVenue) -> None:
        """No more ticks to ``venue`` (also: its account ended, perhaps before it subscribed)."""
        if venue in self._venues:
            self._venues.remove(venue)
        self._arrived(venue)

    def _arrived(self, venue: SimVenue) -> None:
        self._expected.discard(id(venue))
        if not self._expected and self._all_in is not None:
            self._all_in.set()

    def _start_index(self, venues: Sequence[SimVenue]) -> int:
        m = self.config.market
        now = self._clock.now()
        by_time = -((m.start_ts - now) // m.interval_ms) if now > m.start_ts else 0
        return max(by_time, min((v.venue.next_index for v in venues), default=0))

    def _quote(self, venue: SimVenue, tick: QuoteTicked) -> QuoteTicked:
        """The tick as ``venue`` quotes it: the same for every venue here (a market shared by
        venues on other instruments overrides this)."""
        return tick

    async def run(self, venues: Sequence[SimVenue]) -> None:
        """Feed ``venues`` (the accounts' venues, which subscribe when they start) until the
        market path ends or cancelled. Start it counted as work on the clock (like
        ``Sink.spawn``)."""
        clock = self._clock
        start = self._start_index(venues)
        path = make_path(self.config, seed=self.seed)
        # The first tick waits, holding simulated time, until every account's venue has
        # subscribed (or its account ended): which ticks an account sees never depends on how
        # fast the other accounts start.
        self._expected = {id(v) for v in venues if v not in self._venues}
        if self._expected:
            self._all_in = anyio.Event()
            await self._all_in.wait()
        for index, tick in itertools.islice(enumerate(path), start, None):
            await clock.sleep_until(tick.ts, (K_FEED, index))
            self.ticks += 1
            for venue in list(self._venues):
                if not venue.following or index < venue.venue.next_index:
                    continue
                try:
                    await venue._on_tick(index, self._quote(venue, tick))
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    self.unsubscribe(venue)  # its account stopped meanwhile
                except Exception as exc:
                    self.unsubscribe(venue)
                    venue._fail(exc)
        self._ended = True
        for venue in list(self._venues):
            if venue._sink is not None and venue.following:
                venue._sink.stop(f"{venue.name}: the synthetic market ended (market.ticks)")
        await clock.park()


class _Deliver:
    """A stream message sent when the clock reaches its delivery time (a callback)."""

    __slots__ = ("event", "venue")

    def __init__(self, venue: SimVenue, event: Event) -> None:
        self.venue = venue
        self.event = event

    def __call__(self) -> None:
        self.venue._send_now((self.event,))


class _OnClock:
    """One command on its way through the simulated venue, as callbacks of the lockstep clock
    (:meth:`SimVenue._start_on_clock`)."""

    __slots__ = ("answers", "command", "deadline", "finish", "sent_at", "venue")

    def __init__(self, venue: SimVenue, command: ExecCommand, finish: Finish) -> None:
        self.venue = venue
        self.command = command
        self.finish = finish
        self.sent_at = 0
        self.deadline: Deadline | None = None
        self.answers: list[Event] = []

    def cancel(self) -> None:
        """The runtime's timeout: no further step."""
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def arrive(self) -> None:
        """The latency has passed: what ``execute`` does after its first sleep."""
        self.deadline = None
        venue = self.venue
        try:
            sent, stream, answers = venue._arrive(self.command, self.sent_at)
            if sent.arrives_at is None:
                if sent.fate is Fate.REST_ERROR:
                    self.finish([e for _, e in sent.deliveries])  # failed before the venue
                return  # else lost on the way: only the runtime's timeout answers
            venue._send_now(stream)
            if sent.fate is Fate.TIMEOUT_APPLIED:
                return  # applied, but the answer is lost: the runtime's timeout answers
            self.answers = [e for _, e in answers]
            clock = venue._clock
            assert isinstance(clock, LockstepClock)
            self.deadline = clock.call_at(
                venue._answer_due(answers), (K_COMMAND, self.command.command_id, 1), self.answer
            )
        except Exception as exc:
            self.finish(exc)

    def answer(self) -> None:
        """The answers are due: what ``execute`` returns after its second sleep."""
        self.deadline = None
        self.finish(self.answers)
