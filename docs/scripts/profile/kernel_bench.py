"""Two kernel micro-benchmarks quoted in docs/performance.md ("What changed").

    python docs/scripts/profile/kernel_bench.py [--threads N]

1. One AdamW step over 4.2M parameters (64 matrices of 256 x 256): the fused kernel against
   foreach, alternated twice, median CPU milliseconds of 20 steps each.
2. A 2,304 x 256 by 256 x 1,024 linear layer, the first MLP layer of the side-by-side
   configuration: with its bias inside the multiply (`addmm`) against a bias-free multiply
   and an in-place bias add, under bf16 autocast and with bf16-stored weights.
3. The sampler's no-gradient kernels at the side-by-side configuration's shapes (batch 64,
   36 slots, 4 heads of 64, bf16 autocast), against what they replace: the oneDNN
   bias-fused linear (`loflex.default_plugins.inference_kernels.Linear`) against `addmm`,
   `rotate_halves` against the training rotation, and flash attention against the math
   kernel.
"""

from __future__ import annotations

import argparse
import functools
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


def sampler_kernels_ms() -> dict[str, float]:
    from loflex.default_plugins.inference_kernels import Linear, rotate_halves
    from loflex.default_plugins.transformer import Rotary
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    batch, slots, heads, head_dim = 64, 36, 4, 64
    out = {}
    fused, plain = Linear(256, 1024), torch.nn.Linear(256, 1024)
    x = torch.randn(batch * slots, 256)
    rotary = Rotary(head_dim)
    cos, sin = rotary.angles(torch.arange(slots).expand(batch, slots))
    shape = (batch, slots, 1, 1, head_dim // 2)
    cos, sin = cos.reshape(shape), sin.reshape(shape)
    qk = torch.randn(batch * slots, 3 * heads * head_dim).bfloat16()
    qk = qk.view(batch, slots, 3, heads, head_dim).split([2, 1], dim=2)[0]
    q, k, v = (torch.randn(batch, heads, slots, head_dim).bfloat16() for _ in range(3))
    attention = torch.nn.functional.scaled_dot_product_attention
    cpu_ms = functools.partial(median_ms, clock=time.process_time)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out["linear 256->1024 addmm"] = cpu_ms(lambda: plain(x))
        out["linear 256->1024 oneDNN fused"] = cpu_ms(lambda: fused(x))
        out["rotary (training form)"] = cpu_ms(lambda: rotary._rotate_with_gradient(qk, cos, sin))
        out["rotary rotate_halves"] = cpu_ms(lambda: rotate_halves(qk, cos, sin))
        with sdpa_kernel(SDPBackend.MATH):
            out["attention math"] = cpu_ms(lambda: attention(q, k, v))
        out["attention flash"] = cpu_ms(lambda: attention(q, k, v))
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
    torch.set_num_threads(args.threads)
    for name, ms in sampler_kernels_ms().items():
        print(f"sampler {name:<30} {ms:6.2f} ms CPU")


if __name__ == "__main__":
    main()
