"""Finding a strategy of your own: import the one module a configuration names.

The core's registry (:mod:`gridcore.registry`) is pure: it never imports code. A strategy kind
that is not built in gets registered by importing the module that defines it, and that is a
shell's job (this module): before a configuration is read, :func:`import_strategy` looks at its
``[strategy]`` table and imports

* the module ``[strategy] module`` names (``"mypkg.mybot"``), which calls
  :func:`gridcore.registry.register` when imported; or, when no module is named and the kind is
  not registered yet,
* the one entry point of the ``gridcore.strategies`` group whose name is the configured kind
  (an installed package declares ``[project.entry-points."gridcore.strategies"] mykind =
  "mypkg.mybot"``); the entry point may name a module that registers itself or a
  :class:`~gridcore.registry.StrategyKind` value, which is registered.

Nothing else is imported: not every entry point of the group, not a name found in a journal's
events. A journal's recorded configuration goes through the same function before its snapshots
are decoded (``gridcore inspect``, ``replay``, a resumed ``run``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import tomllib
from typing import Any

from gridcore import registry
from gridcore.config import BotConfig
from gridcore.config import load_config as _load_config
from gridcore.errors import ConfigError

__all__ = ["ENTRY_POINT_GROUP", "import_strategy", "load_config"]

#: The entry-point group an installed package lists its strategy kinds in.
ENTRY_POINT_GROUP = "gridcore.strategies"


def _strategy_table(text: str | None) -> tuple[Any, Any]:
    """``(kind, module)`` as written, or ``(None, None)`` when there is nothing to import (the
    loader reports malformed text and values itself)."""
    if not text:
        return None, None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None, None
    table = data.get("strategy")
    if not isinstance(table, dict):
        return None, None
    return table.get("kind"), table.get("module")


def import_strategy(text: str | None, *, source: str | None = None) -> None:
    """Import what the configuration ``text`` names so that its strategy kind is registered:
    the ``[strategy] module``, or else the ``gridcore.strategies`` entry point named by an
    unregistered ``[strategy] kind``. Raises :class:`~gridcore.errors.ConfigError` naming the
    field when the module cannot be found."""
    kind, module = _strategy_table(text)
    if isinstance(module, str) and module:
        import_module(module, source=source)
        return
    if isinstance(kind, str) and kind and kind not in registry.kinds():
        _load_entry_point(kind, source=source)


def import_module(module: str, *, source: str | None = None) -> None:
    """Import ``module`` (a dotted name), reporting a missing one as ``strategy.module``."""
    if not all(part.isidentifier() for part in module.split(".")):
        return  # the loader names the field and the fix
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            "strategy.module",
            f"cannot import {module!r} ({exc}); install the package that provides it, or add "
            "its directory to PYTHONPATH",
            source=source,
        ) from None


def _load_entry_point(kind: str, *, source: str | None) -> None:
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=kind):
        try:
            loaded = point.load()
        except ModuleNotFoundError as exc:
            raise ConfigError(
                "strategy.kind",
                f"the {ENTRY_POINT_GROUP} entry point {kind!r} ({point.value}) cannot be "
                f"imported ({exc}); reinstall the package that declares it",
                source=source,
            ) from None
        if isinstance(loaded, registry.StrategyKind):
            registry.register(loaded)
        return


def load_config(text: str | None = None, *, source: str | None = None) -> BotConfig:
    """:func:`gridcore.config.load_config` after :func:`import_strategy`: what the command line
    uses, so a configuration that names a strategy of your own runs it."""
    import_strategy(text, source=source)
    return _load_config(text, source=source)
