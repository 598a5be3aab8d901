"""Built-in order dynamics: uniform, kumaraswamy (learned) and left-to-right."""

from __future__ import annotations

import pytest
import torch
from loflex import build, components
from loflex.contracts.vocab import BOS, EOS, PAD
from loflex.default_plugins.orders import (
    KumaraswamyDynamics,
    LeftToRightOrder,
    MaskedOrder,
    UniformOrder,
)
from loflex.default_plugins.transformer import TransformerGenerator
from loflex.diffusion import schedule
from loflex.diffusion.batch import Batch
from loflex.diffusion.loss import generator_loss, objective, policy_terms, training_loss
from loflex.diffusion.order import OrderDynamics
from loflex.diffusion.process import noise, state_log_prob
from loflex.errors import ConfigError
from loflex.extension.testing import check_order_dynamics

F64 = torch.float64
V = 12
TINY = {"layers": 1, "width": 32, "heads": 2}


def clean_batch() -> Batch:
    x_1 = torch.tensor([
        [7, 5, BOS, 4, 6, 8, 5, 9, 7, EOS, PAD, PAD],
        [5, 5, 8, 4, 9, 6, 7, 4, 11, 10, 6, EOS],
        [9, 4, 7, EOS, PAD, PAD, PAD, PAD, PAD, PAD, PAD, PAD],
    ])
    fixed = torch.zeros_like(x_1, dtype=torch.bool)
    fixed[0, :3] = True
    fixed[0, 9] = fixed[1, 11] = fixed[2, 3] = True
    return Batch(x_1, fixed)


def tiny_generator(learn_unmask: bool = False) -> TransformerGenerator:
    torch.manual_seed(0)
    options = TransformerGenerator.Options(**TINY, cond_dim=16)
    return TransformerGenerator(options, vocab_size=V, max_length=12, learn_unmask=learn_unmask)


def learned(generator=None, **options) -> KumaraswamyDynamics:
    torch.manual_seed(1)
    spec = {"name": "kumaraswamy", "options": {**TINY, **options}}
    return build(OrderDynamics, spec, generator=generator, vocab_size=V, max_length=12)


def test_builtins_are_registered():
    table = components(OrderDynamics)
    assert table["uniform"] is UniformOrder
    assert table["kumaraswamy"] is KumaraswamyDynamics
    assert table["left-to-right"] is LeftToRightOrder


@pytest.mark.parametrize("name", ["uniform", "left-to-right"])
def test_fixed_orders_have_no_parameters(name):
    order = build(OrderDynamics, {"name": name})
    assert not order.learned
    assert list(order.parameters()) == []
    t = torch.tensor([0.2, 0.5, 0.9], dtype=F64)
    assert torch.equal(order.regulariser(order(clean_batch(), t), clean_batch().free),
                       torch.zeros(3, dtype=F64))
    check_order_dynamics(order, draws=1500)


def test_uniform_is_flexmdm():
    order = UniformOrder(UniformOrder.Options())
    batch = clean_batch()
    t = torch.tensor([0.2, 0.5, 0.9], dtype=F64)
    rates = order(batch, t)
    assert bool((rates.b_in == 1).all()) and bool((rates.b_um == 1).all())
    h_in, h_um = order.hazards(rates, t)
    torch.testing.assert_close(h_in, (1 / (1 - t))[:, None].expand_as(h_in))
    torch.testing.assert_close(h_um, h_in)
    # T_in ~ U(0, 1) and T_um | T_in ~ U(T_in, 1):
    logp = order.state_log_probs(rates, t)
    torch.testing.assert_close(logp.dropped.exp()[:, 0], 1 - t)
    p_clean = t + (1 - t) * torch.log1p(-t)  # P(T_um <= t) = t + (1 - t) log(1 - t)
    torch.testing.assert_close(logp.clean.exp()[:, 0], p_clean)


