"""The gridcore pytest plugin (entry point ``pytest11: gridcore``).

It registers the harness's hypothesis profiles when pytest starts, before hypothesis reads its
own ``--hypothesis-profile`` option, so that ::

    pytest --hypothesis-profile=gridcore-thorough

works in any project that installed ``gridcore[testing]``, without a conftest. It also names
the profiles in pytest's header. Without hypothesis installed it does nothing.
"""

from __future__ import annotations

from typing import Any

try:
    from gridcore.testing.settings_profiles import QUICK_PROFILE, THOROUGH_PROFILE
except ImportError:  # pragma: no cover - gridcore installed without the testing extra
    QUICK_PROFILE = THOROUGH_PROFILE = ""

__all__ = ["pytest_report_header"]


def pytest_report_header(config: Any) -> str | None:
    """One header line naming the registered profiles (nothing without hypothesis)."""
    if not QUICK_PROFILE:  # pragma: no cover - see above
        return None
    return (
        f"gridcore: hypothesis profiles {QUICK_PROFILE} (CI) and {THOROUGH_PROFILE} registered; "
        f"select with --hypothesis-profile"
    )
