"""Faster kernels for the transformer's forward when no gradient is taken (sampling).

Each function computes what the training path computes, to the rounding of its dtype; a
call that needs a gradient, or a tensor these kernels do not cover, takes the plain path.

- :class:`Linear`: under bf16 autocast on a CPU, one oneDNN call with the bias fused into
  the multiply. ``addmm`` first copies the broadcast bias into its bf16 output and then
  multiplies; that copy costs about a third of the call at the sampler's shapes.
- :func:`rotate_halves`: the rotary rotation written into one output tensor, with the
  angles in the activations' dtype, instead of eight passes with an fp32 promotion.
"""

from __future__ import annotations

import torch
from torch import nn


def _onednn_linear_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


ONEDNN_LINEAR = _onednn_linear_available()


def no_gradient(*tensors: torch.Tensor) -> bool:
    """True when autograd records nothing for ``tensors``."""
    return not torch.is_grad_enabled() or not any(t.requires_grad for t in tensors)


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters, same checkpoints) with a bias-fused bf16 CPU kernel.

    The fused kernel runs under CPU bf16 autocast when no gradient is taken and the call is
    not being compiled (the compiler fuses on its own); it reads bf16 copies of the weight
    and bias, refreshed whenever the parameters change in place.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x W^T + b`` for ``x`` (..., in_features)."""
        if not (ONEDNN_LINEAR and x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
                and torch.get_autocast_dtype("cpu") == torch.bfloat16
                and no_gradient(x, self.weight) and not torch.compiler.is_compiling()):
            return super().forward(x)
        weight, bias = self._bf16_parameters()
        return torch.ops.mkldnn._linear_pointwise(x.to(torch.bfloat16), weight, bias,
                                                  "none", [], "")

    def _bf16_parameters(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """bf16 copies of (weight, bias), cached until a parameter is modified."""
        params = (self.weight,) if self.bias is None else (self.weight, self.bias)
        key = tuple((p.data_ptr(), p._version) for p in params)
        cached = getattr(self, "_bf16_cache", None)
        if cached is None or cached[0] != key:
            copies = tuple(p.detach().to(torch.bfloat16) for p in params)
            cached = (key, copies[0], copies[1] if len(copies) > 1 else None)
            self._bf16_cache = cached
        return cached[1], cached[2]


def rotate_halves(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """[x1, x2, rest] -> [x1 cos - x2 sin, x2 cos + x1 sin, rest], no gradient taken.

    Args:
        x: (..., Dh) activations; the first ``2 * cos.shape[-1]`` channels are rotated.
        cos, sin: angles broadcastable to x's leading dims, (..., dim/2).

    Returns:
        A new tensor shaped and typed like ``x``.
    """
    half = cos.shape[-1]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:2 * half]
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    o1, o2 = out[..., :half], out[..., half:2 * half]
    torch.mul(x1, cos, out=o1).addcmul_(x2, sin, value=-1)
    torch.mul(x2, cos, out=o2).addcmul_(x1, sin)
    if x.shape[-1] > 2 * half:
        out[..., 2 * half:] = x[..., 2 * half:]
    return out

