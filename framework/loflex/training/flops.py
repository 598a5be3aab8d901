"""FLOP counting: torch's ``FlopCounterMode`` plus the CPU kernels it has no formula for.

torch counts matrix multiplies and the GPU attention kernels; loflex also runs the CPU
flash-attention kernel (fp32 training and every sampler on a CPU) and the oneDNN
bias-fused linear (bf16 sampling, :mod:`loflex.default_plugins.inference_kernels`).
Without their formulas a FLOP count of those runs leaves out most of the work.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count


def _linear_flop(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
    """2 M N K for X (..., K) times W^T with W (N, K)."""
    return 2 * math.prod(x_shape[:-1]) * x_shape[-1] * w_shape[0]


def _cpu_flash_flop(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(q_shape, k_shape, v_shape)


def _cpu_flash_backward_flop(grad_shape, q_shape, k_shape, v_shape, *args, out_shape=None,
                             **kwargs) -> int:
    return sdpa_backward_flop_count(grad_shape, q_shape, k_shape, v_shape)


def _extra_formulas() -> dict:
    aten = torch.ops.aten
    formulas = {
        aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_flop,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_flash_backward_flop,
    }
    if hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        formulas[torch.ops.mkldnn._linear_pointwise] = _linear_flop
    return formulas


def flop_counter() -> FlopCounterMode:
    """A silent ``FlopCounterMode`` that also counts loflex's CPU kernels."""
    return FlopCounterMode(display=False, custom_mapping=_extra_formulas())


def count_flops(fn: Callable[[], object]) -> float:
    """FLOPs of one call of ``fn``."""
    counter = flop_counter()
    with counter:
        fn()
    return float(counter.get_total_flops())
