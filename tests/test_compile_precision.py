"""``train.compile`` and ``train.precision = "bf16"`` leave the training objective unchanged.

Tolerances, stated: compiled fp32 against eager fp32, relative 1e-4 on the loss and 1e-3
on the norm of the whole gradient (only the order of floating-point sums may differ, and a
ReLU input that sits at zero may flip); bf16 autocast against fp32,
relative 3e-2 on the loss (bf16 keeps 8 significant bits, about 4e-3 per rounding, and
the trunk's matmuls are the only ops autocast lowers: norms and rate heads stay fp32).
"""

from __future__ import annotations

import shutil
from functools import partial

import pytest
import torch
from loflex import load_run
from loflex.contracts.vocab import BOS, EOS, PAD
from loflex.default_plugins.orders import KumaraswamyDynamics
from loflex.default_plugins.transformer import TransformerGenerator
from loflex.diffusion import loss as losses
from loflex.diffusion.batch import Batch
from loflex.extension.assemble import assemble
from loflex.sampling.inference import generate_all
from loflex.training.bench import compile_networks
from loflex.training.runtime import cpu_has_bf16

V = 12
WIDTH = 32


def networks(seed: int = 0) -> tuple[TransformerGenerator, KumaraswamyDynamics]:
    """A 1-layer generator and a 1-layer auxiliary network, every weight non-zero."""
    torch.manual_seed(seed)
    gen = TransformerGenerator(TransformerGenerator.Options(layers=1, width=WIDTH, heads=4),
                               vocab_size=V, max_length=16)
    order = KumaraswamyDynamics(KumaraswamyDynamics.Options(layers=1, width=WIDTH, heads=4),
                                vocab_size=V, max_length=16)
    with torch.no_grad():
        for param in [*gen.parameters(), *order.parameters()]:
            param.add_(0.2 * torch.randn_like(param))
    return gen, order


def clean_batch() -> Batch:
    """Rows ``[p p BOS] target [EOS] [PAD..]`` of different lengths."""
    g = torch.Generator().manual_seed(3)
    rows = []
    for n in (3, 6, 1, 5, 4, 6):
        target = torch.randint(4, V, (n,), generator=g).tolist()
        rows.append([5, 6, BOS, *target, EOS])
    width = max(map(len, rows))
    x_1 = torch.full((len(rows), width), PAD)
    fixed = torch.zeros_like(x_1, dtype=torch.bool)
    for i, ids in enumerate(rows):
        x_1[i, :len(ids)] = torch.tensor(ids)
        fixed[i, :3] = True
        fixed[i, len(ids) - 1] = True
    return Batch(x_1, fixed)


def objective(gen, order, autocast: bool = False) -> torch.Tensor:
    rng = torch.Generator().manual_seed(11)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        terms = losses.training_loss(clean_batch(), gen, order, length_scale=12.0, rng=rng)
    return terms.loss


def grads(gen, order) -> list[torch.Tensor]:
    gen.zero_grad()
    order.zero_grad()
    objective(gen, order).backward()
    return [p.grad.clone() for p in [*gen.parameters(), *order.parameters()]
            if p.grad is not None]


def test_compiled_blocks_give_the_eager_loss_and_gradients():
    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("torch.compile (inductor) needs a C++ compiler on the CPU; none is installed")
    eager_gen, eager_order = networks()
    expected_loss = float(objective(eager_gen, eager_order))
    expected_grads = grads(eager_gen, eager_order)
    gen, order = networks()
    assert compile_networks(gen, order) == 2, "one block in each network"
    loss = float(objective(gen, order))
    assert loss == pytest.approx(expected_loss, rel=1e-4)
    got = torch.cat([g.flatten() for g in grads(gen, order)])
    want = torch.cat([g.flatten() for g in expected_grads])
    assert float((got - want).norm() / want.norm()) < 1e-3
    names = {name for name, _ in gen.named_parameters()}
    assert names == {name for name, _ in eager_gen.named_parameters()}, "checkpoint keys kept"


def test_bf16_autocast_gives_the_fp32_loss():
    gen, order = networks()
    fp32 = float(objective(gen, order))
    bf16 = float(objective(gen, order, autocast=True))
    assert bf16 == pytest.approx(fp32, rel=3e-2)
    assert bf16 != fp32, "autocast did lower some matmuls to bf16"


def record_autocast(seen: list[bool], module, args) -> None:
    """Forward pre-hook: note whether CPU autocast is on."""
    seen.append(torch.is_autocast_enabled("cpu"))


def test_sample_precision_bf16_autocasts_the_networks_only_where_the_cpu_has_bf16_units(
        tmp_path):
    """``sample.precision = "bf16"`` runs the generator under bf16 autocast on a CPU with
    bf16 matrix units (fp32 elsewhere); fp32 never autocasts; both give decodable samples."""
    seqs = tmp_path / "seqs.txt"
    seqs.write_text("ACGTAC\nGATTACA\nCAT\nTAGGCT\n" * 4)
    tiny = ["domain.name=sequences", f"domain.options.path={seqs}", "order.name=uniform",
            "generator.options.layers=1", "generator.options.width=32",
            "generator.options.heads=2", "sample.num_samples=4", "sample.steps=4"]
    for precision, expected in (("fp32", False), ("bf16", cpu_has_bf16())):
        run = load_run(None, [*tiny, f"sample.precision={precision}"])
        model = assemble(run)
        seen: list[bool] = []
        model.generator.register_forward_pre_hook(partial(record_autocast, seen))
        samples = generate_all(model, run.sample, seed=0)
        assert len(samples) == 4 and seen
        assert set(seen) == {expected}, f"sample.precision={precision}"
