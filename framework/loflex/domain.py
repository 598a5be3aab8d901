"""Deprecated: the former module of the Domain contract, kept for one release.

The contract lives in :mod:`loflex.contracts`; ``import loflex.domain`` warns once and
gives the same names. Import them from ``loflex.contracts`` (or ``loflex``) instead.
"""

import warnings

from loflex.contracts.domain import (
    Domain,
    DrawableDomain,
    ExportingDomain,
    LogitConstrainedDomain,
    PromptParsingDomain,
    supports,
)
from loflex.contracts.examples import SPLITS, Example, Generated

__all__ = ["SPLITS", "Domain", "DrawableDomain", "Example", "ExportingDomain", "Generated",
           "LogitConstrainedDomain", "PromptParsingDomain", "supports"]

warnings.warn("loflex.domain is deprecated and will be removed in the next release; "
              "import its names from loflex.contracts", DeprecationWarning, stacklevel=2)
