"""loflex: insertion-based sequence generation with learnable order dynamics."""

from loflex.config import ComponentSpec, Options, Run, SampleConfig, TrainConfig, load_run
from loflex.contracts import Domain, Example, Generated, Generator, Prediction, Trunk, TrunkOutput
from loflex.contracts.vocab import Vocabulary
from loflex.diffusion.batch import Batch, collate
from loflex.diffusion.order import EventTimes, KumaraswamyOrder, OrderDynamics, StateLogProbs, TokenRates
from loflex.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    LoflexError,
    PluginError,
    TrainingError,
    UnknownComponentError,
)
from loflex.extension.hookspecs import hookimpl
from loflex.extension.registry import build, components
from loflex.sampling.inference import Loaded, load
from loflex.version import __version__

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
