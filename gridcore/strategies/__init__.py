"""Strategy kinds shipped with gridcore; each module registers itself when imported."""

from gridcore.strategies import funding_arb as funding_arb
