"""``gridcore run``, ``gridcore inspect`` and ``gridcore replay``: sessions and their journals.

* ``gridcore run --journal PATH`` trades on the simulated venue (paper) with the embedded
  configuration or ``--config FILE``. A new journal starts from the configuration; an existing
  one resumes (recovery: latest snapshot plus a fold of the tail, then a reconciliation round)
  with the configuration it recorded. Live trading needs ``--live`` and a configured live
  venue; none exists yet, so ``--live`` is refused with a clear error. SIGINT/SIGTERM stop
  gracefully (outstanding orders awaited, final snapshot, exit 0); a second one stops the wait
  (exit 130). Signals never interrupt the final snapshot or the closing of the files.
* ``gridcore run --config FILE --journal-dir DIR`` with ``[[accounts]]`` tables in FILE runs
  several accounts in one process (:mod:`gridcore.shells.accounts`): each its own bot, journal
  and exit status, one shared market per venue; the process exits with the worst account's
  code (70, 3, 4, 2, 130, 0 from worst to best).
* ``gridcore inspect PATH [--json]`` recovers the state read-only and reports positions, open
  orders, PnL, quarantined events and the invariant check. Exit 1 when an invariant is violated
  or a client order id was released twice.
* ``gridcore replay PATH`` re-folds the whole journal from snapshot 0 and compares every stored
  snapshot with the fold at its seq: exit 0 when they agree (the run was deterministic), 1 with a
  diff otherwise.

Every command verifies the journal before it uses it (SQLite's integrity check, every row's
checksum, the event chain, the head file's committed mark). Exit codes: 0 ok; 1 an invariant
violated (``inspect``) or a replay that disagrees (``replay``); 2 a usage or configuration
error, or the journal in use by another ``run``; 3 the journal is damaged (never resumed);
4 ``run`` stopped because the reducer raised on an event (kept in quarantine); 130 interrupted.
Every error prints one line ``gridcore: error: ...`` on stderr.

``--json`` keys of ``inspect`` (stable): ``journal``, ``schema_version``, ``gridcore_version``,
``events``, ``last_seq``, ``first_ts``, ``last_ts``, ``snapshots``, ``last_snapshot_seq``,
``commands``, ``duplicate_cloids``, ``now``, ``positions`` (``venue``, ``symbol``, ``side``,
``qty``, ``avg_entry``, ``realized``, ``fees``, ``funding``, ``unrealized``), ``open_orders``
(``cloid``, ``venue``, ``symbol``, ``side``, ``price``, ``qty``, ``filled_qty``, ``status``,
``tag``), ``fills``, ``pnl`` (``realized``, ``unrealized``, ``fees``, ``funding``, ``net``, in
the bot's settlement currency; ``null`` for a bot settling in several, whose amounts are never
added), ``pnl_by_currency`` (currency → the same five keys), ``halted``, ``halt_reason``,
``halt_cause`` (``null`` or a :class:`gridcore.halts.HaltCause` value), ``venues`` (``phase``,
``feed_up``, ``funding``: ``paid``, ``recovered``, ``priced``, ``drifts``, ``drift_amount``,
``history``), ``invariants`` (``ok``,
``violations``: ``invariant``, ``ts``, ``detail``), ``quarantined`` (``seq``, ``ts``, ``kind``,
``error``). Decimals are strings, times integer ms. Given several journals or a directory,
``--json`` is ``{"accounts": [...]}``: one such report per journal with its ``account`` (the
file name without ``.db``), or ``account``, ``journal``, ``error`` and ``exit`` for a journal
that cannot be read.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import logging
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import attrs

from gridcore.commands import Halt, Level, Notify
from gridcore.config import DEFAULT_TOML, BotConfig
from gridcore.core import State
from gridcore.errors import GridcoreError
from gridcore.events import Event, ResumeRequested
from gridcore.invariants import check_state
from gridcore.ledger import Position
from gridcore.numbers import CTX, ZERO, exact_str, format_money
from gridcore.shells import accounts, cli_types, logs, metrics, simpair
from gridcore.shells.journal import (
    Journal,
    JournalDamaged,
    JournalError,
    WriterLock,
    fold,
    is_new,
    recover,
)
from gridcore.shells.redact import redact
from gridcore.shells.render import Display, side_dict, side_lines, side_table
from gridcore.shells.runtime import (
    EventRejected,
    LockstepClock,
    Runtime,
    RuntimeOptions,
    ShutdownSignals,
)
from gridcore.shells.simvenue import (
    SharedMarket,
    SimVenue,
    VenueState,
    VenueStore,
    VenueStoreError,
    market_key,
    open_venue_state,
    venue_path,
)
from gridcore.shells.strategies import import_strategy, load_config
from gridcore.shells.venues.hyperliquid import cli as hl_cli
from gridcore.sim import make_bot, profile
from gridcore.strategies.hedge_grid import side_figures

__all__ = ["diff_values", "inspect_report", "main", "register", "replay_journal"]


class CliError(Exception):
    """A usage error: the message says what is wrong and what to do."""


_EXPECTED = (CliError, JournalError, VenueStoreError, GridcoreError, OSError)

EXIT_OK = 0
EXIT_VIOLATED = 1
"""An invariant is violated (``inspect``) or a snapshot is not the fold (``replay``)."""
EXIT_USAGE = 2
"""A usage or configuration error, or the journal is in use by another ``run``."""
EXIT_DAMAGED = 3
"""The journal fails verification: committed data is missing or altered."""
EXIT_POISON = 4
"""``run`` stopped because the reducer raised on an event (quarantined, not applied)."""
EXIT_INTERRUPTED = 130
EXIT_BUG = 70
"""An account stopped on an adapter bug or another unexpected exception (several accounts)."""


def _fail(exc: BaseException, code: int = EXIT_USAGE) -> int:
    text = redact(" ".join(str(exc).split("\n")))
    print(f"gridcore: error: {text}", file=sys.stderr)
    return code


def _guarded(handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            code: int = handler(args)
            return code
        except JournalDamaged as exc:
            return _fail(exc, EXIT_DAMAGED)
        except EventRejected as exc:
            return _fail(exc, EXIT_POISON)
        except _EXPECTED as exc:
            return _fail(exc)

    run.__doc__ = handler.__doc__
    return run


# --- argument parsing -----------------------------------------------------------------------


# The rules are shared with the configuration (gridcore.validators): one judgement per value.
_speed = cli_types.SPEED
_seconds = cli_types.SECONDS
_positive_int = cli_types.POSITIVE_INT


def register(subparsers: Any) -> None:
    """Add ``run``, ``inspect`` and ``replay`` to the ``gridcore`` command line."""
    run = subparsers.add_parser(
        "run",
        help="trade: paper on the simulated venue (default) or live with --live",
        description="Run the bot with a crash-safe journal. Paper trading on the simulated "
        "venue unless --live is given. An existing journal resumes.",
    )
    run.add_argument(
        "--journal",
        metavar="PATH",
        help="the journal file (required, unless --config has [[accounts]])",
    )
    run.add_argument(
        "--journal-dir",
        metavar="DIR",
        help="several accounts ([[accounts]] in --config): each account's journal is "
        "DIR/<name>.db unless its entry gives one",
    )
    run.add_argument(
        "--config",
        metavar="FILE",
        help="TOML configuration for a new journal (default: the embedded one; "
        "'gridcore init' writes it to a file to edit)",
    )
    run.add_argument(
        "--duration",
        type=_seconds,
        metavar="S",
        help="stop after S seconds of venue time (simulated seconds on the simulated venue)",
    )
    run.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        metavar="X",
        help="simulated seconds per wall second (default 1; 'max' for as fast as possible)",
    )
    run.add_argument("--faults", metavar="PROFILE", help="simulated venue fault profile")
    run.add_argument(
        "--seed", type=cli_types.SEED, metavar="N", help="market and fault seed (0 to 2**64 - 1)"
    )
    run.add_argument("--live", action="store_true", help="trade on a configured live venue")
    hl_cli.add_run_arguments(run)  # --venue, --testnet, --confirm-mainnet
    run.add_argument(
        "--cancel-on-exit",
        action="store_true",
        help="cancel every open order before exiting (the next run resumes trading)",
    )
    run.add_argument(
        "--snapshot-every",
        type=_positive_int,
        default=1_000,
        metavar="N",
        help="events between snapshots (default 1000)",
    )
    run.add_argument(
        "--backend", choices=("asyncio", "trio"), default="asyncio", help="async backend"
    )
    run.add_argument(
        "-v", "--verbose", action="store_true", help="print informational notices; log DEBUG"
    )
    run.add_argument(
        "-q", "--quiet", action="store_true", help="print no notices; log WARNING and up"
    )
    run.add_argument(
        "--log-file",
        metavar="PATH",
        help="append a timestamped log (fills, refusals, halts, reconnects, start/stop) to PATH; "
        "the console output stays as it is",
    )
    run.add_argument(
        "--log-json",
        action="store_true",
        help="log one JSON object per line (to --log-file, else to stderr instead of the notices)",
    )
    run.add_argument(
        "--account",
        action="append",
        metavar="NAME[=FILE]",
        help="several accounts: one account named NAME, FILE a TOML of its overrides of "
        "--config (repeat per account; or [[accounts]] in --config); with --journal-dir",
    )
    metrics.add_arguments(run)
    run.set_defaults(handler=_guarded(cmd_run))

    inspect = subparsers.add_parser(
        "inspect",
        help="show a journal: positions, orders, PnL, invariants",
        description="Recover a journal's state (read-only) and report it.",
    )
    inspect.add_argument(
        "journal",
        metavar="PATH",
        nargs="+",
        help="the journal file; several, or a --journal-dir, show each account",
    )
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.set_defaults(handler=_guarded(cmd_inspect))

    replay = subparsers.add_parser(
        "replay",
        help="re-fold a journal and verify its snapshots (determinism check)",
        description="Re-fold every event from snapshot 0 and compare each stored snapshot "
        "with the fold at its seq. Exit 0 when they agree, 1 otherwise.",
    )
    replay.add_argument("journal", metavar="PATH", help="the journal file")
    replay.set_defaults(handler=_guarded(cmd_replay))


def main(argv: list[str] | None = None) -> int:
    """These subcommands alone (``python -m shells.cli_run run ...``)."""
    parser = argparse.ArgumentParser(prog="gridcore")
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


# --- run ---------------------------------------------------------------------------------------


def _flat(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if attrs.has(type(value)):
        for f in attrs.fields(type(value)):
            yield from _flat(getattr(value, f.name), f"{prefix}{f.name}.")
    else:
        yield prefix.rstrip("."), value


def _config_diff(old: BotConfig, new: BotConfig) -> list[str]:
    before = dict(_flat(old))
    return [f"{k}: {before.get(k)!r} -> {v!r}" for k, v in _flat(new) if before.get(k) != v]


def _read_config(path: str | None) -> tuple[str, BotConfig]:
    if path is None:
        return DEFAULT_TOML, load_config(None)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read --config {path}: {exc.strerror or exc}") from None
    return text, load_config(text, source=path)


class _Notices:
    """Prints notices on stderr, one line each (never secrets: the core holds none)."""

    def __init__(self, *, verbose: bool, quiet: bool, account: str = "") -> None:
        self.verbose = verbose
        self.quiet = quiet
        self.account = account
        self.printer: Any = None
        self.counts = {"info": 0, "warning": 0, "alert": 0}

    def __call__(self, notice: Notify | Halt) -> None:
        if isinstance(notice, Halt):
            level, text = "alert", f"halted: {notice.reason}"
        else:
            level = notice.level.value
            text = f"{notice.code}: {notice.message}"
        self.counts[level] += 1
        if self.quiet or (level == Level.INFO.value and not self.verbose):
            return
        where = f"account {self.account}: " if self.account else ""
        line = redact(f"gridcore: [{level}] {where}{text}")
        if self.printer is not None:
            self.printer(line)
        else:
            print(line, file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    """``gridcore run``."""
    if getattr(args, "venue", "sim") != "sim":
        return hl_cli.run_hyperliquid(args)
    if args.live:
        raise CliError(
            "--live: the simulated venue has no live venue adapter; trade live with --venue "
            "hyperliquid --live (docs/hyperliquid.md), or run without --live to paper trade on "
            "the simulated venue (no account, no secrets)"
        )
    several = _accounts_config(args)
    if several is not None:
        return _run_accounts(args, *several)
    if args.journal_dir is not None:
        raise CliError(
            "--journal-dir is for several accounts: give --config a FILE with [[accounts]] "
            "tables, or use --journal PATH for one bot"
        )
    if args.journal is None:
        raise CliError(
            "--journal PATH is required (several accounts: --config FILE with [[accounts]] "
            "tables, and --journal-dir DIR)"
        )
    path = Path(args.journal)
    if path.parent and not path.parent.exists():
        raise CliError(f"--journal {path}: directory {path.parent} does not exist")
    try:
        # Opened first: a log that cannot be written stops the run before anything is created.
        close_log = logs.configure(
            level=logs.level_for(verbose=args.verbose, quiet=args.quiet),
            json_lines=args.log_json,
            path=args.log_file,
            stream=sys.stderr if args.log_json and args.log_file is None else None,
        )
    except OSError as exc:
        raise CliError(f"--log-file {args.log_file}: cannot open: {exc.strerror or exc}") from None
    try:
        # --metrics-port: serving before anything is written, so a busy port stops the run here.
        args.metrics_exporter = metrics.start_exporter(args)
    except metrics.MetricsError as exc:
        close_log()
        raise CliError(str(exc)) from None
    try:
        # One writer per journal, decided before anything is read or written: a second bot is
        # refused here and the running one is never disturbed.
        lock = WriterLock.acquire(path)
        try:
            return _run_locked(args, path, lock)
        finally:
            lock.release()
    finally:
        close_log()
        if args.metrics_exporter is not None:
            args.metrics_exporter.close()


def _run_locked(args: argparse.Namespace, path: Path, lock: WriterLock) -> int:
    opened = _open_account(
        path,
        lock,
        given=None if args.config is None else functools.partial(_read_config, args.config),
        given_label=f"--config {args.config}",
        seed=args.seed,
        faults=args.faults,
    )
    try:
        for note in opened.notes:
            print(f"gridcore: {note}", file=sys.stderr)
        return _session(
            args, opened.config, opened.state, opened.journal, opened.venue_state, opened.store
        )
    finally:
        opened.close()


@attrs.define(kw_only=True)
class _Opened:
    """A journal opened (created or recovered) with its simulated venue."""

    config: BotConfig
    text: str
    state: State[Any]
    journal: Journal
    venue_state: VenueState
    store: VenueStore
    notes: list[str]

    def close(self) -> None:
        self.store.close()
        self.journal.close()


def _venue_in(journal: Journal, *, saved: bool = True) -> bool:
    """Whether ``journal`` has the simulated venue's tables (``saved``: and a venue in them)."""
    tables = journal.side_rows("SELECT count(*) FROM sqlite_master WHERE name = 'venue'")
    if not tables[0][0]:
        return False  # written before the venue moved into the journal
    return not saved or bool(journal.side_rows("SELECT count(*) FROM venue")[0][0])


