"""Docs, code and comments speak to users: they describe failures by their catalogue name
(``docs/failures.md``), never by pointers into the project's own history or to documents a
user does not have."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: What a user cannot follow: post-mortem numbers, documents outside the repository, the
#: project's own process.
FORBIDDEN = {
    "a post-mortem number": re.compile(r"\b[Ss]eeds? \d{3}\b|\b00[0-4] (?:#\d|P0-\d|P1|C-\d)"),
    "a path outside the repository": re.compile(r"shared/|seeds/"),
    "a design document users do not have": re.compile(r"\b(?:DESIGN|STYLE)\.md\b"),
    "the project's own process": re.compile(
        r"\bthe issue\b|\bfrom the issue\b|\bthe machines here\b", re.I
    ),
}


def _files() -> list[Path]:
    out = [ROOT / "README.md", ROOT / "CHANGELOG.md"]
    for folder, pattern in (
        ("docs", "*.md"),
        ("gridcore", "*.py"),
        ("gridcore", "*.toml"),
        ("examples", "*"),
        ("tests", "*.py"),
        ("benchmarks", "*.py"),
    ):
        out.extend(p for p in (ROOT / folder).rglob(pattern) if p.is_file())
    me = Path(__file__).resolve()
    return sorted(
        p for p in out if p.exists() and p.resolve() != me and "__pycache__" not in p.parts
    )


def test_the_scan_sees_the_tree() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in _files()}
    assert {"README.md", "docs/failures.md", "gridcore/core.py"} <= names


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_pointer_a_user_cannot_follow(path: Path) -> None:
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        for what, rx in FORBIDDEN.items():
            if rx.search(line):
                found.append(f"{path.name}:{number}: {what}: {line.strip()}")
    assert found == [], "\n".join(found)


def test_every_cited_failure_is_in_the_catalogue() -> None:
    catalogue = (ROOT / "docs" / "failures.md").read_text(encoding="utf-8")
    names = set(re.findall(r"^\| `([a-z-]+)` \|", catalogue, re.M))
    assert len(names) >= 25
    cited: set[str] = set()
    for path in _files():
        cited |= set(re.findall(r"[Ff]ailures? `([a-z-]+)`", path.read_text(encoding="utf-8")))
    assert cited - names == set(), f"cited but not in docs/failures.md: {sorted(cited - names)}"
