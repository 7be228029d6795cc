"""Configuration: the default loads, and every bad value fails naming its field.

Seed 002 P1 (dangerous defaults: 5 % slippage, live by default) makes the defaults part of the
contract; DESIGN.md "Configuration" makes clear errors one: a wrong value names the dotted
field, the file, and for TOML syntax errors the line.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from gridcore import ConfigError, GridcoreError
from gridcore.config import DEFAULT_TOML, BotConfig, load_config


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
    """Seed 002 P1: the defaults are the safe ones."""
    config = load_config()
    assert config.risk.slippage_cap == Decimal("0.005")
    assert config.risk.max_quote_age_ms == 10_000
    assert config.venue.name == "sim"  # the simulated venue: no account, no network
    assert config.risk.max_position is not None
    assert config.risk.max_drawdown is not None


def test_an_empty_file_gives_the_class_defaults() -> None:
    config = load_config("")
    assert config.risk.slippage_cap == Decimal("0.005")
    assert config.grid.order_notional == Decimal(100)


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
    error = error_for(DEFAULT_TOML + "\n[strategy]\nkind = 'grid'\n")
    assert error.field == "strategy"
    assert "grid" in str(error)


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
