"""Closed forms of the Kumaraswamy schedule family, time sampling and schedule regularisers.

Every token has a CDF F(t) = 1 - (1 - t^a)^b with a global shape ``a`` and a per-token
multiplier ``b`` (docs/method.md §2.1); t = 0 is the empty sequence and t = 1 the data. The
numerics copy the reference clamps (testvectors README section 3) so that the state
log-probabilities, their gradients and the regularisers match the authors' code.
"""

from __future__ import annotations

import math

import torch

LOG_HALF = math.log(0.5)
T_POW_MAX = 1.0 - 1e-7  # t^a is clamped below 1 inside the state log-probabilities
LOG1MEXP_MAX = -1e-7  # log1mexp clamps its argument to at most this
LOG1MEXP_FLOOR = 1e-7  # and its inner 1 - e^x to at least this
EQUAL_RATE_SWITCH = 1e-6  # |b_in - b_um| below this uses the b_in = b_um limit of P(masked)
LOFLEX_TIME_EPS = 1e-4
FLEXMDM_TIME_EPS = 1e-6
GRID_POINTS = 100


class _Log1mexp(torch.autograd.Function):
    """log(1 - e^x) with the reference clamps and a gradient that is 0 where x > 0."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        xc = x.clamp(max=LOG1MEXP_MAX)
        small = torch.log1p(-torch.exp(xc.clamp(max=LOG_HALF)))
        large = torch.log((-torch.expm1(xc)).clamp_min(LOG1MEXP_FLOOR))
        out = torch.where(xc <= LOG_HALF, small, large)
        return torch.where(x <= 0, out, torch.full_like(out, float("nan")))

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        grad = -1.0 / torch.expm1(-x).abs().clamp_min(LOG1MEXP_FLOOR)
        grad = torch.where((grad_out == 0) | (x > 0), torch.zeros_like(grad), grad)
        return grad_out * grad


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """Return log(1 - e^x) for x <= 0 (NaN for x > 0), stable at both ends.

    x is clamped to at most -1e-7 and 1 - e^x to at least 1e-7, so the result is at
    least log(1e-7); the derivative -1 / expm1(-x) has its denominator clamped at 1e-7.
    """
    return _Log1mexp.apply(x)


def base_hazard(t: torch.Tensor, a: float) -> torch.Tensor:
    """Return the hazard shape h_a(t) = a t^(a-1) / (1 - t^a), any shape."""
    return a * t ** (a - 1) / (1 - t**a)


def hazard(t: torch.Tensor, a: float, b: torch.Tensor) -> torch.Tensor:
    """Return the hazard lambda(t) = F'(t) / (1 - F(t)) = b a t^(a-1) / (1 - t^a)."""
    return a * b * t ** (a - 1) / (1 - t**a)


def cdf(t: torch.Tensor, a: float, b: torch.Tensor) -> torch.Tensor:
    """Return F(t) = 1 - (1 - t^a)^b (t and b broadcast, e.g. (B, 1) with (B, L))."""
    return 1 - (1 - t**a) ** b


def density(t: torch.Tensor, a: float, b: torch.Tensor) -> torch.Tensor:
    """Return F'(t) = a b t^(a-1) (1 - t^a)^(b-1)."""
    return a * b * t ** (a - 1) * (1 - t**a) ** (b - 1)


def inverse_cdf(u: torch.Tensor, a: float, b: torch.Tensor) -> torch.Tensor:
    """Return F^-1(u) = (1 - (1 - u)^(1/b))^(1/a), the t with F(t) = u."""
    return (1 - (1 - u) ** (1 / b)) ** (1 / a)


def truncated_sample(
    threshold: torch.Tensor, u: torch.Tensor, a: float, b: torch.Tensor
) -> torch.Tensor:
    """Map uniforms ``u`` to draws of F truncated to [threshold, 1].

    T = F^-1(u (1 - F(threshold)) + F(threshold)), evaluated in survival space,
    1 - T^a = (1 - u)^(1/b) (1 - threshold^a), so that T >= threshold holds in floating
    point as well.
    """
    return (1 - (1 - u) ** (1 / b) * (1 - threshold**a)) ** (1 / a)


