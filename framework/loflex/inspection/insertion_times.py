"""Per-token insertion times of an order dynamics, for one sequence.

A learned order's auxiliary network reads ``t``, so its multiplier ``b_in(t)`` changes
with time and the insertion law of token j is the one of the time-dependent hazard
``b_in,j(s) h(s)``:

    F_in,j(t) = 1 - exp(-Lambda_j(t)),   Lambda_j(t) = int_0^t b_in,j(s) h(s) ds.

With ``H(t) = int_0^t h(s) ds`` (for the Kumaraswamy family ``H(t) = -log(1 - t^a)``),
``Lambda_j(t) = int b_in,j dH``. The network is evaluated on a coarse grid of t (one
batched forward), ``b_in`` is interpolated linearly in t onto a fine grid, ``H`` is
exact there and the integral is a trapezoid rule in H, which is exact whenever b does
not depend on t (then ``F_in = 1 - (1 - t^a)^b`` and the median is
``(1 - 2^(-1/b))^(1/a)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from loflex.contracts import Example
from loflex.diffusion.batch import collate
from loflex.diffusion.order import OrderDynamics, TokenRates
from loflex.errors import LoflexError

FINE_POINTS = 8192
T_MAX = 1.0 - 1e-6
LOG_2 = 0.6931471805599453


@dataclass
class InsertionTimes:
    """Insertion-time summaries of every target token of one sequence.

    Attributes:
        tokens: the target ids, n of them.
        median: per token, the t where F_in(t) = 1/2.
        mean: per token, E[T_in] = int_0^1 (1 - F_in(t)) dt.
        grid: (G,) the times where the order was evaluated.
        b_in: (G, n) the insertion multiplier of each token at each grid time.
        cdf: (G, n) F_in of each token at each grid time.
    """

    tokens: list[int]
    median: list[float]
    mean: list[float]
    grid: torch.Tensor
    b_in: torch.Tensor
    cdf: torch.Tensor

    def ranks(self) -> list[int]:
        """Return each token's rank by median insertion time (0 = inserted first)."""
        order = sorted(range(len(self.median)), key=lambda j: self.median[j])
        ranks = [0] * len(order)
        for rank, j in enumerate(order):
            ranks[j] = rank
        return ranks


def time_grid(points: int) -> torch.Tensor:
    """Return ``points`` midpoints of a uniform partition of [0, 1], float64."""
    return (torch.arange(points, dtype=torch.float64) + 0.5) / points


def insertion_times(model, example: Example | Sequence[int], *, prompt: Sequence[int] = (),
                    grid: int = 64, device: str | torch.device | None = None) -> InsertionTimes:
    """Return the median and mean insertion time of every target token of one sequence.

    Args:
        model: a :class:`loflex.extension.assemble.Assembly` or an :class:`OrderDynamics`.
        example: an :class:`Example` (its prompt and order hint are used) or the
            target ids.
        prompt: prompt ids when ``example`` is a list of ids.
        grid: G, how many times t the order is evaluated at (one batched forward).
        device: where to run the order (default: where its parameters are).

    Returns:
        :class:`InsertionTimes`.

    Raises:
        LoflexError: the example has no target tokens.
    """
    order: OrderDynamics = getattr(model, "order", model)
    if not isinstance(example, Example):
        example = Example(target=[int(i) for i in example], prompt=[int(i) for i in prompt])
    if not example.target:
        raise LoflexError("insertion_times needs at least one target token; pass a non-empty "
                          "sequence")
    assert grid >= 2, "the time grid needs at least two points"
    if device is None:
        device = next((p.device for p in order.parameters()), torch.device("cpu"))
    t_coarse = time_grid(grid)
    b_coarse = _multipliers(order, example, t_coarse, device)  # (G, n)
    t_fine = torch.linspace(0.0, T_MAX, FINE_POINTS, dtype=torch.float64)
    h_fine = cumulative_base_hazard(order, t_fine)  # (F,)
    b_fine = _interpolate(t_coarse, b_coarse, t_fine)  # (F, n)
    cum = cumulative_hazard(b_fine, h_fine)  # (F, n)
    cdf_fine = -torch.expm1(-cum)
    return InsertionTimes(
        tokens=list(example.target),
        median=_crossing(t_fine, cum, LOG_2).tolist(),
        mean=_mean(t_fine, cdf_fine).tolist(),
        grid=t_coarse.float(),
        b_in=b_coarse.float(),
        cdf=_interpolate(t_fine, cdf_fine, t_coarse).float(),
    )


