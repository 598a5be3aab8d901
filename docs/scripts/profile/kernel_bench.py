"""Two kernel micro-benchmarks quoted in docs/performance.md ("What changed").

    python docs/scripts/profile/kernel_bench.py [--threads N]

1. One AdamW step over 4.2M parameters (64 matrices of 256 x 256): the fused kernel against
   foreach, alternated twice, median CPU milliseconds of 20 steps each.
2. A 2,304 x 256 by 256 x 1,024 linear layer, the first MLP layer of the side-by-side
   configuration: with its bias inside the multiply (`addmm`) against a bias-free multiply
   and an in-place bias add, under bf16 autocast and with bf16-stored weights.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def median_ms(fn, repeats: int = 20, warmup: int = 3, clock=time.perf_counter) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return 1e3 * statistics.median(times)


def adamw_step_ms(kind: str) -> float:
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(256, 256)) for _ in range(64)]
    for p in params:
        p.grad = torch.randn_like(p)
    optimizer = torch.optim.AdamW(params, lr=1e-3, **{kind: True})
    return median_ms(optimizer.step, clock=time.process_time)


def linear_ms() -> dict[str, float]:
    layer = torch.nn.Linear(256, 1024)
    x = torch.randn(2304, 256)
    weight, bias = layer.weight.bfloat16(), layer.bias.bfloat16()
    xb = x.bfloat16()
    out = {}
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out["autocast addmm"] = median_ms(lambda: layer(x))
        out["autocast mm + add_"] = median_ms(lambda: torch.mm(x, layer.weight.t()).add_(layer.bias))
    with torch.no_grad():
        out["bf16 addmm"] = median_ms(lambda: torch.nn.functional.linear(xb, weight, bias))
        out["bf16 mm + add_"] = median_ms(lambda: torch.nn.functional.linear(xb, weight).add_(bias))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for kind in ("foreach", "fused", "foreach", "fused"):
        print(f"AdamW {kind:<8} {adamw_step_ms(kind):6.1f} ms CPU per step")
    torch.set_num_threads(max(2, args.threads))
    for name, ms in linear_ms().items():
        print(f"linear {name:<20} {ms:6.2f} ms")


if __name__ == "__main__":
    main()
