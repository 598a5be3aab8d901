"""The ``gru`` generator: a bidirectional GRU that can share its trunk with a learned order."""

from __future__ import annotations

import loflex
import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class GRUTrunk(nn.Module):
    """Embed tokens, add the time condition, run a bidirectional GRU over the real slots.

    It satisfies ``loflex.Trunk``: ``width`` and ``cond_dim`` state the output widths and
    a call returns ``loflex.TrunkOutput(hidden (B, L, width), cond (B, cond_dim))``.
    """

    def __init__(self, vocab_size: int, hidden: int, layers: int, cond_dim: int):
        super().__init__()
        self.width, self.cond_dim = 2 * hidden, cond_dim
        self.embed = nn.Embedding(vocab_size, hidden)
        self.time = nn.Sequential(nn.Linear(1, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        self.cond_in = nn.Linear(cond_dim, hidden)
        self.gru = nn.GRU(hidden, hidden, num_layers=layers, batch_first=True,
                          bidirectional=True)

    def forward(self, x: torch.Tensor, t: torch.Tensor, real: torch.Tensor) -> loflex.TrunkOutput:
        """x (B, L) long, t (B,), real (B, L) bool -> hidden (B, L, 2 hidden), cond (B, C)."""
        cond = self.time(t.float()[:, None])  # (B, C)
        inputs = self.embed(x) + self.cond_in(cond)[:, None]  # (B, L, hidden)
        lengths = real.sum(1).clamp(min=1).cpu()  # real slots come first in every row
        packed = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
        hidden, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True,
                                        total_length=x.shape[1])  # (B, L, 2 hidden)
        return loflex.TrunkOutput(hidden=hidden, cond=cond)


class GRUGenerator(loflex.Generator):
    """A bidirectional GRU denoiser: token logits and rate multipliers at every slot."""

    name = "gru"

    class Options(loflex.Options):
        hidden: int = Field(64, gt=0, description="GRU width per direction.")
        layers: int = Field(1, gt=0, description="Stacked GRU layers.")
        cond_dim: int = Field(32, gt=0, description="Width of the time condition.")

    def __init__(self, options: Options, *, vocab_size: int, max_length: int,
                 learn_unmask: bool = False):
        super().__init__(options, vocab_size=vocab_size, max_length=max_length,
                         learn_unmask=learn_unmask)
        self.trunk = GRUTrunk(vocab_size, options.hidden, options.layers, options.cond_dim)
        self.logits = nn.Linear(self.trunk.width, vocab_size)
        self.rates = nn.Linear(self.trunk.width, 2 if learn_unmask else 1)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, real: torch.Tensor) -> loflex.Prediction:
        """x_t (B, L), t (B,), real (B, L) -> logits (B, L, V) and rates (B, L)."""
        hidden = self.trunk(x_t, t, real).hidden  # (B, L, width)
        rates = F.softplus(self.rates(hidden))  # (B, L, 1 or 2), non-negative
        return loflex.Prediction(
            logits=self.logits(hidden),
            insert_multiplier=rates[..., 0],
            unmask_rate=rates[..., 1] if self.learn_unmask else None,
        )
