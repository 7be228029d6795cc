"""Configuration: TOML text validated into attrs classes, with errors that name the field.

A bot configuration has these tables (every key optional, defaults in :data:`DEFAULT_TOML`):

* ``[venue]`` — the account: ``name``, ``starting_balance`` (quote, simulated venue only),
  ``leverage``, ``position_mode`` (``one_way`` | ``hedge``), ``liquidity`` (base units one order
  may fill per tick, simulated venue only), ``funding_rate``, ``funding_interval_ms``,
  ``dead_man_seconds`` (Hyperliquid: the venue's dead-man switch window, ``"off"`` by default).
* ``[instrument]`` — ``symbol``, ``tick_size``, ``lot_size``, ``min_notional``, ``maker_fee``,
  ``taker_fee``, ``base``, ``quote``.
* ``[strategy]`` — ``kind``: which registered strategy runs (:mod:`gridcore.registry`; default
  ``"grid"``) and ``module``: the module that registers a strategy of your own.
* ``[grid]`` — :class:`~gridcore.strategies.grid.GridConfig` (venue and symbol come from the tables above);
  another kind reads its own table instead (``[<kind>]``, the kind's config class).
* ``[risk]`` — :class:`~gridcore.risk.RiskConfig` (``leverage`` comes from ``[venue]``).
* ``[core]`` — ``maintenance_ms``, ``reconcile_ms``, ``max_sync_attempts``, ``fill_overlap_ms``,
  ``cancel_unknown_orders``, ``funding_drift_tolerance``, ``funding_mark_window_ms``,
  ``funding_reconcile_ms``.
* ``[market]`` — the synthetic market of backtests: ``seed``, ``ticks``, ``start_price``,
  ``volatility``, ``spread_ticks``, ``interval_ms``, ``start_ts``.

Every table has one set of defaults: a key left out takes the value :data:`DEFAULT_TOML`
writes, which is also the attrs class default (``BotConfig()``), so an empty file keeps every
risk limit on. A limit (or ``venue.liquidity``) is switched off only by writing ``"off"``
(``None`` in Python). Value rules shared with the command line live in
:mod:`gridcore.validators`; combinations that could never place an order are refused by
:class:`BotConfig`.

Money, prices and sizes are written as strings (``"0.001"``) or integers; floats are refused
because they are not exact. Reading the file is the caller's business (this module is pure):
:func:`load_config` takes the text and the name to put in error messages.
"""

from __future__ import annotations

import enum
import json
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

import attrs

from gridcore import registry, validators
from gridcore.core import CoreConfig, Strategy
from gridcore.errors import ConfigError
from gridcore.instruments import Instrument, PositionMode
from gridcore.numbers import to_decimal
from gridcore.risk import RiskConfig
from gridcore.strategies.grid import GridConfig

__all__ = [
    "DEFAULT_TOML",
    "BotConfig",
    "CoreSettings",
    "InstrumentSettings",
    "MarketSettings",
    "StrategySettings",
    "VenueSettings",
    "load_config",
    "strategy_toml",
]

T = TypeVar("T")
V = TypeVar("V")


def _rule(field: str, check: Callable[[V], V], value: V) -> None:
    """Apply a shared rule of :mod:`gridcore.validators`, naming the field when it fails."""
    try:
        check(value)
    except ValueError as exc:
        raise ConfigError(field, str(exc)) from None


@attrs.frozen(kw_only=True)
class VenueSettings:
    """The ``[venue]`` table."""

    name: str = "sim"
    starting_balance: Decimal = Decimal(10_000)
    leverage: Decimal = Decimal(10)
    position_mode: PositionMode = PositionMode.ONE_WAY
    liquidity: Decimal | None = None
    funding_rate: Decimal = Decimal("0.0001")
    funding_interval_ms: int = 8 * 3600 * 1000
    dead_man_seconds: int | None = None

    def __attrs_post_init__(self) -> None:
        if not self.name:
            raise ConfigError("venue.name", 'must be a venue name, for example "sim"')
        _rule("venue.starting_balance", validators.positive, self.starting_balance)
        _rule("venue.leverage", validators.positive, self.leverage)
        _rule("venue.funding_interval_ms", validators.positive, self.funding_interval_ms)
        if self.dead_man_seconds is not None and self.dead_man_seconds < 10:
            raise ConfigError(
                "venue.dead_man_seconds",
                f"must be >= 10 (the venue wants the cancel time at least 5 s ahead, and the "
                f'bot refreshes it well before), got {self.dead_man_seconds}; or write "off"',
            )
        if self.liquidity is not None and self.liquidity <= 0:
            raise ConfigError(
                "venue.liquidity",
                f'must be > 0 (base units), got {self.liquidity}; write "off" for no limit',
            )


