"""Tests of the DDiT generator (docs/method.md §4.1) and its rate heads (2.4)."""

from __future__ import annotations

import math

import pytest
import torch
from loflex.contracts import Generator, Prediction
from loflex.contracts.vocab import EOS, PAD
from loflex.default_plugins.transformer import (
    Block,
    Rotary,
    ScalarRateHead,
    TransformerGenerator,
    Trunk,
)
from loflex.errors import ConfigError
from loflex.extension import registry

V = 11


def make(learn_unmask: bool = False, perturb: bool = True, seed: int = 0, **options):
    """A small generator; ``perturb`` makes every zero-initialised weight non-zero."""
    torch.manual_seed(seed)
    opts = TransformerGenerator.Options(layers=2, width=32, heads=4, cond_dim=16, **options)
    gen = TransformerGenerator(opts, vocab_size=V, max_length=64, learn_unmask=learn_unmask)
    if perturb:
        with torch.no_grad():
            for param in gen.parameters():
                param.add_(0.3 * torch.randn_like(param))
    return gen.eval()


def tokens(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(4, V, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_shapes_and_registration():
    gen = make(learn_unmask=True)
    x, t = tokens(3, 7), torch.rand(3)
    pred = gen(x, t, torch.ones(3, 7, dtype=torch.bool))
    assert isinstance(pred, Prediction)
    assert pred.logits.shape == (3, 7, V)
    assert pred.insert_multiplier.shape == (3, 7) and pred.insert_multiplier.dtype == torch.float32
    assert pred.unmask_rate.shape == (3, 7)
    assert registry.components(Generator)["transformer"] is TransformerGenerator
    assert gen.trunk.width == 32 and gen.trunk.cond_dim == 16


def test_no_unmask_head_without_learn_unmask():
    gen = make(learn_unmask=False)
    pred = gen(tokens(2, 5), torch.rand(2), torch.ones(2, 5, dtype=torch.bool))
    assert pred.unmask_rate is None
    assert not any("unmask" in name for name, _ in gen.named_parameters())


def test_width_must_divide_heads():
    with pytest.raises(ConfigError, match="heads"):
        registry.validate_options(Generator, "transformer", {"width": 30, "heads": 4})
    with pytest.raises(ConfigError):
        registry.validate_options(Generator, "transformer", {"layerz": 2})


def test_appended_padding_changes_nothing():
    gen = make()
    x, t = tokens(2, 6), torch.tensor([0.3, 0.8])
    real = torch.ones(2, 6, dtype=torch.bool)
    base = gen(x, t, real)
    padded = torch.cat([x, torch.full((2, 5), PAD)], dim=1)
    real_padded = torch.cat([real, torch.zeros(2, 5, dtype=torch.bool)], dim=1)
    out = gen(padded, t, real_padded)
    torch.testing.assert_close(out.logits[:, :6], base.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.insert_multiplier[:, :6], base.insert_multiplier, atol=1e-5, rtol=1e-5)


def test_longer_row_in_batch_changes_nothing():
    gen = make()
    short, t = tokens(1, 4, seed=2), torch.tensor([0.4])
    alone = gen(short, t, torch.ones(1, 4, dtype=torch.bool))
    long = tokens(1, 9, seed=3)
    x = torch.cat([torch.cat([short, torch.full((1, 5), PAD)], 1), long])
    real = x != PAD
    both = gen(x, torch.tensor([0.4, 0.9]), real)
    torch.testing.assert_close(both.logits[:1, :4], alone.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both.insert_multiplier[:1, :4], alone.insert_multiplier, atol=1e-5, rtol=1e-5)


def test_positions_are_compacted_over_real_slots():
    """Interleaved padding is skipped: position ids are cumsum(real) - 1."""
    gen = make()
    x, t = tokens(1, 5, seed=4), torch.tensor([0.5])
    base = gen(x, t, torch.ones(1, 5, dtype=torch.bool))
    holey = torch.tensor([[x[0, 0], PAD, x[0, 1], x[0, 2], PAD, PAD, x[0, 3], x[0, 4]]])
    real = holey != PAD
    out = gen(holey, t, real)
    torch.testing.assert_close(out.logits[real][None], base.logits, atol=1e-5, rtol=1e-5)
    # If the holes were real slots the positions (and so the outputs) would differ.
    shifted = gen(holey, t, torch.ones_like(real))
    assert not torch.allclose(shifted.logits[real][None], base.logits, atol=1e-3)


@pytest.mark.parametrize("gradient", [False, True], ids=["inference", "training"])
def test_rotary_rotates_pairs_by_position_angles(gradient):
    """Both paths (fewer passes without a gradient) give the closed form."""
    rot = Rotary(4, base=100.0)
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], requires_grad=gradient).reshape(1, 1, 1, 5)
    cos, sin = rot.angles(torch.tensor([[3]]))
    y = rot.rotate(x, cos, sin).flatten()
    # Frequencies 1 and 1/10; pairs are (x0, x2) and (x1, x3); channel 4 passes through.
    a, b = 3.0, 0.3
    expected = [1 * math.cos(a) - 3 * math.sin(a), 2 * math.cos(b) - 4 * math.sin(b),
                3 * math.cos(a) + 1 * math.sin(a), 4 * math.cos(b) + 2 * math.sin(b), 5.0]
    torch.testing.assert_close(y, torch.tensor(expected), atol=1e-5, rtol=1e-5)