def sample_event_times(
    b_in: torch.Tensor,
    b_um: torch.Tensor,
    a: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw insertion and unmasking times for every token, without gradient.

    T_in = F_in^-1(u) and T_um = F_um truncated to [T_in, 1] (docs/method.md §1.2). The uniforms
    for all T_in are drawn first, then those for all T_um.

    Args:
        b_in: (B, L) insertion multipliers.
        b_um: (B, L) unmasking multipliers.
        a: the shared Kumaraswamy shape.
        generator: optional source of the uniforms.

    Returns:
        (t_in, t_um), (B, L) each, with t_in <= t_um.
    """
    with torch.no_grad():
        u_in = torch.rand(b_in.shape, generator=generator, dtype=b_in.dtype, device=b_in.device)
        u_um = torch.rand(b_um.shape, generator=generator, dtype=b_um.dtype, device=b_um.device)
        t_in = inverse_cdf(u_in, a, b_in)
        t_um = truncated_sample(t_in, u_um, a, b_um)
    return t_in, t_um


def _log_survival_base(t: torch.Tensor, a: float) -> torch.Tensor:
    """Return log(1 - t^a) with t in [0, 1] and t^a clamped to at most 1 - 1e-7."""
    t_pow = (t.clamp(0.0, 1.0) ** a).clamp(0.0, T_POW_MAX)
    return torch.log1p(-t_pow)


def log_prob_dropped(t: torch.Tensor, a: float, b_in: torch.Tensor) -> torch.Tensor:
    """Return log P(T_in > t) = b_in log(1 - t^a).

    Args:
        t: times broadcastable against ``b_in``, e.g. (B, 1).
        b_in: (B, L) insertion multipliers.
    """
    return b_in * _log_survival_base(t, a)


def log_prob_masked(
    t: torch.Tensor, a: float, b_in: torch.Tensor, b_um: torch.Tensor
) -> torch.Tensor:
    """Return log P(T_in <= t < T_um), clamped to at most 0.

    With u = 1 - t^a and d = b_in - b_um: P = u^b_um (b_in / d) (1 - u^d), and
    b_in u^b_in (-log u) when |d| < 1e-6 (docs/method.md §2.2).

    Args:
        t: times broadcastable against the multipliers, e.g. (B, 1).
        b_in: (B, L) insertion multipliers.
        b_um: (B, L) unmasking multipliers.
    """
    log_u = _log_survival_base(t, a)
    d = b_in - b_um
    x = d * log_u
    # log|1 - u^d|: the reference clamps 1 - u^d at 1e-7, which for 1e-6 <= |d| and small
    # t inflates P(masked) by orders of magnitude; expm1 is exact there
    near = x.abs() < 0.5
    log_near = torch.log(torch.expm1(torch.where(near, x, torch.ones_like(x))).abs()
                         .clamp_min(torch.finfo(x.dtype).tiny))
    log_inner = torch.where(near, log_near, torch.where(d > 0, log1mexp(x), x + log1mexp(-x)))
    log_b = torch.log(b_in.clamp_min(1e-20))
    log_general = log_b - torch.log(d.abs().clamp_min(1e-8)) + log_inner
    log_limit = log_b + torch.log((-log_u).clamp_min(1e-20))
    log_i = torch.where(d.abs() < EQUAL_RATE_SWITCH, log_limit, log_general)
    return (b_um * log_u + log_i).clamp(max=0.0)


def log_prob_clean(
    t: torch.Tensor, a: float, b_in: torch.Tensor, b_um: torch.Tensor
) -> torch.Tensor:
    """Return log P(T_um <= t) = log(1 - P(dropped) - P(masked)), floored at log(1e-7)."""
    total = torch.logaddexp(log_prob_dropped(t, a, b_in), log_prob_masked(t, a, b_in, b_um))
    return log1mexp(total.clamp(max=LOG1MEXP_MAX))


def stratified_times(u: torch.Tensor, low: float, width: float) -> torch.Tensor:
    """Return t_i = (i + u_i) width / N + low for uniforms ``u`` (N,): one draw per stratum."""
    n = u.shape[0]
    i = torch.arange(n, dtype=u.dtype, device=u.device)
    return (i + u) * (width / n) + low


def loflexmdm_times(
    n: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    eps: float = LOFLEX_TIME_EPS,
) -> torch.Tensor:
    """Draw LoFlexMDM training times t_i = (i + u_i)(1 - 2 eps)/n + eps, (n,), eps = 1e-4."""
    u = torch.rand(n, generator=generator, dtype=dtype, device=device)
    return stratified_times(u, eps, 1.0 - 2 * eps)


def hazard_times(
    n: int,
    a: float,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    eps: float = LOFLEX_TIME_EPS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw times with density proportional to h_a(t) on [eps, 1 - eps], with weights.

    tau = -log(1 - t^a) is stratified uniformly over the batch, so p(t) = h_a(t) / Z with
    Z = tau(1 - eps) - tau(eps). The importance weights w = Z / ((1 - 2 eps) h_a(t)) make
    E_p[w J(t)] equal the objective under uniform t on [eps, 1 - eps]: the same objective,
    with far less variance, because every term of J(t) carries a factor h_a(t).

    Returns:
        ``(t, w)``, (n,) each.
    """
    lo = -math.log1p(-(eps**a))
    hi = -math.log1p(-((1 - eps) ** a))
    u = torch.rand(n, generator=generator, dtype=dtype, device=device)
    tau = stratified_times(u, lo, hi - lo)  # (n,)
    t = (-torch.expm1(-tau)).pow(1.0 / a)
    weight = (hi - lo) / ((1 - 2 * eps) * base_hazard(t, a))
    return t, weight


def flexmdm_times(
    n: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw FlexMDM baseline training times t_i = (i + u_i)(1 - 1e-6)/n, (n,)."""
    u = torch.rand(n, generator=generator, dtype=dtype, device=device)
    return stratified_times(u, 0.0, 1.0 - FLEXMDM_TIME_EPS)


def regulariser_grid(
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw the mean regulariser's grid: 100 stratified points in [1e-4, 1 - 1e-4], (100,)."""
    return loflexmdm_times(GRID_POINTS, generator, dtype, device)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Return the mean of ``x`` over ``mask`` along the last dim: sum / (count + 1e-9)."""
    total = torch.where(mask, x, torch.zeros_like(x)).sum(-1)
    return total / (mask.sum(-1).to(x.dtype) + 1e-9)


def mean_regulariser(
    a: float, b: torch.Tensor, free: torch.Tensor, grid: torch.Tensor
) -> torch.Tensor:
    """Return sum_g (mean_j F_j(t_g) - t_g)^2 per sequence (docs/method.md §3.4, item 1).

    Args:
        b: (B, L) multipliers.
        free: (B, L) bool, the positions averaged over.
        grid: (G,) times t_g.

    Returns:
        (B,) penalty pulling the mixture CDF towards the uniform one, F(t) = t.
    """
    t = grid[:, None, None]  # (G, 1, 1)
    mixture = masked_mean(cdf(t, a, b[None]), free[None])  # (G, B)
    return ((mixture - grid[:, None]) ** 2).sum(0)


def boundary_regulariser(
    a: float, b: torch.Tensor, free: torch.Tensor, eps: float = 0.01, delta: float = 0.01
) -> torch.Tensor:
    """Return sum_j relu(F_j(eps) - delta)^2 + relu(1 - F_j(1 - eps) - delta)^2, (B,).

    Squared hinges on the mass each token puts within ``eps`` of either endpoint.
    """
    lo = torch.full_like(b, eps)
    hi = 1 - lo
    pen = torch.relu(cdf(lo, a, b) - delta) ** 2 + torch.relu(1 - cdf(hi, a, b) - delta) ** 2
    return torch.where(free, pen, torch.zeros_like(pen)).sum(-1)


def kl_regulariser(a: float, b: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
    """Return the masked mean of KL(Kuma(a, b_j) || U(0, 1)), (B,).

    KL = log(a b) + ((a - 1)/a)(psi(1) - psi(b + 1)) - (b - 1)/b.
    """
    psi_1 = torch.digamma(torch.ones_like(b))
    kl = (
        torch.log(max(a, 1e-8) * b.clamp_min(1e-8))
        + ((a - 1) / max(a, 1e-8)) * (psi_1 - torch.digamma(b + 1))
        - (b - 1) / b.clamp_min(1e-8)
    )
    return masked_mean(kl, free)


def schedule_regulariser(
    a: float,
    b: torch.Tensor,
    free: torch.Tensor,
    grid: torch.Tensor,
    mean_weight: float = 1.0,
    boundary_weight: float = 1.0,
    kl_weight: float = 1.0,
) -> torch.Tensor:
    """Return the weighted sum of the three regularisers of one schedule, (B,).

    Args:
        b: (B, L) multipliers of the schedule (insertion or unmasking).
        free: (B, L) bool, non-pad non-fixed positions.
        grid: (G,) times of the mean term, redrawn every step.
    """
    return (
        mean_weight * mean_regulariser(a, b, free, grid)
        + boundary_weight * boundary_regulariser(a, b, free)
        + kl_weight * kl_regulariser(a, b, free)
    )
