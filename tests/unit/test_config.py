"""Configuration: the default loads, and every bad value fails naming its field.

Failure `unsafe-defaults` (dangerous defaults: 5 % slippage, live by default) makes the defaults part of the
contract; the configuration rules make clear errors one: a wrong value names the dotted
field, the file, and for TOML syntax errors the line.
"""

from __future__ import annotations

import argparse
import math
import re
import tomllib
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridcore import ConfigError, GridcoreError, validators
from gridcore.config import (
    DEFAULT_TOML,
    BotConfig,
    CoreSettings,
    InstrumentSettings,
    MarketSettings,
    StrategySettings,
    VenueSettings,
    load_config,
)
from gridcore.core import CoreConfig
from gridcore.grid import GridConfig
from gridcore.risk import RiskConfig
from gridcore.shells.cli_types import POSITIVE_INT, SECONDS, SEED, SPEED, TICKS


def with_setting(key: str, value: str, *, text: str = DEFAULT_TOML) -> str:
    """``DEFAULT_TOML`` with the line ``key = ...`` replaced by ``key = value``."""
    new, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
    assert count == 1, f"{key} is not a line of DEFAULT_TOML"
    return new


def error_for(text: str, *, source: str | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        load_config(text, source=source)
    return raised.value


def test_the_default_configuration_loads() -> None:
    config = load_config()
    assert isinstance(config, BotConfig)
    assert config == load_config(DEFAULT_TOML)
    assert config.grid.levels == 5
    assert config.grid.spacing == Decimal("0.002")
    assert config.grid.order_qty == Decimal("0.002")
    assert config.grid.order_notional is None
    assert config.venue.name == "sim"
    core = config.make_core_config()
    assert core.instruments == (config.make_instrument(),)
    assert core.risk.leverage == config.venue.leverage


def test_safe_defaults() -> None:
    """Failure `unsafe-defaults`: the defaults are the safe ones."""
    config = load_config()
    assert config.risk.slippage_cap == Decimal("0.005")
    assert config.risk.max_quote_age_ms == 10_000
    assert config.venue.name == "sim"  # the simulated venue: no account, no network
    assert config.risk.max_position is not None
    assert config.risk.max_drawdown is not None


def test_an_empty_file_keeps_every_risk_limit_on() -> None:
    """An empty (or partial) file used to take the attrs class defaults, which had no max
    position, no max order notional, no drawdown halt and no inventory cap: a long backtest
    then ran far past the documented drawdown halt. Now a key left out means its documented
    default, and every limit is on."""
    for text in ("", "[grid]\nlevels = 3\n", '[risk]\nslippage_cap = "0.01"\n'):
        config = load_config(text)
        assert config.risk.max_position == Decimal("0.03")
        assert config.risk.max_order_notional == Decimal(1000)
        assert config.risk.max_drawdown == Decimal(1000)
        assert config.grid.max_inventory == Decimal("0.02")
        assert config.risk.leverage == config.venue.leverage == Decimal(10)


def test_one_set_of_defaults_whatever_builds_the_config() -> None:
    """The file, the embedded default and the Python classes give the same bot."""
    empty = load_config("")
    assert empty == load_config(DEFAULT_TOML) == load_config() == BotConfig()
    assert GridConfig() == empty.grid
    assert RiskConfig() == empty.risk
    assert VenueSettings() == empty.venue
    assert InstrumentSettings() == empty.instrument
    assert CoreSettings() == empty.core
    assert MarketSettings() == empty.market
    kernel = CoreConfig(instruments=())
    assert kernel.risk == RiskConfig()
    for name in ("maintenance_ms", "reconcile_ms", "max_sync_attempts", "fill_overlap_ms"):
        assert getattr(kernel, name) == getattr(CoreSettings(), name), name
    assert kernel.cancel_unknown_orders == CoreSettings().cancel_unknown_orders


# --- docs/configuration.md and DEFAULT_TOML cannot drift from the classes ----------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
_CLASSES: dict[str, type] = {
    "venue": VenueSettings,
    "instrument": InstrumentSettings,
    "strategy": StrategySettings,
    "grid": GridConfig,
    "risk": RiskConfig,
    "core": CoreSettings,
    "market": MarketSettings,
}
#: Fields that are not keys of their table: they come from another table.
_DERIVED = {("grid", "venue"), ("grid", "symbol"), ("risk", "leverage")}


def documented_defaults() -> dict[tuple[str, str], str]:
    """``(table, key) -> default cell`` from the tables of docs/configuration.md: a TOML
    literal such as ``"0.03"`` or ``5``, or ``unset``."""
    found: dict[tuple[str, str], str] = {}
    table = None
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^## `\[(\w+)\]`", line)
        if heading:
            table = heading.group(1)
            continue
        if line.startswith("## "):
            table = None
        if table is None or not line.startswith("| `"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        keys = [k.strip().strip("`") for k in cells[0].split(" / ")]
        values = [v.strip() for v in cells[1].split(" / ")]
        assert len(keys) == len(values), line
        for key, value in zip(keys, values, strict=True):
            found[(table, key)] = value if value == "unset" else value.strip("`")
    return found


def test_the_documentation_lists_every_setting_of_every_table() -> None:
    documented = set(documented_defaults())
    fields = {
        (table, f.name)
        for table, cls in _CLASSES.items()
        for f in attrs.fields(cls)
        if f.init and (table, f.name) not in _DERIVED
    }
    assert documented == fields


@pytest.mark.parametrize(("table", "key"), sorted(documented_defaults()))
def test_documented_default_is_the_class_default(table: str, key: str) -> None:
    cell = documented_defaults()[(table, key)]
    default = getattr(_CLASSES[table](), key)
    if cell == "unset":
        assert default is None
        return
    loaded = getattr(getattr(load_config(f"[{table}]\n{key} = {cell}\n"), table), key)
    assert loaded == default


@pytest.mark.parametrize(("table", "key"), sorted(documented_defaults()))
def test_the_default_file_writes_every_key_with_its_documented_default(
    table: str, key: str
) -> None:
    """``gridcore init`` writes DEFAULT_TOML: a user reading it sees every setting and its
    real default (an unset one as a comment)."""
    cell = documented_defaults()[(table, key)]
    written = tomllib.loads(DEFAULT_TOML)
    if cell == "unset":
        assert key not in written[table]
        assert re.search(rf"(?m)^# {key} = ", DEFAULT_TOML), f"{key} is not shown commented"
        return
    assert written[table][key] == tomllib.loads(f"v = {cell}")["v"]


# --- switching a limit off is explicit -------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("risk", "max_position"),
        ("risk", "max_order_notional"),
        ("risk", "max_drawdown"),
        ("grid", "max_inventory"),
        ("venue", "liquidity"),
    ],
)
def test_off_switches_a_limit_off_and_nothing_else_does(table: str, key: str) -> None:
    config = load_config(f'[{table}]\n{key} = "off"\n')
    assert getattr(getattr(config, table), key) is None
    for wrong in ('""', '"none"', '"Off"', '"0"', '"-1"'):
        error = error_for(f"[{table}]\n{key} = {wrong}\n")
        assert error.field == f"{table}.{key}"
        assert '"off"' in str(error)