def _create_journal(
    path: Path, lock: WriterLock, config: BotConfig, text: str, *, seed: int | None
) -> tuple[Journal, State[Any]]:
    """A new paper journal at ``path`` and its initial state."""
    # Drawn once per journal and kept in it (in the state's snapshots, and in meta for
    # people): separate sessions on the same market never name two orders alike, and a
    # resumed session keeps naming its orders as before.
    nonce = int.from_bytes(os.urandom(8), "big")
    state = make_bot(config, epoch=config.market.start_ts, nonce=nonce)
    journal = Journal.create(
        path,
        state=state,
        meta={
            "config": text,
            "venue": "sim",
            "seed": str(config.market.seed if seed is None else seed),
            "session_nonce": f"{nonce:016x}",
        },
        lock=lock,
    )
    return journal, state


def _open_account(
    path: Path,
    lock: WriterLock,
    *,
    given: Callable[[], tuple[str, BotConfig]] | None,
    given_label: str,
    seed: int | None,
    faults: str | None,
    label: str = "",
    advice: str = "omit --config to resume with the recorded one, or start a new journal",
) -> _Opened:
    """Create the journal at ``path`` (from ``given``, else the embedded configuration) or
    recover it (checking ``given`` against the configuration it recorded), and open its
    simulated venue. ``label`` prefixes the lines printed (an account's name)."""
    new = is_new(path)
    vpath = venue_path(path)
    journal: Journal | None = None
    if new:
        lock.check_new()  # a lost journal is not silently restarted from scratch
        text, config = given() if given is not None else _read_config(None)
    else:
        # Verified on open: a damaged journal (a checksum, SQLite's own pages, committed
        # events lost from the write-ahead log) is never resumed.
        journal = Journal.open(path, lock=lock)
        meta = journal.meta()
        text = meta.get("config", "")
        if not text:
            journal.close()
            raise CliError(
                f"{path}: the journal records no configuration; it was not written by gridcore run"
            )
        config = load_config(text, source=f"{path} (recorded configuration)")
        if given is not None:
            diff = _config_diff(config, given()[1])
            if diff:
                journal.close()
                raise CliError(
                    f"{given_label} differs from the configuration journal {path} was "
                    f"started with ({'; '.join(diff[:5])}); {advice}"
                )
        if (
            not vpath.exists()
            and journal.last_seq > 0
            and not simpair.handles(config)
            and not _venue_in(journal)
        ):
            journal.close()
            raise CliError(
                f"the simulated venue's file {vpath} is missing: the journal's orders and "
                f"positions live there; restore it, or start a new journal"
            )
    if faults is not None:
        try:
            profile(faults)
        except ValueError as exc:
            if journal is not None:
                journal.close()
            raise CliError(f"--faults: {exc}") from None
    # The simulated venue(s) keep their state in the journal (committed with the events, which
    # lets the runtime group-commit). A journal written while the venues had their own files
    # keeps them: the .venue file(s), every command committed before it is sent.
    pair = simpair.handles(config)
    if pair:
        try:
            in_journal = simpair.in_journal(journal, path, config)
        except VenueStoreError:
            if journal is not None:
                journal.close()
            raise
    else:
        in_journal = not vpath.exists() and (journal is None or _venue_in(journal, saved=False))
    state: State[Any]
    if in_journal and journal is None:
        journal, state = _create_journal(path, lock, config, text, seed=seed)
        print(f"gridcore: {label}new journal {path} (paper, simulated venue)", file=sys.stderr)
    name = simpair.pair_names(config)[0] if pair else None
    store = VenueStore.in_journal(journal, name) if in_journal and journal else VenueStore(vpath)
    try:
        venue_state, notes = (
            # Two venues (the funding-rate arbitrage): this is venue a; b opens with the session.
            simpair.open_pair_venue(store, config, 0, seed=seed, faults=faults)
            if pair
            else open_venue_state(store, config, seed=seed, faults=faults)
        )
        if new and in_journal:
            pass  # created above
        elif new:
            if venue_state.touched:
                raise CliError(
                    f"{vpath} holds a simulated venue that was traded by another session; "
                    f"delete it (it belongs to a journal that no longer exists) or choose "
                    f"another --journal path"
                )
            journal, state = _create_journal(path, lock, config, text, seed=venue_state.seed)
            print(f"gridcore: {label}new journal {path} (paper, simulated venue)", file=sys.stderr)
        else:
            assert journal is not None
            state, seq = recover(journal)
            print(f"gridcore: {label}resuming journal {path} at event {seq}", file=sys.stderr)
            quarantined = journal.quarantined()
            if quarantined:
                last = quarantined[-1]
                print(
                    f"gridcore: [warning] {label}{len(quarantined)} event(s) quarantined so far; "
                    f"the last would have been event {last.after_seq + 1} ({last.kind}): "
                    f"`gridcore inspect {path}` lists them",
                    file=sys.stderr,
                )
    except BaseException:
        store.close()
        if journal is not None:
            journal.close()
        raise
    assert journal is not None
    return _Opened(
        config=config,
        text=text,
        state=state,
        journal=journal,
        venue_state=venue_state,
        store=store,
        notes=notes,
    )


