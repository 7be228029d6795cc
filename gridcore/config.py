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

Money, prices and sizes are written as strings (``"0.001"``) or integers; floats are refused
because they are not exact. Reading the file is the caller's business (this module is pure):
:func:`load_config` takes the text and the name to put in error messages.
"""

from __future__ import annotations

import enum
import tomllib
import types
import typing
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypeVar

import attrs

from gridcore.core import CoreConfig
from gridcore.errors import ConfigError
from gridcore.grid import GridConfig
from gridcore.instruments import Instrument, PositionMode
from gridcore.numbers import to_decimal
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


@attrs.frozen(kw_only=True)
class CoreSettings:
    """The ``[core]`` table."""

    maintenance_ms: int = 5_000
    reconcile_ms: int = 60_000
    max_sync_attempts: int = 3
    fill_overlap_ms: int = 60_000
    cancel_unknown_orders: bool = True


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


@attrs.frozen(kw_only=True)
class BotConfig:
    """A whole neutral-grid bot: venue, instrument, grid, risk, core and market settings."""

    venue: VenueSettings = VenueSettings()
    instrument: InstrumentSettings = InstrumentSettings()
    grid: GridConfig = GridConfig()
    risk: RiskConfig = RiskConfig()
    core: CoreSettings = CoreSettings()
    market: MarketSettings = MarketSettings()

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


DEFAULT_TOML = """\
# gridcore: the default neutral grid on the simulated venue (no account, no network).
# Money, prices and sizes are strings: they are exact decimals, never floats.

[venue]
name = "sim"
starting_balance = "10000"   # quote (USD)
leverage = "10"
position_mode = "one_way"    # or "hedge"
funding_rate = "0.0001"      # per interval; longs pay when positive
funding_interval_ms = 28800000

[instrument]
symbol = "BTC-PERP"
tick_size = "0.1"
lot_size = "0.001"
min_notional = "10"
maker_fee = "0.0002"
taker_fee = "0.0005"

[grid]
levels = 5                   # per side
spacing = "0.002"            # 20 bps of the center price between levels
order_qty = "0.002"          # base units per level (or order_notional, in quote)
max_inventory = "0.02"       # base units, either side

[risk]
max_position = "0.03"        # base units, including live orders
max_order_notional = "1000"  # quote
slippage_cap = "0.005"       # 50 bps from mid for aggressive orders
max_drawdown = "1000"        # quote: halt beyond this loss from the peak
max_error_streak = 8

[core]
maintenance_ms = 5000         # housekeeping timer
reconcile_ms = 60000

[market]
seed = 1
ticks = 86400                # one day of one-second quotes
start_price = "50000"
volatility = "0.0002"        # per tick, as a fraction of the price
spread_ticks = 1
interval_ms = 1000
"""
"""The embedded default configuration (also shipped as ``examples/grid.toml``)."""


def _convert(value: Any, tp: Any, field: str) -> Any:
    """Convert one TOML value to the annotated type ``tp`` or raise ConfigError."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if (value is None or value == "") and type(None) in typing.get_args(tp):
            return None
        return _convert(value, args[0], field)
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


def _check_positive(cfg: BotConfig) -> None:
    checks: list[tuple[str, Any, str]] = [
        ("venue.starting_balance", cfg.venue.starting_balance, "> 0"),
        ("venue.leverage", cfg.venue.leverage, "> 0"),
        ("venue.funding_interval_ms", cfg.venue.funding_interval_ms, "> 0"),
        ("instrument.tick_size", cfg.instrument.tick_size, "> 0"),
        ("instrument.lot_size", cfg.instrument.lot_size, "> 0"),
        ("market.start_price", cfg.market.start_price, "> 0"),
        ("market.interval_ms", cfg.market.interval_ms, "> 0"),
        ("market.spread_ticks", cfg.market.spread_ticks, "> 0"),
        ("core.maintenance_ms", cfg.core.maintenance_ms, "> 0"),
        ("risk.max_error_streak", cfg.risk.max_error_streak, "> 0"),
        ("risk.max_orders_per_window", cfg.risk.max_orders_per_window, "> 0"),
    ]
    for field, value, rule in checks:
        if value <= 0:
            raise ConfigError(field, f"must be {rule}, got {value}")
    if cfg.venue.liquidity is not None and cfg.venue.liquidity <= 0:
        raise ConfigError("venue.liquidity", f"must be > 0 (base units), got {cfg.venue.liquidity}")
    if cfg.market.ticks < 0:
        raise ConfigError("market.ticks", f"must be >= 0, got {cfg.market.ticks}")
    if not Decimal(0) <= cfg.market.volatility < Decimal("0.1"):
        raise ConfigError(
            "market.volatility", f"must be between 0 and 0.1 per tick, got {cfg.market.volatility}"
        )
    if not Decimal(0) < cfg.risk.slippage_cap <= Decimal("0.1"):
        raise ConfigError(
            "risk.slippage_cap", f"must be in (0, 0.1] (a fraction), got {cfg.risk.slippage_cap}"
        )
    for name in ("maker_fee", "taker_fee"):
        fee = getattr(cfg.instrument, name)
        if not Decimal("-0.01") <= fee <= Decimal("0.01"):
            raise ConfigError(f"instrument.{name}", f"must be between -0.01 and 0.01, got {fee}")


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
        if "order_qty" in grid_table and "order_notional" not in grid_table:
            grid_table["order_notional"] = ""  # choosing a size in base units unsets the default
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
        _check_positive(cfg)
    except ConfigError as exc:
        if source is not None and exc.source is None:
            raise ConfigError(exc.field, str(exc).split(": ", 1)[-1], source=source) from None
        raise
    return cfg