@attrs.frozen(kw_only=True)
class InstrumentSettings:
    """The ``[instrument]`` table."""

    symbol: str = "BTC-PERP"
    tick_size: Decimal = Decimal("0.1")
    lot_size: Decimal = Decimal("0.001")
    min_notional: Decimal = Decimal(10)
    maker_fee: Decimal = Decimal("0.0002")
    taker_fee: Decimal = Decimal("0.0005")
    base: str = "BTC"
    quote: str = "USD"

    def __attrs_post_init__(self) -> None:
        if not self.symbol:
            raise ConfigError("instrument.symbol", 'must be a symbol, for example "BTC-PERP"')
        _rule("instrument.tick_size", validators.positive, self.tick_size)
        _rule("instrument.lot_size", validators.positive, self.lot_size)
        _rule("instrument.min_notional", validators.non_negative, self.min_notional)
        for name in ("maker_fee", "taker_fee"):
            fee = getattr(self, name)
            if not Decimal("-0.01") <= fee <= Decimal("0.01"):
                raise ConfigError(
                    f"instrument.{name}", f"must be between -0.01 and 0.01, got {fee}"
                )


@attrs.frozen(kw_only=True)
class CoreSettings:
    """The ``[core]`` table."""

    maintenance_ms: int = 5_000
    reconcile_ms: int = 60_000
    max_sync_attempts: int = 3
    fill_overlap_ms: int = 60_000
    cancel_unknown_orders: bool = True
    funding_drift_tolerance: Decimal = Decimal("0.01")
    funding_mark_window_ms: int = 60_000
    funding_reconcile_ms: int = 3_600_000

    def __attrs_post_init__(self) -> None:
        _rule("core.maintenance_ms", validators.positive, self.maintenance_ms)
        _rule("core.reconcile_ms", validators.non_negative, self.reconcile_ms)
        _rule("core.max_sync_attempts", validators.positive, self.max_sync_attempts)
        _rule("core.fill_overlap_ms", validators.non_negative, self.fill_overlap_ms)
        _rule("core.funding_drift_tolerance", validators.non_negative, self.funding_drift_tolerance)
        _rule("core.funding_mark_window_ms", validators.non_negative, self.funding_mark_window_ms)
        _rule("core.funding_reconcile_ms", validators.non_negative, self.funding_reconcile_ms)


@attrs.frozen(kw_only=True)
class MarketSettings:
    """The ``[market]`` table: the seeded synthetic market of backtests."""

    seed: int = 1
    ticks: int = 86_400
    start_price: Decimal = Decimal(50_000)
    volatility: Decimal = Decimal("0.0002")
    spread_ticks: int = 1
    interval_ms: int = 1_000
    start_ts: int = 1_700_000_000_000

    def __attrs_post_init__(self) -> None:
        _rule("market.seed", validators.seed, self.seed)
        _rule("market.ticks", validators.ticks, self.ticks)
        _rule("market.start_price", validators.positive, self.start_price)
        if not Decimal(0) <= self.volatility < Decimal("0.1"):
            raise ConfigError(
                "market.volatility",
                f"must be between 0 and 0.1 per tick, got {self.volatility}",
            )
        _rule("market.spread_ticks", validators.positive, self.spread_ticks)
        _rule("market.interval_ms", validators.positive, self.interval_ms)
        _rule("market.start_ts", validators.non_negative, self.start_ts)


