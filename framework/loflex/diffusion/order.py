"""The Kumaraswamy schedule family most orders are built on.

The OrderDynamics contract itself (and the ``TokenRates``, ``EventTimes`` and
``StateLogProbs`` it exchanges) is defined in :mod:`loflex.contracts` and re-exported here.
"""

from __future__ import annotations

import torch

from loflex.contracts.order import EventTimes, OrderDynamics, StateLogProbs, TokenRates
from loflex.diffusion import schedule

__all__ = ["EventTimes", "KumaraswamyOrder", "OrderDynamics", "StateLogProbs", "TokenRates"]


class KumaraswamyOrder(OrderDynamics):
    """An order in the Kumaraswamy family: F(t) = 1 - (1 - t^a)^b, hazard b a t^(a-1)/(1-t^a).

    The shape ``a`` is one global constant shared by insertion and unmasking, which keeps
    the state probabilities closed-form (docs/method.md §2.1-2.2). Subclasses implement
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
