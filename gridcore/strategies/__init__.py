"""Strategy kinds shipped with gridcore, registered when this package is imported.

:mod:`gridcore.registry` imports this package the first time it is asked for a kind, so
``[strategy] kind = "hedge_grid"`` works without ``[strategy] module``. Each module here
registers its kind with :func:`gridcore.registry.register` when imported (the neutral grid is
registered by the registry itself) and imports only the public API
(``tests/unit/test_layering.py``).
"""

from gridcore.strategies import funding_arb, grid, hedge_grid

__all__ = ["funding_arb", "grid", "hedge_grid"]