def test_zero_init_vocab_head_gives_uniform_logits():
    gen = make(perturb=False)
    pred = gen(tokens(2, 6), torch.rand(2), torch.ones(2, 6, dtype=torch.bool))
    assert torch.equal(pred.logits, torch.zeros(2, 6, V))
    torch.testing.assert_close(pred.logits.softmax(-1), torch.full((2, 6, V), 1 / V))


def test_adaln_zero_block_is_identity_at_init():
    torch.manual_seed(0)
    block = Block(width=16, heads=2, cond_dim=8, rotary=Rotary(8))
    x, cond = torch.randn(2, 5, 16), torch.randn(2, 8)
    cos, sin = block.rotary.angles(torch.arange(5).expand(2, 5))
    keys = torch.ones(2, 1, 1, 5, dtype=torch.bool)
    assert torch.equal(block(x, cond, (cos, sin), keys), x)


def test_softplus_head_at_init_is_closed_form():
    head = ScalarRateHead(width=8, cond_dim=4, min_rate=0.5, max_rate=10.0)
    torch.nn.init.zeros_(head.mlp[-1].weight)  # s = last bias = -4
    b = head(torch.randn(2, 3, 8), torch.randn(2, 4))
    expected = math.log1p(math.exp(-4.0)) * (10.0 - 0.5) + 0.5
    torch.testing.assert_close(b, torch.full((2, 3), expected))


def test_exp_head_is_closed_form():
    head = ScalarRateHead(width=8, cond_dim=4, min_rate=0.25, fn="exp")
    torch.nn.init.zeros_(head.mlp[-1].weight)
    torch.nn.init.constant_(head.mlp[-1].bias, math.log(3.0))
    b = head(torch.randn(2, 3, 8), torch.randn(2, 4))
    torch.testing.assert_close(b, torch.full((2, 3), 3.25))


@pytest.mark.parametrize("fn", ["softplus", "exp"])
def test_rates_positive_and_floored(fn):
    gen = make(learn_unmask=True, min_rate=0.7, scalar_fn=fn)
    pred = gen(tokens(4, 9), torch.rand(4), torch.ones(4, 9, dtype=torch.bool))
    for rate in (pred.insert_multiplier, pred.unmask_rate):
        assert rate.dtype == torch.float32
        assert bool((rate >= 0.7).all()) and bool(torch.isfinite(rate).all())
        assert rate.std() > 0  # not a constant


def test_time_conditions_rates_only_through_adaln():
    x, real = tokens(1, 6), torch.ones(1, 6, dtype=torch.bool)
    early, late = torch.tensor([0.1]), torch.tensor([0.9])
    gen = make(perturb=True)
    assert not torch.allclose(gen(x, early, real).insert_multiplier, gen(x, late, real).insert_multiplier)
    # With every adaLN modulation at its zero init, t cannot reach any output.
    zero = make(perturb=False)
    torch.testing.assert_close(zero(x, early, real).insert_multiplier, zero(x, late, real).insert_multiplier)