def _session(
    args: argparse.Namespace,
    config: BotConfig,
    state: State[Any],
    journal: Journal,
    venue_state: Any,
    store: VenueStore,
) -> int:
    # JSON lines on stderr replace the notices there (one format for a log collector).
    notices = _Notices(
        verbose=args.verbose, quiet=args.quiet or (args.log_json and args.log_file is None)
    )
    if simpair.handles(config):
        return _pair_session(args, config, state, journal, venue_state, store, notices)
    clock = LockstepClock(SimVenue.resume_time(venue_state, state.now), speed=args.speed)
    venue = SimVenue(config=config, state=venue_state, store=store, clock=clock)
    start_events = _start_events(state, clock.now())
    return _logged_session(args, state, journal, [venue], clock, start_events, notices)


def _pair_session(
    args: argparse.Namespace,
    config: BotConfig,
    state: State[Any],
    journal: Journal,
    venue_state: VenueState,
    store: VenueStore,
    notices: _Notices,
) -> int:
    """Paper on the two simulated venues of a funding-arbitrage configuration: venue a is
    ``venue_state``; venue b is opened here, where venue a lives (the journal, or its own file:
    :mod:`gridcore.shells.simpair`)."""
    if store.journal is not None:
        store_b = VenueStore.in_journal(journal, config.settings.venue_b)
    else:
        path_b = simpair.pair_venue_path(journal.path, config, 1)
        if not path_b.exists() and journal.last_seq > 0:
            raise CliError(
                f"the simulated venue's file {path_b} is missing: venue "
                f"{config.settings.venue_b!r}'s orders and positions live there; restore it, "
                f"or start a new journal"
            )
        store_b = VenueStore(path_b)
    try:
        state_b, notes = simpair.open_pair_venue(
            store_b, config, 1, seed=venue_state.seed, faults=args.faults
        )
        if journal.last_seq == 0 and state_b.touched:
            raise CliError(
                f"{store_b.path} holds a simulated venue that was traded by another session; "
                f"delete it (it belongs to a journal that no longer exists) or choose another "
                f"--journal"
            )
    except BaseException:
        store_b.close()
        raise
    for note in notes:
        print(f"gridcore: {note}", file=sys.stderr)
    start = max(SimVenue.resume_time(s, state.now) for s in (venue_state, state_b))
    clock = LockstepClock(start, speed=args.speed)
    venues, market = simpair.pair_venues(config, [(venue_state, store), (state_b, store_b)], clock)
    start_events = _start_events(state, clock.now())
    return _logged_session(
        args, state, journal, venues, clock, start_events, notices, market=market
    )


def _start_events(state: State[Any], now: int) -> list[Event]:
    start_events: list[Event] = []
    if state.risk.resumes_on_restart:
        # The core's halt policy decides (gridcore.halts): a halt only to cancel orders on exit
        # lifts on a restart; any other (drawdown, errors, ...) stays until an operator resumes.
        start_events.append(ResumeRequested(ts=now))
    return start_events


