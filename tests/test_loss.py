"""Generator loss, the learned-order objective and the FlexMDM baseline, against the vectors."""

from __future__ import annotations

import math

import pytest
import torch
from loflex.contracts import Prediction
from loflex.contracts.vocab import MASK
from loflex.default_plugins.orders import UniformOrder
from loflex.diffusion import schedule as S
from loflex.diffusion.batch import Batch
from loflex.diffusion.loss import bregman, flat_time_weight, generator_loss, objective, training_loss
from loflex.diffusion.order import EventTimes, KumaraswamyOrder, TokenRates
from loflex.diffusion.process import noise
from loflex.errors import ConfigError
from torch import nn
from vectors import close, pad_to, section

F64 = torch.float64
SCENARIOS = ["A_paper_recipe_a1_bum1", "B_a2_learned_bum", "C_a5_learned_bum"]


class FixedGenerator(nn.Module):
    """Returns recorded outputs (one set per stacked sample), cut to the input's width."""

    def __init__(self, calls: list[dict], learn_unmask: bool):
        super().__init__()
        self.logits = nn.ParameterList(nn.Parameter(c["vocab_logits"].clone()) for c in calls)
        self.b_ins = nn.ParameterList(nn.Parameter(c["b_ins"].clone()) for c in calls)
        self.b_um = nn.ParameterList(nn.Parameter(c["b_unmask"].clone()) for c in calls)
        self.learn_unmask = learn_unmask
        self.seen: list[torch.Tensor] = []

    def forward(self, x_t, t, real):
        self.seen.append(x_t)
        width = x_t.shape[1]
        assert x_t.shape[0] == len(self.logits) * self.logits[0].shape[0]
        unmask = torch.cat([b[:, :width] for b in self.b_um]) if self.learn_unmask else None
        return Prediction(
            logits=torch.cat([lg[:, :width] for lg in self.logits]),
            insert_multiplier=torch.cat([b[:, :width] for b in self.b_ins]),
            unmask_rate=unmask,
        )


class FixedOrder(KumaraswamyOrder):
    """A learned order whose network returns recorded multipliers; recorded regulariser grids."""

    name = "fixed-vectors"
    learned = True

    def __init__(self, a, b_in, b_um, learn_unmask, grids):
        super().__init__(None)
        self.a = a
        self.b_in = nn.Parameter(b_in.clone())
        self.b_um = nn.Parameter(b_um.clone()) if learn_unmask else None
        self.learn = learn_unmask
        self.grids = grids

    def learns_unmask(self, options):  # instance-level, as the case decides
        return self.learn

    def forward(self, batch, t):
        b_um = self.b_um if self.learn else torch.ones_like(self.b_in).detach()
        return TokenRates(self.b_in, b_um)

    def regulariser(self, rates, free):
        # the reference always adds the unmasking schedule's part (constant when b_um = 1)
        ins = S.schedule_regulariser(self.a, rates.b_in, free, self.grids[0])
        return ins + S.schedule_regulariser(self.a, rates.b_um, free, self.grids[1])


@pytest.mark.parametrize("case", SCENARIOS)
def test_vectors_generator_loss_and_gradients(case):
    vec = section("scenarios", case)
    i, out = vec["inputs"], vec["outputs"]
    o = out["compute_generator_loss"]
    a, t = i["a"], i["t"]
    b_in_phi = i["b_ins_phi"].clone().requires_grad_()
    b_um_phi = i["b_unmask_phi"].clone().requires_grad_()
    b_in_theta = i["b_ins_theta"].clone().requires_grad_()
    b_um_theta = i["b_unmask_theta"].clone().requires_grad_()
    logits = i["vocab_logits"].clone().requires_grad_()
    batch = Batch(i["z_1"], i["fixed"].bool())
    hazard_in = S.hazard(t[:, None], a, b_in_phi)
    hazard_um = S.hazard(t[:, None], a, b_um_phi)
    noisy = noise(batch, EventTimes(i["T_in"], i["T_um"]), t, hazard_in)
    pred = Prediction(logits, b_in_theta, b_um_theta)
    loss = generator_loss(noisy, pred, hazard_um, S.base_hazard(t, a), i["length_scale"], True)
    close(loss.unmask, o["unmask_loss"])
    close(loss.insertion, o["insertion_loss"])
    close(loss.total, o["total_loss"])
    grads = torch.autograd.grad(
        loss.total.sum(), (logits, b_in_theta, b_um_theta, b_in_phi, b_um_phi))
    width = logits.shape[1]
    names = ["grad_vocab_logits", "grad_b_ins_theta", "grad_b_unmask_theta",
             "grad_b_ins_phi", "grad_b_unmask_phi"]
    for g, name in zip(grads, names):
        close(pad_to(g, width), o[name])