def test_left_to_right_inserts_earlier_tokens_first():
    order = build(OrderDynamics, {"name": "left-to-right", "options": {"sharpness": 4.0}})
    batch = clean_batch()
    t = torch.full((3,), 0.5, dtype=F64)
    rates = order(batch, t)
    for row in range(3):
        b = rates.b_in[row][batch.free[row]]
        assert bool((b[1:] < b[:-1]).all()), "b_in must decrease along the free tokens"
        if len(b) > 1:
            torch.testing.assert_close(b[0], torch.tensor(2.0, dtype=F64).exp())
            torch.testing.assert_close(b[-1], torch.tensor(-2.0, dtype=F64).exp())
    # Monte Carlo: mean insertion time matches 1/(1+b) and increases left to right
    gen = torch.Generator().manual_seed(0)
    n = 20_000
    b_in = rates.b_in[1:2].expand(n, -1)
    times = order.sample_times(type(rates)(b_in, torch.ones_like(b_in)), generator=gen)
    mean = times.t_in.mean(0)[batch.free[1]]
    expected = 1 / (1 + rates.b_in[1][batch.free[1]])
    assert bool((mean[1:] > mean[:-1]).all())
    torch.testing.assert_close(mean, expected, atol=0.01, rtol=0)


def test_left_to_right_sharpness_zero_is_uniform():
    order = build(OrderDynamics, {"name": "left-to-right", "options": {"sharpness": 0.0}})
    rates = order(clean_batch(), torch.full((3,), 0.5))
    assert bool((rates.b_in == 1).all())