def test_off_in_python_is_an_explicit_none() -> None:
    assert RiskConfig(max_drawdown=None).max_drawdown is None
    assert RiskConfig(max_drawdown=None).max_position == Decimal("0.03")
    assert GridConfig(max_inventory=None).max_inventory is None
    with pytest.raises(ConfigError, match=r"risk\.max_drawdown: .*\"off\""):
        RiskConfig(max_drawdown=Decimal(0))


def test_a_size_in_quote_unsets_the_default_size_in_base_units() -> None:
    grid = load_config('[grid]\norder_notional = "100"\n').grid
    assert (grid.order_qty, grid.order_notional) == (None, Decimal(100))
    assert GridConfig(order_notional=Decimal(100)) == grid
    assert GridConfig().order_qty == Decimal("0.002")


# --- configurations that cannot trade are refused at load --------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "hint"),
    [
        ('[venue]\nposition_mode = "hedge"\n', "venue.position_mode", '"one_way"'),
        (
            '[venue]\nposition_mode = "hedge"\n[grid]\nposition_side = "long"\n',
            "venue.position_mode",
            'grid.position_side = "both"',
        ),
        ('[grid]\nposition_side = "long"\n', "grid.position_side", '"both"'),
        ('[grid]\nposition_side = "short"\n', "grid.position_side", '"both"'),
        ('[grid]\norder_qty = "0.0025"\n', "grid.order_qty", 'order_qty = "0.002"'),
        ('[grid]\norder_qty = "0.0005"\n', "grid.order_qty", 'order_qty = "0.001"'),
        ('[grid]\norder_qty = "0.05"\n', "grid.order_qty", "risk.max_position"),
        (
            '[grid]\norder_qty = "0.025"\n[risk]\nmax_position = "off"\n',
            "grid.order_qty",
            "grid.max_inventory",
        ),
        ('[grid]\norder_notional = "5"\n', "grid.order_notional", "instrument.min_notional"),
        ('[grid]\norder_notional = "1500"\n', "grid.order_notional", "max_order_notional"),
        ('[instrument]\nlot_size = "0.01"\n', "grid.order_qty", "lot_size"),
    ],
)
def test_configurations_that_cannot_trade_are_refused(text: str, field: str, hint: str) -> None:
    """Each of these used to load, then run without trading: exit 0 with every order refused,
    or (hedge mode) rejected until the error streak halted the bot."""
    error = error_for(text, source="bot.toml")
    assert error.field == field
    assert str(error).startswith(f"bot.toml: {field}: ")
    assert hint in str(error)