def test_vectors_generator_loss_with_constant_unmask_rate():
    """Case A has b_um = 1 on both sides: the generator's unmask rate is then not needed."""
    vec = section("scenarios", SCENARIOS[0])
    i, o = vec["inputs"], vec["outputs"]["compute_generator_loss"]
    t = i["t"]
    batch = Batch(i["z_1"], i["fixed"].bool())
    hazard_in = S.hazard(t[:, None], 1.0, i["b_ins_phi"])
    noisy = noise(batch, EventTimes(i["T_in"], i["T_um"]), t, hazard_in)
    pred = Prediction(i["vocab_logits"], i["b_ins_theta"], None)
    hazard_um = S.hazard(t[:, None], 1.0, torch.ones_like(i["b_ins_phi"]))
    loss = generator_loss(noisy, pred, hazard_um, S.base_hazard(t, 1.0), 20.0, False)
    close(loss.total, o["total_loss"])


def end_to_end(case: str):
    vec = section("lflexmdm_loss_end_to_end", case)
    i, o = vec["inputs"], vec["outputs"]
    learn = not i["b_um_constant"]
    grids = (o["regularizer_t_grid_insertion"], o["regularizer_t_grid_unmasking"])
    order = FixedOrder(i["a"], i["aux_b_ins"], i["aux_b_unmask"], learn, grids)
    gen = FixedGenerator([i["generator_call_1"], i["generator_call_2"]], learn)
    batch = Batch(i["z_1"], i["fixed"].bool())
    draws = [EventTimes(o[s]["T_in"], o[s]["T_um"]) for s in ("sample_1", "sample_2")]
    return vec, order, gen, batch, draws


@pytest.mark.parametrize("case", ["A_paper_recipe_a1_bum1", "B_a2_learned_bum"])
def test_vectors_end_to_end_loss_and_gradients(case):
    vec, order, gen, batch, draws = end_to_end(case)
    i, o = vec["inputs"], vec["outputs"]
    terms = objective(batch, gen, order, order(batch, o["t"]), o["t"], draws,
                      length_scale=i["max_length"])
    close(terms.loss, o["loss"])
    assert float(terms.loss_theta) == pytest.approx(float(o["loss_theta"].mean()), rel=1e-9)
    assert float(terms.unmask) == pytest.approx(float(o["unmask_loss"]), rel=1e-9)
    assert float(terms.insertion) == pytest.approx(float(o["insertion_loss"]), rel=1e-9)
    assert float(terms.regulariser) == pytest.approx(float(o["reg_loss"]), rel=1e-9)
    assert float(terms.advantage_max) == pytest.approx(float(o["advantage"].abs().max()), rel=1e-9)
    assert float(terms.log_p_diff_max) == pytest.approx(float(o["log_p_diff"].abs().max()), rel=1e-9)
    assert len(gen.seen) == 1, "both samples go through the generator in one forward"
    terms.loss.backward()
    close(order.b_in.grad, o["grad_aux_b_ins"])
    for k in (0, 1):
        call = f"grad_generator_call_{k + 1}"
        close(gen.logits[k].grad, o[f"{call}_vocab_logits"])
        close(gen.b_ins[k].grad, o[f"{call}_b_ins"])
    if order.learn:
        close(order.b_um.grad, o["grad_aux_b_unmask"])
        for k in (0, 1):
            close(gen.b_um[k].grad, o[f"grad_generator_call_{k + 1}_b_unmask"])