def average_ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n of a 1-D tensor, ties sharing their average rank."""
    less = (x[None, :] < x[:, None]).sum(-1).double()
    equal = (x[None, :] == x[:, None]).sum(-1).double()
    return less + (equal + 1) / 2


def spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx * ry).sum() / (rx.norm() * ry.norm()))


def test_spearman_helper_by_hand():
    assert spearman(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 30.0, 20.0])) == \
        pytest.approx(0.5)
    # ties: ranks (1.5, 1.5, 3) against (1, 2, 3): covariance 1.5, norms sqrt(1.5) and sqrt(2)
    assert spearman(torch.tensor([5.0, 5.0, 9.0]), torch.tensor([1.0, 2.0, 3.0])) == \
        pytest.approx(1.5 / (1.5 ** 0.5 * 2 ** 0.5))


@pytest.mark.parametrize("centre", [0.5, 1.0])
def test_sharp_left_to_right_is_near_deterministic(centre):
    """sharpness 30 over 20 free tokens: T_in follows position (Spearman > 0.95 per row)."""
    order = build(OrderDynamics, {"name": "left-to-right",
                                  "options": {"sharpness": 30.0, "centre": centre}})
    x_1 = torch.cat([torch.randint(4, V, (64, 20), generator=torch.Generator().manual_seed(0)),
                     torch.full((64, 1), EOS)], dim=1)
    fixed = x_1 == EOS
    batch = Batch(x_1, fixed)
    rates = order(batch, torch.full((64,), 0.5, dtype=F64))
    times = order.sample_times(rates, generator=torch.Generator().manual_seed(1))
    positions = torch.arange(20, dtype=F64)
    rho = [spearman(row[:20], positions) for row in times.t_in]
    assert min(rho) > 0.9 and sum(rho) / len(rho) > 0.95
    late = float((times.t_in[:, :20] > 1 - 1e-5).double().mean())
    if centre == 1.0:  # every b_in >= 1: no token is left for the sampler's last step
        assert bool((rates.b_in[:, :20] >= 1).all()) and late < 1e-3
    else:  # half the tokens have b_in < 1 and many are inserted only after t = 1 - 1e-5
        assert late > 0.2


MASKED_1000 = {"name": "masked", "options": {"insert_rate": 1000.0}}


def test_masked_order_inserts_everything_near_zero():
    default = build(OrderDynamics, {"name": "masked"})
    assert isinstance(default, MaskedOrder) and not default.learned
    assert list(default.parameters()) == [] and default.shared_insert_multiplier == 100.0
    batch = clean_batch()
    rates = default(batch, torch.full((3,), 0.5, dtype=F64))
    assert bool((rates.b_in == 100).all()) and bool((rates.b_um == 1).all())
    b_in = rates.b_in[:1].expand(2000, -1)
    times = default.sample_times(type(rates)(b_in, torch.ones_like(b_in)),
                                 generator=torch.Generator().manual_seed(0))
    assert float(times.t_in.max()) < 0.25  # P(T_in > 0.25) = 0.75^100 < 4e-13 per token
    assert abs(float(times.t_in.mean()) - 1 / 101) < 0.001  # E[T_in] = 1/(1 + b_in)
    order = build(OrderDynamics, MASKED_1000)
    b_in = torch.full((2000, 12), 1000.0, dtype=F64)
    times = order.sample_times(type(rates)(b_in, torch.ones_like(b_in)),
                               generator=torch.Generator().manual_seed(0))
    assert float(times.t_in.max()) < 0.02  # P(T_in > 0.02) = 0.98^1000 < 2e-9 per token
    # larger insert rates push T_in towards 0
    sharper = build(OrderDynamics, {"name": "masked", "options": {"insert_rate": 1e6}})
    b_in = torch.full((200, 12), 1e6, dtype=F64)
    times_sharp = sharper.sample_times(type(rates)(b_in, torch.ones_like(b_in)),
                                       generator=torch.Generator().manual_seed(0))
    assert float(times_sharp.t_in.max()) < 1e-4
    with pytest.raises(ConfigError):
        build(OrderDynamics, {"name": "masked", "options": {"insert_rate": 0.5}})


def test_masked_order_unmasks_uniformly():
    order = build(OrderDynamics, MASKED_1000)
    b_in = torch.full((4000, 10), 1000.0, dtype=F64)
    times = order.sample_times(type(order(clean_batch(), torch.rand(3)))(b_in,
                                                                         torch.ones_like(b_in)),
                               generator=torch.Generator().manual_seed(2))
    assert bool((times.t_um >= times.t_in).all())
    counts = torch.histc(times.t_um.float(), bins=10, min=0.0, max=1.0)
    n = times.t_um.numel()
    assert float((counts / n - 0.1).abs().max()) < 5 * (0.1 * 0.9 / n) ** 0.5
    # closed forms: P(dropped) = (1 - t)^1000 and, since T_um | T_in ~ U(T_in, 1),
    # P(masked) = E[(1 - t) / (1 - T_in); T_in <= t] = (1 - t) (1000/999) (1 - (1 - t)^999)
    t = torch.tensor([0.001, 0.3, 0.9], dtype=F64)
    logp = order.state_log_probs(order(clean_batch(), t), t)
    for value in (logp.dropped, logp.masked, logp.clean):
        assert bool(torch.isfinite(value).all())
    torch.testing.assert_close(logp.dropped[:, 0].exp(), (1 - t) ** 1000)
    torch.testing.assert_close(logp.masked[:, 0].exp(),
                               (1 - t) * 1000 / 999 * (1 - (1 - t) ** 999))
    check_order_dynamics(order, draws=1500)


def test_masked_order_trains_one_step_with_finite_loss_and_consistent_targets():
    batch = clean_batch()
    order = build(OrderDynamics, MASKED_1000)
    gen = tiny_generator()
    terms = training_loss(batch, gen, order, length_scale=12.0,
                          rng=torch.Generator().manual_seed(0))
    terms.loss.backward()
    assert torch.isfinite(terms.loss)
    assert all(torch.isfinite(p.grad).all() for p in gen.parameters() if p.grad is not None)
    # at t = 1e-3 some tokens are still missing: each gap's target is b_in h(t) per token
    t = torch.full((3,), 1e-3, dtype=torch.float32)
    rates = order(batch, t)
    times = order.sample_times(rates, generator=torch.Generator().manual_seed(3))
    hazard_in, _ = order.hazards(rates, t)
    noisy = noise(batch, times, t, hazard_in)
    dropped = ((t[:, None] < times.t_in) & batch.free).sum(-1)
    assert int(dropped.sum()) > 0
    torch.testing.assert_close(noisy.gap_rates.sum(-1),
                               dropped.float() * 1000 / (1 - 1e-3), rtol=1e-5, atol=0)
    loss = objective(batch, gen, order, rates, t, [times], length_scale=12.0)
    assert torch.isfinite(loss.loss) and float(loss.insertion) > 0


def test_learned_order_shapes_and_floor():
    order = learned()
    assert order.learned and not order.learns_unmask(order.options)
    assert order.a == 1.0 and order.reinforce_weight == 1.0
    batch = clean_batch()
    t = torch.tensor([0.2, 0.5, 0.9])
    rates = order(batch, t)
    assert rates.b_in.shape == batch.x_1.shape and rates.b_in.requires_grad
    assert bool((rates.b_in >= 1.01).all())
    assert bool((rates.b_um == 1).all()) and not rates.b_um.requires_grad
    check_order_dynamics(order, draws=1500)


def test_learned_unmask_and_exp_head():
    order = learned(learn_unmask=True, scalar_fn="exp", min_rate=0.5, a=2.0)
    assert order.learns_unmask(order.options)
    rates = order(clean_batch(), torch.tensor([0.2, 0.5, 0.9]))
    assert rates.b_um.requires_grad and bool((rates.b_um > 0.5).all())
    assert order.base_hazard(torch.tensor([0.5], dtype=F64)).item() == pytest.approx(
        2 * 0.5 / (1 - 0.25))


def test_learned_order_reads_time_only_when_asked():
    batch = clean_batch()
    for use_time in (True, False):
        order = learned(use_time=use_time)
        # make the heads sensitive to the condition
        for p in order.insert_head.adaln.parameters():
            torch.nn.init.normal_(p)
        a = order(batch, torch.full((3,), 0.1))
        b = order(batch, torch.full((3,), 0.9))
        assert torch.allclose(a.b_in, b.b_in) is (not use_time)


def test_shared_backbone_reuses_generator_trunk():
    gen = tiny_generator()
    order = learned(generator=gen, backbone="shared")
    assert order.backbone is gen.trunk
    names = {n for n, _ in order.named_parameters()}
    assert not any(n.startswith("trunk") for n in names), "the shared trunk is the generator's"
    rates = order(clean_batch(), torch.tensor([0.2, 0.5, 0.9]))
    rates.b_in.sum().backward()
    assert gen.trunk.embed.weight.grad is not None
    with pytest.raises(ConfigError, match="trunk"):
        learned(generator=None, backbone="shared")


def test_auxiliary_trunk_takes_block_form_and_attention_dropout():
    order = learned(block_form="reference", attention_dropout=0.3)
    assert all(b.block_form == "reference" and b.attention_dropout == 0.3
               for b in order.trunk.blocks)
    assert all(b.block_form == "pre-norm" and b.attention_dropout == 0.0
               for b in learned().trunk.blocks)


def test_learned_order_options_are_validated():
    with pytest.raises(ConfigError, match="heads"):
        build(OrderDynamics, {"name": "kumaraswamy", "options": {"width": 30, "heads": 4}},
              vocab_size=V, max_length=12)
    with pytest.raises(ConfigError, match="unknown option"):
        build(OrderDynamics, {"name": "kumaraswamy", "options": {"b_um": 1.0}},
              vocab_size=V, max_length=12)


def test_learned_regulariser_uses_fresh_grid_per_schedule():
    order = learned(learn_unmask=True, a=2.0)
    batch = clean_batch()
    rates = order(batch, torch.tensor([0.2, 0.5, 0.9]))
    value = order.regulariser(rates, batch.free, generator=torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)
    g_in = schedule.regulariser_grid(gen, rates.b_in.dtype)
    g_um = schedule.regulariser_grid(gen, rates.b_in.dtype)
    expected = (schedule.schedule_regulariser(2.0, rates.b_in, batch.free, g_in)
                + schedule.schedule_regulariser(2.0, rates.b_um, batch.free, g_um))
    torch.testing.assert_close(value, expected)
    only_in = learned(a=2.0)
    r = only_in(batch, torch.tensor([0.2, 0.5, 0.9]))
    v = only_in.regulariser(r, batch.free, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(
        v, schedule.schedule_regulariser(2.0, r.b_in, batch.free, g_in))


def aux_grads(order, loss) -> torch.Tensor:
    params = [p for p in order.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([torch.zeros_like(p).flatten() if g is None else g.flatten()
                      for p, g in zip(params, grads)])


def test_gradients_reach_aux_through_reinforce_and_pathwise_terms():
    """Zero each route in turn: both alone give a nonzero aux gradient, and they add up."""
    batch = clean_batch()
    gen = tiny_generator()
    order = learned(mean_weight=0.0, boundary_weight=0.0, kl_weight=0.0)
    t = torch.tensor([0.3, 0.6, 0.8])
    rates = order(batch, t)
    rng = torch.Generator().manual_seed(2)
    draws = [order.sample_times(rates, generator=rng) for _ in range(2)]
    full = objective(batch, gen, order, rates, t, draws, length_scale=12.0).loss

    h = order.base_hazard(t)

    def pieces(detach_targets: bool):
        h_in, h_um = order.hazards(rates, t)
        if detach_targets:
            h_in, h_um = h_in.detach(), h_um.detach()
        out = []
        for times in draws:
            noisy = noise(batch, times, t, h_in)
            pred = gen(noisy.x_t, t, noisy.real)
            out.append((noisy, generator_loss(noisy, pred, h_um, h, 12.0, False)))
        return out

    logp = order.state_log_probs(rates, t)
    zero = torch.zeros(3)
    samples = pieces(detach_targets=True)
    lp = [state_log_prob(logp, n, batch.free) for n, _ in samples]
    reinforce_only = policy_terms([ls for _, ls in samples], lp, zero).loss
    samples = pieces(detach_targets=False)
    lp_detached = [v.detach() for v in lp]
    pathwise_only = policy_terms([ls for _, ls in samples], lp_detached, zero).loss

    g_rf, g_path, g_full = (aux_grads(order, x) for x in (reinforce_only, pathwise_only, full))
    assert float(g_rf.abs().sum()) > 0, "REINFORCE must reach the aux network"
    assert float(g_path.abs().sum()) > 0, "the pathwise term must reach the aux network"
    torch.testing.assert_close(g_full, g_rf + g_path, rtol=1e-4, atol=1e-6)


def test_training_loss_with_learned_order_uses_two_samples_one_forward():
    batch = clean_batch()
    gen = tiny_generator()
    calls = []
    gen.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    order = learned()
    terms = training_loss(batch, gen, order, length_scale=12.0,
                          rng=torch.Generator().manual_seed(0))
    assert calls == [6]
    assert float(terms.regulariser) > 0 and float(terms.advantage_max) >= 0
    terms.loss.backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in order.parameters())
    assert any(p.grad is not None for p in gen.parameters())
    again = training_loss(batch, gen, order, length_scale=12.0,
                          rng=torch.Generator().manual_seed(0))
    assert float(again.loss.detach()) == pytest.approx(float(terms.loss.detach()), rel=1e-6)


def test_flexmdm_normalisation_trains_with_uniform_order():
    batch = clean_batch()
    gen = tiny_generator()
    order = UniformOrder(UniformOrder.Options())
    terms = training_loss(batch, gen, order, length_scale=12.0, normalisation="flexmdm",
                          rng=torch.Generator().manual_seed(0))
    assert float(terms.reinforce) == 0.0
    terms.loss.backward()
    with pytest.raises(ConfigError, match="normalisation"):
        training_loss(batch, gen, order, length_scale=12.0, normalisation="global")
