"""The pytest plugin must never break pytest: it is loaded in every project of the environment.

pytest imports every ``pytest11`` entry point at start-up; a plugin whose import needs
hypothesis makes pytest fail for every project in an environment that has gridcore and pytest
but not hypothesis. These tests run pytest for real in a fresh interpreter where any import of
hypothesis raises ``ImportError`` (as if it were not installed), with plugin autoloading on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gridcore.testing import QUICK_PROFILE, THOROUGH_PROFILE

# Runs in a fresh interpreter: hide hypothesis, then run pytest with the installed plugins.
_WITHOUT_HYPOTHESIS = """
import sys

class _NoHypothesis:
    def find_spec(self, name, path=None, target=None):
        if name == "hypothesis" or name.startswith("hypothesis."):
            raise ImportError(f"No module named {name!r} (hidden by the test)", name=name)
        return None

sys.meta_path.insert(0, _NoHypothesis())
try:
    import gridcore.testing
except ImportError:
    print("blocker-ok")
else:
    raise SystemExit("the blocker failed: gridcore.testing imported without hypothesis")

import pytest
# hypothesis's own pytest plugin would not be installed either.
sys.exit(pytest.main(sys.argv[1:] + ["-p", "no:hypothesispytest", "-p", "no:cacheprovider"]))
"""

_TRIVIAL_TEST = """
import sys

def test_gridcore_plugin_is_loaded_without_hypothesis(pytestconfig):
    assert pytestconfig.pluginmanager.has_plugin("gridcore")
    assert "hypothesis" not in sys.modules
"""

_PROFILE_TEST = """
from hypothesis import settings

def test_the_gridcore_profile_is_selected():
    assert settings.default.max_examples == 2000
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("HYPOTHESIS_PROFILE", None)
    return env


def test_pytest_runs_when_hypothesis_is_not_installed(tmp_path: Path) -> None:
    (tmp_path / "test_trivial.py").write_text(_TRIVIAL_TEST, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_HYPOTHESIS, "-q", "test_trivial.py"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert "blocker-ok" in result.stdout, output
    assert "Error while loading plugin" not in output, output
    assert result.returncode == 0, output
    assert "1 passed" in result.stdout, output


def test_the_plugin_registers_the_profiles_when_hypothesis_is_there(tmp_path: Path) -> None:
    (tmp_path / "test_profile.py").write_text(_PROFILE_TEST, encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            f"--hypothesis-profile={THOROUGH_PROFILE}",
            "test_profile.py",
        ],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 passed" in result.stdout, output
    assert f"hypothesis profiles {QUICK_PROFILE} (CI) and {THOROUGH_PROFILE}" in result.stdout
