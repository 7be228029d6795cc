"""Several accounts in one ``gridcore run`` process.

Theory of operation
-------------------
Operators run the same bot on several accounts. Each account is a whole bot: its own
configuration (the shared one with the account's overrides), its own state, its own journal
(one writer each) and its own runtime, with its own task group, cancel scope and exit status.
What the accounts share is the *public* market data of a venue: one market feed per venue (and
market), its quotes fanned out to every account (:class:`~gridcore.shells.simvenue.SharedMarket`
on the simulated venue). Each account's private stream (its order updates and fills) and its
commands stay its own.

Configuration: an ``[[accounts]]`` array in the ``--config`` TOML. Every table outside
``accounts`` is the shared configuration; an entry names the account (``name``), may give its
``journal`` path and its simulated venue's ``faults`` profile, and may override any table of
the shared configuration (``[accounts.risk]`` after ``[[accounts]]``); the merge is per field.
The merged configuration is what the account's journal records (and resumes with).
Secrets never come from the file: a key that looks like one (``api_key``, ``secret``, ...)
is refused at load, and an adapter that needs one reads it from the environment,
``GRIDCORE_<ACCOUNT>_<NAME>`` (:func:`account_secrets`).

Isolation (failure `account-cascade`): one account's poison event, adapter bug or damaged
journal stops (or never starts) that account alone, and its halt halts it alone. On the shared
lockstep clock an account is a view (:class:`AccountClock`) that namespaces its sleepers' keys
and counts the units of work it holds, so that when the account's runtime ends, whatever it
left held (a task cancelled before it ran, an event left in its channel) is released and
simulated time goes on for the others.
"""

from __future__ import annotations

import contextvars
import logging
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import attrs

from gridcore.config import BotConfig
from gridcore.errors import ConfigError
from gridcore.shells.runtime import (
    EventRejected,
    LockstepClock,
    Runtime,
    ShutdownSignals,
    SleepKey,
)
from gridcore.shells.simvenue import SharedMarket, SimVenue
from gridcore.shells.strategies import load_config
from gridcore.shells.venue import AdapterFailed

__all__ = [
    "CURRENT_ACCOUNT",
    "EXIT_SEVERITY",
    "AccountClock",
    "AccountLogFilter",
    "AccountOutcome",
    "AccountSession",
    "AccountSpec",
    "account_secrets",
    "accounts_from_options",
    "dump_toml",
    "has_accounts",
    "load_accounts",
    "run_accounts",
    "worst_exit",
]

ACCOUNT_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
"""An account's name: lowercase letters, digits and ``_``, starting with a letter (it becomes
part of file names and of environment variable names)."""

_ENTRY_KEYS = frozenset({"name", "journal", "faults"})
_SECRET_WORDS = ("key", "secret", "token", "password", "passphrase", "private", "mnemonic")

EXIT_SEVERITY = (70, 3, 4, 2, 130, 1, 0)
"""Exit codes from worst to best: the process exits with the worst code of its accounts
(70 a bug, 3 a damaged journal, 4 a poison event, 2 a configuration or lock error, 130
interrupted, 0 ok)."""


def worst_exit(codes: Sequence[int]) -> int:
    """The worst of ``codes`` by :data:`EXIT_SEVERITY` (0 for none)."""
    rank = {code: i for i, code in enumerate(EXIT_SEVERITY)}
    return min(codes, key=lambda c: rank.get(c, 0), default=0)


# --- configuration ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class AccountSpec:
    """One account of the ``[[accounts]]`` array, its configuration merged."""

    name: str
    journal: Path
    text: str
    """The account's whole configuration (TOML): what its journal records."""
    config: BotConfig
    faults: str | None = None
    """The simulated venue's fault profile of this account (``None``: the command line's)."""


def has_accounts(text: str) -> bool:
    """Whether the TOML ``text`` has an ``accounts`` key (a several-accounts configuration)."""
    try:
        return "accounts" in tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _secret_field(table: Mapping[str, Any], prefix: str) -> str | None:
    for key, value in table.items():
        if isinstance(value, dict):
            found = _secret_field(value, f"{prefix}{key}.")
            if found:
                return found
        elif any(word in key.lower() for word in _SECRET_WORDS):
            return f"{prefix}{key}"
    return None


