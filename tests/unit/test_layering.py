"""The import layering of gridcore, checked on the source with ``ast`` (no import-linter).

* The kernel (``gridcore/kernel/``) imports only the vocabulary (events, commands, instruments,
  numbers, lifecycle, ledger, risk, ...) and itself: never a strategy, a shell, the simulator,
  the testing harness, the registry or the public facade that re-exports it.
* A strategy (``gridcore/strategies/``) imports only the public API: the names of
  ``gridcore.__all__`` and the documented public modules (:data:`STRATEGY_MAY_IMPORT`).
* A venue adapter (``gridcore/shells/venues/``) never imports the kernel.
* Nothing outside ``gridcore/kernel/`` imports one of its private (underscore) modules: the
  facade ``gridcore.core`` is the way in, so the kernel's modules may move.
* Inside the kernel, the values (``_model``) import no other kernel module and the mechanics
  (``_tx``) only the values: neither can hold a rule.

Each rule is checked on the real tree and shown to fail on a synthetic tree with one planted
violation, so a checker that silently stopped looking would be caught too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: What the kernel may import from gridcore: the vocabulary, and the kernel itself.
KERNEL_MAY_IMPORT = frozenset(
    {
        "gridcore._enum",
        "gridcore.api",
        "gridcore.commands",
        "gridcore.errors",
        "gridcore.events",
        "gridcore.exposure",
        "gridcore.halts",
        "gridcore.instruments",
        "gridcore.ledger",
        "gridcore.lifecycle",
        "gridcore.numbers",
        "gridcore.plausibility",
        "gridcore.risk",
        "gridcore.sync",
        "gridcore.validators",
        "gridcore.kernel",
    }
)

#: The documented public modules a strategy may import (besides ``from gridcore import`` of a
#: name in ``gridcore.__all__``), and its sibling strategies.
STRATEGY_MAY_IMPORT = frozenset(
    {
        "gridcore.api",
        "gridcore.commands",
        "gridcore.config",
        "gridcore.core",
        "gridcore.errors",
        "gridcore.events",
        "gridcore.exposure",
        "gridcore.halts",
        "gridcore.instruments",
        "gridcore.invariants",
        "gridcore.ledger",
        "gridcore.lifecycle",
        "gridcore.numbers",
        "gridcore.plausibility",
        "gridcore.registry",
        "gridcore.risk",
        "gridcore.saga",
        "gridcore.strategies",
        "gridcore.sync",
    }
)

#: Kernel modules that hold no rules, and the kernel modules each may import.
KERNEL_BASE = {
    "gridcore.kernel._model": frozenset[str](),
    "gridcore.kernel._tx": frozenset({"gridcore.kernel._model"}),
}

#: Where imports of the kernel's private modules are looked for (every Python file of these).
SCANNED = ("gridcore", "tests", "examples", "benchmarks")


def _within(module: str, packages: frozenset[str] | tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(root: Path, path: Path) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """``(line, module, names)`` for every import in ``path``: ``names`` are the names a
    ``from`` import takes (empty for ``import x``); relative imports are resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(root, path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base, tuple(alias.name for alias in node.names)


def _targets(module: str, names: tuple[str, ...]) -> list[str]:
    """The module an import reads, and each ``module.name`` (a ``from`` import may name a
    submodule)."""
    return [module, *(f"{module}.{n}" for n in names)]


def _public_names(root: Path) -> frozenset[str]:
    tree = ast.parse((root / "gridcore" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return frozenset(ast.literal_eval(node.value))
    return frozenset()


def _private_kernel_module(name: str) -> bool:
    parts = name.split(".")
    return len(parts) >= 3 and parts[:2] == ["gridcore", "kernel"] and parts[2].startswith("_")


def violations(root: Path) -> list[str]:
    """Every import in the tree at ``root`` that breaks a layering rule, as
    ``"path:line: rule: module"``."""
    public = _public_names(root)
    found: list[str] = []
    for top in SCANNED:
        for path in sorted((root / top).rglob("*.py")) if (root / top).is_dir() else ():
            if any(part.startswith(".") for part in path.relative_to(root).parts):
                continue
            where = _module_name(root, path)
            rel = path.relative_to(root).as_posix()
            in_kernel = _within(where, ("gridcore.kernel",))
            for line, module, names in _imports(root, path):
                targets = _targets(module, names)
                gridcore_targets = [t for t in targets if _within(t, ("gridcore",))]

                def report(rule: str, what: str, line: int = line, rel: str = rel) -> None:
                    found.append(f"{rel}:{line}: {rule}: {what}")

                if not in_kernel:
                    for t in targets:
                        if _private_kernel_module(t):
                            report("private kernel module imported from outside the kernel", t)
                if in_kernel and module and _within(module, ("gridcore",)):
                    if module == "gridcore":
                        report("the kernel imports the gridcore package", module)
                    elif not _within(module, KERNEL_MAY_IMPORT):
                        report("the kernel imports beyond the vocabulary", module)
                if where in KERNEL_BASE:
                    for t in targets:
                        kernel_module = ".".join(t.split(".")[:3])
                        if _private_kernel_module(t) and kernel_module not in KERNEL_BASE[where]:
                            report("a kernel module without rules imports a rule module", t)
                if _within(where, ("gridcore.strategies",)) and gridcore_targets:
                    if module == "gridcore":
                        for name in names:
                            if name not in public and f"gridcore.{name}" not in (
                                STRATEGY_MAY_IMPORT
                            ):
                                report("a strategy imports a name not in gridcore.__all__", name)
                    elif not _within(module, STRATEGY_MAY_IMPORT):
                        report("a strategy imports beyond the public API", module)
                if _within(where, ("gridcore.shells.venues",)):
                    for t in gridcore_targets:
                        if _within(t, ("gridcore.kernel",)):
                            report("a venue adapter imports the kernel", t)
                            break
    return found


def test_the_source_tree_keeps_its_layers() -> None:
    assert violations(REPO) == []


def test_the_checker_reads_the_real_tree() -> None:
    """The rules above are not vacuous: the tree has a kernel, strategies and a public list."""
    assert (REPO / "gridcore" / "kernel" / "_reducer.py").is_file()
    assert (REPO / "gridcore" / "strategies" / "grid.py").is_file()
    assert {"step", "State", "Submit"} <= _public_names(REPO)


# --- the checker on synthetic trees --------------------------------------------------------------

_CLEAN = {
    "gridcore/__init__.py": '__all__ = ["State", "step"]\nfrom gridcore.core import State, step\n',
    "gridcore/core.py": "from gridcore.kernel import step\n",
    "gridcore/events.py": "",
    "gridcore/kernel/__init__.py": "from gridcore.kernel._reducer import step\n",
    "gridcore/kernel/_reducer.py": (
        "from gridcore.events import Event\nfrom gridcore.kernel import _tx\nfrom . import _tx\n"
    ),
    "gridcore/kernel/_tx.py": (
        "import attrs\nfrom gridcore.ledger import Ledger\nfrom gridcore.kernel._model import S\n"
    ),
    "gridcore/kernel/_model.py": "from gridcore.sync import VenueStatus\n",
    "gridcore/strategies/__init__.py": "from gridcore.strategies import grid\n",
    "gridcore/strategies/grid.py": (
        "from gridcore import State, step\nfrom gridcore.core import Submit\n"
        "from gridcore.registry import register\n"
    ),
    "gridcore/shells/venues/__init__.py": "",
    "gridcore/shells/venues/fake.py": "from gridcore.events import Event\nimport gridcore.core\n",
    "tests/test_x.py": "from gridcore.core import step\n",
}


def _tree(root: Path, extra: dict[str, str]) -> Path:
    for rel, text in {**_CLEAN, **extra}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_a_clean_synthetic_tree_passes(tmp_path: Path) -> None:
    assert violations(_tree(tmp_path, {})) == []


@pytest.mark.parametrize(
    ("rel", "text", "rule"),
    [
        (
            "gridcore/kernel/_orders.py",
            "from gridcore.strategies.grid import NeutralGrid\n",
            "the kernel imports beyond the vocabulary: gridcore.strategies.grid",
        ),
        (
            "gridcore/kernel/_orders.py",
            "from ..shells import runtime\n",
            "the kernel imports beyond the vocabulary: gridcore.shells",
        ),
        (
            "gridcore/kernel/_orders.py",
            "import gridcore.testing.machine\n",
            "the kernel imports beyond the vocabulary: gridcore.testing.machine",
        ),
        (
            "gridcore/kernel/_orders.py",
            "from gridcore.sim import backtest\n",
            "the kernel imports beyond the vocabulary: gridcore.sim",
        ),
        (
            "gridcore/kernel/_orders.py",
            "from gridcore import State\n",
            "the kernel imports the gridcore package: gridcore",
        ),
        (
            "gridcore/kernel/_tx.py",
            "from gridcore.kernel import _orders\n",
            "a kernel module without rules imports a rule module: gridcore.kernel._orders",
        ),
        (
            "gridcore/kernel/_model.py",
            "from gridcore.kernel._ledger import fill_refusal\n",
            "a kernel module without rules imports a rule module: gridcore.kernel._ledger",
        ),
        (
            "gridcore/strategies/bad.py",
            "from gridcore.kernel._tx import Tx\n",
            "a strategy imports beyond the public API: gridcore.kernel._tx",
        ),
        (
            "gridcore/strategies/bad.py",
            "from gridcore import Books\n",
            "a strategy imports a name not in gridcore.__all__: Books",
        ),
        (
            "gridcore/strategies/bad.py",
            "from gridcore.shells import runtime\n",
            "a strategy imports beyond the public API: gridcore.shells",
        ),
        (
            "gridcore/shells/venues/fake.py",
            "from gridcore import kernel\n",
            "a venue adapter imports the kernel: gridcore.kernel",
        ),
        (
            "gridcore/sim/exchange.py",
            "from gridcore.kernel import _model\n",
            "private kernel module imported from outside the kernel: gridcore.kernel._model",
        ),
        (
            "tests/test_x.py",
            "def f() -> None:\n    from gridcore.kernel._tx import Tx\n",
            "private kernel module imported from outside the kernel: gridcore.kernel._tx",
        ),
    ],
)
def test_a_planted_violation_is_reported(tmp_path: Path, rel: str, text: str, rule: str) -> None:
    found = violations(_tree(tmp_path, {rel: text}))
    assert any(f.startswith(f"{rel}:") and f.endswith(rule) for f in found), found
