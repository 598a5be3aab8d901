"""The OrderDynamics contract: when each token of a clean sequence is inserted and revealed.

An order dynamics defines, for every token j of a clean batch ``x_1``, the law of its
insertion time ``T_in`` and unmasking time ``T_um >= T_in`` (t = 0 empty, t = 1 data).
At time t a token is dropped if t < T_in, masked if T_in <= t < T_um, clean otherwise.
A learned order is trained jointly with the generator by REINFORCE plus the pathwise
gradient (docs/method.md §3.2); a fixed order has no parameters.
Most orders subclass :class:`loflex.KumaraswamyOrder`, which supplies every closed form
from per-token multipliers.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from loflex.contracts.examples import Batch
from loflex.contracts.options import Options


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


class OrderDynamics(nn.Module, metaclass=abc.ABCMeta):
    """Base class of order-dynamics parameterizations.

    Args:
        options: validated ``Options``.
        generator: the run's generator network (an order with a shared backbone runs
            its ``trunk``, see :class:`loflex.contracts.Trunk`); not a random stream.
        vocab_size: V.
        max_length: longest sequence.

    Class attributes:
        name: the registered lower-kebab name.
        Options: the pydantic options model (every field with a description).
        learned: True when the order has trainable parameters. Then the training
            objective draws two event-time sets per sequence and adds the REINFORCE
            term (weighted by :attr:`reinforce_weight`), the pathwise gradient and
            :meth:`regulariser`. A fixed order (False) must have no parameters.
        needs_order_hint: True when :meth:`forward` reads ``batch.order_hint``; a run
            pairing it with a domain whose ``provides_order_hint`` is False is refused
            when it is validated.

    Random streams: :meth:`sample_times` and :meth:`regulariser` take ``generator``, a
    ``torch.Generator`` (torch's own name for it, as in ``torch.rand(generator=...)``);
    draw every random number from it when it is given.

    Example::

        class Faster(loflex.KumaraswamyOrder):  # every token inserted at rate 3 h(t)
            name = "faster"

            def forward(self, batch, t):
                b_in = torch.full(batch.x_1.shape, 3.0)      # (B, L)
                return TokenRates(b_in=b_in, b_um=torch.ones_like(b_in))
    """

    name: ClassVar[str]
    Options: ClassVar[type[Options]] = Options
    learned: ClassVar[bool] = False
    needs_order_hint: ClassVar[bool] = False
    options: Options

    def __init__(self, options: Options, *, generator: nn.Module | None = None,
                 vocab_size: int = 0, max_length: int = 0):
        super().__init__()
        self.options = options

    @classmethod
    def learns_unmask(cls, options: Options) -> bool:
        """Whether b_um varies per token (then the generator predicts an unmask rate)."""
        return False

    @property
    def reinforce_weight(self) -> float:
        """w_RF, the weight of the REINFORCE term of a learned order's objective (1)."""
        return 1.0

    @abc.abstractmethod
    def forward(self, batch: Batch, t: torch.Tensor) -> TokenRates:
        """Return the per-token multipliers for clean ``batch`` at times ``t`` (B,).

        Returns:
            :class:`TokenRates` with ``b_in`` and ``b_um`` (B, L), positive at the free
            positions (``batch.free``); other positions are ignored.
        """

    @abc.abstractmethod
    def base_hazard(self, t: torch.Tensor) -> torch.Tensor:
        """Return h(t) (B,), the positive hazard shape the generator's rate heads multiply."""

    def hazards(self, rates: TokenRates, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the insertion and unmasking hazards at ``t`` (B,), (B, L) each."""
        h = self.base_hazard(t)[:, None]
        return rates.b_in * h, rates.b_um * h

    @abc.abstractmethod
    def sample_times(self, rates: TokenRates,
                     generator: torch.Generator | None = None) -> EventTimes:
        """Draw (T_in, T_um) (B, L) for every token, without gradient.

        Args:
            rates: the multipliers of :meth:`forward`.
            generator: the random stream to draw from (None: torch's global one).
        """

    @abc.abstractmethod
    def state_log_probs(self, rates: TokenRates, t: torch.Tensor) -> StateLogProbs:
        """Return the closed-form log-probabilities of the three states at ``t`` (B,).

        They must agree with the frequencies of :meth:`sample_times` (checked by
        ``loflex.extension.testing.check_order_dynamics``) and carry the gradient to ``rates``.
        """

    @abc.abstractmethod
    def insertion_cdf(self, rates: TokenRates, t: torch.Tensor) -> torch.Tensor:
        """Return F_in(t) = P(T_in <= t) per token, (B, L), for ``t`` (B,) or (B, 1)."""

    def regulariser(self, rates: TokenRates, free: torch.Tensor,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """Return the per-sequence regulariser R (B,) over ``free`` (B, L) positions.

        Added to a learned order's objective; the default is 0, which lets the learned
        schedule drift without bound (see docs/learned-orders.md). A fixed order
        needs none.
        """
        return torch.zeros(rates.b_in.shape[0], dtype=rates.b_in.dtype, device=rates.b_in.device)
