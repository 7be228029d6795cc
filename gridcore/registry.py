"""The strategy registry: every kind of bot a configuration can name, and what it brings.

Theory of operation
-------------------
A configuration names its strategy: ``[strategy] kind = "grid"``. Everything that builds,
stores or checks a bot asks this registry for that kind instead of knowing one strategy class:

* the configuration loader (:func:`gridcore.config.load_config`) reads the kind's own table
  (``[grid]`` for the grid) into the kind's own attrs config class, with the same field-named
  errors as every other table, then runs the kind's combination rules (``check``);
* :func:`gridcore.sim.make_bot` (backtests, ``gridcore run``, the harness) builds the initial
  strategy with the kind's factory (``build``);
* the journal's codec (:mod:`gridcore.shells.codec`) stores a strategy state with the classes the
  kind declares (``codec_classes``), under names that stay stable when code moves;
* the invariant catalogue can run the kind's own invariants (``invariants``) next to the kernel's.

A kind is a :class:`StrategyKind` value passed to :func:`register`. The neutral grid is
registered here as ``grid``; a user's strategy registers itself the same way from its own
module, which the configuration names (``[strategy] module = "mypkg.mybot"``) or which an
installed package advertises in the ``gridcore.strategies`` entry-point group. The command line
imports only the module the configuration names (or the one entry point whose name is the
configured kind); this module imports nothing (it is part of the pure core).

A kind's config class may declare ``venue`` and ``symbol`` fields: the loader fills them from
``[venue] name`` and ``[instrument] symbol`` (they are not written in the kind's table), so a
strategy always trades the configured instrument.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from gridcore.errors import ConfigError

if TYPE_CHECKING:
    from gridcore.config import BotConfig
    from gridcore.core import State
    from gridcore.invariants import Violation

__all__ = [
    "GRID",
    "StrategyKind",
    "get",
    "kind_of",
    "kinds",
    "register",
    "registered",
    "unregister",
]

#: The kind of the neutral grid, the default when a configuration names none.
GRID = "grid"

Build = Callable[[Any, "BotConfig"], Any]
"""``build(kind_config, bot_config) -> initial strategy`` (a :class:`~gridcore.core.Strategy`)."""

Check = Callable[[Any, "BotConfig"], None]
"""``check(kind_config, bot_config)``: raise :class:`~gridcore.errors.ConfigError` naming the
field when the combination could never place an order."""

StateCheck = Callable[["State[Any]"], "list[Violation]"]
"""A state invariant, as in :mod:`gridcore.invariants`: the violations found in one state."""


def _valid_name(name: str) -> bool:
    return bool(name) and name.replace("_", "").isalnum() and name[0].isalpha() and name.islower()


def _no_check(config: Any, bot: BotConfig) -> None:
    """No combination rules beyond the config class's own validation."""


def _table_of(kind: StrategyKind) -> str:
    return kind.name


def _codec_of(kind: StrategyKind) -> Mapping[str, type]:
    classes = (kind.strategy_class, kind.config_class)
    return {f"{kind.name}:{cls.__qualname__}": cls for cls in classes}


def _read_only(classes: Mapping[str, type]) -> Mapping[str, type]:
    return types.MappingProxyType(dict(classes))