def test_no_nan_for_rows_of_padding():
    gen = make(learn_unmask=True)
    x = torch.full((3, 6), PAD)
    x[0, 0] = EOS  # only EOS
    x[2, :4] = tokens(1, 4)[0]
    real = x != PAD  # row 1 is entirely padding
    pred = gen(x, torch.rand(3), real)
    for value in (pred.logits, pred.insert_multiplier, pred.unmask_rate):
        assert bool(torch.isfinite(value).all())


def test_dropout_only_in_training_mode():
    gen = make(dropout=0.5)
    x, t, real = tokens(2, 8), torch.rand(2), torch.ones(2, 8, dtype=torch.bool)
    assert torch.equal(gen(x, t, real).logits, gen(x, t, real).logits)
    gen.train()
    assert not torch.equal(gen(x, t, real).logits, gen(x, t, real).logits)


def test_trunk_output_and_rate_head_under_bf16_autocast():
    gen = make()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = gen.trunk(tokens(2, 5), torch.rand(2), torch.ones(2, 5, dtype=torch.bool))
        rate = gen.insert_head(out.hidden, out.cond)
    assert out.hidden.shape == (2, 5, 32) and out.cond.shape == (2, 16)
    assert rate.dtype == torch.float32


def test_trunk_signature_defaults():
    trunk = Trunk(vocab_size=V, layers=1, width=16, heads=2, max_length=8)
    assert trunk.cond_dim == 128 and len(trunk.blocks) == 1


def block_params(d: int, c: int) -> int:
    """qkv + out (no bias), 4x MLP with biases, adaLN(6) with bias, two LayerNorm scales."""
    return 3 * d * d + d * d + (d * 4 * d + 4 * d) + (4 * d * d + d) + (c * 6 * d + 6 * d) + 2 * d


def test_paper_size_parameter_count():
    """12 x 768 with 12 heads: about 93.8M without the embedding and vocab projection."""
    opts = TransformerGenerator.Options(layers=12, width=768, heads=12)
    gen = TransformerGenerator(opts, vocab_size=V, max_length=8, learn_unmask=True)
    excluded = gen.trunk.embed.weight.numel() + gen.vocab_head.proj.weight.numel()
    count = sum(p.numel() for p in gen.parameters()) - excluded
    d, c = 768, 128
    time_mlp = 256 * c + c + c * c + c
    vocab_adaln = c * 2 * d + 2 * d + d
    rate_head = (c * 2 * d + 2 * d) + d + (d * d + d) + (d + 1)
    assert count == 12 * block_params(d, c) + time_mlp + vocab_adaln + 2 * rate_head
    assert abs(count - 93.8e6) / 93.8e6 < 0.01


def test_module_apply_and_state_dict():
    gen = make(perturb=False)
    seen = []
    gen.apply(lambda module: seen.append(type(module).__name__))
    assert "Rotary" in seen and "ScalarRateHead" in seen
    keys = gen.state_dict().keys()
    assert not any("freq" in key for key in keys)  # rotary/time frequencies are not weights
    fresh = make(perturb=True, seed=5)
    fresh.load_state_dict(gen.state_dict())
    x, t, real = tokens(1, 4), torch.rand(1), torch.ones(1, 4, dtype=torch.bool)
    assert torch.equal(fresh(x, t, real).insert_multiplier, gen(x, t, real).insert_multiplier)


def hand_attention(block: Block, m: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rotary softmax attention over every key, from the block's weights, written out."""
    b, n, d = m.shape
    heads, dh = block.heads, d // block.heads
    q, k, v = (m @ block.qkv.weight.T).split(d, dim=-1)  # (B, L, D) each

    def split(z):
        return z.reshape(b, n, heads, dh).transpose(1, 2)  # (B, H, L, Dh)

    inv_freq = 10000.0 ** (-torch.arange(0, dh, 2).float() / dh)  # (Dh/2,)
    theta = positions.float()[:, None, :, None] * inv_freq  # (B, 1, L, Dh/2)

    def rope(z):
        z1, z2 = z[..., :dh // 2], z[..., dh // 2:]
        return torch.cat([z1 * theta.cos() - z2 * theta.sin(),
                          z2 * theta.cos() + z1 * theta.sin()], dim=-1)

    q, k, v = rope(split(q)), rope(split(k)), split(v)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), dim=-1)  # (B, H, L, L)
    y = (weights @ v).transpose(1, 2).reshape(b, n, d)
    return y @ block.attn_out.weight.T


