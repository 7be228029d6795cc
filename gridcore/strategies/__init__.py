"""Strategies shipped with gridcore. Each module registers its kind with
:mod:`gridcore.registry` and imports only the public API (``tests/unit/test_layering.py``)."""

from gridcore.strategies import grid

__all__ = ["grid"]
