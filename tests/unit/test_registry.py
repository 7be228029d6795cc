"""The strategy registry: a configuration names its kind, and loading, building, journaling and
checking a bot ask the registry instead of knowing the neutral grid."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any, Self

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridcore import ConfigError, Event, Intent, OrderChange, QuoteTicked, State
from gridcore.config import DEFAULT_TOML, BotConfig, StrategySettings, load_config, strategy_toml
from gridcore.grid import GridConfig, NeutralGrid
from gridcore.invariants import Violation, grid_levels_never_cross, grid_spacing_above_floor
from gridcore.registry import (
    GRID,
    StrategyKind,
    get,
    kind_of,
    kinds,
    register,
    registered,
    unregister,
)
from gridcore.shells.codec import canonical, decode_value, encode_value
from gridcore.sim import backtest, make_bot

KIND = "test_idle"


@attrs.frozen(kw_only=True)
class IdleConfig:
    venue: str = "sim"
    symbol: str = "BTC-PERP"
    patience: int = 3
    limit: Decimal | None = Decimal("0.5")
    label: str = "idle"

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.patience <= 10:
            raise ConfigError(f"{KIND}.patience", f"must be between 1 and 10, got {self.patience}")


class Mood(Exception):
    pass


@attrs.frozen(kw_only=True)
class Idle:
    """A strategy that only counts the ticks it sees (enough to be journaled and rebuilt)."""

    config: IdleConfig
    ticks: int = 0

    def on_tick(self, view: State[Self], tick: QuoteTicked) -> tuple[Self, Sequence[Intent]] | None:
        return attrs.evolve(self, ticks=self.ticks + 1), ()

    def on_changes(
        self, view: State[Self], changes: Sequence[OrderChange]
    ) -> tuple[Self, Sequence[Intent]]:
        return self, ()

    def on_ready(self, view: State[Self], venue: str) -> tuple[Self, Sequence[Intent]]:
        return self, ()

    def on_timer(self, view: State[Self], timer_id: str) -> tuple[Self, Sequence[Intent]]:
        return self, ()

    def on_event(self, view: State[Self], event: Event) -> tuple[Self, Sequence[Intent]]:
        return self, ()


def never_patient(state: State[Any]) -> list[Violation]:
    """A state invariant of the idle kind."""
    return []


def _check(config: IdleConfig, bot: BotConfig) -> None:
    if config.limit is not None and config.limit > bot.venue.starting_balance:
        raise ConfigError(f"{KIND}.limit", "is over venue.starting_balance")


def _idle_kind() -> StrategyKind:
    return StrategyKind(
        name=KIND,
        config_class=IdleConfig,
        strategy_class=Idle,
        build=lambda config, bot: Idle(config=config),
        check=_check,
        invariants=(never_patient,),
    )


@pytest.fixture
def idle() -> Iterator[StrategyKind]:
    kind = register(_idle_kind())
    try:
        yield kind
    finally:
        unregister(KIND)


def _error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        load_config(text, source="bot.toml")
    return raised.value


# --- the grid is a registered kind like any other ----------------------------------------------


def test_the_grid_is_registered_with_its_own_hooks() -> None:
    grid = get(GRID)
    assert GRID in kinds() and registered()[GRID] is grid
    assert (grid.config_class, grid.strategy_class, grid.table) == (GridConfig, NeutralGrid, "grid")
    assert grid.invariants == (grid_levels_never_cross, grid_spacing_above_floor)
    # Journals written before the registry stored the grid's classes by their bare names.
    assert grid.codec_classes["NeutralGrid"] is NeutralGrid
    assert grid.codec_classes["GridConfig"] is GridConfig


def test_naming_the_grid_kind_changes_nothing() -> None:
    assert '[strategy]\nkind = "grid"' in DEFAULT_TOML  # init shows the setting
    named = load_config('[strategy]\nkind = "grid"\n')
    unnamed = load_config(DEFAULT_TOML.replace('kind = "grid"', ""))
    assert named == unnamed == load_config() == BotConfig()
    assert named.settings is named.grid
    assert isinstance(named.make_strategy(), NeutralGrid)


def test_an_unknown_kind_fails_at_load_listing_the_registered_ones(idle: StrategyKind) -> None:
    error = _error('[strategy]\nkind = "no_such_kind"\n')
    assert error.field == "strategy.kind" and error.source == "bot.toml"
    assert {GRID, KIND} <= set(kinds())
    assert f"registered kinds: {', '.join(kinds())};" in str(error)
    assert "[strategy] module" in str(error)
    named = _error('[strategy]\nkind = "no_such_kind"\nmodule = "nowhere.bot"\n')
    assert "strategy.module 'nowhere.bot' did not register it" in str(named)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('[strategy]\nkind = ""\n', "strategy.kind"),
        ("[strategy]\nkind = 3\n", "strategy.kind"),
        ('[strategy]\nmodule = "not a module"\n', "strategy.module"),
        ('[strategy]\nflavour = "x"\n', "strategy.flavour"),
        ('strategy = "grid"\n', "strategy"),
    ],
)
def test_bad_strategy_tables_name_the_field(text: str, field: str) -> None:
    assert _error(text).field == field


# --- a kind of one's own ------------------------------------------------------------------------


def test_a_registered_kind_reads_its_own_table(idle: StrategyKind) -> None:
    cfg = load_config(f'[strategy]\nkind = "{KIND}"\n\n[{KIND}]\npatience = 5\nlimit = "off"\n')
    assert cfg.settings == IdleConfig(patience=5, limit=None)
    assert cfg.strategy == StrategySettings(kind=KIND)
    bot = make_bot(cfg, epoch=1_700_000_000_000)
    assert bot.strategy == Idle(config=IdleConfig(patience=5, limit=None))
    trace = backtest(cfg, ticks=50)
    assert isinstance(trace.state.strategy, Idle) and trace.state.strategy.ticks == 50
    assert trace.summary.invariant_violations == 0


def test_venue_and_symbol_come_from_their_tables(idle: StrategyKind) -> None:
    cfg = load_config(
        f'[venue]\nname = "paper"\n[instrument]\nsymbol = "ETH-PERP"\n[strategy]\nkind = "{KIND}"\n'
    )
    assert (cfg.settings.venue, cfg.settings.symbol) == ("paper", "ETH-PERP")
    error = _error(f'[strategy]\nkind = "{KIND}"\n[{KIND}]\nsymbol = "X"\n')
    assert error.field == f"{KIND}.symbol" and "[instrument] symbol" in str(error)


@pytest.mark.parametrize(
    ("table", "field", "words"),
    [
        ("patience = 0", "patience", "between 1 and 10"),
        ('patience = "3"', "patience", "expected an integer"),
        ("limit = 0.5", "limit", "floats are not exact"),
        ('limit = "20000"', "limit", "starting_balance"),
        ("patiense = 3", "patiense", "accepted in [test_idle]: label, limit, patience"),
    ],
)
def test_the_kinds_table_fails_naming_its_fields(
    idle: StrategyKind, table: str, field: str, words: str
) -> None:
    error = _error(f'[strategy]\nkind = "{KIND}"\n[{KIND}]\n{table}\n')
    assert error.field == f"{KIND}.{field}"
    assert words in str(error)
    assert str(error).startswith("bot.toml: ")


def test_another_kinds_table_is_refused(idle: StrategyKind) -> None:
    error = _error(f'[strategy]\nkind = "{KIND}"\n[grid]\nlevels = 3\n')
    assert error.field == "grid"
    assert "strategy kind 'grid'" in str(error) and f"is {KIND!r}" in str(error)
    # And the grid's configuration does not take the other kind's table either.
    assert _error(f"[{KIND}]\npatience = 3\n").field == KIND


def test_python_configurations_get_the_kinds_defaults(idle: StrategyKind) -> None:
    cfg = BotConfig(strategy=StrategySettings(kind=KIND))
    assert cfg.settings == IdleConfig()
    assert cfg == load_config(f'[strategy]\nkind = "{KIND}"\n')
    with pytest.raises(ConfigError, match="is a GridConfig") as wrong:
        BotConfig(strategy=StrategySettings(kind=KIND), strategy_config=GridConfig())
    assert wrong.value.field == "strategy_config"
    with pytest.raises(ConfigError) as grid_given:
        BotConfig(strategy=StrategySettings(kind=KIND), grid=GridConfig(levels=3))
    assert grid_given.value.field == "grid"
    with pytest.raises(ConfigError) as elsewhere:
        BotConfig(strategy=StrategySettings(kind=KIND), strategy_config=IdleConfig(venue="x"))
    assert elsewhere.value.field == f"{KIND}.venue"
    with pytest.raises(ConfigError) as for_grid:
        BotConfig(strategy_config=GridConfig(levels=3))
    assert for_grid.value.field == "strategy_config"


def test_the_grids_own_rules_apply_only_to_the_grid(idle: StrategyKind) -> None:
    hedge = '[venue]\nposition_mode = "hedge"\n'
    assert _error(hedge).field == "venue.position_mode"
    cfg = load_config(hedge + f'[strategy]\nkind = "{KIND}"\n')
    assert cfg.venue.position_mode.value == "hedge"


@given(patience=st.integers(min_value=-5, max_value=20), label=st.text(max_size=8))
def test_any_table_value_loads_or_fails_naming_its_field(patience: int, label: str) -> None:
    kind = register(_idle_kind())
    # A TOML basic string: JSON's escapes are TOML's, but for DEL.
    written = json.dumps(label, ensure_ascii=False).replace("\x7f", "\\u007f")
    text = f'[strategy]\nkind = "{KIND}"\n[{KIND}]\npatience = {patience}\nlabel = {written}\n'
    try:
        loaded = load_config(text)
    except ConfigError as exc:
        assert exc.field == f"{KIND}.patience"
        assert not 1 <= patience <= 10
    else:
        assert 1 <= patience <= 10
        assert loaded.settings == IdleConfig(patience=patience, label=label)
        assert loaded.make_strategy() == kind.build(loaded.settings, loaded)
    finally:
        unregister(KIND)


def test_init_text_of_a_kind_loads_back_to_its_defaults(idle: StrategyKind) -> None:
    text = strategy_toml(KIND, module="mypkg.idle")
    assert 'module = "mypkg.idle"' in text and f"[{KIND}]" in text and "[grid]" not in text
    cfg = load_config(text)
    assert cfg == BotConfig(strategy=StrategySettings(kind=KIND, module="mypkg.idle"))
    assert strategy_toml(GRID) == DEFAULT_TOML


# --- registering ----------------------------------------------------------------------------------


def test_registering_twice_is_harmless_but_a_taken_name_is_refused(idle: StrategyKind) -> None:
    assert register(_idle_kind()) is idle
    with pytest.raises(ConfigError, match="registered already"):
        register(attrs.evolve(_idle_kind(), strategy_class=NeutralGrid))
    with pytest.raises(ConfigError, match="table \\[test_idle\\] is taken"):
        register(attrs.evolve(_idle_kind(), name="test_other"))
    unregister(GRID)
    assert GRID in kinds()  # the grid stays


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "Bad Name"}, "strategy.name"),
        ({"table": "risk"}, "strategy.table"),
        ({"config_class": dict}, "strategy.kind"),
        ({"codec_classes": {"x": Mood}}, "strategy.kind"),
    ],
)
def test_malformed_kinds_are_refused(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        attrs.evolve(_idle_kind(), **changes)
    assert raised.value.field == field


def test_a_config_class_needs_a_default_for_every_setting() -> None:
    @attrs.frozen
    class Needy:
        size: Decimal

    with pytest.raises(ConfigError, match="no default for size") as raised:
        attrs.evolve(_idle_kind(), config_class=Needy)
    assert raised.value.field == f"{KIND}.size"


# --- the codec asks the registry ----------------------------------------------------------------


def test_a_kind_registered_after_the_codec_is_journaled_under_its_stable_names() -> None:
    kind = register(_idle_kind())
    try:
        state = make_bot(BotConfig(strategy=StrategySettings(kind=KIND)), epoch=1_700_000_000_000)
        payload = encode_value(state)
        assert f"{KIND}:Idle".encode() in payload and f"{KIND}:IdleConfig".encode() in payload
        assert canonical(decode_value(payload)) == canonical(state)
        assert dict(kind.codec_classes) == {f"{KIND}:Idle": Idle, f"{KIND}:IdleConfig": IdleConfig}
    finally:
        unregister(KIND)


def test_the_grids_snapshot_names_are_unchanged() -> None:
    payload = encode_value(make_bot(load_config(), epoch=1_700_000_000_000))
    assert b"NeutralGrid" in payload and b"grid:NeutralGrid" not in payload
    assert decode_value(payload) == make_bot(load_config(), epoch=1_700_000_000_000)


def test_a_states_kind_and_its_invariants_are_found_from_its_strategy(idle: StrategyKind) -> None:
    grid_bot = make_bot(load_config(), epoch=1_700_000_000_000)
    assert kind_of(grid_bot.strategy) is get(GRID)
    idle_bot = make_bot(BotConfig(strategy=StrategySettings(kind=KIND)), epoch=1_700_000_000_000)
    found = kind_of(idle_bot.strategy)
    assert found is idle and found.invariants == (never_patient,)
    assert kind_of(object()) is None


def _bored(state: State[Any]) -> list[Violation]:
    return [Violation(invariant="bored", ts=state.now, detail=f"{state.strategy.ticks} ticks")]


def test_the_catalogue_runs_a_registered_kinds_own_invariants() -> None:
    """A kind's ``invariants`` are judged by the shipped catalogue (``strategy_invariants``)
    whenever the state's strategy is of that kind, and not for a strategy of another kind."""
    from gridcore.invariants import strategy_invariants

    register(attrs.evolve(_idle_kind(), invariants=(_bored,)))
    try:

        @attrs.frozen
        class _State:
            strategy: Any
            now: int = 5

        [violation] = strategy_invariants(_State(strategy=Idle(config=IdleConfig())))  # type: ignore[arg-type]
        assert violation.invariant == "bored" and violation.detail == "0 ticks"
        assert strategy_invariants(_State(strategy=object())) == []  # type: ignore[arg-type]
    finally:
        unregister(KIND)