@pytest.mark.parametrize("case", ["A_paper_recipe_a1_bum1", "B_a2_learned_bum"])
def test_vectors_end_to_end_intermediates(case):
    vec, order, gen, batch, draws = end_to_end(case)
    i, o = vec["inputs"], vec["outputs"]
    t = o["t"]
    rates = order(batch, t)
    hazard_in, hazard_um = order.hazards(rates, t)
    width = batch.x_1.shape[1]
    for k, name in enumerate(("sample_1", "sample_2")):
        ref = o[name]
        noisy = noise(batch, draws[k], t, hazard_in)
        close(pad_to(noisy.x_t, width), ref["x_t"])
        close(pad_to(noisy.gap_rates, width), ref["gap_sums"])
        close(noisy.dropped, ref["deleted"])
        close(noisy.masked, ref["masked"])
        pred = Prediction(gen.logits[k], gen.b_ins[k], gen.b_um[k] if order.learn else None)
        loss = generator_loss(noisy, pred, hazard_um, order.base_hazard(t), i["max_length"],
                              order.learn)
        close(loss.total, ref["generator_total_loss"])
        close(loss.unmask, ref["generator_unmask_loss"])
        close(loss.insertion, ref["generator_insertion_loss"])
    reg = order.regulariser(rates, batch.free)
    close(reg, o["regularizer_per_sequence"])


def test_vectors_flexmdm_baseline_expectation():
    vec = section("flexmdm_baseline")
    i, o = vec["inputs"], vec["outputs"]
    ref = o["expectation"]
    batch = Batch(i["z_1"], i["fixed"].bool())
    logits = nn.Parameter(i["token_logits"].clone())
    gaps = nn.Parameter(i["expected_gaps"].clone())

    class Stub(nn.Module):
        def forward(self, x_t, t, real):
            width = x_t.shape[1]
            return Prediction(logits[:, :width], gaps[:, :width])

    order = UniformOrder(UniformOrder.Options())
    draws = [EventTimes(o["T_in_sampled"], o["T_um_sampled"])]
    t = o["t"]
    terms = objective(batch, Stub(), order, order(batch, t), t, draws, length_scale=20.0,
                      normalisation="flexmdm")
    noisy = noise(batch, draws[0], t, order.hazards(order(batch, t), t)[0])
    width = batch.x_1.shape[1]
    close(pad_to(noisy.x_t, width), o["x_t"])
    close(pad_to(noisy.gaps, width), o["gaps"])
    close(pad_to(noisy.s_t, width), o["s_t"])
    close(terms.loss, ref["loss"])
    assert float(terms.unmask) == pytest.approx(float(ref["unmask_loss"]), rel=1e-9)
    assert float(terms.insertion) == pytest.approx(float(ref["insertion_loss"]), rel=1e-9)
    terms.loss.backward()
    close(logits.grad, ref["grad_token_logits"])
    close(gaps.grad, ref["grad_expected_gaps"])


def test_bregman_by_hand():
    p = torch.tensor([2.0, 0.0, 3.0], dtype=F64)
    q = torch.tensor([1.0, 0.5, 3.0], dtype=F64)
    expected = torch.tensor([1 - 2 + 2 * math.log(2.0),
                             0.5 - 1e-9 + 1e-9 * math.log(1e-9 / 0.5),
                             0.0], dtype=F64)
    close(bregman(p, q), expected, rtol=1e-12)
    assert float(bregman(torch.tensor(0.0), torch.tensor(0.0), 1e-6)) == 0.0


def flexmdm_reference(batch, noisy, logits, expected_gaps, t):
    """FlexMDM's per-sequence loss written from its paper: 1/(1-t) CE + 1/(1-t) D(g, g_theta)."""
    w = 1 / (1 - t)  # (B,)
    logp = torch.log_softmax(logits, -1)
    ce = -torch.gather(logp, 2, noisy.target[..., None]).squeeze(-1)
    masked = noisy.x_t == MASK
    unmask = (w[:, None] * ce * masked).sum(-1) / masked.sum(-1).clamp(min=1)
    g = noisy.gaps.to(F64).clamp(min=1e-9)
    y = expected_gaps.clamp(min=1e-9)
    d = y - g + g * (torch.log(g) - torch.log(y))
    return unmask, (w[:, None] * d * noisy.real).sum(-1)


