"""Configuration: TOML text validated into attrs classes, with errors that name the field.

A bot configuration has these tables (every key optional, defaults in :data:`DEFAULT_TOML`):

* ``[venue]`` — the account: ``name``, ``starting_balance`` (quote, simulated venue only),
  ``leverage``, ``position_mode`` (``one_way`` | ``hedge``), ``liquidity`` (base units one order
  may fill per tick, simulated venue only), ``funding_rate``, ``funding_interval_ms``.
* ``[instrument]`` — ``symbol``, ``tick_size``, ``lot_size``, ``min_notional``, ``maker_fee``,
  ``taker_fee``, ``base``, ``quote``.
* ``[grid]`` — :class:`~gridcore.grid.GridConfig` (venue and symbol come from the tables above).
* ``[risk]`` — :class:`~gridcore.risk.RiskConfig` (``leverage`` comes from ``[venue]``).
* ``[core]`` — ``maintenance_ms``, ``reconcile_ms``, ``max_sync_attempts``, ``fill_overlap_ms``,
  ``cancel_unknown_orders``.
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
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

import attrs

from gridcore import validators
from gridcore.core import CoreConfig
from gridcore.errors import ConfigError
from gridcore.grid import GridConfig
from gridcore.instruments import Instrument, PositionMode, PositionSide
from gridcore.numbers import CTX, to_decimal
from gridcore.risk import RiskConfig

__all__ = [
    "DEFAULT_TOML",
    "BotConfig",
    "CoreSettings",
    "InstrumentSettings",
    "MarketSettings",
    "VenueSettings",
    "load_config",
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

    def __attrs_post_init__(self) -> None:
        if not self.name:
            raise ConfigError("venue.name", 'must be a venue name, for example "sim"')
        _rule("venue.starting_balance", validators.positive, self.starting_balance)
        _rule("venue.leverage", validators.positive, self.leverage)
        _rule("venue.funding_interval_ms", validators.positive, self.funding_interval_ms)
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

    def __attrs_post_init__(self) -> None:
        _rule("core.maintenance_ms", validators.positive, self.maintenance_ms)
        _rule("core.reconcile_ms", validators.non_negative, self.reconcile_ms)
        _rule("core.max_sync_attempts", validators.positive, self.max_sync_attempts)
        _rule("core.fill_overlap_ms", validators.non_negative, self.fill_overlap_ms)


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


def _default_grid(config: BotConfig) -> GridConfig:
    return GridConfig(venue=config.venue.name, symbol=config.instrument.symbol)


def _default_risk(config: BotConfig) -> RiskConfig:
    return RiskConfig(leverage=config.venue.leverage)


@attrs.frozen(kw_only=True)
class BotConfig:
    """A whole neutral-grid bot: venue, instrument, grid, risk, core and market settings.

    ``BotConfig()`` is exactly the configuration an empty file (or the embedded default) gives:
    every risk limit on. The grid trades the configured venue and symbol and the risk gate uses
    the venue's leverage; when ``grid`` or ``risk`` is given explicitly they must agree. A
    configuration that could not place a single order (a hedge-mode account or a grid side
    other than ``both``, a size off the lot or under the minimum, a size every limit refuses) is
    refused here, naming the fields, rather than running quietly without trading.
    """

    venue: VenueSettings = VenueSettings()
    instrument: InstrumentSettings = InstrumentSettings()
    grid: GridConfig = attrs.field(default=attrs.Factory(_default_grid, takes_self=True))
    risk: RiskConfig = attrs.field(default=attrs.Factory(_default_risk, takes_self=True))
    core: CoreSettings = CoreSettings()
    market: MarketSettings = MarketSettings()

    def __attrs_post_init__(self) -> None:
        _check_tradeable(self)

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
        )


def _check_tradeable(cfg: BotConfig) -> None:
    """Refuse the combinations of valid fields that cannot place an order (each used to run
    to the end, exit 0, with every order refused or rejected)."""
    grid, risk, venue, inst = cfg.grid, cfg.risk, cfg.venue, cfg.instrument
    if grid.venue != venue.name or grid.symbol != inst.symbol:
        raise ConfigError(
            "grid.venue" if grid.venue != venue.name else "grid.symbol",
            f"the grid trades {grid.venue}/{grid.symbol} but the configured instrument is "
            f"{venue.name}/{inst.symbol}; build the grid with the venue's name and the "
            "instrument's symbol (or leave grid out to get the default grid on them)",
        )
    if risk.leverage != venue.leverage:
        raise ConfigError(
            "risk.leverage",
            f"is {risk.leverage} but venue.leverage is {venue.leverage}: the risk gate must "
            "budget margin with the venue's leverage; give both the same value",
        )
    if venue.position_mode is PositionMode.HEDGE:
        # On a hedge-mode account a sell on the long side (a buy on the short side) closes that
        # side: from flat the grid's first sells are rejected as "size exceeds position" and
        # the error streak halts the bot. The neutral grid keeps one net position.
        raise ConfigError(
            "venue.position_mode",
            f'is "hedge" (with grid.position_side "{grid.position_side.value}"), but the '
            "neutral grid keeps one net position: on a hedge-mode account its orders on the "
            "other side would close a position it does not have and be rejected; set "
            'venue.position_mode = "one_way" and grid.position_side = "both"',
        )
    if grid.position_side is not PositionSide.BOTH:
        raise ConfigError(
            "grid.position_side",
            f'is "{grid.position_side.value}" but venue.position_mode is "one_way", which has '
            'one net position and accepts only "both"; set grid.position_side = "both"',
        )
    qty = grid.order_qty
    if qty is not None:
        if qty < inst.lot_size:
            raise ConfigError(
                "grid.order_qty",
                f"{qty} is under instrument.lot_size {inst.lot_size}, the smallest order; "
                f'write at least order_qty = "{inst.lot_size}"',
            )
        if CTX.remainder(qty, inst.lot_size) != 0:
            lower = CTX.multiply(CTX.divide_int(qty, inst.lot_size), inst.lot_size)
            raise ConfigError(
                "grid.order_qty",
                f"{qty} is not a whole multiple of instrument.lot_size {inst.lot_size}; "
                f'write for example order_qty = "{lower}"',
            )
        for name, limit in (
            ("risk.max_position", risk.max_position),
            ("grid.max_inventory", grid.max_inventory),
        ):
            if limit is not None and qty > limit:
                raise ConfigError(
                    "grid.order_qty",
                    f"{qty} is larger than {name} {limit}, so no grid order could ever be "
                    f"placed; lower grid.order_qty or raise {name}",
                )
    notional = grid.order_notional
    if notional is not None:
        if notional < inst.min_notional:
            raise ConfigError(
                "grid.order_notional",
                f"{notional} is under instrument.min_notional {inst.min_notional}, so every "
                "order would be refused; raise grid.order_notional",
            )
        if risk.max_order_notional is not None and notional > risk.max_order_notional:
            raise ConfigError(
                "grid.order_notional",
                f"{notional} is over risk.max_order_notional {risk.max_order_notional}, so "
                "every order would be refused; lower grid.order_notional or raise "
                "risk.max_order_notional",
            )


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

[instrument]
symbol = "BTC-PERP"
tick_size = "0.1"
lot_size = "0.001"
min_notional = "10"          # quote
maker_fee = "0.0002"
taker_fee = "0.0005"
base = "BTC"
quote = "USD"

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
    sections = {"venue", "instrument", "grid", "risk", "core", "market"}
    unknown = sorted(set(data) - sections)
    try:
        if unknown:
            raise ConfigError(
                unknown[0], f"unknown table; accepted tables: {', '.join(sorted(sections))}"
            )
        for name in sorted(sections & set(data)):
            if not isinstance(data[name], dict):
                raise ConfigError(
                    name, f"expected a table [{name}] of settings, got {data[name]!r}"
                )
        venue = _build(VenueSettings, data.get("venue", {}), "venue")
        instrument = _build(InstrumentSettings, data.get("instrument", {}), "instrument")
        grid_table = dict(data.get("grid", {}))
        grid_table.setdefault("venue", venue.name)
        grid_table.setdefault("symbol", instrument.symbol)
        for key in ("venue", "symbol"):
            if key in data.get("grid", {}):
                raise ConfigError(
                    f"grid.{key}", "comes from [venue] name / [instrument] symbol; remove it here"
                )
        grid = _build(GridConfig, grid_table, "grid", skip=frozenset({"venue", "symbol"}))
        risk_table = dict(data.get("risk", {}))
        if "leverage" in risk_table:
            raise ConfigError("risk.leverage", "comes from [venue] leverage; remove it here")
        risk_table["leverage"] = str(venue.leverage)
        risk = _build(RiskConfig, risk_table, "risk", skip=frozenset({"leverage"}))
        core = _build(CoreSettings, data.get("core", {}), "core")
        market = _build(MarketSettings, data.get("market", {}), "market")
        cfg = BotConfig(
            venue=venue, instrument=instrument, grid=grid, risk=risk, core=core, market=market
        )
    except ConfigError as exc:
        if source is not None and exc.source is None:
            raise ConfigError(exc.field, str(exc).split(": ", 1)[-1], source=source) from None
        raise
    return cfg
