"""Training objective: generator loss, order-policy (REINFORCE) surrogate and regulariser.

For one noisy sample z_t (docs/method.md §3.1), with D(p, q) = q - p + p log(p/q):

    L = 1/max(1, #masked) sum_masked [-lambda_um^phi log K^theta(z_1) + D(lambda_um^phi, lambda_um^theta)]
        + 1/L_max sum_slots D(Lambda_i^phi, b_in^theta_i h(t)).

A learned order draws two samples per sequence and minimises (docs/method.md §3.2)

    J = mean_B [ (L_1 + L_2)/2 + w_RF (1/2) sg(L_1 - L_2)(log p_1 - log p_2) + R ],

with no stop-gradient on the targets, so the order also gets the pathwise gradient.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import torch
import torch.nn.functional as F

from loflex.contracts import Prediction
from loflex.diffusion import schedule
from loflex.diffusion.batch import Batch
from loflex.diffusion.order import EventTimes, OrderDynamics, TokenRates
from loflex.diffusion.process import NoisyBatch, noise_all, state_log_prob
from loflex.errors import ConfigError

Normalisation = Literal["per-sequence", "flexmdm"]
NORMALISATIONS = ("per-sequence", "flexmdm")
CLAMP = {"per-sequence": 1e-9, "flexmdm": 1e-6}
T = TypeVar("T")


@dataclass
class GeneratorLoss:
    """Per-sequence generator loss terms, (B,) each."""

    unmask: torch.Tensor
    insertion: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        """(B,) unmask + insertion."""
        return self.unmask + self.insertion


@dataclass
class LossTerms:
    """The scalar training loss and detached values for logging.

    Attributes:
        loss: scalar tensor to backpropagate, J.
        unmask: mean unmasking loss (averaged over the samples).
        insertion: mean insertion loss (averaged over the samples).
        reinforce: mean REINFORCE surrogate (its value, not its gradient).
        regulariser: mean order regulariser R.
        loss_theta: mean generator loss (L_1 + L_2)/2.
        advantage_max: max |L_1 - L_2| over the batch.
        log_p_diff_max: max |log p_1 - log p_2| over the batch.
    """

    loss: torch.Tensor
    unmask: torch.Tensor
    insertion: torch.Tensor
    reinforce: torch.Tensor
    regulariser: torch.Tensor
    loss_theta: torch.Tensor
    advantage_max: torch.Tensor
    log_p_diff_max: torch.Tensor

    def scalars(self) -> dict[str, float]:
        """Return every term as a Python float (one host sync, at logging time only)."""
        names = [k for k in vars(self)]
        values = torch.stack([getattr(self, k).detach().float().reshape(()) for k in names])
        return dict(zip(names, values.tolist()))


def bregman(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Return D(p, q) = q - p + p (log p - log q), both arguments clamped to >= ``eps``."""
    p = p.clamp(min=eps)
    q = q.clamp(min=eps)
    return q - p + p * (torch.log(p) - torch.log(q))


def _check_normalisation(normalisation: str) -> None:
    if normalisation not in NORMALISATIONS:
        raise ConfigError(
            f"unknown loss normalisation '{normalisation}'; use one of {', '.join(NORMALISATIONS)}"
        )


def generator_loss(
    noisy: NoisyBatch,
    prediction: Prediction,
    hazard_um_target: torch.Tensor,
    base_h: torch.Tensor,
    length_scale: float,
    learn_unmask: bool,
    normalisation: Normalisation = "per-sequence",
) -> GeneratorLoss:
    """Return the per-sequence Bregman generator loss of one noisy sample.

    Args:
        noisy: the noisy batch (slots L').
        prediction: the generator's output on ``noisy.x_t``; (B, L') logits over all V
            columns and rates (extra slots beyond L' are ignored).
        hazard_um_target: (B, L) target unmask hazards lambda_um^phi on z_1 positions.
        base_h: (B,) h(t); the predicted rates are ``insert_multiplier * h`` and
            ``unmask_rate * h`` (the constant ``h`` when not ``learn_unmask``).
        length_scale: L_max, the insertion sum's divisor (per-sequence normalisation).
        learn_unmask: whether the generator predicts the unmask multiplier.
        normalisation: "per-sequence" (LoFlexMDM: unmask / max(1, #masked), insertion /
            L_max, clamps 1e-9) or "flexmdm" (both sums / L, the z_1 width, so that the
            batch mean divides by B L; insertion D(Lambda/h, b_in^theta) h with clamps 1e-6).

    Returns:
        :class:`GeneratorLoss` with ``unmask`` and ``insertion``, (B,) each.
    """
    _check_normalisation(normalisation)
    eps = CLAMP[normalisation]
    width = noisy.x_t.shape[1]
    h = base_h.reshape(-1, 1)  # (B, 1)
    log_k = F.log_softmax(prediction.logits[:, :width], dim=-1)  # (B, L', V)
    log_k = torch.gather(log_k, 2, noisy.target[..., None]).squeeze(-1)  # (B, L')
    lam_phi = torch.gather(hazard_um_target, 1, noisy.s_t)  # (B, L')
    if learn_unmask:
        assert prediction.unmask_rate is not None, "the generator must predict unmask_rate"
        lam_theta = prediction.unmask_rate[:, :width] * h  # (B, L')
    else:
        lam_theta = h.expand_as(lam_phi)
    per_slot = -lam_phi * log_k + bregman(lam_phi, lam_theta, eps)  # (B, L')
    unmask = torch.where(noisy.mask_slots, per_slot, torch.zeros_like(per_slot)).sum(-1)
    insert_multiplier = prediction.insert_multiplier[:, :width]  # (B, L')
    if normalisation == "flexmdm":
        div = bregman(noisy.gap_rates / h, insert_multiplier, eps) * h  # (B, L')
    else:
        div = bregman(noisy.gap_rates, insert_multiplier * h, eps)  # (B, L')
    insertion = torch.where(noisy.real, div, torch.zeros_like(div)).sum(-1)
    if normalisation == "flexmdm":
        full = noisy.dropped.shape[1]
        return GeneratorLoss(unmask / full, insertion / full)
    count = noisy.mask_slots.sum(-1).clamp(min=1).to(unmask.dtype)
    return GeneratorLoss(unmask / count, insertion / length_scale)


