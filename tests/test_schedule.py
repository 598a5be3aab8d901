"""Kumaraswamy closed forms, event-time sampling, time sampling and regularisers."""

from __future__ import annotations

import math

import pytest
import torch
from loflex import schedule as S
from vectors import close, section

F64 = torch.float64


def _per_a(inputs: dict):
    """Yield (a, mask) so that each reference grid is evaluated with a Python float a."""
    for a in inputs["a"].unique().tolist():
        yield a, inputs["a"] == a


def test_vectors_cdf_density_hazard():
    vec = section("kuma_schedule")
    i, o = vec["inputs"], vec["outputs"]
    for a, m in _per_a(i):
        b, t = i["b"][m], i["t"][m]
        close(S.cdf(t, a, b), o["cdf"][m])
        close(S.density(t, a, b), o["cdf_derivative"][m])
        close(S.hazard(t, a, b), o["hazard"][m])
        close(b * S.base_hazard(t, a), o["hazard"][m])


def test_vectors_inverse_cdf():
    vec = section("kuma_inverse_cdf")
    i, o = vec["inputs"], vec["outputs"]
    for a, m in _per_a(i):
        inv = S.inverse_cdf(i["u"][m], a, i["b"][m])
        close(inv, o["inv_cdf"][m])
        close(S.cdf(inv, a, i["b"][m]), o["cdf_of_inv_cdf"][m])


@pytest.mark.parametrize("state", ["dropped", "masked", "unmasked"])
def test_vectors_state_log_probs_and_gradients(state):
    """Every case matches the reference except where its 1e-7 clamp inside log(1 - u^d)
    bites (``diag_masked_inner_floored``); there loflex computes the exact value, checked
    against the closed form in :func:`test_masked_is_exact_where_the_reference_clamps`."""
    vec = section("kuma_state_log_probs")
    i, o = vec["inputs"], vec["outputs"]
    if state != "dropped":
        keep = ~o["diag_masked_inner_floored"]
        i = {k: v[keep] for k, v in i.items()}
        o = {k: v[keep] for k, v in o.items()}
    for a, m in _per_a(i):
        b_in = i["b_in"][m].clone().requires_grad_()
        b_um = i["b_um"][m].clone().requires_grad_()
        t = i["t"][m]
        if state == "dropped":
            value = S.log_prob_dropped(t, a, b_in)
        elif state == "masked":
            value = S.log_prob_masked(t, a, b_in, b_um)
        else:
            value = S.log_prob_clean(t, a, b_in, b_um)
        close(value, o[f"log_p_{state}"][m])
        g_in, g_um = torch.autograd.grad(value.sum(), (b_in, b_um), allow_unused=True)
        close(g_in, o[f"grad_b_in_log_p_{state}"][m])
        if state != "dropped":
            close(g_um, o[f"grad_b_um_log_p_{state}"][m])
        else:
            assert g_um is None


def test_state_probs_sum_to_one_away_from_floors():
    vec = section("kuma_state_log_probs")
    i, o = vec["inputs"], vec["outputs"]
    ok = ~o["diag_unmasked_at_floor"]
    for a, m in _per_a(i):
        m = m & ok
        b_in, b_um, t = i["b_in"][m], i["b_um"][m], i["t"][m]
        total = sum(
            torch.exp(f(t, a, b_in, b_um))
            for f in (lambda t, a, x, y: S.log_prob_dropped(t, a, x), S.log_prob_masked,
                      S.log_prob_clean)
        )
        close(total, torch.ones_like(total), rtol=0, atol=1e-13)


def test_vectors_linear_special_case():
    """a = 1, b = 1 is FlexMDM's linear schedule: F(t) = t, hazard 1/(1 - t)."""
    vec = section("linear_schedule")
    t, o = vec["inputs"]["t"], vec["outputs"]
    one = torch.ones_like(t)
    close(S.cdf(t, 1.0, one), o["cdf"])
    close(S.density(t, 1.0, one), o["cdf_derivative"])
    close(S.inverse_cdf(t, 1.0, one), o["inv_cdf_of_t"])
    close(S.hazard(t, 1.0, one), o["hazard"])
    close(S.base_hazard(t, 1.0), 1 / (1 - t))


