"""A right-to-left order: the last target tokens are inserted first."""

from __future__ import annotations

import loflex
import torch
from loflex import hookimpl
from pydantic import Field


class RightToLeft(loflex.KumaraswamyOrder):
    """Insert the end of the target first (a = 1, b_um = 1, b_in grows to the right)."""

    name = "right-to-left"

    class Options(loflex.Options):
        sharpness: float = Field(4.0, gt=0, description="How strongly later tokens go first.")

    def forward(self, batch: loflex.Batch, t: torch.Tensor) -> loflex.TokenRates:
        free = batch.free.float()  # (B, L)
        rank = free.cumsum(1) - 1  # (B, L) 0 for the first free token of each row
        count = free.sum(1, keepdim=True).clamp(min=2) - 1  # (B, 1)
        position = (rank / count).clamp(0, 1)  # (B, L) 0 left ... 1 right
        b_in = torch.exp(self.options.sharpness * (position - 0.5)) * free + (1 - free)
        return loflex.TokenRates(b_in=b_in, b_um=torch.ones_like(b_in))


@hookimpl
def register_order_dynamics(register):
    register(RightToLeft)
