"""The Domain contract (defined in :mod:`loflex.contracts`; re-exported here)."""

from __future__ import annotations

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
