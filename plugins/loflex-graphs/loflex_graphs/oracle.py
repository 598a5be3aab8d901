"""The ``star-oracle`` order: a fixed order that grows star paths from both ends inward."""

from __future__ import annotations

import torch
from loflex import config
from loflex.diffusion.batch import Batch
from loflex.diffusion.order import KumaraswamyOrder, TokenRates
from loflex.errors import ConfigError
from pydantic import Field


class StarOracleOrder(KumaraswamyOrder):
    """A parameter-free Kumaraswamy order (a = 1, b_um = 1) that inserts far edges first.

    Per target token with junction distance ``d`` (``Batch.order_hint``, as the ``star-graph``
    domain provides it) and row maximum ``d_max``:

        b_in = exp(sharpness * (d / d_max - 1/2)),

    so with a = 1, ``F_in(t) = 1 - (1 - t)^b_in`` and ``E[T_in] = 1 / (1 + b_in)``: the
    path ends (largest ``d``) are inserted earliest, the edges touching the junction last.
    Prompt, BOS, EOS and pad positions get b = 1 (the process ignores them). A row whose
    distances are all equal gets b_in = 1 everywhere (the uniform FlexMDM order).
    """

    name = "star-oracle"
    learned = False
    needs_order_hint = True
    a = 1.0

    class Options(config.Options):
        sharpness: float = Field(
            4.0, ge=0, description="Spread of log b_in between the junction edge (-s/2) and "
            "the path ends (+s/2); 0 gives the uniform order.",
        )

    def forward(self, batch: Batch, t: torch.Tensor) -> TokenRates:
        """Return ``b_in`` from the junction distances in ``batch.order_hint`` and ``b_um`` = 1.

        Args:
            batch: clean batch whose ``order_hint`` (B, L) holds junction distances.
            t: (B,) times (unused: the oracle does not depend on t).

        Raises:
            ConfigError: the batch carries no order hint (a run refuses such a domain
                before training; this guards direct calls).
        """
        if batch.order_hint is None:
            raise ConfigError(
                "order 'star-oracle' needs a domain that provides a per-token order "
                "hint, e.g. star-graph; use such a domain or another order"
            )
        dtype = t.dtype if t.is_floating_point() else torch.float32
        free = batch.free  # (B, L)
        distance = torch.where(free, batch.order_hint.to(dtype), torch.zeros((), dtype=dtype))  # (B, L)
        d_max = distance.amax(dim=1, keepdim=True)  # (B, 1)
        frac = torch.where(d_max > 0, distance / d_max.clamp_min(1e-12),
                           torch.full_like(distance, 0.5))
        b_in = torch.exp(self.options.sharpness * (frac - 0.5))  # (B, L)
        b_in = torch.where(free, b_in, torch.ones_like(b_in))
        return TokenRates(b_in=b_in, b_um=torch.ones_like(b_in))
