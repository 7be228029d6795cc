"""The neutral grid lives in :mod:`gridcore.strategies.grid`; this module keeps the old import
path working."""

from gridcore.strategies.grid import (
    DEFAULT_ORDER_QTY,
    GridConfig,
    GridLevel,
    Lattice,
    NeutralGrid,
    compute_spacing,
    grid_levels,
    pivot_for,
)

__all__ = [
    "DEFAULT_ORDER_QTY",
    "GridConfig",
    "GridLevel",
    "Lattice",
    "NeutralGrid",
    "compute_spacing",
    "grid_levels",
    "pivot_for",
]
