"""The one training step that ``loflex train`` and ``loflex bench train`` both run."""

from __future__ import annotations

import math

import pytest
import torch
from loflex import load_run
from loflex.extension.assemble import assemble
from loflex.training.data import BatchStream
from loflex.training.optim import EMA, make_optimizer, named_parameters
from loflex.training.runtime import Objective, TrainingStep

TINY = ["domain.name=toy", "domain.options.size=8", "order.name=kumaraswamy",
        "generator.options.layers=1", "generator.options.width=32", "generator.options.heads=2",
        "order.options.layers=1", "order.options.width=32", "order.options.heads=2",
        "train.batch_size=8", "train.grad_clip=0.05", "train.ema=0.9"]


def tiny_run(*extra: str):
    return load_run(None, [*TINY, *extra])


def fresh_model(run):
    torch.manual_seed(0)
    return assemble(run)


def batches(model, run, count: int):
    stream = iter(BatchStream(model.domain.examples("train"), run.train.batch_size, run.seed,
                              run.train.length_buckets, 0, 1))
    return [next(stream) for _ in range(count)]


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in named_parameters(model.modules()).items()}


def test_training_step_is_objective_backward_clip_adamw_ema(toy):
    """Three steps of TrainingStep equal the step written out: objective, backward, clip to
    train.grad_clip, AdamW at the scheduled rate, EMA of the weights."""
    run = tiny_run()
    model, twin = fresh_model(run), fresh_model(run)
    step = TrainingStep(model, run.train, torch.device("cpu"))
    step.prepare(1)
    objective = Objective(twin, float(twin.domain.max_length), run.train.loss_normalisation)
    optimizer = make_optimizer(list(twin.modules().values()), run.train)
    ema = EMA(named_parameters(twin.modules()), run.train.ema)
    rng_a, rng_b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for index, batch in enumerate(batches(model, run, 3)):
        step.set_lr(index)
        outcome = step(batch, rng_a)
        for group in optimizer.param_groups:  # warm-up of 100 steps: lr (index + 1) / 100
            group["lr"] = run.train.lr * (index + 1) / 100
        loss = objective(batch, rng_b).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, run.train.grad_clip)
        optimizer.step()
        ema.update(named_parameters(twin.modules()))
        assert outcome.applied
        assert outcome.loss == float(loss.detach())
        assert outcome.grad_norm == pytest.approx(float(norm), rel=1e-6)
        assert outcome.grad_norm > run.train.grad_clip  # the clip was active
    # Equal up to the order of float sums, which the CPU's kernels may choose (one ulp).
    for name, value in weights(twin).items():
        torch.testing.assert_close(weights(model)[name], value, rtol=1e-6, atol=1e-8, msg=name)
    for name, value in ema.shadow.items():
        torch.testing.assert_close(step.ema.shadow[name], value, rtol=1e-6, atol=1e-8, msg=name)
    assert step.ema.updates == 3


def test_non_finite_step_changes_neither_weights_nor_ema(toy):
    run = tiny_run()
    model = fresh_model(run)
    step = TrainingStep(model, run.train, torch.device("cpu"))
    step.prepare(1)
    objective = step.forward

    def poisoned(batch, rng):
        terms = objective(batch, rng)
        terms.loss = terms.loss * math.nan
        return terms

    step.forward = poisoned
    before, shadow = weights(model), {k: v.clone() for k, v in step.ema.shadow.items()}
    outcome = step(batches(model, run, 1)[0], torch.Generator().manual_seed(0))
    assert not outcome.applied and math.isnan(outcome.loss)
    assert all(torch.equal(weights(model)[k], v) for k, v in before.items())
    assert all(torch.equal(step.ema.shadow[k], v) for k, v in shadow.items())
    assert all(p.grad is None for p in model.generator.parameters())
    assert step.ema.updates == 0


