"""Client order ids are unique across sessions: two ``gridcore run`` journals on the same
configuration never name two orders alike, and a resumed journal keeps naming its orders with
its own prefix (the session nonce drawn when the journal was created)."""

from __future__ import annotations

import re
from pathlib import Path

from gridcore.shells.journal import Journal
from tests.e2e.test_cli_run import cli

#: A Hyperliquid cloid (0x + 32 hex digits), which is also a valid Bybit orderLinkId.
CLOID = re.compile(r"0x[0-9a-f]{32}")


def _run(directory: Path, seconds: int) -> None:
    directory.mkdir(exist_ok=True)
    result = cli(
        "run", "--journal", "j.db", "--speed", "max", "--duration", str(seconds), cwd=directory
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def _cloids(directory: Path) -> list[str]:
    with Journal.open(directory / "j.db", readonly=True) as journal:
        return journal.placed_cloids()


def test_two_fresh_journals_never_share_a_cloid_and_a_resumed_one_keeps_its_prefix(
    tmp_path: Path,
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _run(a, 300)
    _run(b, 300)
    first_a, first_b = _cloids(a), _cloids(b)
    assert first_a and first_b
    assert all(CLOID.fullmatch(c) and len(c) <= 36 for c in first_a + first_b)
    assert not set(first_a) & set(first_b)
    with Journal.open(a / "j.db", readonly=True) as journal:
        nonce = journal.meta()["session_nonce"]
    assert re.fullmatch(r"[0-9a-f]{16}", nonce)

    _run(a, 300)  # resume
    resumed = _cloids(a)
    assert len(resumed) > len(first_a)
    assert {c[:18] for c in resumed} == {first_a[0][:18]}
    assert len(set(resumed)) == len(resumed)
