"""Benchmarks (not tests): training-step and sampling throughput, FLOP/s and memory.

Every figure comes from this process. The matrix-multiply peak it is compared with is
probed right before every timed step, in the same process and on the same threads, so
the fraction of peak holds on a shared machine whose load changes while it runs.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from loflex.config import Run
from loflex.diffusion.batch import Batch
from loflex.extension.assemble import Assembly, assemble
from loflex.training.data import BatchStream
from loflex.training.flops import count_flops
from loflex.training.runtime import (  # noqa: F401  (compile_networks re-exported)
    TrainingStep,
    autocast_for,
    compile_networks,
    distributed,
    uses_bf16,
)

PROBE_SECONDS = 0.3


@dataclass
class BenchResult:
    """One benchmark's figures (per process; ``world_size`` processes ran in step).

    Attributes:
        kind: "train" or "sample".
        median_step_s: median wall seconds per optimiser step (train) or sampler run (sample).
        step_s_min, step_s_max: the spread of the timed steps.
        cpu_step_s: median CPU seconds of this process per step (all its threads).
        seqs_per_s: sequences per second over all processes.
        tokens_per_s: real (non-pad) tokens of the clean batch (train) or of the final
            samples (sample) per second, over all processes.
        padded_tokens_per_s: batch x padded width per second, over all processes.
        padded_width: the padded width (the collated batch, or the sampler's final width).
        peak_rss_mib: peak resident memory of this process.
        gpu_peak_mib: peak CUDA memory allocated (0 on CPU).
        gflop_per_step: FLOPs of one step (:func:`loflex.training.flops.count_flops`), in GFLOP.
        gflops: achieved GFLOP/s of this process (gflop_per_step / median_step_s).
        matmul_peak_gflops: median of the matrix-multiply probes (GFLOP/s).
        matmul_peak_min, matmul_peak_max: the spread of the probes (machine contention).
        peak_fraction: median over steps of achieved / the probe taken just before.
        nominal_fraction: gflops / the ``nominal_peak_gflops`` given (0 when not given).
        bare_step_s: the same networks' forward (+ backward) alone, no loss or sampler.
        overhead: median_step_s / bare_step_s - 1 (time outside the networks).
    """

    kind: str
    median_step_s: float
    step_s_min: float
    step_s_max: float
    cpu_step_s: float
    seqs_per_s: float
    tokens_per_s: float
    padded_tokens_per_s: float
    padded_width: int
    peak_rss_mib: float
    gpu_peak_mib: float
    gflop_per_step: float
    gflops: float
    matmul_peak_gflops: float
    matmul_peak_min: float
    matmul_peak_max: float
    peak_fraction: float
    nominal_fraction: float
    bare_step_s: float
    overhead: float
    threads: int
    device: str
    world_size: int
    steps: int
    batch_size: int
    compiled: bool
    precision: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Timings:
    wall: list[float]
    cpu: list[float]
    probes: list[float]


def matmul_peak_gflops(device: torch.device, n: int | None = None, seconds: float = 1.0,
                       dtype: torch.dtype = torch.float32) -> float:
    """Measure this process's dense matrix-multiply rate (GFLOP/s) on ``device``.

    Args:
        device: where to multiply.
        n: square size (default 1024 on CPU, 8192 on CUDA).
        seconds: how long to keep multiplying.
        dtype: element type (fp32 on CPU; bf16 for a GPU's tensor-core peak).
    """
    n = n or (8192 if device.type == "cuda" else 1024)
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


def _probe_dtype(run: Run, device: torch.device) -> torch.dtype:
    return torch.bfloat16 if uses_bf16(run.train, device) else torch.float32


def _time_steps(fns: list[Callable[[], object]], device: torch.device,
                dtype: torch.dtype = torch.float32) -> _Timings:
    """Run each step once, probing the matmul peak (in ``dtype``) just before it."""
    out = _Timings([], [], [])
    for fn in fns:
        out.probes.append(matmul_peak_gflops(device, seconds=PROBE_SECONDS, dtype=dtype))
        _sync(device)
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        out.wall.append(time.perf_counter() - wall)
        out.cpu.append(time.process_time() - cpu)
    return out


def _build(run: Run, device: torch.device) -> Assembly:
    model = assemble(run)
    model.generator.to(device)
    model.order.to(device)
    return model


def bench_train(run: Run, steps: int, warmup: int, device: torch.device, *,
                bare: bool = True, nominal_peak_gflops: float = 0.0) -> BenchResult:
    """Time optimiser steps of ``run`` on real batches, exactly as ``loflex train`` runs them.

    Each timed step is a call of :class:`loflex.training.runtime.TrainingStep`, the object
    ``loflex train`` calls: objective (bf16 autocast on GPU when configured), backward,
    gradient clipping, the non-finite check, AdamW and the EMA update, with
    ``train.compile`` and, under ``torchrun``, DDP as in training (one shard per
    process; throughputs are summed over processes).
    """
    rank, world = distributed()
    model = _build(run, device)
    training_step = TrainingStep(model, run.train, device)
    training_step.prepare(world)
    stream = iter(BatchStream(model.domain.examples("train"), run.train.batch_size, run.seed,
                              run.train.length_buckets, rank, world))
    rng = torch.Generator(device=device).manual_seed(run.seed + rank)
    untimed = max(1, warmup)

    def step(index: int, batch: Batch) -> None:
        training_step.set_lr(index)
        training_step(batch, rng)

    batches = [next(stream).to(device) for _ in range(untimed + steps)]
    flops = count_flops(lambda: step(0, batches[0]))  # the first warm-up step
    for index in range(1, untimed):
        step(index, batches[index])
    timed = batches[untimed:]
    timings = _time_steps([lambda i=i, b=b: step(untimed + i, b) for i, b in enumerate(timed)],
                          device, _probe_dtype(run, device))
    bare_s = 0.0
    if bare:
        bare_s = statistics.median(_time_steps(
            [lambda b=b: _bare_step(model, b) for b in timed[:3]], device).wall)
    real = sum(int(b.real.sum()) for b in timed) / len(timed)
    width = max(b.x_1.shape[1] for b in timed)
    return _result("train", run, timings, real, width, flops, bare_s, device, world,
                   nominal_peak_gflops)


def _bare_step(model: Assembly, batch: Batch) -> None:
    """Forward + backward of the same networks on same-shaped inputs, no loss machinery."""
    t = torch.rand(len(batch), device=batch.x_1.device)
    copies = 2 if model.order.learned else 1
    x = batch.x_1.repeat(copies, 1)
    out = model.generator(x, t.repeat(copies), x != 0)
    total = out.logits.float().mean() + out.insert_multiplier.mean()
    if model.order.learned:
        rates = model.order(batch, t)
        total = total + rates.b_in.mean()
    total.backward()


def bench_sample(run: Run, steps: int, warmup: int, device: torch.device, *,
                 bare: bool = True, nominal_peak_gflops: float = 0.0) -> BenchResult:
    """Time full sampler runs of one batch (``run.sample.steps`` model calls each)."""
    from loflex.sampling import sampler
    from loflex.sampling.inference import sampling_prompts

    model = _build(run, device)
    if run.train.compile:
        compile_networks(model.generator, model.order)
    model.generator.eval()
    model.order.eval()
    settings = run.sample
    prompts = sampling_prompts(model, settings, settings.batch_size)
    rng = torch.Generator(device=device).manual_seed(run.seed)
    autocast = autocast_for(run.sample, device)
    outputs: list[sampler.SampleOutput] = []

    def go() -> None:
        with torch.inference_mode(), autocast:
            outputs.append(sampler.sample(model.generator, model.order, prompts, settings,
                                          rng=rng, device=device))

    flops = count_flops(go)
    for _ in range(warmup - 1):
        go()
    timings = _time_steps([go] * steps, device, _probe_dtype(run, device))
    final = outputs[-1].x
    real = float((final != 0).sum())
    bare_s = _bare_forward_seconds(model, final, device) * settings.steps if bare else 0.0
    return _result("sample", run, timings, real, final.shape[1], flops, bare_s, device, 1,
                   nominal_peak_gflops)


def _bare_forward_seconds(model: Assembly, x: torch.Tensor, device: torch.device) -> float:
    """Seconds of one generator forward on the final (longest) sampler state."""
    t = torch.full((x.shape[0],), 0.5, device=device)
    with torch.inference_mode():
        model.generator(x, t, x != 0)
        return statistics.median(_time_steps([lambda: model.generator(x, t, x != 0)] * 5,
                                             device).wall)


def _result(kind: str, run: Run, timings: _Timings, real_tokens: float, width: int,
            flops: float, bare: float, device: torch.device, world: int,
            nominal: float) -> BenchResult:
    batch = run.train.batch_size if kind == "train" else run.sample.batch_size
    median = statistics.median(timings.wall)
    gflops = flops / median / 1e9
    fractions = [flops / 1e9 / w / p for w, p in zip(timings.wall, timings.probes)]
    return BenchResult(
        kind=kind, median_step_s=median, step_s_min=min(timings.wall),
        step_s_max=max(timings.wall), cpu_step_s=statistics.median(timings.cpu),
        seqs_per_s=world * batch / median, tokens_per_s=world * real_tokens / median,
        padded_tokens_per_s=world * batch * width / median, padded_width=width,
        peak_rss_mib=peak_rss_mib(),
        gpu_peak_mib=torch.cuda.max_memory_allocated(device) / 2**20
        if device.type == "cuda" else 0.0,
        gflop_per_step=flops / 1e9, gflops=gflops,
        matmul_peak_gflops=statistics.median(timings.probes),
        matmul_peak_min=min(timings.probes), matmul_peak_max=max(timings.probes),
        peak_fraction=statistics.median(fractions),
        nominal_fraction=gflops / nominal if nominal else 0.0,
        bare_step_s=bare, overhead=median / bare - 1 if bare else 0.0,
        threads=torch.get_num_threads(), device=str(device), world_size=world,
        steps=len(timings.wall), batch_size=batch, compiled=run.train.compile,
        precision="bf16" if uses_bf16(run.train if kind == "train" else run.sample, device)
        else "fp32")

