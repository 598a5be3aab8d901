"""The Generator contract (defined in :mod:`loflex.contracts`; re-exported here)."""

from __future__ import annotations

from loflex.contracts.generator import Generator, Prediction, Trunk, TrunkOutput

__all__ = ["Generator", "Prediction", "Trunk", "TrunkOutput"]