def test_vectors_time_sampling():
    o = section("time_sampling")["outputs"]
    close(S.stratified_times(o["lflexmdm_u"], 1e-4, 1 - 2e-4), o["lflexmdm_t"])
    close(S.stratified_times(o["flexmdm_u"], 0.0, 1 - 1e-6), o["flexmdm_t"])


@pytest.mark.parametrize("draw,low,high", [
    (S.loflexmdm_times, 1e-4, 1 - 1e-4),
    (S.flexmdm_times, 0.0, 1 - 1e-6),
])
def test_time_sampling_is_stratified(draw, low, high):
    n = 16
    gen = torch.Generator().manual_seed(0)
    t = draw(n, gen, F64)
    width = (high - low) / n
    stratum = torch.floor((t - low) / width)
    assert torch.equal(stratum, torch.arange(n, dtype=F64))
    again = draw(n, torch.Generator().manual_seed(0), F64)
    assert torch.equal(t, again)


def test_vectors_event_time_sampling():
    vec = section("sample_ins_unmask_times")
    a, i, o = vec["inputs"]["a"], vec["inputs"], vec["outputs"]
    t_in = S.inverse_cdf(o["u_in"], a, i["b_ins"])
    close(t_in, o["T_in"])
    close(S.truncated_sample(o["T_in"], o["u_um"], a, i["b_unmask"]), o["T_um"])