def _logged_session(
    args: argparse.Namespace,
    state: State[Any],
    journal: Journal,
    venues: Sequence[SimVenue],
    clock: LockstepClock,
    start_events: list[Event],
    notices: _Notices,
    *,
    market: SharedMarket | None = None,
) -> int:
    log = logging.getLogger("gridcore.run")
    log.info(
        "%s: journal %s at event %d",
        "resume" if journal.last_seq else "start",
        journal.path,
        journal.last_seq,
        extra={"fields": {"journal": str(journal.path), "seq": str(journal.last_seq)}},
    )
    exporter = getattr(args, "metrics_exporter", None)  # --metrics-port: feeds /metrics too
    session_log = logs.SessionLog() if exporter is None else exporter.session_log()

    def stopping(reason: str) -> None:
        if reason.startswith("signal "):  # the answer to the operator's Ctrl-C, even with -q
            print(
                f"gridcore: stopping ({reason}): waiting for outstanding orders, then a final "
                "snapshot; press Ctrl-C again to stop waiting",
                file=sys.stderr,
                flush=True,
            )

    runtime = Runtime(
        state=state,
        journal=journal,
        venues=venues,
        clock=clock,
        options=RuntimeOptions(
            cancel_on_exit=args.cancel_on_exit, snapshot_every=args.snapshot_every
        ),
        on_notice=notices,
        start_events=start_events,
        on_stop=stopping,
        log=session_log,
    )
    duration_ms = None if args.duration is None else int(args.duration * 1000)
    live = sys.stderr.isatty() and not args.quiet and not notices.quiet

    rejected: EventRejected | None = None
    finished = False  # the runtime's run returned: final snapshot written

    async def session() -> None:
        nonlocal rejected, finished
        async with anyio.create_task_group() as tg:
            if live:
                tg.start_soon(_status_loop, runtime, notices)
            if market is not None:
                clock.hold()  # counted as work until it sleeps on the clock
                tg.start_soon(_market_task, market, venues, clock)
            try:
                await runtime.run(duration_ms=duration_ms)
                finished = True
            except EventRejected as exc:
                rejected = exc  # raised below, outside the task group (no exception group)
            tg.cancel_scope.cancel()

    interrupted = False
    try:
        anyio.run(session, backend=args.backend)
    except* KeyboardInterrupt:  # bare, or inside the task groups' exception group
        # Only before the runtime's signal receiver is open or in the instant after it closed:
        # nothing is lost, the journal holds every event reduced so far. From here on, signals
        # are ignored so that the venue's last save and the files' closing finish.
        runtime.shutdown_signals.install()
        interrupted = True
    finally:
        for venue in venues:
            venue.close()
    # A signal in the instant after the runtime handed the signals back came after the run had
    # ended with its final snapshot: it is reported like any stop cut short, below.
    late = interrupted and (finished or runtime.finished)
    if interrupted and not late:
        log.warning("interrupted; the journal is intact")
        print("gridcore: interrupted; the journal is intact, run again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    if rejected is not None:
        raise rejected
    final = runtime.state
    stats = runtime.stats
    log.info(
        "stop (%s): %d events this run, journal at event %d, %d fills logged",
        stats.stop_reason,
        stats.events,
        journal.last_seq,
        session_log.fills,
        extra={
            "fields": {
                "reason": str(stats.stop_reason),
                "seq": str(journal.last_seq),
                "net_pnl": ", ".join(
                    _money(net, final, currency) for currency, net, _ in _pnl(final)
                ),
            }
        },
    )
    money = _money_summary(final)
    print(
        f"stopped ({stats.stop_reason}): {stats.events} events this run, journal at event "
        f"{journal.last_seq}; {money}; fills {final.ledger.fill_count}"
    )
    _print_sides(final)
    if runtime.stats.signals > 1 or late:
        print(
            "gridcore: interrupted during shutdown: outstanding orders were not awaited; the "
            "journal and the venue are saved, run again to resume (it reconciles)",
            file=sys.stderr,
        )
        return 130
    return 0


async def _market_task(
    market: SharedMarket, venues: Sequence[SimVenue], clock: LockstepClock
) -> None:
    """The market of several venues of one bot (:mod:`gridcore.shells.simpair`)."""
    try:
        await market.run(venues)
    finally:
        clock.release()


# --- several accounts -----------------------------------------------------------------------


def _accounts_config(args: argparse.Namespace) -> tuple[str, str] | None:
    """``(text, source)`` of a several-accounts configuration: ``--config`` with
    ``[[accounts]]``, or ``--account`` options over ``--config`` (or the embedded one);
    ``None`` for one bot."""
    options = getattr(args, "account", None) or []
    if args.config is None and not options:
        return None
    text, source = (
        _read_text(args.config) if args.config is not None else (DEFAULT_TOML, "(embedded)")
    )
    if options:
        return accounts.accounts_from_options(text, options, source=source), source
    return (text, source) if accounts.has_accounts(text) else None


def _read_text(path: str) -> tuple[str, str]:
    try:
        return Path(path).read_text(encoding="utf-8"), path
    except OSError as exc:
        raise CliError(f"cannot read --config {path}: {exc.strerror or exc}") from None


def _run_accounts(args: argparse.Namespace, text: str, source: str) -> int:
    """``gridcore run --config FILE --journal-dir DIR`` with ``[[accounts]]``: every account
    its own bot and journal, one shared market per venue; exit with the worst account's code."""
    if args.journal is not None:
        raise CliError(
            f"--journal: {source} has several accounts: each account has its own journal "
            f"(--journal-dir DIR, or a journal in its entry); drop --journal"
        )
    if args.journal_dir is not None and not Path(args.journal_dir).is_dir():
        raise CliError(f"--journal-dir {args.journal_dir}: not a directory; create it first")
    specs = accounts.load_accounts(text, source=source, journal_dir=args.journal_dir)
    for spec in specs:
        if spec.faults is not None:
            try:
                profile(spec.faults)
            except ValueError as exc:
                raise CliError(f"{source}: account {spec.name}: faults: {exc}") from None
        parent = spec.journal.parent
        if parent and not parent.exists():
            raise CliError(
                f"account {spec.name}: journal {spec.journal}: directory {parent} does not exist"
            )
    try:
        close_log = logs.configure(
            level=logs.level_for(verbose=args.verbose, quiet=args.quiet),
            json_lines=args.log_json,
            path=args.log_file,
            stream=sys.stderr if args.log_json and args.log_file is None else None,
        )
    except OSError as exc:
        raise CliError(f"--log-file {args.log_file}: cannot open: {exc.strerror or exc}") from None
    try:
        # --metrics-port N: account i serves at port N + i (0: a free port each), all bound
        # before anything is written, so a busy port stops the run here.
        args.account_exporters = _account_exporters(args, specs)
    except (metrics.MetricsError, CliError) as exc:
        close_log()
        raise CliError(str(exc)) from None
    names = ["gridcore.run", "gridcore.fills"]
    names += sorted({f"gridcore.venue.{s.config.venue.name}" for s in specs})
    detach = accounts.AccountLogFilter().attach(names)
    codes: dict[str, int] = {}
    locks: list[WriterLock] = []
    opened: dict[str, tuple[accounts.AccountSpec, _Opened]] = {}
    try:
        for spec in specs:
            # Each account opens on its own: a journal in use or damaged keeps that account
            # out (its exit code counts), never the others.
            try:
                lock = WriterLock.acquire(spec.journal)
            except _EXPECTED as exc:
                codes[spec.name] = _fail_account(spec.name, exc)
                continue
            locks.append(lock)
            try:
                opened[spec.name] = (
                    spec,
                    _open_account(
                        spec.journal,
                        lock,
                        given=functools.partial(_spec_config, spec),
                        given_label=f"account {spec.name} of {source}",
                        seed=args.seed,
                        faults=spec.faults if spec.faults is not None else args.faults,
                        label=f"account {spec.name}: ",
                        advice="give the account the configuration its journal recorded "
                        "(`gridcore inspect` shows the journal), or another journal",
                    ),
                )
            except JournalDamaged as exc:
                codes[spec.name] = _fail_account(spec.name, exc, EXIT_DAMAGED)
            except _EXPECTED as exc:
                codes[spec.name] = _fail_account(spec.name, exc)
        if opened:
            codes.update(_accounts_session(args, [o for o in opened.values()]))
    finally:
        for _, o in opened.values():
            o.close()
        for lock in locks:
            lock.release()
        detach()
        close_log()
        for exporter in args.account_exporters.values():
            exporter.close()
    code = accounts.worst_exit([codes[spec.name] for spec in specs if spec.name in codes])
    summary = ", ".join(f"{spec.name} {codes.get(spec.name, EXIT_USAGE)}" for spec in specs)
    print(f"accounts: {summary}; exit {code} (the worst)")
    return code


def _account_exporters(
    args: argparse.Namespace, specs: tuple[accounts.AccountSpec, ...]
) -> dict[str, metrics.Exporter]:
    """One metrics endpoint per account (``--metrics-port N``: account i at port N + i)."""
    port = getattr(args, "metrics_port", None)
    if port is None:
        return {}
    host = getattr(args, "metrics_host", metrics.DEFAULT_HOST)
    if port and port + len(specs) - 1 > 65_535:
        raise CliError(f"--metrics-port {port}: {len(specs)} accounts need ports up to 65535")
    exporters: dict[str, metrics.Exporter] = {}
    try:
        for index, spec in enumerate(specs):
            exporter = metrics.Exporter(metrics.Observer(), host, port + index if port else 0)
            exporters[spec.name] = exporter
            print(
                f"gridcore: account {spec.name}: metrics at {exporter.url}",
                file=sys.stderr,
                flush=True,
            )
    except BaseException:
        for exporter in exporters.values():
            exporter.close()
        raise
    return exporters


def _spec_config(spec: accounts.AccountSpec) -> tuple[str, BotConfig]:
    return spec.text, spec.config


def _fail_account(name: str, exc: BaseException, code: int = EXIT_USAGE) -> int:
    text = redact(" ".join(str(exc).split("\n")))
    print(f"gridcore: error: account {name}: {text}", file=sys.stderr)
    return code


def _accounts_session(
    args: argparse.Namespace, opened: list[tuple[accounts.AccountSpec, _Opened]]
) -> dict[str, int]:
    """Run the opened accounts on one shared clock and one market per venue and market."""
    quiet = args.quiet or (args.log_json and args.log_file is None)
    start = max(SimVenue.resume_time(o.venue_state, o.state.now) for _, o in opened)
    clock = LockstepClock(start, speed=args.speed, shared=True)
    markets: dict[str, tuple[SharedMarket, list[SimVenue]]] = {}
    sessions: list[accounts.AccountSession] = []
    venues: list[SimVenue] = []
    journals: dict[str, Journal] = {}
    exporters: dict[str, metrics.Exporter] = getattr(args, "account_exporters", {})
    for index, (spec, o) in enumerate(opened):
        for note in o.notes:
            print(f"gridcore: account {spec.name}: {note}", file=sys.stderr)
        key = market_key(o.config, o.venue_state.seed)
        if key not in markets:
            markets[key] = (SharedMarket(config=o.config, seed=o.venue_state.seed, clock=clock), [])
        market, members = markets[key]
        view = accounts.AccountClock(clock, index)
        venue = SimVenue(
            config=o.config, state=o.venue_state, store=o.store, clock=view, market=market
        )
        members.append(venue)
        venues.append(venue)
        journals[spec.name] = o.journal
        runtime = Runtime(
            state=o.state,
            journal=o.journal,
            venues=[venue],
            clock=view,
            options=RuntimeOptions(
                cancel_on_exit=args.cancel_on_exit,
                snapshot_every=args.snapshot_every,
                handle_signals=False,
            ),
            on_notice=_Notices(verbose=args.verbose, quiet=quiet, account=spec.name),
            start_events=_start_events(o.state, clock.now()),
            log=(
                exporters[spec.name].session_log() if spec.name in exporters else logs.SessionLog()
            ),
        )
        sessions.append(
            accounts.AccountSession(name=spec.name, runtime=runtime, clock=view, venues=[venue])
        )
        logging.getLogger("gridcore.run").info(
            "account %s: %s journal %s at event %d",
            spec.name,
            "resume" if o.journal.last_seq else "start",
            o.journal.path,
            o.journal.last_seq,
            extra={"fields": {"account": spec.name, "journal": str(o.journal.path)}},
        )

    def on_signal(name: str, count: int) -> None:
        if count == 1:
            print(
                f"gridcore: stopping (signal {name}): every account waits for its outstanding "
                "orders, then writes a final snapshot; press Ctrl-C again to stop waiting",
                file=sys.stderr,
                flush=True,
            )

    guard = ShutdownSignals()
    duration_ms = None if args.duration is None else int(args.duration * 1000)
    outcomes: list[accounts.AccountOutcome] = []
    interrupted = False

    async def session() -> None:
        nonlocal outcomes
        outcomes = await accounts.run_accounts(
            sessions,
            clock=clock,
            markets=list(markets.values()),
            duration_ms=duration_ms,
            on_signal=on_signal,
            shutdown_signals=guard,
        )

    try:
        anyio.run(session, backend=args.backend)
    except* KeyboardInterrupt:
        guard.install()
        interrupted = True
    finally:
        for venue in venues:
            venue.close()
    if interrupted and not outcomes:
        print(
            "gridcore: interrupted; the journals are intact, run again to resume", file=sys.stderr
        )
        return {s.name: EXIT_INTERRUPTED for s in sessions}
    codes: dict[str, int] = {}
    for s, outcome in zip(sessions, outcomes, strict=True):
        codes[s.name] = _account_report(s, outcome, journals[s.name])
    return codes


def _account_report(
    session: accounts.AccountSession, outcome: accounts.AccountOutcome, journal: Journal
) -> int:
    name = session.name
    runtime = session.runtime
    if outcome.error is not None:
        if outcome.code == EXIT_BUG:
            sys.stderr.write(redact("".join(traceback.format_exception(outcome.error))))
        return _fail_account(name, outcome.error, outcome.code)
    final = runtime.state
    stats = runtime.stats
    print(
        f"account {name}: stopped ({stats.stop_reason}): {stats.events} events this run, "
        f"journal at event {journal.last_seq}; {_money_summary(final)}; "
        f"fills {final.ledger.fill_count}"
    )
    _print_sides(final, f"account {name}: ")
    if stats.signals > 1:
        return EXIT_INTERRUPTED
    return EXIT_OK


def _print_sides(state: State[Any], prefix: str = "") -> None:
    """A hedge grid's per-side figures under the stop line, one line per side (the rows of
    ``gridcore backtest``'s per-side table); nothing for other strategies."""
    for line in side_lines(side_figures(state), Display(state.config)):
        print(prefix + line)


def _money(value: Decimal, state: State[Any], currency: str | None = None) -> str:
    """Money for people, at the currency's places (``-64.95 USD``); ``currency`` defaults to
    the bot's first settlement currency."""
    if currency is None:
        currencies = state.config.currencies
        currency = currencies[0] if currencies else "USD"
    return f"{format_money(value, currency)} {currency}"


def _money_summary(state: State[Any]) -> str:
    """``net PnL ... (realized ..., fees ..., funding ...)`` per settlement currency."""
    return "; ".join(
        f"net PnL {_money(net, state, c)} (realized {_money(t.realized, state, c)}, "
        f"fees {_money(t.fees, state, c)}, funding {_money(t.funding, state, c)})"
        for c, net, t in _pnl(state)
    )


def _pnl(state: State[Any]) -> list[tuple[str, Decimal, Position]]:
    """``(currency, net PnL, totals)`` per settlement currency: amounts in different
    currencies are shown side by side, never added."""
    nets = state.pnl_by_currency()
    totals = state.ledger.totals_by_currency(state.config.venue_currency)
    return [(c, net, totals.get(c, Position())) for c, net in nets.items()]


def _position(state: State[Any], venue: str, symbol: str, qty: Decimal, entry: Decimal) -> str:
    """``qty @ entry`` for people: size at the lot, entry at the tick."""
    shown = Display(state.config)
    return f"{shown.size(venue, symbol, qty)} @ {shown.price(venue, symbol, entry)}"


async def _status_loop(runtime: Runtime, notices: _Notices) -> None:
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    console = Console(stderr=True)
    last_events, last_wall = 0, anyio.current_time()

    def render() -> Table:
        nonlocal last_events, last_wall
        state = runtime.state
        now = anyio.current_time()
        rate = (runtime.stats.events - last_events) / max(now - last_wall, 1e-9)
        last_events, last_wall = runtime.stats.events, now
        table = Table(title="gridcore run (paper)", show_header=False)
        when = datetime.datetime.fromtimestamp(state.now / 1000, datetime.UTC)
        table.add_row("venue time", when.isoformat(timespec="seconds"))
        table.add_row("events", f"{runtime.stats.events} ({rate:,.0f}/s)")
        for (venue, symbol, side), pos in state.ledger.positions.items():
            table.add_row(
                f"{venue}/{symbol} {side.value}",
                _position(state, venue, symbol, pos.qty, pos.avg_entry),
            )
        table.add_row("open orders", str(len(state.live_orders())))
        for c, net, totals in _pnl(state):
            table.add_row("net PnL", _money(net, state, c))
            table.add_row(
                "realized / fees / funding",
                f"{_money(totals.realized, state, c)} / {_money(totals.fees, state, c)} / "
                f"{_money(totals.funding, state, c)}",
            )
        table.add_row("halted", state.risk.halt_reason if state.risk.halted else "no")
        return table

    with Live(render(), console=console, refresh_per_second=4, transient=False) as live:
        notices.printer = live.console.print
        try:
            while True:
                await anyio.sleep(0.5)
                live.update(render())
        finally:
            notices.printer = None


# --- inspect ------------------------------------------------------------------------------------


def _s(value: Decimal) -> str:
    # Machines get the exact value, normalized: no exponent, no trailing zeros.
    return exact_str(value)


def inspect_report(journal: Journal) -> dict[str, Any]:
    """The ``inspect`` report of ``journal`` (the ``--json`` document)."""
    return _inspect(journal)[0]


def _inspect(journal: Journal) -> tuple[dict[str, Any], State[Any]]:
    state, seq = recover(journal)
    meta = journal.meta()
    span = journal.time_range()
    positions = []
    unrealized: dict[str, Decimal] = {}
    for (venue, symbol, side), pos in state.ledger.positions.items():
        mid = state.mid(venue, symbol)
        u = pos.unrealized(mid) if mid is not None else ZERO
        currency = state.config.venue_currency.get(venue, "")
        unrealized[currency] = CTX.add(unrealized.get(currency, ZERO), u)
        positions.append(
            {
                "venue": venue,
                "symbol": symbol,
                "side": side.value,
                "qty": _s(pos.qty),
                "avg_entry": _s(pos.avg_entry),
                "realized": _s(pos.realized),
                "fees": _s(pos.fees),
                "funding": _s(pos.funding),
                "unrealized": _s(u),
            }
        )
    orders = [
        {
            "cloid": o.cloid,
            "venue": o.venue,
            "symbol": o.symbol,
            "side": o.side.value,
            "price": _s(o.price),
            "qty": _s(o.qty),
            "filled_qty": _s(o.filled_qty),
            "status": o.status.value,
            "tag": o.tag,
        }
        for o in state.orders.values()
        if o.is_live
    ]
    by_currency = {
        c: {
            "realized": _s(t.realized),
            "unrealized": _s(unrealized.get(c, ZERO)),
            "fees": _s(t.fees),
            "funding": _s(t.funding),
            "net": _s(CTX.add(t.net, unrealized.get(c, ZERO))),
        }
        for c, t in state.ledger.totals_by_currency(state.config.venue_currency).items()
    }
    violations = check_state(state)
    seqs = journal.snapshot_seqs()
    sides = side_figures(state)  # a hedge grid's per-side figures (else none)
    return {
        "journal": str(journal.path),
        "schema_version": int(meta.get("schema_version", "0")),
        "gridcore_version": meta.get("gridcore_version", ""),
        "events": journal.event_count(),
        "last_seq": seq,
        "first_ts": None if span is None else span[0],
        "last_ts": None if span is None else span[1],
        "snapshots": len(seqs),
        "last_snapshot_seq": seqs[-1] if seqs else None,
        "commands": journal.command_count(),
        "duplicate_cloids": journal.duplicate_cloids(),
        "now": state.now,
        "positions": positions,
        "open_orders": orders,
        "fills": state.ledger.fill_count,
        "pnl": next(iter(by_currency.values())) if len(by_currency) == 1 else None,
        "pnl_by_currency": by_currency,
        "halted": state.risk.halted,
        "halt_reason": state.risk.halt_reason,
        "halt_cause": None if state.risk.halt_cause is None else state.risk.halt_cause.value,
        "venues": {
            name: {"phase": vs.phase.value, "feed_up": vs.feed_up, "funding": _funding_figures(vs)}
            for name, vs in state.venues.items()
        },
        "invariants": {
            "ok": not violations,
            "violations": [
                {"invariant": v.invariant, "ts": v.ts, "detail": v.detail} for v in violations
            ],
        },
        "quarantined": [
            {"seq": q.after_seq + 1, "ts": q.ts, "kind": q.kind, "error": q.error}
            for q in journal.quarantined()
        ],
        **({"sides": side_dict(sides)} if sides else {}),
    }, state


def _journals(paths: list[str]) -> list[Path] | None:
    """The journals of several ``inspect`` paths (a directory: its ``*.db`` journals), or
    ``None`` for one journal file (the one-bot report)."""
    if len(paths) == 1 and not Path(paths[0]).is_dir():
        return None
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            inside = sorted(p for p in path.glob("*.db") if p.is_file())
            if not inside:
                raise CliError(f"{path}: no journal (*.db) in this directory")
            found.extend(inside)
        else:
            found.append(path)
    return found


def _inspect_one(path: Path | str) -> tuple[dict[str, Any], State[Any]]:
    with Journal.open(path, readonly=True) as journal:
        import_strategy(journal.meta().get("config"), source=f"{path} (recorded config)")
        return _inspect(journal)


def _funding_figures(vs: Any) -> dict[str, Any]:
    """A venue's funding reconciliation (:class:`gridcore.sync.FundingStatus`) for ``inspect``."""
    f = vs.funding
    return {
        "paid": f.paid,
        "recovered": f.recovered,
        "priced": f.checked_payments,
        "drifts": f.drifts,
        "drift_amount": exact_str(f.drift_amount),
        "history": "unsupported" if f.unsupported else "asked",
    }


def cmd_inspect(args: argparse.Namespace) -> int:
    """``gridcore inspect``."""
    given = args.journal
    paths: list[str] = [given] if isinstance(given, str) else list(given)
    several = _journals(paths)
    if several is not None:
        return _inspect_accounts(several, as_json=args.json)
    report, state = _inspect_one(paths[0])
    bad = not report["invariants"]["ok"] or bool(report["duplicate_cloids"])
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_VIOLATED if bad else EXIT_OK
    _print_report(report, state)
    return EXIT_VIOLATED if bad else EXIT_OK


def _inspect_accounts(paths: list[Path], *, as_json: bool) -> int:
    """One report per journal (an account: the journal's file name without ``.db``); a journal
    that cannot be read is reported as that account's error. Exit with the worst code."""
    entries: list[dict[str, Any]] = []
    codes: list[int] = []
    for path in paths:
        name = path.name[: -len(".db")] if path.name.endswith(".db") else path.name
        error: Exception
        try:
            report, state = _inspect_one(path)
        except JournalDamaged as exc:
            code, error = EXIT_DAMAGED, exc
        except _EXPECTED as exc:
            code, error = EXIT_USAGE, exc
        else:
            bad = not report["invariants"]["ok"] or bool(report["duplicate_cloids"])
            codes.append(EXIT_VIOLATED if bad else EXIT_OK)
            entries.append({"account": name, **report})
            if not as_json:
                print(f"account {name}")
                _print_report(report, state)
            continue
        codes.append(code)
        text = redact(" ".join(str(error).split("\n")))
        entries.append({"account": name, "journal": str(path), "error": text, "exit": code})
        print(f"gridcore: error: account {name}: {text}", file=sys.stderr)
    if as_json:
        print(json.dumps({"accounts": entries}, indent=2))
    return accounts.worst_exit(codes)


def _print_report(report: dict[str, Any], state: State[Any]) -> None:
    shown = Display(state.config)
    from rich.console import Console
    from rich.table import Table

    console = Console()
    head = Table(title=f"journal {report['journal']}", show_header=False)
    for key in ("events", "last_seq", "first_ts", "last_ts", "snapshots", "commands", "fills"):
        value = report[key]
        if key.endswith("_ts") and value is not None:
            when = datetime.datetime.fromtimestamp(value / 1000, tz=datetime.UTC)
            value = f"{value} ({when.isoformat(timespec='seconds').replace('+00:00', 'Z')})"
        head.add_row(key.replace("_", " "), str(value))
    head.add_row("halted", report["halt_reason"] if report["halted"] else "no")
    for currency, pnl in report["pnl_by_currency"].items():
        for key, value in pnl.items():
            amount = format_money(Decimal(value), currency, grouping=True)
            head.add_row(f"pnl {key} ({currency})", amount)
    console.print(head)
    pos = Table(title="positions")
    for col in ("venue", "symbol", "side", "qty", "avg_entry", "realized", "fees", "funding"):
        pos.add_column(col)
    for p in report["positions"]:
        where = (p["venue"], p["symbol"])
        pos.add_row(
            p["venue"],
            p["symbol"],
            p["side"],
            shown.size(*where, Decimal(p["qty"])),
            shown.price(*where, Decimal(p["avg_entry"])),
            *(
                shown.money(*where, Decimal(p[c]), grouping=True)
                for c in ("realized", "fees", "funding")
            ),
        )
    console.print(pos)
    sides = side_figures(state)
    if sides:
        console.print(side_table(sides, shown))
    orders = Table(title=f"open orders ({len(report['open_orders'])})")
    for col in ("cloid", "side", "price", "qty", "filled_qty", "status", "tag"):
        orders.add_column(col, overflow="fold")
    for o in report["open_orders"]:
        where = (o["venue"], o["symbol"])
        orders.add_row(
            o["cloid"],
            o["side"],
            shown.price(*where, Decimal(o["price"])),
            shown.size(*where, Decimal(o["qty"])),
            shown.size(*where, Decimal(o["filled_qty"])),
            o["status"],
            o["tag"],
        )
    console.print(orders)
    if report["duplicate_cloids"]:
        console.print(f"[red]client order ids released twice: {report['duplicate_cloids']}")
    for q in report["quarantined"]:
        console.print(
            f"quarantined: event {q['seq']} ({q['kind']}, ts {q['ts']}) was not applied: "
            f"the reducer raised {q['error']}",
            markup=False,
            style="red",
        )
    if report["invariants"]["ok"]:
        console.print("invariants: ok")
    else:
        for v in report["invariants"]["violations"]:
            console.print(f"[red]invariant {v['invariant']} violated at {v['ts']}: {v['detail']}")


# --- replay -------------------------------------------------------------------------------------


def diff_values(a: Any, b: Any, path: str = "state", limit: int = 20) -> list[str]:
    """Where two values differ, as ``path: a != b`` lines (at most ``limit``)."""
    out: list[str] = []
    _diff(a, b, path, out, limit)
    return out


def _diff(a: Any, b: Any, path: str, out: list[str], limit: int) -> None:
    if len(out) >= limit:
        return
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        if str(a) != str(b):  # equal values may still round differently later
            out.append(f"{path}: stored {a!r} != fold {b!r}")
        return
    if type(a) is not type(b):
        out.append(f"{path}: {a!r} != {b!r}")
    elif attrs.has(type(a)):
        for f in attrs.fields(type(a)):
            if f.eq:
                _diff(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}", out, limit)
    elif isinstance(a, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a or key not in b:
                out.append(f"{path}[{key!r}]: only in {'stored' if key in a else 'fold'}")
            else:
                _diff(a[key], b[key], f"{path}[{key!r}]", out, limit)
    elif isinstance(a, tuple | list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(x, y, f"{path}[{i}]", out, limit)
    elif isinstance(a, tuple | list):
        out.append(f"{path}: {len(a)} items stored, {len(b)} in the fold")
    elif isinstance(a, frozenset):
        if a != b:
            out.append(
                f"{path}: stored has {sorted(map(repr, a - b))[:5]}, "
                f"fold has {sorted(map(repr, b - a))[:5]}"
            )
    elif a != b:
        out.append(f"{path}: stored {a!r} != fold {b!r}")
    if len(out) > limit:
        del out[limit:]


@attrs.frozen(kw_only=True)
class ReplayResult:
    """What :func:`replay_journal` found."""

    events: int
    verified: tuple[int, ...]
    mismatch_seq: int | None = None
    diff: tuple[str, ...] = ()


_PARALLEL_REPLAY_EVENTS = 10_000
"""Journals at least this long are replayed by one process per core (shorter ones: starting the
processes, 15–30 ms each, costs more than it saves). With two free cores a 10,000-event journal
replays about 1.35× as fast in two processes, a 20,000-event one about 1.6×; on a machine whose
cores are all busy a second process gains nothing and costs a few per cent."""


def replay_journal(journal: Journal, *, jobs: int = 1, verify: bool = False) -> ReplayResult:
    """Fold every event from snapshot 0; compare each stored snapshot with the fold.

    ``jobs`` > 1 (where processes fork): the events are cut at stored snapshots into ``jobs``
    stretches of about equal length, folded in parallel processes, each from the stored
    snapshot it starts at — which the stretch before it proves equal (canonical bytes) to the
    fold from snapshot 0. Every event is folded and every snapshot compared, as with one
    process; the first mismatch is reported.

    ``verify``: for a handle opened with ``verify=False``, check the journal as
    :meth:`Journal.open` with ``verify_events=False`` would (everything but the walk over the
    event rows, which the fold reads and checks), with the open's errors, before any verdict
    or any error of the fold. In parallel the check is shared rather than made before the
    first fork: the second process runs SQLite's integrity check before its stretch while this
    one checks the rows and the head file's mark before its own."""
    try:
        seqs = journal.snapshot_seqs()
        if not seqs or seqs[0] != 0:
            raise JournalError(f"{journal.path}: snapshot 0 (the initial state) is missing")
        if seqs[-1] > journal.last_seq:
            raise JournalError(
                f"{journal.path}: a snapshot at seq {seqs[-1]} is past the last event "
                f"({journal.last_seq}); the file is damaged"
            )
    except JournalError:
        if verify:
            _verify_opened(journal)  # a damaged file is reported as the open reports it
        raise
    cuts = _replay_cuts(seqs, journal.last_seq, jobs)
    if len(cuts) > 1 and hasattr(os, "fork"):
        # This process folds the first stretch itself (its handle is open) while forked
        # children fold the rest (the strategies imported here come along): one process fewer
        # to start than stretches.
        children = [
            _fork_stretch(journal.path, start, upto, seqs, check=verify and i == 0)
            for i, (start, upto) in enumerate(cuts[1:])
        ]
        try:
            if verify:
                try:
                    journal.verify(events=False, integrity=False)
                except JournalDamaged:
                    _verify_opened(journal)  # names the first fault, as the open does
                    raise
            try:
                first = _replay_stretch(journal, *cuts[0], seqs)
            finally:
                if verify:  # the integrity check's verdict comes before the fold's errors
                    _checked_by(children[0], journal)
            # A mismatch in the first stretch is the first mismatch: the rest is not awaited.
            parts = [first]
            if first.mismatch_seq is None:
                parts.extend(_stretch_result(child) for child in children)
        finally:
            for child in children:
                child.pipe.close()
                _reap(child.pid)
        events, verified = 0, [0]
        for part in parts:
            events += part.events
            verified.extend(part.verified)
            if part.mismatch_seq is not None:
                return attrs.evolve(part, events=events, verified=tuple(verified))
        return ReplayResult(events=events, verified=tuple(verified))
    if verify:
        _verify_opened(journal)
    part = _replay_stretch(journal, 0, None, seqs)
    return attrs.evolve(part, verified=(0, *part.verified))


def _verify_opened(journal: Journal) -> None:
    """What :meth:`Journal.open` checks with ``verify_events=False``, with its errors: a fault
    found is named by the whole walk (the first fault of the file, as a full open names it)."""
    try:
        journal.verify(events=False)
    except JournalDamaged:
        journal.verify()
        raise


def _replay_cuts(seqs: Sequence[int], last: int, jobs: int) -> list[tuple[int, int | None]]:
    """``(start snapshot, upto)`` stretches for ``jobs`` processes: cut at the stored snapshots
    nearest to equal shares of the events (the last stretch runs to the end)."""
    if jobs <= 1 or last < 2 * jobs:
        return [(0, None)]
    starts = [0]
    for k in range(1, jobs):
        target = last * k // jobs
        cut = min(seqs, key=lambda s: (abs(s - target), s))
        if starts[-1] < cut < last:
            starts.append(cut)
    return [(a, b) for a, b in zip(starts, [*starts[1:], None], strict=True)]


_CHECKED, _NOT_CHECKED = b"+", b"!"
"""The first byte a forked stretch process writes: its share of the journal's check passed (or
it had none), or it found a fault (the parent runs the whole check itself to name it)."""


def _replay_part(
    path: Path,
    start: int,
    upto: int | None,
    seqs: Sequence[int],
    check: bool,
    checked: Callable[[], None],
) -> ReplayResult:
    """One stretch of a parallel replay, in its own process and its own read-only handle;
    ``check``: SQLite's integrity check of the file first (the parent checks the rest).
    ``checked`` is called once it passed (or there was none), before the fold begins."""
    with Journal.open(path, readonly=True, verify=False) as journal:
        if check:
            journal.verify(events=False, rows=False)
        checked()
        return _replay_stretch(journal, start, upto, seqs)


@attrs.define
class _Child:
    """A forked stretch process: its pid and the pipe it writes to — the verdict of its check
    (one byte, :data:`_CHECKED` when it had none), then its pickled ``(ReplayResult or
    exception, failed)``."""

    pid: int
    pipe: BinaryIO
    said: bytes | None = None
    """The verdict, once read."""

    def verdict(self) -> bytes:
        """The verdict byte (empty: the process ended before it said)."""
        if self.said is None:
            self.said = self.pipe.read(1)
        return self.said


def _fork_stretch(
    path: Path, start: int, upto: int | None, seqs: Sequence[int], *, check: bool = False
) -> _Child:
    """A forked child folding one stretch (:func:`_replay_part`). A bare fork and a pipe, not
    a ``multiprocessing`` pool: the pool's start (its worker, three threads, a queue) took
    5–15 ms of the parent's time before it began its own stretch, a few per cent of a
    two-process replay."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child: coverage does not follow a bare fork)
        code = 1
        try:
            os.close(reader)
            with os.fdopen(writer, "wb") as out:
                said: list[bytes] = []

                def checked() -> None:
                    out.write(_CHECKED)
                    out.flush()  # the parent may be waiting for it
                    said.append(_CHECKED)

                try:
                    outcome: tuple[Any, bool] = (
                        _replay_part(path, start, upto, seqs, check, checked),
                        False,
                    )
                except BaseException as exc:  # the parent raises it, as a one-process replay
                    outcome = (exc, True)
                if not said:  # the check or the opening failed
                    out.write(_NOT_CHECKED)
                try:
                    data = pickle.dumps(outcome)
                except Exception as exc:  # an exception that does not pickle: say which
                    data = pickle.dumps(
                        (
                            JournalError(f"{path}: replaying events after {start} failed: {exc!r}"),
                            True,
                        )
                    )
                out.write(data)
            code = 0
        finally:
            os._exit(code)  # never return into the parent's code (a test runner, a CLI)
    os.close(writer)
    return _Child(pid, os.fdopen(reader, "rb"))


def _checked_by(child: _Child, journal: Journal) -> None:
    """Wait for the verdict of the check a forked child made; if it did not pass (or the child
    ended before it said), check the whole journal here, which raises the open's error."""
    if child.verdict() != _CHECKED:
        _verify_opened(journal)


def _stretch_result(child: _Child) -> ReplayResult:
    """The result a forked child sent; its exception raised here."""
    data = child.pipe.read() if child.verdict() else b""
    if not data:
        raise JournalError(
            f"a replay process (pid {child.pid}) ended without a result (killed, or out of "
            f"memory?); run the replay again"
        )
    value, failed = pickle.loads(data)
    if failed:
        raise value
    result: ReplayResult = value
    return result


def _reap(pid: int) -> None:
    """Wait for a forked child, stopping it first if it is still folding (the parent no longer
    needs its stretch: a mismatch before it, or an error)."""
    done, _ = os.waitpid(pid, os.WNOHANG)
    if done == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _replay_stretch(
    journal: Journal, start: int, upto: int | None, seqs: Sequence[int]
) -> ReplayResult:
    """Fold from the stored snapshot ``start`` through ``upto`` (the end: ``None``), comparing
    every stored snapshot on the way; ``verified`` lists the seqs that agreed (not ``start``)."""
    wanted = {s for s in seqs if s > start and (upto is None or s <= upto)}
    verified: list[int] = []
    events = 0
    for seq, state in fold(journal, start=start, upto=upto):
        events += 1
        if seq in wanted:
            # Canonical bytes, not ==: a Decimal stored as 1.00 but folded as 1.0 is equal yet
            # rounds differently later, so a replay must match representations exactly.
            if not journal.snapshot_matches(seq, state):
                stored = journal.snapshot(seq)
                return ReplayResult(
                    events=events,
                    verified=tuple(verified),
                    mismatch_seq=seq,
                    diff=tuple(diff_values(stored, state)),
                )
            verified.append(seq)
    return ReplayResult(events=events, verified=tuple(verified))


def cmd_replay(args: argparse.Namespace) -> int:
    """``gridcore replay``."""
    # The replay reads every event row through Journal.events, which checks its sequence and
    # chained checksum; replay_journal checks everything else (what the open would, not the
    # event rows a second time), while the stretches fold when it folds them in parallel.
    with Journal.open(args.journal, readonly=True, verify=False) as journal:
        try:
            import_strategy(
                journal.meta().get("config"), source=f"{args.journal} (recorded config)"
            )
        except Exception:
            _verify_opened(journal)  # a damaged file is reported as damaged, as a checked open
            raise
        # A long journal is folded in parallel stretches, one per core (the fold is CPU-bound).
        jobs = min(os.cpu_count() or 1, 8) if journal.last_seq >= _PARALLEL_REPLAY_EVENTS else 1
        result = replay_journal(journal, jobs=jobs, verify=True)
        if result.mismatch_seq is not None:
            # A replay stops at the first mismatch, before the event rows after it were read:
            # damage anywhere is reported as damage, as a fully verified open reports it.
            journal.verify()
    if result.mismatch_seq is None:
        print(
            f"replayed {result.events} events from snapshot 0: {len(result.verified)} snapshots "
            f"agree with the fold (seqs {', '.join(map(str, result.verified[-5:]))}"
            f"{', ...' if len(result.verified) > 5 else ''}); deterministic"
        )
        return EXIT_OK
    print(
        f"NOT deterministic: the snapshot stored at seq {result.mismatch_seq} differs from the "
        f"fold of the events before it ({len(result.verified)} earlier snapshots agreed):"
    )
    for line in result.diff:
        print(f"  {line}")
    return EXIT_VIOLATED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
