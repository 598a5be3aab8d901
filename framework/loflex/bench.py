"""Benchmarks (not tests): training-step and sampling throughput, FLOP/s and memory.

Every figure comes from this process: the matrix-multiply peak it is compared with is
measured in the same run, so ratios hold on a noisy shared machine.
"""

from __future__ import annotations

import resource
import statistics
import time
from dataclasses import asdict, dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from loflex import loss as losses
from loflex.assemble import Model, assemble
from loflex.batch import Batch, collate
from loflex.config import Run
from loflex.data import BatchStream
from loflex.optim import make_optimizer


@dataclass
class BenchResult:
    """One benchmark's figures (all per process)."""

    kind: str
    median_step_s: float
    seqs_per_s: float
    tokens_per_s: float
    padded_tokens_per_s: float
    peak_rss_mib: float
    gflops: float
    matmul_peak_gflops: float
    peak_fraction: float
    bare_step_s: float
    overhead: float
    threads: int
    device: str
    steps: int
    batch_size: int

    def to_dict(self) -> dict:
        return asdict(self)


def matmul_peak_gflops(device: torch.device, n: int = 1024, seconds: float = 1.0,
                       dtype: torch.dtype = torch.float32) -> float:
    """Measure this process's dense matrix-multiply rate (GFLOP/s) on ``device``."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    _sync(device)
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _flops(fn) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return float(counter.get_total_flops())


def bench_train(run: Run, steps: int, warmup: int, device: torch.device) -> BenchResult:
    """Time optimiser steps of ``run`` (loss, backward, AdamW) on real batches."""
    model = assemble(run)
    model.generator.to(device)
    model.order.to(device)
    optimizer = make_optimizer([model.generator, model.order], run.train)
    stream = iter(BatchStream(model.domain.examples("train"), run.train.batch_size, run.seed,
                              run.train.length_buckets))
    rng = torch.Generator(device=device).manual_seed(run.seed)
    length_scale = float(model.domain.max_length)

    def step(batch: Batch) -> None:
        terms = losses.training_loss(batch, model.generator, model.order,
                                     length_scale=length_scale,
                                     normalisation=run.train.loss_normalisation, rng=rng,
                                     time_sampling=run.train.time_sampling)
        optimizer.zero_grad(set_to_none=True)
        terms.loss.backward()
        optimizer.step()

    batches = [next(stream).to(device) for _ in range(warmup + steps)]
    for batch in batches[:warmup]:
        step(batch)
    times = [_timed(lambda b=b: step(b), device) for b in batches[warmup:]]
    flops = _flops(lambda: step(batches[-1]))
    bare = statistics.median(_timed(lambda b=b: _bare_step(model, b), device)
                             for b in batches[warmup:][:5])
    real = sum(int(b.real.sum()) for b in batches[warmup:]) / steps
    return _result("train", times, run.train.batch_size, real, model.domain.max_length, flops,
                   bare, device, steps)


def _bare_step(model: Model, batch: Batch) -> None:
    """Forward + backward of the same networks on same-shaped inputs, no loss machinery."""
    t = torch.rand(len(batch), device=batch.x_1.device)
    copies = 2 if model.order.learned else 1
    x = batch.x_1.repeat(copies, 1)
    out = model.generator(x, t.repeat(copies), x != 0)
    total = out.logits.float().mean() + out.insert_rate.mean()
    if model.order.learned:
        rates = model.order(batch, t)
        total = total + rates.b_in.mean()
    total.backward()


def bench_sample(run: Run, steps: int, warmup: int, device: torch.device) -> BenchResult:
    """Time full sampler runs of one batch (``run.sample.steps`` model calls each)."""
    from loflex import sampler
    from loflex.inference import sampling_prompts

    model = assemble(run)
    model.generator.to(device).eval()
    model.order.to(device).eval()
    settings = run.sample
    prompts = sampling_prompts(model, settings, settings.batch_size)
    rng = torch.Generator(device=device).manual_seed(run.seed)

    def go():
        with torch.no_grad():
            return sampler.sample(model.generator, model.order, prompts, settings, rng=rng,
                                  device=device)

    for _ in range(warmup):
        go()
    outputs = []
    times = [_timed(lambda: outputs.append(go()), device) for _ in range(steps)]
    flops = _flops(go)
    final = outputs[-1].x
    real = float((final != 0).sum())
    bare = _bare_forward_seconds(model, final, device) * settings.steps
    return _result("sample", times, settings.batch_size, real, model.domain.max_length, flops,
                   bare, device, steps)


def _bare_forward_seconds(model: Model, x: torch.Tensor, device: torch.device) -> float:
    """Seconds of one generator forward on the final (longest) sampler state."""
    t = torch.full((x.shape[0],), 0.5, device=device)
    with torch.no_grad():
        model.generator(x, t, x != 0)
        return statistics.median(_timed(lambda: model.generator(x, t, x != 0), device)
                                 for _ in range(5))


def _result(kind: str, times: list[float], batch: int, real_tokens: float, width: int,
            flops: float, bare: float, device: torch.device, steps: int) -> BenchResult:
    median = statistics.median(times)
    peak = matmul_peak_gflops(device)
    gflops = flops / median / 1e9
    return BenchResult(
        kind=kind, median_step_s=median, seqs_per_s=batch / median,
        tokens_per_s=real_tokens / median, padded_tokens_per_s=batch * width / median,
        peak_rss_mib=peak_rss_mib(), gflops=gflops, matmul_peak_gflops=peak,
        peak_fraction=gflops / peak, bare_step_s=bare, overhead=median / bare - 1 if bare else 0.0,
        threads=torch.get_num_threads(), device=str(device), steps=steps, batch_size=batch)


def example_batch(model: Model, size: int) -> Batch:
    """Collate the first ``size`` training examples (for quick checks)."""
    return collate(list(model.domain.examples("train"))[:size])