def test_sample_event_times_uses_generator_in_order():
    """The uniforms for all T_in are drawn first, then those for all T_um."""
    b_in = torch.full((3, 5), 2.0, dtype=F64)
    b_um = torch.full((3, 5), 3.0, dtype=F64)
    t_in, t_um = S.sample_event_times(b_in, b_um, 1.5, torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    u_in = torch.rand((3, 5), generator=gen, dtype=F64)
    u_um = torch.rand((3, 5), generator=gen, dtype=F64)
    close(t_in, (1 - (1 - u_in) ** 0.5) ** (1 / 1.5))
    f_in = 1 - (1 - t_in**1.5) ** 3
    close(t_um, (1 - (1 - (u_um * (1 - f_in) + f_in)) ** (1 / 3)) ** (1 / 1.5))


MC_CASES = [  # a, b_in, b_um, t
    (1.0, 1.0, 1.0, 0.3),
    (1.0, 2.5, 1.0, 0.6),
    (2.0, 1.5, 1.5, 0.5),
    (2.0, 0.7, 3.0, 0.4),
    (5.0, 4.0, 2.0, 0.8),
    (1.5, 3.0, 3.0, 0.2),
]


@pytest.mark.parametrize("a,b_in,b_um,t", MC_CASES)
def test_monte_carlo_state_frequencies_match_closed_forms(a, b_in, b_um, t):
    n = 200_000
    gen = torch.Generator().manual_seed(17)
    bi = torch.full((n,), b_in, dtype=F64)
    bu = torch.full((n,), b_um, dtype=F64)
    t_in, t_um = S.sample_event_times(bi, bu, a, gen)
    freq = {
        "dropped": (t < t_in).double().mean(),
        "masked": ((t >= t_in) & (t < t_um)).double().mean(),
        "clean": (t >= t_um).double().mean(),
    }
    tt = torch.tensor([t], dtype=F64)
    one_in, one_um = bi[:1], bu[:1]
    exact = {
        "dropped": S.log_prob_dropped(tt, a, one_in).exp(),
        "masked": S.log_prob_masked(tt, a, one_in, one_um).exp(),
        "clean": S.log_prob_clean(tt, a, one_in, one_um).exp(),
    }
    for state, p in exact.items():
        p = float(p)
        std = math.sqrt(p * (1 - p) / n)
        assert abs(float(freq[state]) - p) < 5 * std + 1e-9, (state, float(freq[state]), p)


def test_closed_forms_by_numerical_integration():
    """P(masked) = int_0^t f_in(s) (S_um(t) / S_um(s)) ds, by the trapezoid rule."""
    a, b_in, b_um, t = 2.0, 1.7, 0.6, 0.55
    s = torch.linspace(0, t, 200_001, dtype=F64)
    f_in = S.density(s, a, torch.tensor(b_in, dtype=F64))
    surv = (1 - t**a) ** b_um / (1 - s**a) ** b_um
    p_masked = torch.trapezoid(f_in * surv, s)
    tt = torch.tensor([t], dtype=F64)
    got = S.log_prob_masked(tt, a, torch.tensor([b_in], dtype=F64), torch.tensor([b_um], dtype=F64))
    assert abs(float(got.exp()) - float(p_masked)) < 1e-9


def test_hazard_is_density_over_survival():
    gen = torch.Generator().manual_seed(1)
    t = torch.rand(500, generator=gen, dtype=F64) * 0.89 + 0.01
    b = torch.rand(500, generator=gen, dtype=F64) * 5 + 0.1
    for a in (1.0, 1.7, 5.0):
        close(S.hazard(t, a, b), S.density(t, a, b) / (1 - S.cdf(t, a, b)), rtol=1e-8)
        # the density is the numerical derivative of the CDF
        step = 1e-6
        numeric = (S.cdf(t + step, a, b) - S.cdf(t - step, a, b)) / (2 * step)
        close(S.density(t, a, b), numeric, rtol=1e-5, atol=1e-7)


def test_inverse_cdf_inverts_cdf():
    gen = torch.Generator().manual_seed(2)
    u = torch.rand(1000, generator=gen, dtype=F64) * 0.98 + 0.01
    b = torch.rand(1000, generator=gen, dtype=F64) * 10 + 0.2
    for a in (1.0, 2.0, 5.0):
        close(S.cdf(S.inverse_cdf(u, a, b), a, b), u, rtol=1e-9, atol=1e-10)
        t = S.inverse_cdf(u, a, b)
        close(S.inverse_cdf(S.cdf(t, a, b), a, b), t, rtol=1e-7, atol=1e-9)


def test_truncated_sampling_respects_threshold():
    gen = torch.Generator().manual_seed(4)
    n = 50_000
    b_in = torch.rand(n, generator=gen, dtype=F64) * 5 + 0.1
    b_um = torch.rand(n, generator=gen, dtype=F64) * 5 + 0.1
    for a in (1.0, 2.0, 5.0):
        t_in, t_um = S.sample_event_times(b_in, b_um, a, gen)
        assert bool((t_um >= t_in).all())
        assert bool(((t_in >= 0) & (t_um <= 1)).all())


def test_truncated_sample_has_truncated_law():
    """For a = 1, b = 1 (FlexMDM) T_um | T_in is uniform on [T_in, 1]."""
    n = 200_000
    gen = torch.Generator().manual_seed(5)
    thr = torch.full((n,), 0.4, dtype=F64)
    u = torch.rand(n, generator=gen, dtype=F64)
    draws = S.truncated_sample(thr, u, 1.0, torch.ones(n, dtype=F64))
    assert abs(float(draws.mean()) - 0.7) < 5 * math.sqrt(0.36 / 12 / n)


def test_log1mexp():
    x = torch.tensor([-50.0, -2.0, -0.5, -1e-3, 0.0, 1.0], dtype=F64, requires_grad=True)
    y = S.log1mexp(x)
    expected = torch.log(1 - torch.exp(x[:4].detach()))
    close(y[:4], expected, rtol=1e-12)
    assert float(y[4].detach()) == pytest.approx(math.log(1e-7), rel=1e-6)  # clamped at x = -1e-7
    assert math.isnan(float(y[5].detach()))
    (g,) = torch.autograd.grad(y[:5].sum(), x)
    close(g[:4], -1 / torch.expm1(-x[:4].detach()), rtol=1e-12)
    assert float(g[5]) == 0.0


SCENARIOS = ["A_paper_recipe_a1_bum1", "B_a2_learned_bum", "C_a5_learned_bum"]
TERMS = {
    "mean_term": (1.0, 0.0, 0.0),
    "boundary_term": (0.0, 1.0, 0.0),
    "kl_term": (0.0, 0.0, 1.0),
    "total": (1.0, 1.0, 1.0),
}


@pytest.mark.parametrize("case", SCENARIOS)
def test_vectors_regulariser(case):
    vec = section("scenarios", case)
    i, reg = vec["inputs"], vec["outputs"]["regularizer"]
    a = i["a"]
    free = (i["z_1"] != 0) & (i["fixed"] == 0)
    b_in = i["b_ins_phi"].clone().requires_grad_()
    b_um = i["b_unmask_phi"].clone().requires_grad_()
    for name, (wm, wb, wk) in TERMS.items():
        ins = S.schedule_regulariser(a, b_in, free, reg["t_grid_insertion"], wm, wb, wk)
        um = S.schedule_regulariser(a, b_um, free, reg["t_grid_unmasking"], wm, wb, wk)
        close(ins, reg[name]["insertion_schedule_part"])
        close(um, reg[name]["unmasking_schedule_part"])
        close(ins + um, reg[name]["value"])
    g_in, g_um = torch.autograd.grad((ins + um).sum(), (b_in, b_um))
    close(g_in, reg["total"]["grad_b_ins_phi"])
    close(g_um, reg["total"]["grad_b_unmask_phi"])


def test_regulariser_closed_forms_by_hand():
    """Uniform rates (a = b = 1) cost nothing; b = 2 at a = 1 has hand-computable terms."""
    free = torch.tensor([[True, True, False]])
    grid = torch.tensor([0.25, 0.5], dtype=F64)
    one = torch.ones(1, 3, dtype=F64)
    assert float(S.schedule_regulariser(1.0, one, free, grid).abs().max()) < 1e-15
    two = torch.full((1, 3), 2.0, dtype=F64)
    # F(t) = 1 - (1 - t)^2: F(0.25) = 0.4375, F(0.5) = 0.75; the mean divides by count + 1e-9
    shrink = 2 / (2 + 1e-9)
    mean = (0.4375 * shrink - 0.25) ** 2 + (0.75 * shrink - 0.5) ** 2
    assert float(S.mean_regulariser(1.0, two, free, grid)) == pytest.approx(mean, rel=1e-12)
    # F(0.01) = 1 - 0.99^2 = 0.0199 -> relu(0.0099)^2 per free token; upper hinge inactive
    assert float(S.boundary_regulariser(1.0, two, free)) == pytest.approx(
        2 * 0.0099**2, rel=1e-9)
    # KL(Kuma(1, 2) || U) = log 2 - 1/2, averaged over 2 tokens with count + 1e-9
    kl = (math.log(2) - 0.5) * 2 / (2 + 1e-9)
    assert float(S.kl_regulariser(1.0, two, free)) == pytest.approx(kl, rel=1e-12)


def test_regulariser_grid_is_stratified():
    grid = S.regulariser_grid(torch.Generator().manual_seed(0), F64)
    assert grid.shape == (100,)
    width = (1 - 2e-4) / 100
    assert torch.equal(torch.floor((grid - 1e-4) / width), torch.arange(100, dtype=F64))


def test_masked_is_exact_where_the_reference_clamps():
    """P(masked) = u^b_um (b_in/d)(1 - u^d) evaluated in high precision (Python floats)."""
    import math

    vec = section("kuma_state_log_probs")
    i, o = vec["inputs"], vec["outputs"]
    rows = torch.nonzero(o["diag_masked_inner_floored"]).flatten().tolist()
    assert rows, "the vectors flag cases where the reference clamp bites"
    for k in rows:
        a, b_in, b_um, t = (float(i[name][k]) for name in ("a", "b_in", "b_um", "t"))
        log_u = math.log1p(-(t**a))
        d = b_in - b_um
        exact = b_um * log_u + math.log(b_in / abs(d)) + math.log(abs(math.expm1(d * log_u)))
        got = S.log_prob_masked(torch.tensor(t, dtype=F64), a, torch.tensor(b_in, dtype=F64),
                                torch.tensor(b_um, dtype=F64))
        assert float(got) == pytest.approx(exact, rel=1e-9)
        assert float(got) < float(o["log_p_masked"][k]) - 1  # the reference value is too large