def load_accounts(
    text: str, *, source: str, journal_dir: str | os.PathLike[str] | None
) -> tuple[AccountSpec, ...]:
    """The accounts of the configuration ``text`` (from ``source``), each with its merged
    configuration and its journal path (``journal``, relative to ``journal_dir``, or
    ``<journal_dir>/<name>.db``). Raises :class:`~gridcore.errors.ConfigError` naming the
    field (``accounts[1].name``, ``accounts[0] (bob): grid.levels``) of a bad entry."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("accounts", f"not valid TOML ({exc})", source=source) from None
    entries = data.pop("accounts", None)
    if (
        not isinstance(entries, list)
        or not entries
        or not all(isinstance(e, dict) for e in entries)
    ):
        raise ConfigError(
            "accounts",
            "must be a non-empty array of tables: one [[accounts]] with a name per account",
            source=source,
        )
    found = _secret_field(data, "")
    if found:
        raise ConfigError(
            found,
            "secrets are never read from a configuration file; set them in the environment "
            "as GRIDCORE_<ACCOUNT>_<NAME> (docs/runtime.md, Several accounts)",
            source=source,
        )
    base_dir = None if journal_dir is None else Path(journal_dir)
    specs: list[AccountSpec] = []
    names: set[str] = set()
    journals: dict[Path, str] = {}
    for index, entry in enumerate(entries):
        where = f"accounts[{index}]"
        name = entry.get("name")
        if not isinstance(name, str) or not ACCOUNT_NAME.fullmatch(name):
            raise ConfigError(
                f"{where}.name",
                f"{name!r}: each account needs a name of lowercase letters, digits and _, "
                "starting with a letter (at most 32 characters)",
                source=source,
            )
        if name in names:
            raise ConfigError(f"{where}.name", f"{name!r} is used twice", source=source)
        names.add(name)
        where = f"{where} ({name})"
        found = _secret_field(entry, "")
        if found:
            raise ConfigError(
                f"{where}.{found}",
                f"secrets are never read from a configuration file; set it in the "
                f"environment as GRIDCORE_{name.upper()}_<NAME>",
                source=source,
            )
        overrides: dict[str, Any] = {}
        for key, value in entry.items():
            if key in _ENTRY_KEYS:
                continue
            if not isinstance(value, dict):
                raise ConfigError(
                    f"{where}.{key}",
                    "unknown field: an account has name, journal and faults, and tables that "
                    "override the shared configuration ([accounts.risk], ...)",
                    source=source,
                )
            overrides[key] = value
        faults = entry.get("faults")
        if faults is not None and not isinstance(faults, str):
            raise ConfigError(f"{where}.faults", "must be a fault profile name", source=source)
        journal = entry.get("journal")
        if journal is not None and (not isinstance(journal, str) or not journal):
            raise ConfigError(f"{where}.journal", "must be a file path", source=source)
        if journal is None and base_dir is None:
            raise ConfigError(
                f"{where}.journal",
                "no journal: give the account a journal path, or pass --journal-dir DIR "
                f"(its journal is then DIR/{name}.db)",
                source=source,
            )
        if journal is None:
            assert base_dir is not None
            path = base_dir / f"{name}.db"
        else:
            path = Path(journal) if base_dir is None else base_dir / journal
        key = path.resolve()
        if key in journals:
            raise ConfigError(
                f"{where}.journal",
                f"{path} is also the journal of account {journals[key]!r}: one journal per account",
                source=source,
            )
        journals[key] = name
        merged = _merge(data, overrides)
        account_text = dump_toml(merged)
        config = load_config(account_text, source=f"{source}: {where}")
        specs.append(
            AccountSpec(name=name, journal=path, text=account_text, config=config, faults=faults)
        )
    return tuple(specs)


def accounts_from_options(base_text: str, options: Sequence[str], *, source: str) -> str:
    """The configuration ``base_text`` (from ``source``) with an ``accounts`` array built from
    ``--account NAME[=FILE]`` options: FILE is a TOML file of the account's overrides (tables
    merged over the shared ones) and may set ``journal`` and ``faults``. Read it with
    :func:`load_accounts`. Raises :class:`~gridcore.errors.ConfigError` naming the option."""
    try:
        data = tomllib.loads(base_text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"not valid TOML ({exc})", source=source) from None
    if "accounts" in data:
        raise ConfigError(
            "accounts",
            "the configuration has [[accounts]] and --account is given too: use one of them",
            source=source,
        )
    entries: list[dict[str, Any]] = []
    for option in options:
        name, sep, path = option.partition("=")
        entry: dict[str, Any] = {"name": name}
        if sep:
            try:
                over = tomllib.loads(Path(path).read_text(encoding="utf-8"))
            except OSError as exc:
                raise ConfigError(
                    f"--account {option}", f"cannot read {path}: {exc.strerror or exc}"
                ) from None
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(
                    f"--account {option}", f"{path}: not valid TOML ({exc})"
                ) from None
            if "name" in over:
                raise ConfigError(
                    f"--account {option}",
                    f"{path}: name: the account's name is the one before '=' ({name!r})",
                )
            entry.update(over)
        entries.append(entry)
    data["accounts"] = entries
    return dump_toml(data)


def account_secrets(name: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The secrets of account ``name`` from the environment: every ``GRIDCORE_<NAME>_<KEY>``
    variable, as ``{"<key>": value}`` (lowercase key). Never logged, never journaled."""
    env = os.environ if environ is None else environ
    prefix = f"GRIDCORE_{name.upper()}_"
    return {k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix) and v}