@attrs.frozen(kw_only=True)
class StrategySettings:
    """The ``[strategy]`` table: which registered strategy kind runs.

    ``kind`` names a kind of :mod:`gridcore.registry` (``"grid"``, the default, is the neutral
    grid); its settings are in the table the kind names (``[grid]``, ``[<kind>]``).
    ``module`` names the Python module that registers a strategy of your own when imported
    (``"mypkg.mybot"``); the command line imports it, and only it, before reading the rest.
    """

    kind: str = registry.GRID
    module: str | None = None

    def __attrs_post_init__(self) -> None:
        if not self.kind:
            raise ConfigError(
                "strategy.kind", f"must name a strategy kind, for example {registry.GRID!r}"
            )
        if self.module is not None and not all(
            part.isidentifier() for part in self.module.split(".")
        ):
            raise ConfigError(
                "strategy.module",
                f"{self.module!r} is not a Python module name; write a dotted import path, "
                'for example "mypkg.mybot"',
            )


def _default_grid(config: BotConfig) -> GridConfig:
    return GridConfig(venue=config.venue.name, symbol=config.instrument.symbol)


def _default_risk(config: BotConfig) -> RiskConfig:
    return RiskConfig(leverage=config.venue.leverage)


@attrs.frozen(kw_only=True)
class BotConfig:
    """A whole bot: venue, instrument, strategy, risk, core and market settings.

    ``BotConfig()`` is exactly the configuration an empty file (or the embedded default) gives:
    every risk limit on: the neutral grid. ``strategy`` names another registered kind
    (:mod:`gridcore.registry`) and ``strategy_config`` holds its configuration (its defaults when
    left out). The strategy trades the configured venue and symbol and the risk gate uses the
    venue's leverage; when ``grid``, ``strategy_config`` or ``risk`` is given explicitly they
    must agree. A configuration that could not place a single order (for the grid: a hedge-mode
    account or a grid side other than ``both``, a size off the lot or under the minimum, a size
    every limit refuses) is refused here, naming the fields, rather than running quietly
    without trading.
    """

    venue: VenueSettings = VenueSettings()
    instrument: InstrumentSettings = InstrumentSettings()
    grid: GridConfig = attrs.field(default=attrs.Factory(_default_grid, takes_self=True))
    risk: RiskConfig = attrs.field(default=attrs.Factory(_default_risk, takes_self=True))
    core: CoreSettings = CoreSettings()
    market: MarketSettings = MarketSettings()
    strategy: StrategySettings = StrategySettings()
    strategy_config: Any = attrs.field(default=None, eq=False)
    """The configuration of a strategy kind other than the grid: an instance of the kind's
    config class (``None``: its defaults). The grid's configuration is ``grid``."""
    settings: Any = attrs.field(init=False, repr=False)
    """The configuration of the configured kind: ``grid`` for the grid, else
    ``strategy_config`` (or the kind's defaults on the configured venue and symbol). Equality
    compares this, so a kind's defaults given or left out make equal configurations."""

    def __attrs_post_init__(self) -> None:
        kind = registry.get(self.strategy.kind, module=self.strategy.module)
        if kind.name == registry.GRID:
            if self.strategy_config is not None and self.strategy_config != self.grid:
                raise ConfigError(
                    "strategy_config",
                    "the grid kind is configured by grid; pass grid=GridConfig(...) and leave "
                    "strategy_config out",
                )
            settings = self.grid
        elif self.strategy_config is None:
            settings = kind.default_config(self)
        else:
            settings = self.strategy_config
        object.__setattr__(self, "settings", settings)
        _check_tradeable(self)

    def make_strategy(self) -> Strategy:
        """The initial strategy of the configured kind (the registry's factory)."""
        kind = registry.get(self.strategy.kind, module=self.strategy.module)
        strategy: Strategy = kind.build(self.settings, self)
        return strategy

    def make_instrument(self) -> Instrument:
        """The configured instrument on the configured venue."""
        i = self.instrument
        return Instrument(
            venue=self.venue.name,
            symbol=i.symbol,
            tick_size=i.tick_size,
            lot_size=i.lot_size,
            min_notional=i.min_notional,
            maker_fee=i.maker_fee,
            taker_fee=i.taker_fee,
            base=i.base,
            quote=i.quote,
        )

    def make_core_config(self) -> CoreConfig:
        """The kernel's configuration."""
        c = self.core
        return CoreConfig(
            instruments=(self.make_instrument(),),
            risk=self.risk,
            maintenance_ms=c.maintenance_ms,
            reconcile_ms=c.reconcile_ms,
            max_sync_attempts=c.max_sync_attempts,
            fill_overlap_ms=c.fill_overlap_ms,
            cancel_unknown_orders=c.cancel_unknown_orders,
            funding_drift_tolerance=c.funding_drift_tolerance,
            funding_mark_window_ms=c.funding_mark_window_ms,
            funding_reconcile_ms=c.funding_reconcile_ms,
        )