@attrs.frozen(kw_only=True)
class StrategyKind:
    """One strategy kind: its name, its configuration and how to build, store and check it.

    * ``name`` — what ``[strategy] kind`` says (lower case letters, digits and ``_``).
    * ``config_class`` — an attrs class read from the kind's table (``table``, by default the
      name); every field needs a default, fields are written in TOML like the other tables
      (money as strings, ``"off"`` for an optional limit). Its ``__attrs_post_init__`` validates
      and raises :class:`~gridcore.errors.ConfigError` naming ``<table>.<field>``.
    * ``strategy_class`` — the class :attr:`build` returns (a frozen attrs value implementing
      :class:`~gridcore.core.Strategy`).
    * ``build`` — ``build(kind_config, bot_config)`` → the initial strategy.
    * ``check`` — combination rules over the whole configuration (sizes against the
      instrument's lot, limits against the risk gate...), raising ``ConfigError``.
    * ``codec_classes`` — every attrs class and enum the strategy's state holds, by the name a
      journal stores. Defaults to ``strategy_class`` and ``config_class`` as
      ``"<kind>:<ClassName>"``: stable while the kind keeps its name, wherever the code moves.
    * ``invariants`` — state invariants of this strategy (same signature as those of
      :mod:`gridcore.invariants`), judged after every step next to the kernel's.
    * ``default_toml`` — what ``gridcore init --strategy <name>`` writes; by default generated
      from the config class's defaults.
    * ``summary`` — one line for listings.
    """

    name: str
    config_class: type
    strategy_class: type
    build: Build = attrs.field(eq=False)
    table: str = attrs.field(default=attrs.Factory(_table_of, takes_self=True))
    check: Check = attrs.field(default=_no_check, eq=False)
    codec_classes: Mapping[str, type] = attrs.field(
        default=attrs.Factory(_codec_of, takes_self=True), converter=_read_only
    )
    invariants: tuple[StateCheck, ...] = attrs.field(default=(), eq=False)
    default_toml: str | None = None
    summary: str = ""

    def __attrs_post_init__(self) -> None:
        for what, value in (("name", self.name), ("table", self.table)):
            if not _valid_name(value):
                raise ConfigError(
                    f"strategy.{what}",
                    f"{value!r} is not a valid strategy {what}: use lower-case letters, digits "
                    'and "_", starting with a letter (for example "mean_reversion")',
                )
        if self.table in _RESERVED_TABLES:
            raise ConfigError(
                "strategy.table",
                f"[{self.table}] is a table of the bot configuration itself; give the strategy "
                "kind its own table",
            )
        for cls in (self.config_class, self.strategy_class):
            if not attrs.has(cls):
                raise ConfigError(
                    "strategy.kind",
                    f"{cls!r} of strategy kind {self.name!r} is not an attrs class; strategies "
                    "and their configurations are frozen attrs values (they are journaled)",
                )
        missing = [f.name for f in attrs.fields(self.config_class) if f.default is attrs.NOTHING]
        if missing:
            raise ConfigError(
                f"{self.table}.{missing[0]}",
                f"the config class {self.config_class.__qualname__} of strategy kind "
                f"{self.name!r} has no default for {', '.join(missing)}; every setting needs "
                "one (an empty table must give a working bot)",
            )
        for tag, cls in self.codec_classes.items():
            if not (attrs.has(cls) or (isinstance(cls, type) and issubclass(cls, enum.Enum))):
                raise ConfigError(
                    "strategy.kind",
                    f"codec class {tag!r} of strategy kind {self.name!r} is neither an attrs "
                    "class nor an enum; only those can be journaled",
                )

    def default_config(self, bot: BotConfig) -> Any:
        """The kind's configuration with every default, on ``bot``'s venue and symbol."""
        return self.config_class(**_placement(self.config_class, bot))


#: Tables of the bot configuration that no strategy kind may take as its own.
_RESERVED_TABLES = frozenset({"venue", "instrument", "risk", "core", "market", "strategy"})


def _placement(config_class: type, bot: BotConfig) -> dict[str, str]:
    """``venue``/``symbol`` keyword arguments for a config class that declares them."""
    names = {f.name for f in attrs.fields(config_class)}
    out: dict[str, str] = {}
    if "venue" in names:
        out["venue"] = bot.venue.name
    if "symbol" in names:
        out["symbol"] = bot.instrument.symbol
    return out


_KINDS: dict[str, StrategyKind] = {}


