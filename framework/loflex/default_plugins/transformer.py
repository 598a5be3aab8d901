"""The DDiT generator: a bidirectional transformer with adaLN-zero time conditioning.

Architecture (docs/method.md §4.1): token embedding; a timestep embedder giving the
condition ``c``; blocks of rotary self-attention and a 4x MLP, each modulated by
shift/scale/gate from ``c`` (adaLN-zero, so every block is the identity at init);
a vocabulary head (adaLN + LayerNorm + zero-init linear) and scalar rate heads.
Rotary position ids are ``cumsum(real) - 1``: contiguous over the non-pad slots of
the compacted ``x_t``, so padding anywhere in a row changes nothing.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from loflex.contracts import Generator, Options, Prediction, TrunkOutput
from loflex.default_plugins.inference_kernels import Linear, no_gradient, rotate_halves
from loflex.errors import ConfigError
from loflex.extension.hookspecs import hookimpl

ACTIVATIONS = {"relu": lambda: nn.ReLU(inplace=True), "gelu": lambda: nn.GELU(approximate="tanh")}
BLOCK_FORMS = ("pre-norm", "reference")


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Return ``x * (1 + scale) + shift`` with (B, C) modulations broadcast over L."""
    return torch.addcmul(shift[:, None], x, 1 + scale[:, None])


