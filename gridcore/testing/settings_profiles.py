"""Hypothesis settings profiles for the harness: quick for CI, thorough for long runs.

Importing :mod:`gridcore.testing` registers two profiles:

* ``gridcore-quick`` — CI: 60 examples, stateful runs of at most 30 steps, no deadline (a
  simulation's duration depends on the market drawn, not on a bug).
* ``gridcore-thorough`` — long runs before a release or after touching the core: 2,000
  examples, stateful runs of up to 100 steps.

Select one with ``settings.load_profile("gridcore-thorough")``, with hypothesis's own pytest
option ``--hypothesis-profile=gridcore-thorough`` (the gridcore pytest plugin registers the
profiles before hypothesis reads the option), or use :data:`QUICK` / :data:`THOROUGH` as
decorators.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

__all__ = ["QUICK", "QUICK_PROFILE", "THOROUGH", "THOROUGH_PROFILE", "register_profiles"]

QUICK_PROFILE = "gridcore-quick"
"""Name of the CI profile."""

THOROUGH_PROFILE = "gridcore-thorough"
"""Name of the long-run profile."""

_SLOW_IS_FINE = [HealthCheck.too_slow, HealthCheck.data_too_large]

QUICK = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=_SLOW_IS_FINE,
    print_blob=True,
)
"""CI settings: usable as a decorator, ``@QUICK``."""

THOROUGH = settings(
    max_examples=2_000,
    stateful_step_count=100,
    deadline=None,
    suppress_health_check=_SLOW_IS_FINE,
    print_blob=True,
)
"""Long-run settings: usable as a decorator, ``@THOROUGH``."""


def register_profiles() -> None:
    """Register ``gridcore-quick`` and ``gridcore-thorough`` (idempotent; does not load
    either)."""
    settings.register_profile(QUICK_PROFILE, QUICK)
    settings.register_profile(THOROUGH_PROFILE, THOROUGH)


register_profiles()