@torch.no_grad()
def _multipliers(order: OrderDynamics, example: Example, t: torch.Tensor,
                 device) -> torch.Tensor:
    """Return b_in (G, n) of the target tokens at every time of ``t`` (G,), one forward."""
    batch = collate([example] * len(t)).to(device)
    was_training = order.training
    order.eval()
    try:
        rates: TokenRates = order(batch, t.to(device=device, dtype=torch.float32))
    finally:
        order.train(was_training)
    free = batch.free[0]  # (L,) the target positions, the same in every row
    return rates.b_in[:, free].double().cpu()


def cumulative_base_hazard(order: OrderDynamics, t: torch.Tensor) -> torch.Tensor:
    """Return H(t) = int_0^t h(s) ds (same shape as ``t``), from the order's own CDF.

    With b = 1 the hazard is h itself, so ``F_1(t) = 1 - exp(-H(t))`` and
    ``H(t) = -log(1 - F_1(t))`` for any order whose hazards are ``b h(t)``.
    """
    ones = torch.ones(len(t), 1, dtype=torch.float64)
    f_one = order.insertion_cdf(TokenRates(b_in=ones, b_um=ones), t.reshape(-1, 1))
    return -torch.log1p(-f_one.reshape(t.shape).double().clamp(max=1.0 - 1e-15))


def cumulative_hazard(b: torch.Tensor, h_cum: torch.Tensor) -> torch.Tensor:
    """Return Lambda(t_k) = int_0^t_k b dH by the trapezoid rule in H, (F, n).

    Args:
        b: (F, n) multipliers at the fine times.
        h_cum: (F,) H at the same times (H(t_0) = 0 when t_0 = 0).
    """
    dh = torch.diff(h_cum)[:, None]  # (F - 1, 1)
    steps = 0.5 * (b[1:] + b[:-1]) * dh  # (F - 1, n)
    start = h_cum[0] * b[:1]  # (1, n), zero when t_0 = 0
    return torch.cat([start, start + steps.cumsum(0)])


def _interpolate(x: torch.Tensor, y: torch.Tensor, x_new: torch.Tensor) -> torch.Tensor:
    """Linearly interpolate columns of ``y`` (G, n) from ``x`` (G,) to ``x_new`` (F,).

    Outside [x_0, x_{G-1}] the end values are held.
    """
    index = torch.searchsorted(x, x_new).clamp(1, len(x) - 1)  # (F,)
    x0, x1 = x[index - 1], x[index]
    w = ((x_new - x0) / (x1 - x0)).clamp(0.0, 1.0)[:, None]  # (F, 1)
    return y[index - 1] * (1 - w) + y[index] * w


def _crossing(t: torch.Tensor, cum: torch.Tensor, level: float) -> torch.Tensor:
    """Return, per column, the t where the non-decreasing ``cum`` (F, n) first reaches ``level``.

    Linear interpolation between grid points; T_MAX when it never does.
    """
    above = cum >= level  # (F, n)
    first = above.long().argmax(0)  # (n,) the first index at or above the level
    first[~above.any(0)] = len(t) - 1
    lo = (first - 1).clamp_min(0)
    c0, c1 = cum.gather(0, lo[None])[0], cum.gather(0, first[None])[0]
    w = torch.where(c1 > c0, (level - c0) / (c1 - c0), torch.ones_like(c0)).clamp(0.0, 1.0)
    return t[lo] + w * (t[first] - t[lo])


def _mean(t: torch.Tensor, cdf: torch.Tensor) -> torch.Tensor:
    """Return E[T] = int_0^1 (1 - F(t)) dt per column (trapezoid; the tail past T_MAX added)."""
    survival = 1.0 - cdf  # (F, n)
    body = torch.trapezoid(survival, t, dim=0)
    return body + survival[-1] * (1.0 - t[-1])