def test_tradeable_variants_of_the_refused_ones_load() -> None:
    assert load_config('[grid]\norder_qty = "0.003"\n').grid.order_qty == Decimal("0.003")
    assert load_config('[grid]\norder_notional = "100"\n').grid.order_notional == Decimal(100)
    assert load_config('[grid]\norder_qty = "0.02"\n').grid.order_qty == Decimal("0.02")


def test_python_configs_must_agree_with_the_venue_and_instrument() -> None:
    venue = VenueSettings(name="other", leverage=Decimal(5))
    built = BotConfig(venue=venue)
    assert (built.grid.venue, built.risk.leverage) == ("other", Decimal(5))
    with pytest.raises(ConfigError) as raised:
        BotConfig(venue=venue, grid=GridConfig())
    assert raised.value.field == "grid.venue"
    with pytest.raises(ConfigError) as raised:
        BotConfig(risk=RiskConfig(leverage=Decimal(3)))
    assert raised.value.field == "risk.leverage"


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("levels", "0", "grid.levels"),
        ("levels", "101", "grid.levels"),
        ("levels", '"5"', "grid.levels"),
        ("spacing", '"0"', "grid.spacing"),
        ("spacing", '"0.5"', "grid.spacing"),
        ("spacing", '"-0.01"', "grid.spacing"),
        ("spacing", '"lots"', "grid.spacing"),
        ("order_qty", '"0"', "grid.order_qty"),
        ("max_inventory", '"-1"', "grid.max_inventory"),
        ("slippage_cap", '"0.2"', "risk.slippage_cap"),
        ("slippage_cap", '"0"', "risk.slippage_cap"),
        ("max_error_streak", "0", "risk.max_error_streak"),
        ("starting_balance", '"0"', "venue.starting_balance"),
        ("leverage", '"0"', "venue.leverage"),
        ("position_mode", '"both"', "venue.position_mode"),
        ("tick_size", '"0"', "instrument.tick_size"),
        ("maker_fee", '"0.05"', "instrument.maker_fee"),
        ("maintenance_ms", "0", "core.maintenance_ms"),
        ("volatility", '"0.5"', "market.volatility"),
    ],
)
def test_bad_values_fail_naming_the_field(key: str, value: str, field: str) -> None:
    error = error_for(with_setting(key, value))
    assert error.field == field
    assert str(error).startswith(f"{field}: ")
    assert isinstance(error, GridcoreError)


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("spacing", "0.002", "grid.spacing"),
        ("starting_balance", "10000.0", "venue.starting_balance"),
        ("maker_fee", "0.0002", "instrument.maker_fee"),
        ("slippage_cap", "0.005", "risk.slippage_cap"),
        ("max_position", "0.03", "risk.max_position"),
    ],
)
def test_floats_for_money_are_refused(key: str, value: str, field: str) -> None:
    """Floats are not exact money: ``0.1 + 0.2 != 0.3``. The message says what to write."""
    error = error_for(with_setting(key, value))
    assert error.field == field
    assert "float" in str(error)
    assert '"0.001"' in str(error) or "string" in str(error)


def test_integers_are_accepted_for_money() -> None:
    config = load_config(with_setting("starting_balance", "5000"))
    assert config.venue.starting_balance == Decimal(5000)