# A small TOML writer for the merged configuration (tables of scalars, arrays, nested tables).


def _toml_str(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_str(key)


def _toml_value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v, where) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_toml_key(k)} = {_toml_value(v, where)}" for k, v in value.items())
        return "{" + inner + "}"
    raise ConfigError(where, f"a value of type {type(value).__name__} cannot be recorded")


def _toml_table(table: Mapping[str, Any], path: list[str], out: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and (scalars or not tables):
        out.append(f"[{'.'.join(_toml_key(p) for p in path)}]")
    for key, value in scalars.items():
        out.append(f"{_toml_key(key)} = {_toml_value(value, '.'.join([*path, key]))}")
    if path and (scalars or not tables):
        out.append("")
    for key, value in tables.items():
        _toml_table(value, [*path, key], out)


def dump_toml(data: Mapping[str, Any]) -> str:
    """``data`` (what :mod:`tomllib` reads) as TOML text that reads back equal."""
    out: list[str] = []
    _toml_table(data, [], out)
    text = "\n".join(out).rstrip("\n") + "\n"
    if tomllib.loads(text) != data:  # pragma: no cover - a bug in this writer
        raise ConfigError("accounts", "the merged configuration cannot be written back as TOML")
    return text


# --- the shared clock ---------------------------------------------------------------------------


class AccountClock:
    """One account's view of the shared :class:`~gridcore.shells.runtime.LockstepClock`.

    Sleep keys get the account's index after their rank (``(K_COMMAND, index, cid, stage)``),
    so two accounts' command ids never collide and each account's sleepers wake in the order
    they would alone. The view counts the units of work the account holds; :meth:`detach`
    (called once the account's runtime has ended) releases what it still holds, so an account
    that stopped mid-flight never freezes simulated time for the others.
    """

    def __init__(self, base: LockstepClock, index: int) -> None:
        self.base = base
        self.index = index
        self._net = 0
        self._detached = False

    def now(self) -> int:
        """The shared simulated time, ms."""
        return self.base.now()

    def _key(self, key: SleepKey) -> SleepKey:
        return (key[0], self.index, *key[1:])

    async def sleep_until(self, ts: int, key: SleepKey) -> None:
        """Sleep on the shared clock under the account's namespaced key."""
        if self._detached:
            raise RuntimeError(f"account clock {self.index} used after its runtime ended")
        self._net -= 1  # the shared clock releases the caller's unit while it sleeps ...
        try:
            await self.base.sleep_until(ts, self._key(key))
        finally:
            self._net += 1  # ... and holds it again (woken or cancelled) before returning

    async def park(self) -> None:
        """Sleep until cancelled without holding time back."""
        self._net -= 1
        try:
            await self.base.park()
        finally:
            self._net += 1

    def hold(self) -> None:
        """One more unit of this account's pending work."""
        if not self._detached:
            self._net += 1
            self.base.hold()

    def release(self) -> None:
        """One unit of this account's pending work is done."""
        if not self._detached:
            self._net -= 1
            self.base.release()

    async def run(self) -> None:
        """The shared scheduler runs once, in :func:`run_accounts`; an account's runtime waits."""
        await anyio.sleep_forever()

    async def settle(self, done: Callable[[], bool], deadline: int) -> None:
        """The account's shutdown wait, answered on its own (the shared clock goes on)."""
        await self.base.settle(done, deadline)

    def detach(self) -> int:
        """The account's runtime ended: release every unit it still holds (returned) and
        ignore its holds and releases from now on."""
        if self._detached:
            return 0
        self._detached = True
        held, self._net = self._net, 0
        for _ in range(max(held, 0)):
            self.base.release()
        return held


# --- logs ---------------------------------------------------------------------------------------

CURRENT_ACCOUNT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "gridcore_account", default=None
)
"""The account whose task is running (set by :func:`run_accounts` for each account's runtime;
every task it starts inherits it)."""


