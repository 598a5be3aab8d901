"""The sampler's no-gradient kernels compute what the training path computes."""

from __future__ import annotations

import math

import pytest
import torch
from loflex.default_plugins import inference_kernels
from loflex.default_plugins.inference_kernels import Linear, rotate_halves
from loflex.default_plugins.transformer import (
    Rotary,
    TransformerGenerator,
    attend,
)

BF16 = dict(atol=3e-2, rtol=3e-2)


def bf16_autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_under_bf16_inference_is_the_affine_map(bias):
    torch.manual_seed(0)
    layer = Linear(16, 24, bias=bias)
    x = torch.randn(2, 5, 16)
    expected = x.double() @ layer.weight.double().T
    if bias:
        expected = expected + layer.bias.double()
    with torch.no_grad(), bf16_autocast():
        got = layer(x)
    assert got.shape == (2, 5, 24) and got.dtype == torch.bfloat16
    torch.testing.assert_close(got.double(), expected, **BF16)
    assert hasattr(layer, "_bf16_cache") == inference_kernels.ONEDNN_LINEAR


def test_linear_sees_parameters_changed_in_place():
    """The bf16 copies are refreshed after an optimiser-style in-place update."""
    torch.manual_seed(0)
    layer = Linear(8, 4)
    x = torch.randn(3, 8)
    with torch.no_grad(), bf16_autocast():
        before = layer(x)
        layer.weight.mul_(-1.0)
        layer.bias.add_(2.0)
        after = layer(x)
    expected = x.double() @ layer.weight.double().T + layer.bias.double()
    torch.testing.assert_close(after.double(), expected, **BF16)
    assert not torch.allclose(before.float(), after.float(), atol=1e-1)


def test_linear_with_a_gradient_takes_the_autograd_path():
    torch.manual_seed(0)
    layer = Linear(8, 4)
    with bf16_autocast():
        layer(torch.randn(3, 8)).float().sum().backward()
    assert layer.weight.grad is not None and layer.bias.grad is not None
    assert torch.equal(layer.bias.grad, torch.full((4,), 3.0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rotate_halves_matches_the_training_rotation(dtype):
    """Rotated channels and the channels past the rotary dim, against the autograd path."""
    torch.manual_seed(0)
    rot = Rotary(8)
    x = torch.randn(2, 6, 2, 3, 12).to(dtype)  # (B, L, q/k, H, Dh) with 4 channels passed
    cos, sin = rot.angles(torch.arange(6).expand(2, 6))
    shape = (2, 6, 1, 1, 4)
    expected = rot.rotate(x.float().clone().requires_grad_(), cos.reshape(shape), sin.reshape(shape))
    got = rotate_halves(x, cos.reshape(shape), sin.reshape(shape))
    assert got.dtype == dtype and got.is_contiguous()
    tolerance = dict(atol=1e-6, rtol=1e-6) if dtype == torch.float32 else BF16
    torch.testing.assert_close(got.float(), expected.detach(), **tolerance)
    torch.testing.assert_close(got[..., 8:], x[..., 8:], atol=0, rtol=0)


@pytest.mark.parametrize("gradient", [False, True], ids=["flash", "math"])
def test_cpu_bf16_attention_with_and_without_gradient(gradient):
    """attend() in bf16 on a CPU against attention written out in fp64, on both kernels."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, dtype=torch.float64) for _ in range(3))
    keys = torch.tensor([[True] * 5, [True, True, True, False, False]])[:, None, None, :]
    weights = ((q @ k.transpose(-1, -2)) / math.sqrt(8)).masked_fill(~keys, -math.inf)
    expected = weights.softmax(-1) @ v
    inputs = [t.bfloat16().requires_grad_(gradient) for t in (q, k, v)]
    got = attend(*inputs, keys)
    assert got.dtype == torch.bfloat16 and got.requires_grad == gradient
    torch.testing.assert_close(got.double(), expected, **BF16)


def test_generator_in_bf16_inference_matches_its_training_forward():
    """One bf16 forward of a perturbed generator, no gradient against with gradient, on a
    batch with padding (masked keys) and one without (no key mask)."""
    torch.manual_seed(0)
    opts = TransformerGenerator.Options(layers=2, width=64, heads=4, cond_dim=16)
    gen = TransformerGenerator(opts, vocab_size=11, max_length=32)
    with torch.no_grad():
        for param in gen.parameters():
            param.add_(0.1 * torch.randn_like(param))
    gen.eval()
    x = torch.randint(4, 11, (3, 9))
    t = torch.tensor([0.2, 0.5, 0.9])
    for real in (torch.ones(3, 9, dtype=torch.bool), torch.arange(9) < torch.tensor([[9], [6], [3]])):
        with bf16_autocast():
            trained = gen(x, t, real)
            with torch.no_grad():
                sampled = gen(x, t, real)
        assert trained.logits.requires_grad and not sampled.logits.requires_grad
        torch.testing.assert_close(sampled.logits.float()[real], trained.logits.float()[real],
                                   atol=5e-2, rtol=5e-2)
        torch.testing.assert_close(sampled.insert_multiplier[real],
                                   trained.insert_multiplier[real], atol=5e-2, rtol=5e-2)


def test_flop_count_covers_the_cpu_kernels():
    """FLOPs of the oneDNN linear and CPU flash attention (forward and backward) against
    their closed forms: 2 M N K, and 4 B H L S D forward (two products) plus twice that
    and a recomputed score product backward (torch's sdpa formulas)."""
    from loflex.training.flops import count_flops

    layer = Linear(16, 24)
    x = torch.randn(10, 16)
    with torch.no_grad(), bf16_autocast():
        linear = count_flops(lambda: layer(x))
    assert linear == 2 * 10 * 16 * 24

    b, h, n, d = 2, 3, 5, 8
    q, k, v = (torch.randn(b, h, n, d, requires_grad=True) for _ in range(3))
    forward = count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v))
    assert forward == 4 * b * h * n * n * d
    both = count_flops(
        lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v).sum().backward())
    assert both == forward + 10 * b * h * n * n * d
