"""Shared test settings: hypothesis profiles (``ci`` by default, ``thorough`` for long runs), and
a closing line when the default run left out the tests marked ``slow``."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "thorough",
    max_examples=2_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("dev", max_examples=20, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    """Say so when the run left out the slow tier (the default ``-m "not slow"`` of addopts):
    under ``-n`` the deselected tests are counted nowhere else."""
    if config.option.markexpr == "not slow":
        terminalreporter.write_line(
            'The tests marked slow were left out: `nox -s slow` runs them, `-m ""` runs everything.'
        )