class LayerNorm(nn.Module):
    """LayerNorm with a scale and no bias, computed in fp32 (outside autocast)."""

    def __init__(self, width: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            y = F.layer_norm(x.float(), (x.shape[-1],), self.weight.float(), None, self.eps)
        return y.to(x.dtype)


class TimestepEmbedder(nn.Module):
    """Embed t in [0, 1]: 256-dim sinusoid (max period 1e4) -> Linear -> SiLU -> Linear."""

    def __init__(self, cond_dim: int, frequency_dim: int = 256, max_period: float = 1e4):
        super().__init__()
        half = frequency_dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(
            nn.Linear(frequency_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim)
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """Return the (B, cond_dim) embedding of times ``t`` (B,)."""
        args = t.float()[:, None] * self.freqs[None]  # (B, 128)
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


class Rotary(nn.Module):
    """Rotary embedding on the first ``dim`` channels of each head (GPT-NeoX halves)."""

    def __init__(self, dim: int, base: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.dim = dim

    def angles(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return cos and sin (B, 1, L, dim/2) for integer ``positions`` (B, L)."""
        theta = positions.float()[:, None, :, None] * self.inv_freq  # (B, 1, L, dim/2)
        return theta.cos(), theta.sin()

    def rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Rotate ``x`` (..., B, H, L, Dh) by the angles; channels past ``dim`` pass through."""
        return self._rotate(x, cos, sin)

    def rotate_slots(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Rotate ``x`` (B, L, ..., Dh), slots second (q and k stacked as (B, L, 2, H, Dh)).

        The angles are those of :meth:`angles`, (B, 1, L, dim/2); one call rotates every
        head of q and k together.
        """
        shape = (cos.shape[0], cos.shape[2]) + (1,) * (x.dim() - 3) + (cos.shape[3],)
        return self._rotate(x, cos.reshape(shape), sin.reshape(shape))

    def _rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """[x1, x2, rest] -> [x1 cos - x2 sin, x2 cos + x1 sin, rest].

        Without a gradient, :func:`rotate_halves` computes it in fewer passes.
        """
        if no_gradient(x):
            return rotate_halves(x, cos, sin)
        return self._rotate_with_gradient(x, cos, sin)

    def _rotate_with_gradient(self, x: torch.Tensor, cos: torch.Tensor,
                              sin: torch.Tensor) -> torch.Tensor:
        """The rotation for training: the halves come from ``split``, not slicing, so the
        backward joins their gradients with one ``cat`` instead of zero-filling a
        full-size tensor per slice."""
        half = self.dim // 2
        rest = x.shape[-1] - self.dim
        x1, x2, *passed = x.split([half, half, rest] if rest else [half, half], dim=-1)
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, *passed], dim=-1).to(x.dtype)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None,
           dropout_p: float = 0.0) -> torch.Tensor:
    """Scaled dot-product attention of q, k, v (B, H, L, Dh) over the keys of ``key_mask``.

    ``key_mask`` None attends to every key. When a gradient is taken in bf16 on a CPU the
    math kernel runs (its batched matmuls use the bf16 matrix units; the CPU flash
    kernel's backward is slower there); otherwise PyTorch picks the kernel (flash on a CPU).
    """
    if q.device.type == "cpu" and q.dtype == torch.bfloat16 and not no_gradient(q, k, v):
        with sdpa_kernel(SDPBackend.MATH):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask,
                                                  dropout_p=dropout_p)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=dropout_p)


class Block(nn.Module):
    """One DDiT block: adaLN-zero attention and MLP sub-blocks with gated residuals.

    Per sub-block f with m = modulate(norm(x), shift, scale):

    - ``pre-norm``: x <- x + gate f(m), a standard pre-norm residual (the identity at init);
    - ``reference``: x <- m + gate f(m), the reference DDiT, which replaces the residual
      stream by the normalised, modulated x before adding the branch (norm(x) at init).

    Args:
        width: D.
        heads: attention heads.
        cond_dim: C.
        rotary: the shared :class:`Rotary`.
        dropout: dropout on the attention and MLP residual branches.
        activation: MLP activation name.
        block_form: "pre-norm" or "reference".
        attention_dropout: dropout on the attention probabilities (training mode only).
    """

    def __init__(self, width: int, heads: int, cond_dim: int, rotary: Rotary,
                 dropout: float = 0.0, activation: str = "relu", *,
                 block_form: str = "pre-norm", attention_dropout: float = 0.0):
        super().__init__()
        if block_form not in BLOCK_FORMS:
            raise ConfigError(f"unknown block_form '{block_form}'; use one of "
                              f"{', '.join(BLOCK_FORMS)}")
        self.heads = heads
        self.rotary = rotary
        self.block_form = block_form
        self.attention_dropout = attention_dropout
        self.norm1, self.norm2 = LayerNorm(width), LayerNorm(width)
        self.qkv = Linear(width, 3 * width, bias=False)
        self.attn_out = Linear(width, width, bias=False)
        self.mlp = nn.Sequential(Linear(width, 4 * width), ACTIVATIONS[activation](),
                                 Linear(4 * width, width))
        self.dropout = nn.Dropout(dropout)
        self.adaln = nn.Linear(cond_dim, 6 * width)
        nn.init.zeros_(self.adaln.weight)
        nn.init.zeros_(self.adaln.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor],
                key_mask: torch.Tensor | None) -> torch.Tensor:
        """Update ``x`` (B, L, D) given ``cond`` (B, C), rotary angles and (B, 1, 1, L) keys
        (None: every key)."""
        b, n, d = x.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaln(cond).chunk(6, dim=-1)
        m = modulate(self.norm1(x), shift1, scale1)  # (B, L, D)
        h = self.attention(m, rope, key_mask)  # (B, L, D)
        x = torch.addcmul(self._residual(x, m), gate1[:, None], self.dropout(h))
        # Linear layers on (B L, D) views: 3-D inputs cost extra copies in the backward.
        m = modulate(self.norm2(x), shift2, scale2)
        h = self.mlp(m.view(b * n, d)).view(b, n, d)
        return torch.addcmul(self._residual(x, m), gate2[:, None], self.dropout(h))

    def _residual(self, x: torch.Tensor, modulated: torch.Tensor) -> torch.Tensor:
        """The stream a branch is added to: ``x`` (pre-norm) or the modulated x (reference)."""
        return modulated if self.block_form == "reference" else x

    def attention(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor],
                  key_mask: torch.Tensor | None) -> torch.Tensor:
        """Bidirectional rotary self-attention over the unmasked keys."""
        b, n, d = x.shape
        qkv = self.qkv(x.view(b * n, d)).view(b, n, 3, self.heads, d // self.heads)
        qk, v = qkv.split([2, 1], dim=2)  # split, not sliced: no zero-filled slice gradients
        qk = self.rotary.rotate_slots(qk, *rope)  # (B, L, 2, H, Dh): q and k at once
        q, k = qk.permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, L, Dh) each
        v = v.squeeze(2).transpose(1, 2)  # (B, H, L, Dh)
        p = self.attention_dropout if self.training else 0.0
        y = attend(q, k, v, key_mask, p)  # (B, H, L, Dh)
        return self.attn_out(y.transpose(1, 2).reshape(b * n, d)).view(b, n, d)


class Trunk(nn.Module):
    """The DDiT trunk: token embedding, time condition and adaLN-zero blocks.

    Shared by the generator and the auxiliary (order) network.

    Args:
        vocab_size: V.
        layers: number of blocks.
        width: D, the model width.
        heads: attention heads (D must be divisible by it); rotary dim = min(D/heads, 64).
        max_length: longest sequence the trunk is meant for (positions are computed on
            the fly, so longer inputs still work).
        dropout: dropout on the attention and MLP residual branches.
        cond_dim: C, the width of the time condition.
        activation: "relu" (the reference DDiT) or "gelu" (tanh approximation).
        absolute_positions: also add a learned embedding of each slot's position (the
            same compacted position the rotary angles use; positions past ``max_length``
            share the last row). Rotary attention alone sees only relative offsets.
        block_form: "pre-norm" (standard residual) or "reference" (the reference DDiT's
            residual on the normalised, modulated x); see :class:`Block`.
        attention_dropout: dropout on the attention probabilities (training mode only).
    """

    def __init__(self, vocab_size: int, layers: int, width: int, heads: int, max_length: int,
                 dropout: float = 0.0, cond_dim: int = 128, activation: str = "relu",
                 absolute_positions: bool = False, *, block_form: str = "pre-norm",
                 attention_dropout: float = 0.0):
        super().__init__()
        assert width % heads == 0, f"width {width} must be divisible by heads {heads}"
        self.width, self.cond_dim, self.max_length = width, cond_dim, max_length
        self.embed = nn.Embedding(vocab_size, width)
        self.time = TimestepEmbedder(cond_dim)
        self.rotary = Rotary(min(width // heads, 64))
        self.position_embed = nn.Embedding(max_length, width) if absolute_positions else None
        if self.position_embed is not None:
            nn.init.normal_(self.position_embed.weight, std=0.02)
        self.blocks = nn.ModuleList(
            Block(width, heads, cond_dim, self.rotary, dropout, activation,
                  block_form=block_form, attention_dropout=attention_dropout)
            for _ in range(layers)
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, real: torch.Tensor) -> TrunkOutput:
        """Encode ``x`` (B, L) long at times ``t`` (B,) with non-pad slots ``real`` (B, L).

        Returns:
            :class:`TrunkOutput` with ``hidden`` (B, L, D) and ``cond`` (B, C).
        """
        cond = F.silu(self.time(t))  # (B, C)
        positions = (real.long().cumsum(-1) - 1).clamp_min(0)  # (B, L)
        rope = self.rotary.angles(positions)
        # A row without any real slot would attend to nothing (NaN): let it see everything.
        keys = real | ~real.any(-1, keepdim=True)  # (B, L)
        key_mask = None if bool(keys.all()) else keys[:, None, None, :]  # (B, 1, 1, L)
        h = self.embed(x)  # (B, L, D)
        if self.position_embed is not None:
            h = h + self.position_embed(positions.clamp_max(self.max_length - 1))
        for block in self.blocks:
            h = block(h, cond, rope, key_mask)
        return TrunkOutput(hidden=h, cond=cond)


class ScalarRateHead(nn.Module):
    """Predict a positive rate multiplier per slot, in fp32 (docs/method.md §2.4).

    adaLN shift/scale from ``cond`` (zero-init) -> LayerNorm -> Linear(D, D) -> GELU ->
    Linear(D, 1) giving s, then

    - ``softplus``: b = softplus(s) (max_rate - min_rate) + min_rate (last bias -4);
    - ``exp``: b = exp(s) + min_rate.

    Args:
        width: D.
        cond_dim: C.
        min_rate: floor of b.
        max_rate: ceiling of b for ``softplus``.
        fn: "softplus" or "exp".
    """

    def __init__(self, width: int, cond_dim: int, min_rate: float, max_rate: float = 100.0,
                 fn: str = "softplus"):
        super().__init__()
        assert fn in ("softplus", "exp"), f"unknown rate function {fn!r}"
        self.min_rate, self.max_rate, self.fn = min_rate, max_rate, fn
        self.adaln = nn.Linear(cond_dim, 2 * width)
        nn.init.zeros_(self.adaln.weight)
        nn.init.zeros_(self.adaln.bias)
        self.norm = LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, 1))
        if fn == "softplus":
            nn.init.constant_(self.mlp[-1].bias, -4.0)

    def forward(self, hidden: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Return b (B, L) float32 >= min_rate from ``hidden`` (B, L, D) and ``cond`` (B, C)."""
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            shift, scale = self.adaln(cond.float()).chunk(2, dim=-1)  # (B, D) each
            s = self.mlp(modulate(self.norm(hidden.float()), shift, scale)).squeeze(-1)  # (B, L)
            if self.fn == "softplus":
                return F.softplus(s) * (self.max_rate - self.min_rate) + self.min_rate
            return torch.exp(s) + self.min_rate


class VocabHead(nn.Module):
    """adaLN shift/scale + LayerNorm + Linear(D, V) without bias, all zero-init."""

    def __init__(self, width: int, cond_dim: int, vocab_size: int):
        super().__init__()
        self.adaln = nn.Linear(cond_dim, 2 * width)
        self.norm = LayerNorm(width)
        self.proj = nn.Linear(width, vocab_size, bias=False)
        for param in (self.adaln.weight, self.adaln.bias, self.proj.weight):
            nn.init.zeros_(param)

    def forward(self, hidden: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Return logits (B, L, V)."""
        shift, scale = self.adaln(cond).chunk(2, dim=-1)
        return self.proj(modulate(self.norm(hidden), shift, scale))


class TransformerGenerator(Generator):
    """The DDiT denoiser of LoFlexMDM/FlexMDM (docs/method.md §4.1).

    Attributes:
        trunk: the :class:`Trunk`; an order with a ``shared`` backbone runs it on ``x_1``.
    """

    name = "transformer"

    class Options(Options):
        layers: int = Field(4, gt=0, description="Transformer blocks (paper: 12).")
        width: int = Field(256, gt=0, description="Model width D (paper: 768).")
        heads: int = Field(4, gt=0, description="Attention heads; must divide width (paper: 12).")
        dropout: float = Field(0.0, ge=0, lt=1, description="Residual-branch dropout.")
        attention_dropout: float = Field(
            0.0, ge=0, lt=1, description="Dropout on the attention probabilities (reference: 0.1)."
        )
        block_form: Literal["pre-norm", "reference"] = Field(
            "pre-norm", description="pre-norm: x + gate f(modulate(norm x)); reference: the "
            "reference DDiT's m + gate f(m) with m = modulate(norm x)."
        )
        cond_dim: int = Field(128, gt=0, description="Width of the time condition.")
        activation: Literal["relu", "gelu"] = Field(
            "relu", description="MLP activation: relu (reference DDiT) or gelu (tanh)."
        )
        min_rate: float = Field(0.0, ge=0, description="Floor of the predicted rate multipliers.")
        max_rate: float = Field(100.0, gt=0, description="Ceiling of softplus rate multipliers.")
        scalar_fn: Literal["softplus", "exp"] = Field(
            "softplus", description="Rate head output map: softplus (bounded) or exp."
        )
        insert_head: Literal["rate", "flexmdm"] = Field(
            "rate", description="Insertion head: rate (min_rate, max_rate and scalar_fn as the "
            "LoFlexMDM rate heads) or flexmdm (the reference FlexMDM length head: "
            "softplus(s) x max_length, the same network)."
        )
        absolute_positions: bool = Field(
            False, description="Add a learned absolute position embedding to the rotary "
            "attention (the reference uses rotary only)."
        )

        @model_validator(mode="after")
        def _check_shape(self) -> TransformerGenerator.Options:
            if self.width % self.heads:
                raise ValueError(
                    f"width {self.width} is not divisible by heads {self.heads}; "
                    "choose heads that divide width (e.g. width 256, heads 4)"
                )
            if self.scalar_fn == "softplus" and self.max_rate <= self.min_rate:
                raise ValueError("max_rate must exceed min_rate for scalar_fn 'softplus'")
            return self

    def __init__(self, options: Options, *, vocab_size: int, max_length: int,
                 learn_unmask: bool = False):
        super().__init__(options, vocab_size=vocab_size, max_length=max_length,
                         learn_unmask=learn_unmask)
        o = options
        if o.width % o.heads:
            raise ConfigError(f"transformer: width {o.width} is not divisible by heads "
                              f"{o.heads}; choose heads that divide width")
        self.trunk = Trunk(vocab_size, o.layers, o.width, o.heads, max_length, o.dropout,
                           o.cond_dim, o.activation, o.absolute_positions,
                           block_form=o.block_form, attention_dropout=o.attention_dropout)
        self.vocab_head = VocabHead(o.width, o.cond_dim, vocab_size)
        rate = dict(width=o.width, cond_dim=o.cond_dim, min_rate=o.min_rate,
                    max_rate=o.max_rate, fn=o.scalar_fn)
        self.insert_head = ScalarRateHead(**self._insert_head_options(rate, max_length))
        self.unmask_head = ScalarRateHead(**rate) if learn_unmask else None

    def _insert_head_options(self, rate: dict, max_length: int) -> dict:
        """The insertion head's ScalarRateHead arguments for ``options.insert_head``."""
        if self.options.insert_head == "flexmdm":
            return dict(rate, min_rate=0.0, max_rate=float(max_length), fn="softplus")
        return rate

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, real: torch.Tensor) -> Prediction:
        """Predict logits (B, L, V) and rate multipliers (B, L) for ``x_t`` (B, L) at ``t``."""
        out = self.trunk(x_t, t, real)
        unmask = None if self.unmask_head is None else self.unmask_head(out.hidden, out.cond)
        return Prediction(
            logits=self.vocab_head(out.hidden, out.cond),
            insert_multiplier=self.insert_head(out.hidden, out.cond),
            unmask_rate=unmask,
        )


@hookimpl
def register_generators(register):
    """Register the built-in DDiT generator."""
    register(TransformerGenerator)