def sample_t(
    n: int,
    normalisation: Normalisation,
    rng: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw stratified training times (n,) for the given normalisation's recipe."""
    dtype = torch.get_default_dtype()
    if normalisation == "flexmdm":
        return schedule.flexmdm_times(n, rng, dtype, device)
    return schedule.loflexmdm_times(n, rng, dtype, device)


def call_with_rng(method: Callable[..., T], *args, rng: torch.Generator | None = None) -> T:
    """Call ``method(*args)``, adding ``generator=rng`` when given and the method takes it.

    Orders may accept a ``generator`` keyword in ``sample_times`` and ``regulariser``; the
    built-in ones do.
    """
    if rng is not None and "generator" in inspect.signature(method).parameters:
        return method(*args, generator=rng)
    return method(*args)


def training_loss(
    batch: Batch,
    generator: torch.nn.Module,
    order: OrderDynamics,
    *,
    length_scale: float,
    normalisation: Normalisation = "per-sequence",
    rng: torch.Generator | None = None,
    time_sampling: str = "uniform",
    time_weighting: str = "elbo",
) -> LossTerms:
    """Return the training objective J of one clean batch (docs/method.md §3.2).

    Draws stratified t, runs the order once, draws two event-time sets for a learned
    order (one for a fixed order) and evaluates :func:`objective`.

    Args:
        batch: clean batch x_1 (B, L).
        generator: maps (x_t, t, real) to a :class:`~loflex.contracts.Prediction`.
        order: the order dynamics.
        length_scale: L_max of the per-sequence insertion normaliser.
        normalisation: "per-sequence" (LoFlexMDM) or "flexmdm" (the baseline's).
        rng: optional generator for t and the event times.
        time_sampling: "uniform" (the reference's stratified t) or "hazard" (t drawn in
            proportion to h_a(t) with importance weights: the same objective, lower variance;
            see :func:`loflex.diffusion.schedule.hazard_times`).
        time_weighting: "elbo" (the method's) or "flat": each sequence's time-dependent
            terms are divided by h_a(t) (see :func:`flat_time_weight`).
    """
    _check_normalisation(normalisation)
    weight = None
    if time_sampling == "hazard":
        a = getattr(order, "a", None)
        assert a is not None, "hazard time sampling needs an order of the Kumaraswamy family"
        t, weight = schedule.hazard_times(len(batch), a, rng, torch.get_default_dtype(),
                                          batch.x_1.device)
    else:
        t = sample_t(len(batch), normalisation, rng, batch.x_1.device)
    if time_weighting == "flat":
        flat = flat_time_weight(order, t)
        weight = flat if weight is None else weight * flat
    elif time_weighting != "elbo":
        raise ConfigError(f"unknown time weighting '{time_weighting}'; use elbo or flat")
    rates = order(batch, t)
    draws = [call_with_rng(order.sample_times, rates, rng=rng)
             for _ in range(2 if order.learned else 1)]
    return objective(
        batch, generator, order, rates, t, draws,
        length_scale=length_scale, normalisation=normalisation, rng=rng, weight=weight,
    )


def flat_time_weight(order: OrderDynamics, t: torch.Tensor) -> torch.Tensor:
    """Return 1 / h_a(t), (B,): the weight that makes every time count alike.

    Every rate in the generator loss is a multiple of h_a(t), so the loss at time t is
    h_a(t) times a loss whose minimiser (the posterior token distribution and the
    expected gap counts) is the same; dividing by h_a(t) reweights times without moving
    the generator's optimum. For a = 1 the weight is 1 - t.
    """
    return 1.0 / order.base_hazard(t).clamp_min(1e-12)


def objective(
    batch: Batch,
    generator: torch.nn.Module,
    order: OrderDynamics,
    rates: TokenRates,
    t: torch.Tensor,
    draws: list[EventTimes],
    *,
    length_scale: float,
    normalisation: Normalisation = "per-sequence",
    rng: torch.Generator | None = None,
    weight: torch.Tensor | None = None,
) -> LossTerms:
    """Return J given the times, the order's rates and the drawn event times.

    One draw gives the fixed-order loss J = mean_B L; two draws give the learned-order
    objective with the leave-one-out REINFORCE term and the regulariser. All samples go
    through the generator in one forward pass. ``rng`` reaches the order's regulariser
    grid when its ``regulariser`` takes a ``generator``.
    """
    _check_normalisation(normalisation)
    assert len(draws) in (1, 2), "objective takes one or two event-time draws"
    h = order.base_hazard(t)  # (B,)
    hazard_in, hazard_um = order.hazards(rates, t)  # (B, L) each
    noisy = noise_all(batch, draws, t, hazard_in)  # one host sync: the common trimmed width
    predictions = predict(generator, noisy, t)
    learn_unmask = order.learns_unmask(order.options)
    losses = [
        generator_loss(n, p, hazard_um, h, length_scale, learn_unmask, normalisation)
        for n, p in zip(noisy, predictions)
    ]
    if len(draws) == 1:
        return _fixed_terms(losses[0], weight)
    log_probs = order.state_log_probs(rates, t)
    log_p = [state_log_prob(log_probs, n, batch.free) for n in noisy]
    reg = call_with_rng(order.regulariser, rates, batch.free, rng=rng)  # (B,)
    return policy_terms(losses, log_p, reg, getattr(order, "reinforce_weight", 1.0), weight)


def predict(generator: torch.nn.Module, noisy: list[NoisyBatch], t: torch.Tensor) -> list[Prediction]:
    """Run the generator once on all noisy batches (padded to a common width) and split."""
    width = max(n.x_t.shape[1] for n in noisy)
    padded = [n.padded(width) for n in noisy]
    x_t = torch.cat([n.x_t for n in padded])  # (K B, W)
    real = torch.cat([n.real for n in padded])  # (K B, W)
    out = generator(x_t, t.repeat(len(noisy)), real)
    size = t.shape[0]
    return [_rows(out, k * size, (k + 1) * size) for k in range(len(noisy))]


def _rows(out: Prediction, start: int, stop: int) -> Prediction:
    unmask = None if out.unmask_rate is None else out.unmask_rate[start:stop]
    return Prediction(out.logits[start:stop], out.insert_multiplier[start:stop], unmask)


def _fixed_terms(loss: GeneratorLoss, weight: torch.Tensor | None = None) -> LossTerms:
    total = (loss.total if weight is None else loss.total * weight).mean()
    zero = torch.zeros((), dtype=total.dtype, device=total.device)
    return LossTerms(
        loss=total,
        unmask=loss.unmask.detach().mean(),
        insertion=loss.insertion.detach().mean(),
        reinforce=zero,
        regulariser=zero,
        loss_theta=total.detach(),
        advantage_max=zero,
        log_p_diff_max=zero,
    )


def policy_terms(
    losses: list[GeneratorLoss],
    log_p: list[torch.Tensor],
    regulariser: torch.Tensor,
    reinforce_weight: float = 1.0,
    weight: torch.Tensor | None = None,
) -> LossTerms:
    """Combine two samples into J = mean_B[(L1+L2)/2 + w (1/2) sg(L1-L2)(lp1-lp2) + R].

    Args:
        losses: the two samples' generator losses, (B,) terms each.
        log_p: the two samples' state log-probabilities log p_t(z_t | z_1), (B,) each.
        regulariser: (B,) the order's regulariser R.
        reinforce_weight: w_RF.
        weight: (B,) importance weights of the times (None: uniform times).
    """
    l1, l2 = losses[0].total, losses[1].total
    advantage = (l1 - l2).detach()  # (B,)
    log_p_diff = log_p[0] - log_p[1]  # (B,)
    loss_theta = 0.5 * (l1 + l2)
    reinforce = 0.5 * advantage * log_p_diff
    per_time = loss_theta + reinforce_weight * reinforce  # (B,) the time-dependent part
    if weight is not None:
        per_time = per_time * weight
    total = (per_time + regulariser).mean()
    return LossTerms(
        loss=total,
        unmask=(0.5 * (losses[0].unmask.mean() + losses[1].unmask.mean())).detach(),
        insertion=(0.5 * (losses[0].insertion.mean() + losses[1].insertion.mean())).detach(),
        reinforce=reinforce.detach().mean(),
        regulariser=regulariser.detach().mean(),
        loss_theta=loss_theta.detach().mean(),
        advantage_max=advantage.abs().max(),
        log_p_diff_max=log_p_diff.detach().abs().max(),
    )