def test_ddp_wraps_the_objective_as_training_does(toy, monkeypatch):
    """No find_unused_parameters: every parameter of a training step gets a gradient."""
    import loflex.training.runtime as runtime

    wrapped = []
    monkeypatch.setattr(runtime.nn.parallel, "DistributedDataParallel",
                        lambda module, **kwargs: wrapped.append((module, kwargs)) or module)
    run = tiny_run()
    step = TrainingStep(fresh_model(run), run.train, torch.device("cpu"))
    step.prepare(2)
    assert wrapped == [(step.objective, {})]


def test_bench_train_times_the_training_step(toy, monkeypatch):
    """loflex bench train calls TrainingStep once per step (FLOP count, warm-up, timed)."""
    import loflex.training.bench as bench

    calls = []

    class Counted(TrainingStep):
        def __call__(self, batch, rng=None):
            outcome = super().__call__(batch, rng)
            calls.append(self.ema.updates)
            return outcome

    monkeypatch.setattr(bench, "TrainingStep", Counted)
    result = bench.bench_train(tiny_run(), steps=2, warmup=2, device=torch.device("cpu"),
                               bare=False)
    assert calls == [1, 2, 3, 4]  # every call updated the EMA
    assert result.steps == 2


@pytest.mark.parametrize(("precision", "device", "native", "expected"), [
    ("fp32", "cpu", True, False),
    ("fp32", "cuda", True, False),
    ("bf16", "cuda", False, True),
    ("bf16", "cpu", True, True),
    ("bf16", "cpu", False, False),  # emulated bf16 matmuls would be slower than fp32
])
def test_bf16_autocasts_on_gpus_and_on_cpus_with_bf16_units(toy, monkeypatch, precision,
                                                            device, native, expected):
    import loflex.training.runtime as runtime

    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: native)
    cfg = tiny_run(f"train.precision={precision}").train
    assert runtime.uses_bf16(cfg, torch.device(device)) is expected


def test_bf16_training_step_runs_the_trunk_in_bf16_on_such_a_cpu(toy, monkeypatch):
    import loflex.training.runtime as runtime

    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)
    run = tiny_run("train.precision=bf16")
    model = fresh_model(run)
    seen = []
    block = model.generator.trunk.blocks[0]
    block.qkv.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    step = TrainingStep(model, run.train, torch.device("cpu"))
    step.prepare(1)
    outcome = step(batches(model, run, 1)[0], torch.Generator().manual_seed(0))
    assert seen == [torch.bfloat16] and outcome.applied
    assert all(p.dtype == torch.float32 for p in model.generator.parameters())


def test_cpu_bf16_attention_is_softmax_attention_over_the_kept_keys():
    """attend() in bf16 on a CPU (the math kernel) against attention written out in fp64."""
    from loflex.default_plugins.transformer import attend

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, dtype=torch.float64) for _ in range(3))
    keys = torch.tensor([[True] * 5, [True, True, True, False, False]])[:, None, None, :]
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(8)
    weights = scores.masked_fill(~keys, -math.inf).softmax(-1)
    expected = weights @ v
    got = attend(q.bfloat16(), k.bfloat16(), v.bfloat16(), keys)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.double(), expected, atol=3e-2, rtol=3e-2)


def test_adamw_first_step_matches_its_closed_form(toy):
    """The optimiser's first step is decoupled weight decay then lr * g / (|g| + eps) per
    element (m_hat = g and v_hat = g^2 after one step), with decay on matrices only; on a
    CPU the fused kernel computes it."""
    run = tiny_run("train.weight_decay=0.1", "train.lr=0.01")
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    before = {name: p.detach().clone() for name, p in layer.named_parameters()}
    optimizer = make_optimizer([layer], run.train)
    assert optimizer.defaults["fused"] is True
    loss = (layer(torch.randn(5, 3)) ** 2).sum()
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in layer.named_parameters()}
    optimizer.step()
    for name, p in layer.named_parameters():
        decay = 0.1 if p.ndim >= 2 else 0.0
        g = grads[name]
        expected = before[name] * (1 - 0.01 * decay) - 0.01 * g / (g.abs() + 1e-8)
        assert torch.allclose(p.detach(), expected, atol=1e-6), name
