"""``gridcore init`` and ``gridcore --version`` as an installed user runs them (subprocesses of
the real console script): the documented default configuration is something a user without the
repository can get, and never clobbers their file."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

from gridcore.config import DEFAULT_TOML, BotConfig, load_config
from gridcore.shells.cli import STRATEGIES, default_config_text

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 120


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridcore.shells.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("gridcore: error: "), lines[0]
    return lines[0]


def test_the_shipped_default_is_the_embedded_one_and_the_example() -> None:
    """One text in three places: package data (what ``init`` writes), the string the pure core
    embeds (it may not read files), and ``examples/grid.toml`` in the repository."""
    shipped = default_config_text("grid")
    assert shipped == DEFAULT_TOML
    assert (REPO / "examples" / "grid.toml").read_text(encoding="utf-8") == shipped
    assert load_config(shipped) == BotConfig()


def test_init_writes_the_default_configuration_that_backtest_runs(tmp_path: Path) -> None:
    done = cli("init", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = tmp_path / "grid.toml"
    assert written.read_text(encoding="utf-8") == DEFAULT_TOML
    assert "gridcore backtest --config grid.toml" in done.stderr
    run = cli("backtest", "--config", "grid.toml", "--ticks", "500", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert '"ticks": 500' in run.stdout


def test_init_writes_to_the_path_given(tmp_path: Path) -> None:
    done = cli("init", "--strategy", "grid", "bots/my-grid.toml", cwd=tmp_path)
    assert done.returncode == 2  # the directory does not exist
    assert "does not exist" in error_line(done)
    (tmp_path / "bots").mkdir()
    done = cli("init", "--strategy", "grid", "bots/my-grid.toml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "bots" / "my-grid.toml").read_text(encoding="utf-8") == DEFAULT_TOML


def test_init_never_overwrites_without_force(tmp_path: Path) -> None:
    mine = tmp_path / "grid.toml"
    mine.write_text("[grid]\nlevels = 3\n", encoding="utf-8")
    line = error_line(cli("init", "grid.toml", cwd=tmp_path))
    assert "already exists" in line and "--force" in line
    assert mine.read_text(encoding="utf-8") == "[grid]\nlevels = 3\n"
    done = cli("init", "--force", "grid.toml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert mine.read_text(encoding="utf-8") == DEFAULT_TOML


def test_init_refuses_a_directory(tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    assert "is a directory" in error_line(cli("init", "cfg", cwd=tmp_path))


def test_init_dash_prints_the_configuration(tmp_path: Path) -> None:
    done = cli("init", "-", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == DEFAULT_TOML
    assert list(tmp_path.iterdir()) == []


def test_init_knows_only_the_shipped_strategies(tmp_path: Path) -> None:
    assert STRATEGIES == ("grid",)
    done = cli("init", "--strategy", "funding-arb", cwd=tmp_path)
    assert done.returncode == 2
    assert "--strategy" in done.stderr and "grid" in done.stderr
    with pytest.raises(ValueError, match="grid"):
        default_config_text("funding-arb")


def test_version(tmp_path: Path) -> None:
    done = cli("--version", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"gridcore {importlib.metadata.version('gridcore')}"


@pytest.mark.parametrize("command", [(), ("init",), ("backtest",), ("run",), ("inspect",)])
def test_help_points_at_what_an_installed_user_has(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    """An installed user has no repository: no help text may send them to ``examples/``."""
    done = cli(*command, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "examples/" not in done.stdout
    if command in ((), ("backtest",), ("run",)):
        assert "gridcore init" in " ".join(done.stdout.split())


def test_init_writes_the_harness_example_the_docs_point_at(tmp_path: Path) -> None:
    done = cli("init", "--example", "prove-my-bot", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = (tmp_path / "prove_my_bot.py").read_text(encoding="utf-8")
    assert written == (REPO / "examples" / "prove_my_bot.py").read_text(encoding="utf-8")
    assert "python -m pytest prove_my_bot.py" in done.stderr
    again = cli("init", "--example", "prove-my-bot", cwd=tmp_path)
    assert "already exists" in error_line(again)
