"""Deprecated: the former module of the Generator contract, kept for one release.

The contract lives in :mod:`loflex.contracts`; ``import loflex.generator`` warns once
and gives the same names. Import them from ``loflex.contracts`` (or ``loflex``) instead.
"""

import warnings

from loflex.contracts.generator import Generator, Prediction, Trunk, TrunkOutput

__all__ = ["Generator", "Prediction", "Trunk", "TrunkOutput"]

warnings.warn("loflex.generator is deprecated and will be removed in the next release; "
              "import its names from loflex.contracts", DeprecationWarning, stacklevel=2)
