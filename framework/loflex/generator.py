"""The Generator contract: a denoiser network over noisy variable-length sequences."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from loflex.config import Options


@dataclass
class Prediction:
    """What a generator predicts for a noisy batch ``x_t``.

    Attributes:
        logits: (B, L, V) token logits at every slot (used at masked slots).
        insert_rate: (B, L) non-negative multiplier b_in^θ for the gap to the left of each
            slot; the predicted insertion rate of that gap is ``insert_rate * h(t)``.
        unmask_rate: (B, L) multiplier b_um^θ, present when the order learns b_um.
    """

    logits: torch.Tensor
    insert_rate: torch.Tensor
    unmask_rate: torch.Tensor | None = None


class Generator(nn.Module):
    """Base class of denoiser networks.

    Args:
        options: validated ``Options``.
        vocab_size: V, including the four special tokens.
        max_length: longest sequence the network must handle.
        learn_unmask: also predict ``unmask_rate`` (the order learns b_um).

    Subclasses expose ``trunk``: a module mapping ``(x, t, real)`` to hidden states
    ``(B, L, D)`` with attribute ``width`` = D; an order with a ``shared`` backbone reuses it.
    """

    name: ClassVar[str]
    Options: ClassVar[type[Options]] = Options
    trunk: nn.Module

    def __init__(self, options: Options, *, vocab_size: int, max_length: int,
                 learn_unmask: bool = False):
        super().__init__()
        self.options = options
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.learn_unmask = learn_unmask

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, real: torch.Tensor) -> Prediction:
        """Predict tokens and rates.

        Args:
            x_t: (B, L) long, noisy tokens (masks as the mask id, padding as pad).
            t: (B,) float in [0, 1].
            real: (B, L) bool, True on non-pad slots.
        """
        raise NotImplementedError