def test_uniform_order_terms_equal_flexmdm():
    """With the uniform order Lambda_i = g_i / (1 - t) and the CE weight is 1 / (1 - t)."""
    gen = torch.Generator().manual_seed(0)
    z_1 = torch.tensor([[7, 5, 2, 4, 6, 8, 5, 9, 3, 0], [5, 5, 8, 4, 9, 6, 7, 4, 6, 3]])
    fixed = torch.zeros_like(z_1, dtype=torch.bool)
    fixed[0, :3] = True
    fixed[0, 8] = True
    fixed[1, 9] = True
    batch = Batch(z_1, fixed)
    order = UniformOrder(UniformOrder.Options())
    t = torch.tensor([0.3, 0.8], dtype=F64)
    rates = order(batch, t)
    hazard_in, hazard_um = order.hazards(rates, t)
    draws = order.sample_times(rates, generator=gen)
    noisy = noise(batch, draws, t, hazard_in)
    close(noisy.gap_rates, noisy.gaps.to(F64) / (1 - t[:, None]))
    logits = torch.randn((2, noisy.x_t.shape[1], 10), generator=gen, dtype=F64)
    expected_gaps = torch.rand((2, noisy.x_t.shape[1]), generator=gen, dtype=F64) * 3
    pred = Prediction(logits, expected_gaps)
    loss = generator_loss(noisy, pred, hazard_um, order.base_hazard(t), 1.0, False)
    unmask, insertion = flexmdm_reference(batch, noisy, logits, expected_gaps, t)
    close(loss.unmask, unmask, rtol=1e-12)
    close(loss.insertion, insertion, rtol=1e-7, atol=1e-8)  # clamps sit on Lambda vs on g


def test_training_loss_runs_for_fixed_and_learned_orders():
    """One forward for a fixed order (one sample), reproducible with an rng."""
    vec = section("batch")
    batch = Batch(vec["outputs"]["z_1"], vec["outputs"]["fixed"].bool())
    logits = torch.zeros(1, 12, 10, requires_grad=True)

    class Stub(nn.Module):
        def __init__(self):
            super().__init__()
            self.rows = []

        def forward(self, x_t, t, real):
            self.rows.append(x_t.shape[0])
            width = x_t.shape[1]
            ones = torch.ones(x_t.shape, dtype=torch.float64)
            return Prediction(logits[:, :width].expand(x_t.shape[0], -1, -1), ones)

    stub = Stub()
    order = UniformOrder(UniformOrder.Options())
    first = training_loss(batch, stub, order, length_scale=20.0,
                          rng=torch.Generator().manual_seed(1))
    second = training_loss(batch, stub, order, length_scale=20.0,
                           rng=torch.Generator().manual_seed(1))
    assert stub.rows == [4, 4]
    assert float(first.loss.detach()) == float(second.loss.detach())
    assert first.reinforce == 0.0 and first.regulariser == 0.0
    first.loss.backward()
    assert logits.grad is not None and bool(logits.grad.abs().sum() > 0)


def test_flat_time_weight_is_the_inverse_hazard():
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    uniform = UniformOrder(UniformOrder.Options())
    close(flat_time_weight(uniform, t), 1 - t, rtol=1e-12)

    class ShapeTwo(UniformOrder):
        a = 2.0

    close(flat_time_weight(ShapeTwo(ShapeTwo.Options()), t), (1 - t**2) / (2 * t), rtol=1e-12)


def test_flat_time_weighting_scales_each_sequence_by_one_minus_t():
    """For a = 1 the flat objective of one sequence is (1 - t) times its ELBO objective."""
    vec = section("batch")
    batch = Batch(vec["outputs"]["z_1"][:1], vec["outputs"]["fixed"][:1].bool())
    logits = torch.randn(1, 12, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

    def generator(x_t, t, real):
        rates = torch.full(x_t.shape, 0.7, dtype=torch.float64)
        return Prediction(logits[:, : x_t.shape[1]].expand(x_t.shape[0], -1, -1), rates)

    order = UniformOrder(UniformOrder.Options())
    terms = {w: training_loss(batch, generator, order, length_scale=20.0, time_weighting=w,
                              rng=torch.Generator().manual_seed(5)) for w in ("elbo", "flat")}
    t = float(S.loflexmdm_times(1, torch.Generator().manual_seed(5)))  # the same draw of t
    assert float(terms["elbo"].loss) > 0
    assert float(terms["flat"].loss) == pytest.approx((1 - t) * float(terms["elbo"].loss), rel=1e-9)
    with pytest.raises(ConfigError, match="time weighting"):
        training_loss(batch, generator, order, length_scale=20.0, time_weighting="sqrt")
