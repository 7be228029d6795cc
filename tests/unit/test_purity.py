"""The core is pure: a checked contract, not a habit (docs/architecture.md).

``gridcore/`` may import attrs and the pure part of the standard library only. These tests read
every module's syntax tree, so an import hidden in a function body or a branch that never runs
in the tests is caught as well. A core that reads the clock or draws random numbers cannot be
replayed from its journal, and one that does I/O cannot be backtested with the same code as live.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import gridcore

#: Modules the core must never import: I/O, clock, randomness, concurrency, the shells.
FORBIDDEN_MODULES = frozenset(
    {
        "time",
        "random",
        "secrets",
        "uuid",
        "os",
        "io",
        "sys",
        "logging",
        "socket",
        "select",
        "selectors",
        "ssl",
        "asyncio",
        "anyio",
        "httpx",
        "requests",
        "trio",
        "trio_websocket",
        "threading",
        "multiprocessing",
        "concurrent",
        "subprocess",
        "signal",
        "shells",
        "pathlib",
        "shutil",
        "tempfile",
        "sqlite3",
        "importlib",
        "hypothesis",
        "pytest",
    }
)

#: What ``gridcore/testing/`` (the public test harness) may import besides the pure set.
TESTING_ALLOWED = frozenset({"hypothesis", "pytest"})

#: Calls that read the clock or do I/O, as dotted names; a bare name means the builtin.
FORBIDDEN_CALLS = frozenset(
    {
        "open",
        "print",
        "input",
        "breakpoint",
        "__import__",
        "datetime.now",
        "datetime.utcnow",
        "datetime.today",
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "datetime.datetime.today",
        "date.today",
        "datetime.date.today",
        "time.time",
        "time.time_ns",
        "time.monotonic",
        "time.perf_counter",
        "time.sleep",
    }
)

PACKAGE_DIR = Path(gridcore.__file__).parent


#: The I/O shells ship inside the distribution as ``gridcore.shells`` (so no generic top-level
#: ``shells`` package lands in site-packages) but are not part of the pure core.
SHELLS_DIR = PACKAGE_DIR / "shells"


#: Files shipped for users to copy (``gridcore init --example``), not modules of the core.
TEMPLATES_DIR = PACKAGE_DIR / "configs"


def core_modules() -> list[Path]:
    """Every Python file of the pure core (``gridcore`` less ``gridcore.shells`` and the shipped
    examples), sorted."""
    return sorted(
        p
        for p in PACKAGE_DIR.rglob("*.py")
        if SHELLS_DIR not in p.parents and TEMPLATES_DIR not in p.parents
    )


def _is_forbidden(module: str, forbidden: frozenset[str]) -> bool:
    return module.split(".")[0] in forbidden or module.startswith(("gridcore.shells", "shells."))


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def violations(source: str, *, allowed: frozenset[str] = frozenset()) -> Iterator[str]:
    """Every forbidden import or call in ``source`` (module text), as ``line: what``."""
    tree = ast.parse(source)
    forbidden = FORBIDDEN_MODULES - allowed
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_forbidden(alias.name, forbidden):
                    yield f"{node.lineno}: import {alias.name}"
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and _is_forbidden(node.module, forbidden):
                yield f"{node.lineno}: from {node.module} import ..."
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in FORBIDDEN_CALLS:
                yield f"{node.lineno}: call {name}()"


def test_the_walk_sees_the_whole_package() -> None:
    """Guards the purity test itself: an empty walk would pass vacuously."""
    names = {p.relative_to(PACKAGE_DIR).as_posix() for p in core_modules()}
    for expected in ("core.py", "ledger.py", "lifecycle.py", "risk.py", "sync.py", "grid.py"):
        assert expected in names
    assert any(name.startswith("sim/") for name in names)
    assert not any(name.startswith("shells/") for name in names)


@pytest.mark.parametrize(
    ("snippet", "what"),
    [
        ("import time", "import time"),
        ("import os.path", "import os.path"),
        ("from random import random", "from random import"),
        ("from gridcore.shells.cli import main", "from gridcore.shells.cli import"),
        ("def f():\n    import asyncio", "import asyncio"),
        ("from datetime import datetime\nx = datetime.now()", "call datetime.now()"),
        ("import datetime\nx = datetime.datetime.utcnow()", "call datetime.datetime.utcnow()"),
        ("x = open('journal.db')", "call open()"),
        ("import uuid as u", "import uuid"),
        ("import hypothesis", "import hypothesis"),
        ("import gridcore.shells.journal", "import gridcore.shells.journal"),
    ],
)
def test_the_checker_catches_impurity(snippet: str, what: str) -> None:
    """Guards the purity test itself: each kind of impurity it promises to catch is caught."""
    found = list(violations(snippet))
    assert any(what in v for v in found), found


def test_the_checker_accepts_pure_code() -> None:
    pure = "import decimal\nfrom collections.abc import Mapping\nimport attrs\nfrom . import core\n"
    assert list(violations(pure)) == []


@pytest.mark.parametrize(
    "path", core_modules(), ids=lambda p: p.relative_to(PACKAGE_DIR).as_posix()
)
def test_core_module_imports_no_io_clock_or_randomness(path: Path) -> None:
    """The design rule: "No I/O, no clock, no randomness, no threads, no asyncio, no logging".

    ``gridcore/testing/`` (the harness shipped to users) may also import hypothesis and pytest.
    """
    relative = path.relative_to(PACKAGE_DIR).as_posix()
    allowed = TESTING_ALLOWED if relative.startswith("testing/") else frozenset()
    found = list(violations(path.read_text(encoding="utf-8"), allowed=allowed))
    assert found == [], f"gridcore/{relative} is impure: {found}"


_IMPORT_EACH = """
import importlib, sys
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "gridcore" or m.startswith("gridcore.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
print("\\n".join(failed))
"""


# slow: a fresh interpreter per module; the default run keeps the import rules above.
@pytest.mark.slow
def test_every_core_module_imports_on_its_own() -> None:
    """A user (or the shell) importing ``gridcore.invariants`` or ``gridcore.testing`` first must
    not hit a circular import that the test suite's import order happens to hide."""
    names = []
    for path in core_modules():
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH, *names],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == ""