def _check_tradeable(cfg: BotConfig) -> None:
    """Refuse the combinations of valid fields that cannot place an order (each used to run
    to the end, exit 0, with every order refused or rejected). The strategy kind's own rules
    (sizes, sides, position mode) are its ``check`` in :mod:`gridcore.registry`."""
    risk, venue, inst = cfg.risk, cfg.venue, cfg.instrument
    kind = registry.get(cfg.strategy.kind, module=cfg.strategy.module)
    settings = cfg.settings
    if not isinstance(settings, kind.config_class):
        raise ConfigError(
            "strategy_config",
            f"is a {type(settings).__qualname__}, but strategy kind {kind.name!r} is configured "
            f"by {kind.config_class.__qualname__}; pass one (or leave strategy_config out to get "
            "its defaults)",
        )
    if kind.name != registry.GRID and cfg.grid != _default_grid(cfg):
        raise ConfigError(
            "grid",
            f"is set but the strategy kind is {kind.name!r}, which is configured by "
            f'[{kind.table}]; remove the grid settings or set strategy.kind = "grid"',
        )
    for key, want in (("venue", venue.name), ("symbol", inst.symbol)):
        got = getattr(settings, key, want)
        if got != want:
            raise ConfigError(
                f"{kind.table}.{key}",
                f"the {kind.name} strategy trades {getattr(settings, 'venue', venue.name)}/"
                f"{getattr(settings, 'symbol', inst.symbol)} but the configured instrument is "
                f"{venue.name}/{inst.symbol}; build the {kind.table} configuration with the "
                "venue's name and the instrument's symbol (or leave it out to get the default "
                "on them)",
            )
    if risk.leverage != venue.leverage:
        raise ConfigError(
            "risk.leverage",
            f"is {risk.leverage} but venue.leverage is {venue.leverage}: the risk gate must "
            "budget margin with the venue's leverage; give both the same value",
        )
    kind.check(settings, cfg)


DEFAULT_TOML = """\
# gridcore: the default neutral grid on the simulated venue (no account, no network).
# Every key is optional: a key left out takes the value written here, which is also the
# class default in Python. Money, prices and sizes are strings: exact decimals, never floats.
# A limit is switched off only by writing "off" (None in Python); leaving it out keeps it on.

[venue]
name = "sim"
starting_balance = "10000"   # quote (USD), simulated venue only
leverage = "10"              # also the leverage the risk gate budgets margin with
position_mode = "one_way"    # the neutral grid keeps one net position: one_way only
liquidity = "off"            # simulated venue: base units one order may fill per tick
funding_rate = "0.0001"      # per interval; longs pay when positive
funding_interval_ms = 28800000
dead_man_seconds = "off"     # Hyperliquid: venue cancels all orders this long after the bot dies

[instrument]
symbol = "BTC-PERP"
tick_size = "0.1"
lot_size = "0.001"
min_notional = "10"          # quote
maker_fee = "0.0002"
taker_fee = "0.0005"
base = "BTC"
quote = "USD"

[strategy]
kind = "grid"                # the neutral grid; another registered kind reads its own table
# module = "mypkg.mybot"     # the module that registers a strategy of your own

[grid]
levels = 5                   # per side
spacing = "0.002"            # 20 bps of the center price between levels
min_spacing = "0"            # absolute floor of the distance between levels, quote
order_qty = "0.002"          # base units per level, a multiple of lot_size
# order_notional = "100"     # quote per level, instead of order_qty
max_inventory = "0.02"       # base units, either side
position_side = "both"       # the one net position of a one_way account
tag = "grid"

[risk]
max_position = "0.03"        # base units, including live orders
max_order_notional = "1000"  # quote
slippage_cap = "0.005"       # 50 bps from mid for aggressive orders
max_orders_per_window = 100
velocity_window_ms = 10000
max_drawdown = "1000"        # quote: halt beyond this loss from the peak
max_error_streak = 8
max_quote_age_ms = 10000
max_balance_age_ms = 300000

[core]
maintenance_ms = 5000        # housekeeping timer
reconcile_ms = 60000         # background reconciliation; 0 switches it off
max_sync_attempts = 3
fill_overlap_ms = 60000
cancel_unknown_orders = true
funding_drift_tolerance = "0.01"   # a funding payment off the expected by more is reported
funding_mark_window_ms = 60000     # the mark must be this close to a payment to check it
funding_reconcile_ms = 3600000     # a periodic round asks for funding payments this often

[market]
seed = 1
ticks = 86400                # one day of one-second quotes
start_price = "50000"
volatility = "0.0002"        # per tick, as a fraction of the price
spread_ticks = 1
interval_ms = 1000
start_ts = 1700000000000
"""
"""The embedded default configuration: every key with its default value (what an empty file
and ``BotConfig()`` give). Shipped as ``gridcore/configs/grid.toml`` (``gridcore init`` writes
it) and kept as ``examples/grid.toml`` in the repository."""