def register(kind: StrategyKind) -> StrategyKind:
    """Add ``kind`` to the registry; returns it.

    Registering an equal kind again is harmless (a module imported twice); a different kind
    under a taken name or table raises :class:`~gridcore.errors.ConfigError`.
    """
    _ensure_builtins()
    known = _KINDS.get(kind.name)
    if known is not None:
        if known == kind:
            return known
        raise ConfigError(
            "strategy.kind",
            f"strategy kind {kind.name!r} is registered already (by "
            f"{known.strategy_class.__module__}.{known.strategy_class.__qualname__}); "
            "choose another name",
        )
    for other in _KINDS.values():
        if other.table == kind.table:
            raise ConfigError(
                "strategy.table",
                f"table [{kind.table}] is taken by strategy kind {other.name!r}; give kind "
                f"{kind.name!r} another table",
            )
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove a kind (for tests that register throw-away kinds); the grid stays."""
    if name != GRID:
        _KINDS.pop(name, None)


def get(name: str, *, module: str | None = None) -> StrategyKind:
    """The registered kind ``name``; :class:`~gridcore.errors.ConfigError` naming
    ``strategy.kind`` and listing the registered kinds when there is none."""
    _ensure_builtins()
    try:
        return _KINDS[name]
    except KeyError:
        pass
    if module is not None:
        hint = (
            f"; strategy.module {module!r} did not register it (it must call "
            f"gridcore.registry.register with name {name!r} when imported)"
        )
    else:
        hint = (
            "; a strategy of your own registers itself from its module: name it with [strategy] "
            'module = "yourpackage.yourmodule"'
        )
    raise ConfigError(
        "strategy.kind",
        f"unknown strategy kind {name!r}; registered kinds: {', '.join(kinds())}{hint}",
    )


def kind_of(strategy: object) -> StrategyKind | None:
    """The registered kind whose ``strategy_class`` ``strategy`` is an instance of (``None`` for
    a strategy no kind declares, e.g. one built by hand in a test). The invariant catalogue
    uses it to find a state's own invariants: ``kind_of(state.strategy).invariants``."""
    _ensure_builtins()
    for kind in _KINDS.values():
        if type(strategy) is kind.strategy_class:
            return kind
    for kind in _KINDS.values():
        if isinstance(strategy, kind.strategy_class):
            return kind
    return None


def kinds() -> tuple[str, ...]:
    """Every registered kind's name, sorted."""
    _ensure_builtins()
    return tuple(sorted(_KINDS))


def registered() -> Mapping[str, StrategyKind]:
    """Every registered kind by name (read-only view)."""
    _ensure_builtins()
    return types.MappingProxyType(_KINDS)


# --- the neutral grid ----------------------------------------------------------------------


def _check_grid(grid: Any, cfg: BotConfig) -> None:
    """Refuse the combinations of valid fields with which the grid cannot place an order (each
    used to run to the end, exit 0, with every order refused or rejected)."""
    from gridcore.instruments import PositionMode, PositionSide
    from gridcore.numbers import CTX

    risk, venue, inst = cfg.risk, cfg.venue, cfg.instrument
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


def _build_grid(grid: Any, cfg: BotConfig) -> Any:
    from gridcore.grid import NeutralGrid

    return NeutralGrid(config=grid)


_BUILTINS: list[bool] = []


def _ensure_builtins() -> None:
    """Register the grid on first use. Deferred (not at import) because the grid's modules
    import the kernel, and the invariant catalogue may itself ask this registry."""
    if _BUILTINS:
        return
    _BUILTINS.append(True)
    import gridcore.grid as grid_module
    from gridcore.invariants import grid_levels_never_cross, grid_spacing_above_floor

    # The grid's classes go by their bare names, as journals written before the registry
    # stored them.
    classes = {
        name: member
        for name, member in vars(grid_module).items()
        if isinstance(member, type)
        and member.__module__ == grid_module.__name__
        and (attrs.has(member) or issubclass(member, enum.Enum))
    }
    _KINDS[GRID] = StrategyKind(
        name=GRID,
        config_class=grid_module.GridConfig,
        strategy_class=grid_module.NeutralGrid,
        build=_build_grid,
        check=_check_grid,
        codec_classes=classes,
        invariants=(grid_levels_never_cross, grid_spacing_above_floor),
        default_toml=None,  # the shipped file, gridcore/configs/grid.toml
        summary="the neutral grid: buys below the price, sells above, one level apart",
    )
    import gridcore.strategies  # noqa: F401  (the shipped kinds register themselves)
