"""The contracts between loflex and its plugins, in one leaf package.

Everything a plugin implements or receives is declared here: the three component base
classes (:class:`Domain`, :class:`Generator`, :class:`OrderDynamics`), the data they
exchange, the pydantic :class:`Options` base, and the protocols of the optional
capabilities (a shared :class:`Trunk`; drawable, exporting, logit-constrained,
prompt-parsing and structure-completing domains). This package imports nothing from
loflex but the vocabulary and the error classes; every other module depends on it, never
the other way round.
"""

from loflex.contracts.domain import (
    CAPABILITIES,
    Domain,
    DrawableDomain,
    ExportingDomain,
    Insertion,
    LogitConstrainedDomain,
    PromptParsingDomain,
    Refill,
    StructureCompletingDomain,
    supports,
)
from loflex.contracts.examples import SPLITS, Batch, Example, Generated
from loflex.contracts.generator import (
    Generator,
    Prediction,
    Trunk,
    TrunkOutput,
    shared_trunk,
    trunk_problem,
)
from loflex.contracts.options import ComponentSpec, Options, undocumented_options
from loflex.contracts.order import EventTimes, OrderDynamics, StateLogProbs, TokenRates

__all__ = [
    "CAPABILITIES",
    "SPLITS",
    "Batch",
    "ComponentSpec",
    "Domain",
    "DrawableDomain",
    "EventTimes",
    "Example",
    "ExportingDomain",
    "Generated",
    "Generator",
    "Insertion",
    "LogitConstrainedDomain",
    "Options",
    "OrderDynamics",
    "Prediction",
    "PromptParsingDomain",
    "Refill",
    "StateLogProbs",
    "StructureCompletingDomain",
    "TokenRates",
    "Trunk",
    "TrunkOutput",
    "shared_trunk",
    "supports",
    "trunk_problem",
    "undocumented_options",
]