def hand_block(block: Block, x: torch.Tensor, cond: torch.Tensor, form: str) -> torch.Tensor:
    """One block by hand: per sub-block m = norm(x)(1 + scale) + shift, then the residual."""
    mods = (cond @ block.adaln.weight.T + block.adaln.bias).chunk(6, dim=-1)
    shift1, scale1, gate1, shift2, scale2, gate2 = (z[:, None, :] for z in mods)
    positions = torch.arange(x.shape[1]).expand(x.shape[0], -1)

    def norm(z, weight):
        mean = z.mean(-1, keepdim=True)
        var = ((z - mean) ** 2).mean(-1, keepdim=True)
        return (z - mean) / torch.sqrt(var + 1e-5) * weight

    def mlp(z):
        first, last = block.mlp[0], block.mlp[2]
        return torch.relu(z @ first.weight.T + first.bias) @ last.weight.T + last.bias

    m = norm(x, block.norm1.weight) * (1 + scale1) + shift1
    x = (m if form == "reference" else x) + gate1 * hand_attention(block, m, positions)
    m = norm(x, block.norm2.weight) * (1 + scale2) + shift2
    return (m if form == "reference" else x) + gate2 * mlp(m)


@pytest.mark.parametrize("form", ["reference", "pre-norm"])
def test_block_forms_match_a_hand_written_block(form):
    torch.manual_seed(3)
    block = Block(width=16, heads=2, cond_dim=8, rotary=Rotary(8), block_form=form)
    with torch.no_grad():
        for param in block.parameters():
            param.add_(0.3 * torch.randn_like(param))
    x, cond = torch.randn(2, 5, 16), torch.randn(2, 8)
    cos, sin = block.rotary.angles(torch.arange(5).expand(2, 5))
    keys = torch.ones(2, 1, 1, 5, dtype=torch.bool)
    with torch.no_grad():
        out = block(x, cond, (cos, sin), keys)
        expected = hand_block(block, x, cond, form)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_reference_block_at_init_is_the_normalised_input():
    torch.manual_seed(0)
    block = Block(width=16, heads=2, cond_dim=8, rotary=Rotary(8), block_form="reference")
    x, cond = 3.0 * torch.randn(2, 5, 16) + 1.0, torch.randn(2, 8)
    cos, sin = block.rotary.angles(torch.arange(5).expand(2, 5))
    keys = torch.ones(2, 1, 1, 5, dtype=torch.bool)
    out = block(x, cond, (cos, sin), keys)
    mean, std = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True).add(1e-5).sqrt()
    torch.testing.assert_close(out, (x - mean) / std, atol=1e-5, rtol=1e-5)


def test_generator_options_reach_every_block():
    gen = make(block_form="reference", attention_dropout=0.25)
    assert all(b.block_form == "reference" and b.attention_dropout == 0.25
               for b in gen.trunk.blocks)
    assert all(b.block_form == "pre-norm" and b.attention_dropout == 0.0
               for b in make().trunk.blocks)
    with pytest.raises(ConfigError, match="block_form"):
        registry.validate_options(Generator, "transformer", {"block_form": "post-norm"})
    with pytest.raises(ConfigError, match="block_form"):
        Block(width=16, heads=2, cond_dim=8, rotary=Rotary(8), block_form="post-norm")


def test_attention_dropout_only_in_training_mode():
    gen = make(attention_dropout=0.5)
    x, t, real = tokens(2, 8), torch.rand(2), torch.ones(2, 8, dtype=torch.bool)
    assert torch.equal(gen(x, t, real).logits, gen(x, t, real).logits)
    gen.train()
    assert not torch.equal(gen(x, t, real).logits, gen(x, t, real).logits)
    plain = make().train()  # no dropout anywhere: training mode stays deterministic
    assert torch.equal(plain(x, t, real).logits, plain(x, t, real).logits)


