"""loflex: insertion-based sequence generation with learnable order dynamics."""

from loflex.batch import Batch, collate
from loflex.config import ComponentSpec, Options, Run, SampleConfig, TrainConfig, load_run
from loflex.domain import Domain, Example, Generated
from loflex.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    LoflexError,
    PluginError,
    TrainingError,
    UnknownComponentError,
)
from loflex.generator import Generator, Prediction, Trunk, TrunkOutput
from loflex.hookspecs import hookimpl
from loflex.inference import Loaded, load
from loflex.order import EventTimes, KumaraswamyOrder, OrderDynamics, StateLogProbs, TokenRates
from loflex.registry import build, components
from loflex.version import __version__
from loflex.vocab import Vocabulary

__all__ = [
    "Batch",
    "CheckpointError",
    "ComponentSpec",
    "ConfigError",
    "DataError",
    "Domain",
    "EventTimes",
    "Example",
    "Generated",
    "Generator",
    "KumaraswamyOrder",
    "Loaded",
    "LoflexError",
    "Options",
    "OrderDynamics",
    "PluginError",
    "Prediction",
    "Run",
    "SampleConfig",
    "StateLogProbs",
    "TokenRates",
    "TrainConfig",
    "TrainingError",
    "Trunk",
    "TrunkOutput",
    "UnknownComponentError",
    "Vocabulary",
    "__version__",
    "build",
    "collate",
    "components",
    "hookimpl",
    "load",
    "load_run",
]
