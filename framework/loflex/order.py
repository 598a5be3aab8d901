"""The OrderDynamics contract and the Kumaraswamy schedule family it is usually built on.

An order dynamics defines, for every token j of a clean batch ``x_1``, the law of
its insertion time ``T_in`` and unmasking time ``T_um >= T_in`` (t = 0 empty,
t = 1 data). At time t a token is dropped if t < T_in, masked if T_in <= t < T_um,
clean otherwise. Learned orders are trained with REINFORCE plus the pathwise
gradient (method.md section 3.2); fixed orders have no parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from loflex import schedule
from loflex.batch import Batch
from loflex.config import Options


@dataclass
class TokenRates:
    """Per-token rate multipliers on ``x_1`` positions.

    Attributes:
        b_in: (B, L) insertion multipliers (hazard ``b_in * h(t)``).
        b_um: (B, L) unmasking multipliers (hazard ``b_um * h(t)``).
    """

    b_in: torch.Tensor
    b_um: torch.Tensor


@dataclass
class EventTimes:
    """Per-token event times on ``x_1`` positions, (B, L) each, ``t_in <= t_um``."""

    t_in: torch.Tensor
    t_um: torch.Tensor


@dataclass
class StateLogProbs:
    """log P(state of token j at t | x_1) for the three states, (B, L) each."""

    dropped: torch.Tensor
    masked: torch.Tensor
    clean: torch.Tensor


class OrderDynamics(nn.Module):
    """Base class of order-dynamics parameterizations.

    Args:
        options: validated ``Options``.
        generator: the generator (its ``trunk`` may be shared by a learned order).
        vocab_size: V.
        max_length: longest sequence.
    """

    name: ClassVar[str]
    Options: ClassVar[type[Options]] = Options
    learned: ClassVar[bool] = False

    def __init__(self, options: Options, *, generator: nn.Module | None = None,
                 vocab_size: int = 0, max_length: int = 0):
        super().__init__()
        self.options = options

    @classmethod
    def learns_unmask(cls, options: Options) -> bool:
        """Whether b_um varies per token (then the generator predicts an unmask rate)."""
        return False

    def forward(self, batch: Batch, t: torch.Tensor) -> TokenRates:
        """Return the per-token multipliers for clean ``batch`` at times ``t`` (B,)."""
        raise NotImplementedError

    def base_hazard(self, t: torch.Tensor) -> torch.Tensor:
        """Return h(t), the positive hazard shape the generator's rate heads multiply."""
        raise NotImplementedError

    def hazards(self, rates: TokenRates, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the insertion and unmasking hazards at ``t`` (B,), (B, L) each."""
        h = self.base_hazard(t)[:, None]
        return rates.b_in * h, rates.b_um * h

    def sample_times(self, rates: TokenRates,
                     generator: torch.Generator | None = None) -> EventTimes:
        """Draw (T_in, T_um) for every token (no gradient), from ``generator`` if given."""
        raise NotImplementedError

    def state_log_probs(self, rates: TokenRates, t: torch.Tensor) -> StateLogProbs:
        """Return the closed-form log-probabilities of the three states at ``t`` (B,)."""
        raise NotImplementedError

    def insertion_cdf(self, rates: TokenRates, t: torch.Tensor) -> torch.Tensor:
        """Return F_in(t) = P(T_in <= t) per token, (B, L), for ``t`` (B,) or (B, 1)."""
        raise NotImplementedError

    def regulariser(self, rates: TokenRates, free: torch.Tensor) -> torch.Tensor:
        """Return the per-sequence regulariser (B,) over ``free`` (B, L) positions."""
        return torch.zeros(rates.b_in.shape[0], dtype=rates.b_in.dtype, device=rates.b_in.device)


class KumaraswamyOrder(OrderDynamics):
    """An order in the Kumaraswamy family: F(t) = 1 - (1 - t^a)^b, hazard b a t^(a-1)/(1-t^a).

    The shape ``a`` is one global constant shared by insertion and unmasking, which keeps
    the state probabilities closed-form (method.md 2.1-2.2). Subclasses implement
    :meth:`forward` to give the per-token ``b``.
    """

    a: float = 1.0

    def base_hazard(self, t: torch.Tensor) -> torch.Tensor:
        return schedule.base_hazard(t, self.a)

    def sample_times(self, rates: TokenRates,
                     generator: torch.Generator | None = None) -> EventTimes:
        t_in, t_um = schedule.sample_event_times(rates.b_in.detach(), rates.b_um.detach(), self.a,
                                                 generator=generator)
        return EventTimes(t_in, t_um)

    def state_log_probs(self, rates: TokenRates, t: torch.Tensor) -> StateLogProbs:
        t = t.reshape(-1, 1).to(rates.b_in.dtype)
        return StateLogProbs(
            dropped=schedule.log_prob_dropped(t, self.a, rates.b_in),
            masked=schedule.log_prob_masked(t, self.a, rates.b_in, rates.b_um),
            clean=schedule.log_prob_clean(t, self.a, rates.b_in, rates.b_um),
        )

    def insertion_cdf(self, rates: TokenRates, t: torch.Tensor) -> torch.Tensor:
        return schedule.cdf(t.reshape(-1, 1).to(rates.b_in.dtype), self.a, rates.b_in)
