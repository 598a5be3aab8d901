"""The Generator contract: a denoiser network over noisy variable-length sequences.

A generator reads ``x_t`` (masks as the mask id, padding as pad), the time t and the
padding mask, and predicts the clean token at every slot and the rates of the reverse
process (docs/method.md §1.4). A generator that exposes a :class:`Trunk` lets a
learned order share its backbone (``kumaraswamy backbone=shared``).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import torch
from torch import nn

from loflex.contracts.deprecation import renamed_argument, renamed_attribute
from loflex.contracts.options import Options
from loflex.errors import ConfigError


@dataclass(init=False)
class Prediction:
    """What a generator predicts for a noisy batch ``x_t``.

    Attributes:
        logits: (B, L, V) token logits at every slot (used at masked slots).
        insert_multiplier: (B, L) non-negative multiplier b_in^θ for the gap to the left of
            each slot; the predicted insertion rate of that gap is
            ``insert_multiplier * h(t)``.
        unmask_rate: (B, L) multiplier b_um^θ, present when the order learns b_um.

    ``insert_rate`` is the former name of ``insert_multiplier``, accepted as a keyword and
    an attribute for one more release.

    Example::

        Prediction(logits=torch.zeros(2, 5, 12), insert_multiplier=torch.ones(2, 5))
    """

    logits: torch.Tensor
    insert_multiplier: torch.Tensor
    unmask_rate: torch.Tensor | None = None

    def __init__(self, logits: torch.Tensor, insert_multiplier: torch.Tensor | None = None,
                 unmask_rate: torch.Tensor | None = None, *,
                 insert_rate: torch.Tensor | None = None):
        insert_multiplier = renamed_argument(insert_multiplier, insert_rate, owner="Prediction",
                                             name="insert_multiplier", old_name="insert_rate")
        if insert_multiplier is None:
            raise TypeError("Prediction needs insert_multiplier, the (B, L) insertion multiplier")
        self.logits = logits
        self.insert_multiplier = insert_multiplier
        self.unmask_rate = unmask_rate

    @property
    def insert_rate(self) -> torch.Tensor:
        """Deprecated name of :attr:`insert_multiplier`."""
        renamed_attribute("Prediction", "insert_multiplier", "insert_rate")
        return self.insert_multiplier

    @insert_rate.setter
    def insert_rate(self, value: torch.Tensor) -> None:
        renamed_attribute("Prediction", "insert_multiplier", "insert_rate")
        self.insert_multiplier = value


@dataclass
class TrunkOutput:
    """What a trunk computes.

    Attributes:
        hidden: (B, L, D) final hidden states, D = ``trunk.width``.
        cond: (B, C) the time condition, C = ``trunk.cond_dim``; rate heads of a shared
            backbone are modulated by it.
    """

    hidden: torch.Tensor
    cond: torch.Tensor


@runtime_checkable
class Trunk(Protocol):
    """The backbone a generator shares with a learned order (``backbone = "shared"``).

    A trunk is an ``nn.Module`` whose call maps ``(x (B, L) long, t (B,), real (B, L)
    bool)`` to a :class:`TrunkOutput` and which states its two output widths. The order
    runs it on the clean ``x_1`` and puts its own rate heads on top; the trunk's
    parameters stay the generator's (saved and optimised once).

    Example::

        class GRUTrunk(nn.Module):
            def __init__(self, vocab_size, width):
                super().__init__()
                self.width, self.cond_dim = 2 * width, width
                self.embed = nn.Embedding(vocab_size, width)
                self.time = nn.Linear(1, width)
                self.gru = nn.GRU(width, width, batch_first=True, bidirectional=True)

            def forward(self, x, t, real):
                cond = self.time(t[:, None].float())            # (B, C)
                hidden, _ = self.gru(self.embed(x) + cond[:, None])  # (B, L, 2 width)
                return TrunkOutput(hidden=hidden, cond=cond)
    """

    width: int
    cond_dim: int

    def __call__(self, x: torch.Tensor, t: torch.Tensor, real: torch.Tensor) -> TrunkOutput:
        """Return hidden states (B, L, ``width``) and the condition (B, ``cond_dim``)."""


def trunk_problem(trunk: object) -> str | None:
    """Return what keeps ``trunk`` from satisfying :class:`Trunk`, or None when it does."""
    missing = [name for name in ("width", "cond_dim") if not isinstance(
        getattr(trunk, name, None), int)]
    if missing:
        return f"it has no integer {' or '.join(missing)}"
    if not callable(trunk):
        return "it is not callable"
    return None


def shared_trunk(generator: nn.Module | None, who: str) -> Trunk:
    """Return the :class:`Trunk` of ``generator`` for ``who`` (an order sharing it).

    Raises:
        ConfigError: the generator has no ``trunk``, or its trunk does not satisfy
            :class:`Trunk` (names what is missing).
    """
    trunk = getattr(generator, "trunk", None) if generator is not None else None
    name = getattr(generator, "name", type(generator).__name__)
    if trunk is None:
        raise ConfigError(f"{who}: backbone 'shared' needs a generator with a 'trunk', and "
                          f"generator '{name}' has none; use backbone = 'separate'")
    problem = trunk_problem(trunk)
    if problem is not None:
        raise ConfigError(f"{who}: the trunk of generator '{name}' does not satisfy "
                          f"loflex.contracts.Trunk ({problem}); give it integer width and "
                          "cond_dim and return TrunkOutput(hidden, cond), or use backbone = "
                          "'separate'")
    return trunk


class Generator(nn.Module, metaclass=abc.ABCMeta):
    """Base class of denoiser networks.

    Args:
        options: validated ``Options``.
        vocab_size: V, including the four special tokens.
        max_length: longest sequence the network must handle.
        learn_unmask: also predict ``unmask_rate`` (the order learns b_um).

    Class attributes:
        name: the registered lower-kebab name.
        Options: the pydantic options model (every field with a description).

    A generator whose backbone a learned order may share sets ``self.trunk`` to a module
    satisfying :class:`Trunk` (the built-in ``transformer`` does); without one,
    ``backbone = "shared"`` is refused when the run is built.

    Example::

        class Bag(loflex.Generator):
            name = "bag"

            def __init__(self, options, *, vocab_size, max_length, learn_unmask=False):
                super().__init__(options, vocab_size=vocab_size, max_length=max_length,
                                 learn_unmask=learn_unmask)
                self.embed = nn.Embedding(vocab_size, 32)
                self.logits = nn.Linear(32, vocab_size)
                self.rate = nn.Linear(32, 1)

            def forward(self, x_t, t, real):
                h = self.embed(x_t)                                       # (B, L, 32)
                return Prediction(logits=self.logits(h),                         # (B, L, V)
                                  insert_multiplier=F.softplus(self.rate(h))[..., 0])  # (B, L)
    """

    name: ClassVar[str]
    Options: ClassVar[type[Options]] = Options
    options: Options
    vocab_size: int
    max_length: int
    learn_unmask: bool

    def __init__(self, options: Options, *, vocab_size: int, max_length: int,
                 learn_unmask: bool = False):
        super().__init__()
        self.options = options
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.learn_unmask = learn_unmask

    @abc.abstractmethod
    def forward(self, x_t: torch.Tensor, t: torch.Tensor, real: torch.Tensor) -> Prediction:
        """Predict tokens and rates.

        Args:
            x_t: (B, L) long, noisy tokens (masks as the mask id, padding as pad).
            t: (B,) float in [0, 1].
            real: (B, L) bool, True on non-pad slots.

        Returns:
            A :class:`Prediction`; padded slots may hold anything, and the outputs at
            real slots must not depend on how much padding follows.
        """
