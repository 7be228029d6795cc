"""The gridcore pytest plugin (entry point ``pytest11: gridcore``).

It registers the harness's hypothesis profiles when pytest starts, before hypothesis reads its
own ``--hypothesis-profile`` option, so that ::

    pytest --hypothesis-profile=gridcore-thorough

works in any project that installed ``gridcore[testing]``, without a conftest. It also names
the profiles in pytest's header.

pytest loads every installed plugin in every project, so this module must import in an
environment that has gridcore and pytest but not hypothesis: it lives outside
:mod:`gridcore.testing` (whose package import needs hypothesis) and imports that package only
inside a guard. Without hypothesis it does nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["pytest_report_header"]

try:
    # Importing the module registers the profiles, early enough for --hypothesis-profile.
    from gridcore.testing.settings_profiles import QUICK_PROFILE, THOROUGH_PROFILE
except ImportError:  # gridcore installed without the testing extra: stay out of the way
    QUICK_PROFILE = THOROUGH_PROFILE = ""


def pytest_report_header(config: Any) -> str | None:
    """One header line naming the registered profiles (nothing without hypothesis)."""
    if not QUICK_PROFILE:
        return None
    return (
        f"gridcore: hypothesis profiles {QUICK_PROFILE} (CI) and {THOROUGH_PROFILE} registered; "
        f"select with --hypothesis-profile"
    )