def _toml_value(value: Any) -> str:
    """One setting's value as a configuration file writes it."""
    if value is None:
        return f'"{validators.OFF}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, int):
        return str(value)
    if value == ():
        return "[]"  # an empty list of tables
    # Decimals and names as TOML basic strings: JSON's escapes are TOML's, but for DEL.
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def strategy_toml(kind: str, *, module: str | None = None) -> str:
    """The complete default configuration of strategy kind ``kind`` (what ``gridcore init
    --strategy KIND`` writes): the kind's own ``default_toml`` when it has one, otherwise
    :data:`DEFAULT_TOML` with ``[strategy]`` naming the kind (and ``module``) and the grid's
    table replaced by the kind's, every setting at its default."""
    entry = registry.get(kind, module=module)
    if entry.name == registry.GRID and module is None:
        return DEFAULT_TOML
    if entry.default_toml is not None:
        return entry.default_toml
    defaults = entry.default_config(BotConfig())
    lines = [f'kind = "{entry.name}"']
    if module is not None:
        lines.append(f"module = {_toml_value(module)}  # imported to register the kind")
    table = [f"[{entry.table}]"]
    for f in attrs.fields(entry.config_class):
        if f.init and f.name not in ("venue", "symbol"):
            table.append(f"{f.alias or f.name} = {_toml_value(getattr(defaults, f.name))}")
    head, rest = DEFAULT_TOML.split("\n[strategy]\n", 1)
    tail = rest[rest.index("\n[risk]\n") :]
    head = head.replace("the default neutral grid", f'strategy kind "{entry.name}"', 1).replace(
        "# the neutral grid keeps one net position: one_way only", "# one_way or hedge"
    )
    summary = f"# {entry.summary}\n" if entry.summary else ""
    return (
        f"{head}\n[strategy]\n{summary}"
        + "\n".join(lines)
        + "\n\n"
        + "\n".join(table)
        + f"\n{tail}"
    )