class AccountLogFilter(logging.Filter):
    """Names the account in every log line written from its tasks: ``account NAME:`` before
    the message and an ``account`` field. Attach it to the loggers (``gridcore.run``,
    ``gridcore.fills``, ``gridcore.venue.<name>``) with :meth:`attach`."""

    def filter(self, record: logging.LogRecord) -> bool:
        account = CURRENT_ACCOUNT.get()
        if account is not None and not getattr(record, "_account_named", False):
            record.msg = f"account {account}: {record.msg}"
            fields = dict(getattr(record, "fields", None) or {})
            fields["account"] = account
            record.fields = fields
            record._account_named = True
        return True

    def attach(self, names: Sequence[str]) -> Callable[[], None]:
        """Attach to the loggers ``names``; returns the function that detaches it."""
        loggers = [logging.getLogger(n) for n in names]
        for logger in loggers:
            logger.addFilter(self)

        def detach() -> None:
            for logger in loggers:
                logger.removeFilter(self)

        return detach


# --- running them -------------------------------------------------------------------------------


@attrs.define(kw_only=True)
class AccountSession:
    """One account ready to run: its runtime (on its :class:`AccountClock`) and venues."""

    name: str
    runtime: Runtime
    clock: AccountClock
    venues: Sequence[SimVenue] = ()


@attrs.define(kw_only=True)
class AccountOutcome:
    """How one account's run ended."""

    name: str
    code: int = 0
    error: BaseException | None = None
    finished: bool = False
    """The runtime returned or raised after its final snapshot."""


async def run_accounts(
    sessions: Sequence[AccountSession],
    *,
    clock: LockstepClock,
    markets: Sequence[tuple[SharedMarket, Sequence[SimVenue]]] = (),
    duration_ms: int | None = None,
    handle_signals: bool = True,
    on_signal: Callable[[str, int], None] | None = None,
    shutdown_signals: ShutdownSignals | None = None,
) -> list[AccountOutcome]:
    """Run every account to its end on the shared ``clock`` (``shared=True``), each in its own
    task with its own cancel scope and outcome; the ``markets`` feed their venues.

    A first SIGINT/SIGTERM asks every account to stop; a second stops their waits for
    outstanding orders (``on_signal(name, count)`` hears each). One account's exception never
    reaches another: it becomes that account's outcome (4 a poison event, 70 an adapter bug or
    any other exception). The runtimes must not handle signals themselves."""
    if not clock.shared:
        raise ValueError("run_accounts needs a LockstepClock(shared=True)")
    outcomes = [AccountOutcome(name=s.name) for s in sessions]
    guard = shutdown_signals or ShutdownSignals()
    signals_seen = 0

    async def one(session: AccountSession, outcome: AccountOutcome) -> None:
        CURRENT_ACCOUNT.set(session.name)  # this task's context: its runtime's tasks inherit it
        try:
            await session.runtime.run(duration_ms=duration_ms)
            outcome.finished = True
        except EventRejected as exc:
            outcome.code, outcome.error, outcome.finished = 4, exc, True
        except AdapterFailed as exc:
            outcome.code, outcome.error, outcome.finished = 70, exc, True
        except Exception as exc:  # a bug of this account's strategy or runtime: its alone
            outcome.code, outcome.error = 70, exc
        finally:
            session.clock.detach()
            for venue in session.venues:
                market = venue.market
                if market is not None:
                    market.unsubscribe(venue)  # never leave the market waiting for it

    async def market_task(market: SharedMarket, venues: Sequence[SimVenue]) -> None:
        try:
            await market.run(venues)
        finally:
            clock.release()

    async def watch_signals(receiver: Any) -> None:
        nonlocal signals_seen
        import signal as _signal

        async for signum in receiver:
            signals_seen += 1
            name = _signal.Signals(signum).name
            if on_signal is not None:
                on_signal(name, signals_seen)
            for session in sessions:
                session.runtime.stats.signals += 1
                if signals_seen == 1:
                    session.runtime.request_stop(f"signal {name}")
                else:
                    session.runtime.hurry()

    async def body(receiver: Any) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(clock.run)
            for market, venues in markets:
                clock.hold()  # counted as work until it sleeps on the clock
                tg.start_soon(market_task, market, venues)
            if receiver is not None:
                tg.start_soon(watch_signals, receiver)
            async with anyio.create_task_group() as accounts:
                for session, outcome in zip(sessions, outcomes, strict=True):
                    accounts.start_soon(one, session, outcome)
            tg.cancel_scope.cancel()

    if not handle_signals:
        await body(None)
        return outcomes
    guard.install()  # until the receiver opens, a signal is ignored (never half a start)
    try:
        with anyio.open_signal_receiver(*_STOP_SIGNALS) as receiver:
            await body(receiver)
    finally:
        # Signals stay ignored through the caller's closing of the venues and journals.
        guard.install()
    return outcomes


def _stop_signals() -> tuple[Any, ...]:
    import signal

    return (signal.SIGINT, signal.SIGTERM)


_STOP_SIGNALS = _stop_signals()