def test_attention_dropout_drops_attention_probabilities():
    """With v = 1 for every key, attention returns 1 whatever the weights; dropping the
    probabilities scales each output by (kept mass) / (1 - p), which is not 1."""
    torch.manual_seed(0)
    block = Block(width=4, heads=1, cond_dim=2, rotary=Rotary(4), attention_dropout=0.5)
    with torch.no_grad():
        block.qkv.weight.zero_()
        block.qkv.weight[8:] = torch.eye(4)  # v = x
        block.attn_out.weight.copy_(torch.eye(4))
    x = torch.ones(1, 16, 4)
    rope = block.rotary.angles(torch.arange(16)[None])
    keys = torch.ones(1, 1, 1, 16, dtype=torch.bool)
    torch.testing.assert_close(block.eval().attention(x, rope, keys), x)
    dropped = block.train().attention(x, rope, keys)
    assert not torch.allclose(dropped, x)
    # every output is (kept keys / 16) / (1 - p), a multiple of 1/8
    torch.testing.assert_close(dropped * 8, (dropped * 8).round())


def test_flexmdm_insert_head_is_softplus_times_max_length():
    """The reference FlexMDM length head: softplus(s) x max_length (64 here), whatever the
    rate-head options; the unmask head keeps them."""
    gen = make(learn_unmask=True, perturb=False, insert_head="flexmdm", min_rate=0.5,
               scalar_fn="exp")
    for head in (gen.insert_head, gen.unmask_head):
        torch.nn.init.zeros_(head.mlp[-1].weight)
        torch.nn.init.constant_(head.mlp[-1].bias, 0.3)
    pred = gen(tokens(2, 5), torch.rand(2), torch.ones(2, 5, dtype=torch.bool))
    torch.testing.assert_close(pred.insert_multiplier, torch.full((2, 5), math.log1p(math.exp(0.3)) * 64))
    torch.testing.assert_close(pred.unmask_rate, torch.full((2, 5), math.exp(0.3) + 0.5))
    rate = make(perturb=False)
    torch.nn.init.zeros_(rate.insert_head.mlp[-1].weight)
    out = rate(tokens(1, 3), torch.rand(1), torch.ones(1, 3, dtype=torch.bool))
    torch.testing.assert_close(out.insert_multiplier, torch.full((1, 3), math.log1p(math.exp(-4)) * 100))
    with pytest.raises(ConfigError, match="insert_head"):
        registry.validate_options(Generator, "transformer", {"insert_head": "length"})


def test_absolute_positions_add_a_learned_position_table():
    from loflex.default_plugins.transformer import Trunk

    torch.manual_seed(0)
    plain = Trunk(12, 1, 16, 2, max_length=8)
    with_table = Trunk(12, 1, 16, 2, max_length=8, absolute_positions=True)
    assert plain.position_embed is None
    assert with_table.position_embed.weight.shape == (8, 16)
    x = torch.tensor([[3, 4, 5, 6]])
    real = torch.ones_like(x, dtype=torch.bool)
    t = torch.tensor([0.5])
    with torch.no_grad():
        with_table.position_embed.weight.zero_()
        with_table.position_embed.weight[2] = 1.0
        hidden = with_table(x, t, real).hidden
        embedded = with_table.embed(x)
    # The blocks start as the identity (adaLN-zero), so the hidden state is the sum of
    # the token and position embeddings: only slot 2 moves, by exactly one.
    expected = embedded.clone()
    expected[0, 2] += 1.0
    torch.testing.assert_close(hidden, expected)
    # A slot beyond the table reuses its last row.
    long_x = torch.arange(10)[None] % 12
    with torch.no_grad():
        out = with_table(long_x, t, torch.ones_like(long_x, dtype=torch.bool)).hidden
    torch.testing.assert_close(out[0, 9] - with_table.embed(long_x)[0, 9],
                               with_table.position_embed.weight[7])