def _convert(value: Any, tp: Any, field: str) -> Any:
    """Convert one TOML value to the annotated type ``tp`` or raise ConfigError."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if type(None) in typing.get_args(tp) and value == validators.OFF:
            return None  # the one explicit spelling of "no limit"
        try:
            return _convert(value, args[0], field)
        except ConfigError as exc:
            hint = f'; or write "{validators.OFF}" to switch it off'
            raise ConfigError(field, str(exc).split(": ", 1)[-1] + hint) from None
    if origin is tuple:
        # A list of tables ([[kind.name]]): the config class's converter reads each table.
        if not isinstance(value, list | tuple):
            raise ConfigError(field, f"expected a list of tables, got {value!r}")
        return tuple(value)
    if tp is Decimal:
        try:
            return to_decimal(value, field=field)
        except ValueError as exc:
            raise ConfigError(field, str(exc).split(": ", 1)[-1]) from None
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(field, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(field, f"expected an integer, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(field, f"expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        accepted = [m.value for m in tp]
        if value not in accepted:
            raise ConfigError(field, f"expected one of {accepted}, got {value!r}")
        return tp(value)
    raise ConfigError(field, f"unsupported setting type {tp!r}")  # pragma: no cover


def _build(cls: type[T], table: Any, section: str, skip: frozenset[str] = frozenset()) -> T:
    if not isinstance(table, Mapping):
        raise ConfigError(section, f"expected a table [{section}], got {type(table).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in attrs.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(table) - fields)
    if unknown:
        raise ConfigError(
            f"{section}.{unknown[0]}",
            f"unknown setting; accepted in [{section}]: {', '.join(sorted(fields - skip))}",
        )
    kwargs = {k: _convert(v, hints[k], f"{section}.{k}") for k, v in table.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(section, str(exc)) from None


#: The tables of every configuration; the strategy kind adds its own (``[grid]`` for the grid).
_FIXED_TABLES = ("venue", "instrument", "strategy", "risk", "core", "market")


def _table(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(name, f"expected a table [{name}] of settings, got {table!r}")
    return table


def _build_strategy_config(
    kind: registry.StrategyKind,
    table: Mapping[str, Any],
    venue: VenueSettings,
    instrument: InstrumentSettings,
) -> Any:
    """The kind's own table, read into its config class; ``venue``/``symbol`` come from
    ``[venue]``/``[instrument]`` when the class declares them."""
    names = {f.name for f in attrs.fields(kind.config_class)}
    placed = {"venue": venue.name, "symbol": instrument.symbol}
    kwargs = dict(table)
    skip = set()
    for key, value in placed.items():
        if key not in names:
            continue
        if key in table:
            source = "[venue] name" if key == "venue" else "[instrument] symbol"
            raise ConfigError(f"{kind.table}.{key}", f"comes from {source}; remove it here")
        kwargs[key] = value
        skip.add(key)
    return _build(kind.config_class, kwargs, kind.table, skip=frozenset(skip))


def load_config(text: str | None = None, *, source: str | None = None) -> BotConfig:
    """Parse and validate a bot configuration; ``None`` gives the embedded default.

    Raises :class:`ConfigError` naming the file (``source``), the line for TOML syntax errors,
    and the field with its accepted range for bad values.
    """
    if text is None:
        text = DEFAULT_TOML
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("toml", f"not valid TOML: {exc}", source=source) from None
    try:
        strategy = _build(StrategySettings, _table(data, "strategy"), "strategy")
        kind = registry.get(strategy.kind, module=strategy.module)
        sections = set(_FIXED_TABLES) | {kind.table}
        unknown = sorted(set(data) - sections)
        if unknown:
            name = unknown[0]
            other = [k.name for k in registry.registered().values() if k.table == name]
            why = (
                f"[{name}] configures strategy kind {other[0]!r} but strategy.kind is "
                f"{kind.name!r}; set [strategy] kind = {other[0]!r} or remove [{name}]"
                if other
                else f"unknown table; accepted tables: {', '.join(sorted(sections))}"
            )
            raise ConfigError(name, why)
        for name in sorted(sections & set(data)):
            _table(data, name)
        venue = _build(VenueSettings, data.get("venue", {}), "venue")
        instrument = _build(InstrumentSettings, data.get("instrument", {}), "instrument")
        settings = _build_strategy_config(kind, data.get(kind.table, {}), venue, instrument)
        risk_table = dict(data.get("risk", {}))
        if "leverage" in risk_table:
            raise ConfigError("risk.leverage", "comes from [venue] leverage; remove it here")
        risk_table["leverage"] = str(venue.leverage)
        risk = _build(RiskConfig, risk_table, "risk", skip=frozenset({"leverage"}))
        core = _build(CoreSettings, data.get("core", {}), "core")
        market = _build(MarketSettings, data.get("market", {}), "market")
        if kind.name == registry.GRID:
            cfg = BotConfig(
                venue=venue,
                instrument=instrument,
                grid=settings,
                risk=risk,
                core=core,
                market=market,
                strategy=strategy,
            )
        else:
            cfg = BotConfig(
                venue=venue,
                instrument=instrument,
                risk=risk,
                core=core,
                market=market,
                strategy=strategy,
                strategy_config=settings,
            )
    except ConfigError as exc:
        if source is not None and exc.source is None:
            raise ConfigError(exc.field, str(exc).split(": ", 1)[-1], source=source) from None
        raise
    return cfg