def test_unknown_keys_fail_naming_the_key_and_listing_the_accepted_ones() -> None:
    error = error_for(DEFAULT_TOML.replace("levels = 5", "levels = 5\nlevles = 6"))
    assert error.field == "grid.levles"
    assert "levels" in str(error)
    assert "spacing" in str(error)


def test_unknown_tables_fail() -> None:
    error = error_for(DEFAULT_TOML + "\n[strategies]\nkind = 'grid'\n")
    assert error.field == "strategies"
    assert "accepted tables: core, grid, instrument, market, risk, strategy, venue" in str(error)


def test_both_sizes_fail() -> None:
    error = error_for(with_setting("order_qty", '"0.002"\norder_notional = "100"'))
    assert error.field == "grid.order_qty"


def test_settings_that_belong_to_another_table_fail() -> None:
    error = error_for(DEFAULT_TOML.replace("[risk]\n", '[risk]\nleverage = "5"\n'))
    assert error.field == "risk.leverage"
    error = error_for(DEFAULT_TOML.replace("[grid]\n", '[grid]\nsymbol = "ETH-PERP"\n'))
    assert error.field == "grid.symbol"


def test_toml_syntax_errors_name_the_line_and_the_file() -> None:
    text = DEFAULT_TOML.replace('spacing = "0.002"', "spacing = = 0.002")
    line = text.splitlines().index(next(t for t in text.splitlines() if "= =" in t)) + 1
    error = error_for(text, source="bots/grid.toml")
    assert error.field == "toml"
    assert error.source == "bots/grid.toml"
    message = str(error)
    assert message.startswith("bots/grid.toml: ")
    assert f"line {line}" in message


def test_value_errors_name_the_file_too() -> None:
    error = error_for(with_setting("levels", "0"), source="my.toml")
    assert error.source == "my.toml"
    assert str(error).startswith("my.toml: grid.levels: ")


@pytest.mark.parametrize(
    ("text", "field"),
    [("venue = 3", "venue"), ("core = []", "core"), ('grid = "yes"', "grid"), ("risk = 5", "risk")],
)
def test_a_table_that_is_not_a_table_fails_naming_it(text: str, field: str) -> None:
    """A user's typo must give a ConfigError naming the table, not a bare ValueError or
    TypeError from inside the loader."""
    error = error_for(text + "\n")
    assert error.field == field
    assert "table" in str(error)


# --- the command line and the file judge a value by the same rule -----------------------------


@given(n=st.integers(min_value=-(2**66), max_value=2**66))
def test_the_command_line_and_the_file_judge_seeds_and_ticks_alike(n: int) -> None:
    """``run --seed -3`` was accepted while ``backtest --seed -1`` was refused, and ``[market]
    ticks = 0`` accepted while ``--ticks 0`` was refused: one rule each now, same message."""
    for key, flag in (("seed", SEED), ("ticks", TICKS)):
        try:
            flag(str(n))
            flag_says = None
        except argparse.ArgumentTypeError as exc:
            flag_says = str(exc)
        try:
            load_config(f"[market]\n{key} = {n}\n")
            file_says = None
        except ConfigError as exc:
            assert exc.field == f"market.{key}"
            file_says = str(exc).removeprefix(f"market.{key}: ")
        assert flag_says == file_says


@pytest.mark.parametrize(
    ("flag", "text", "message"),
    [
        (SPEED, "0", "must be > 0 (or 'max'), got 0.0"),
        (SPEED, "-2", "must be > 0 (or 'max'), got -2.0"),
        (SPEED, "fast", "expected a number or 'max', got 'fast'"),
        (SECONDS, "0", "must be a finite number of seconds > 0, got 0.0"),
        (SECONDS, "inf", "must be a finite number of seconds > 0, got inf"),
        (SECONDS, "nan", "expected a number, got 'nan'"),
        (POSITIVE_INT, "0", "must be > 0, got 0"),
        (POSITIVE_INT, "1.5", "expected a whole number, got '1.5'"),
    ],
)
def test_run_flags_are_judged_by_the_shared_rules(
    flag: Callable[[str], object], text: str, message: str
) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as raised:
        flag(text)
    assert str(raised.value) == message


def test_run_flags_accept_what_they_document() -> None:
    assert SPEED("max") == SPEED("inf") == math.inf
    assert SPEED("2.5") == 2.5
    assert SECONDS("1800") == 1800.0
    assert POSITIVE_INT("300") == 300
    assert validators.seed(validators.MAX_SEED) == validators.MAX_SEED
