"""Training-step time against sequence length and batch size (the plot of docs/performance.md).

Times LoFlexMDM optimiser steps (auxiliary forward, both noisy samples through the
generator in one batch, backward, AdamW) of 4 x 256 x 4-head networks on synthetic
examples whose full layout ``[prompt][BOS] target [EOS]`` is exactly L tokens (half
prompt, half target), and writes a JSON table and a PNG.

Usage: python docs/scripts/perf_sweep.py [--threads 2] [--out docs/perf_sweep]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from loflex.contracts import Example
from loflex.default_plugins.orders import KumaraswamyDynamics
from loflex.default_plugins.transformer import TransformerGenerator
from loflex.diffusion import loss as losses
from loflex.diffusion.batch import collate
from loflex.training.bench import matmul_peak_gflops
from loflex.training.optim import make_optimizer

VOCAB = 24
LENGTHS = (16, 36, 64, 128)
BATCHES = (8, 16, 32, 64, 128)
FIXED_BATCH, FIXED_LENGTH = 32, 36
YTICKS = (0.25, 0.5, 1, 2, 4, 8)


def examples(batch: int, length: int, seed: int) -> list[Example]:
    g = torch.Generator().manual_seed(seed)
    prompt_len = length // 2
    target_len = length - prompt_len - 2
    return [Example(target=torch.randint(4, VOCAB, (target_len,), generator=g).tolist(),
                    prompt=torch.randint(4, VOCAB, (prompt_len,), generator=g).tolist())
            for _ in range(batch)]


def step_seconds(batch: int, length: int, repeats: int) -> float:
    """Median wall seconds of ``repeats`` optimiser steps after one warm-up step."""
    torch.manual_seed(0)
    gen = TransformerGenerator(TransformerGenerator.Options(layers=4, width=256, heads=4),
                               vocab_size=VOCAB, max_length=length)
    order = KumaraswamyDynamics(KumaraswamyDynamics.Options(layers=4, width=256, heads=4),
                                vocab_size=VOCAB, max_length=length)
    from loflex.config import TrainConfig

    optimizer = make_optimizer([gen, order], TrainConfig())
    rng = torch.Generator().manual_seed(0)
    times = []
    for k in range(repeats + 1):
        clean = collate(examples(batch, length, k))
        start = time.perf_counter()
        terms = losses.training_loss(clean, gen, order, length_scale=float(length), rng=rng)
        optimizer.zero_grad(set_to_none=True)
        terms.loss.backward()
        optimizer.step()
        if k:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    by_len = [r for r in rows if r["batch"] == FIXED_BATCH and r["sweep"] == "length"]
    by_batch = [r for r in rows if r["length"] == FIXED_LENGTH and r["sweep"] == "batch"]
    left.plot([r["length"] for r in by_len], [r["step_s"] for r in by_len], "o-")
    left.set(xlabel="sequence length L (tokens)", ylabel="seconds per training step",
             title=f"batch {FIXED_BATCH}", xscale="log", yscale="log")
    right.plot([r["batch"] for r in by_batch], [r["step_s"] for r in by_batch], "o-")
    right.set(xlabel="batch size B", title=f"L = {FIXED_LENGTH}", xscale="log", yscale="log")
    for ax, ticks in ((left, [r["length"] for r in by_len]), (right, [r["batch"] for r in by_batch])):
        ax.minorticks_off()
        ax.set_xticks(ticks, [str(v) for v in ticks])
        ax.set_yticks(YTICKS, [str(v) for v in YTICKS])
        ax.grid(True, alpha=0.3)
    threads = rows[0].get("threads", "?")
    fig.suptitle("LoFlexMDM training step, 4x256 generator + 4x256 auxiliary, fp32, "
                 f"{threads} CPU thread(s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("docs/perf_sweep"))
    parser.add_argument("--plot-only", action="store_true", help="redraw from OUT.json")
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads(args.out.with_suffix(".json").read_text()), args.out.with_suffix(".png"))
        return
    torch.set_num_threads(args.threads)
    rows = []
    for sweep, points in (("length", [(FIXED_BATCH, n) for n in LENGTHS]),
                          ("batch", [(b, FIXED_LENGTH) for b in BATCHES])):
        for batch, length in points:
            peak = matmul_peak_gflops(torch.device("cpu"), seconds=0.5)
            seconds = step_seconds(batch, length, args.repeats)
            rows.append({"sweep": sweep, "batch": batch, "length": length, "step_s": seconds,
                         "threads": args.threads,
                         "seqs_per_s": batch / seconds, "matmul_peak_gflops": peak})
            print(json.dumps(rows[-1]), flush=True)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    plot(rows, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
