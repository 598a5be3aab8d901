"""Built-in order dynamics: ``uniform`` (FlexMDM), ``kumaraswamy`` (LoFlexMDM),
``left-to-right`` and ``masked``.

All four live in the Kumaraswamy family F(t) = 1 - (1 - t^a)^b (docs/method.md §2.1): the
uniform order is a = b = 1; the learned order reads the clean ``x_1`` and ``t`` with an
auxiliary DDiT and predicts b_in (and b_um when ``learn_unmask``); the left-to-right order
fixes b_in so that earlier tokens are inserted earlier; the masked order inserts every
token at once near t = 0 and unmasks uniformly (a masked diffusion model with a learned
length).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from loflex.contracts import Batch, EventTimes, Options, TokenRates, shared_trunk
from loflex.default_plugins.transformer import ScalarRateHead, Trunk
from loflex.diffusion import schedule
from loflex.diffusion.order import KumaraswamyOrder
from loflex.errors import ConfigError
from loflex.extension.hookspecs import hookimpl


def _float_dtype(t: torch.Tensor) -> torch.dtype:
    return t.dtype if t.is_floating_point() else torch.get_default_dtype()


class _SampledKumaraswamy(KumaraswamyOrder):
    """A Kumaraswamy order whose event times can be drawn from a given generator."""

    def sample_times(self, rates: TokenRates, generator: torch.Generator | None = None) -> EventTimes:
        """Draw (T_in, T_um) for every token (no gradient), optionally from ``generator``."""
        t_in, t_um = schedule.sample_event_times(
            rates.b_in.detach(), rates.b_um.detach(), self.a, generator
        )
        return EventTimes(t_in, t_um)


class UniformOrder(_SampledKumaraswamy):
    """FlexMDM's order: a = 1, b_in = b_um = 1, so T_in ~ U(0, 1), T_um | T_in ~ U(T_in, 1).

    The hazard is h(t) = 1 / (1 - t); the order has no parameters and no options.
    """

    name = "uniform"
    a = 1.0

    def forward(self, batch: Batch, t: torch.Tensor) -> TokenRates:
        """Return b_in = b_um = 1 at every position, (B, L) each."""
        ones = torch.ones(batch.x_1.shape, dtype=_float_dtype(t), device=batch.x_1.device)
        return TokenRates(b_in=ones, b_um=ones)


class LeftToRightOrder(_SampledKumaraswamy):
    """A fixed order that inserts earlier target positions earlier (autoregressive-like).

    a = 1, b_um = 1 and b_in_j = exp(sharpness (centre - r_j)), where r_j in [0, 1] is the
    relative position of free token j among its row's free tokens. With a = 1,
    E[T_in_j] = 1 / (1 + b_in_j) grows from left to right. Tokens right of ``centre`` get
    b_in < 1: with a large sharpness they are rarely inserted before the sampler's last
    step (P(T_in > 1 - 1e-5) = 1e-5^b_in); ``centre = 1`` keeps every b_in >= 1.
    """

    name = "left-to-right"
    a = 1.0

    class Options(Options):
        sharpness: float = Field(
            4.0, ge=0, description="How strongly earlier tokens are inserted first (0 = uniform "
            "insertion rates e^0 = 1)."
        )
        centre: float = Field(
            0.5, ge=0, le=1, description="Relative position whose b_in is 1; later tokens get "
            "b_in < 1 (1: every b_in >= 1, so no token is left for t near 1)."
        )

    def forward(self, batch: Batch, t: torch.Tensor) -> TokenRates:
        """Return b_in decreasing along each row's free tokens and b_um = 1, (B, L) each."""
        dtype = _float_dtype(t)
        free = batch.free
        rank = (free.long().cumsum(-1) - 1).clamp_min(0).to(dtype)  # (B, L)
        count = free.sum(-1, keepdim=True).to(dtype)  # (B, 1)
        r = rank / (count - 1).clamp_min(1)  # (B, L)
        b_in = torch.exp(self.options.sharpness * (self.options.centre - r))
        b_in = torch.where(free, b_in, torch.ones_like(b_in))
        return TokenRates(b_in=b_in, b_um=torch.ones_like(b_in))


class MaskedOrder(_SampledKumaraswamy):
    """All at once: every token inserted near t = 0, then unmasked uniformly (an MDM).

    a = 1, b_um = 1 and b_in = ``insert_rate`` for every token, so T_in ~ Kuma(1, b_in)
    with E[T_in] = 1 / (1 + b_in) and P(T_in > e) = (1 - e)^b_in, and T_um | T_in ~
    U(T_in, 1). Every closed form stays finite and the insertion targets are those of the
    process: gap i's target rate is b_in h(t) times its dropped tokens. The sampler
    inserts with the exact per-step probability of this shared b_in
    (``shared_insert_multiplier``), so a step inserts at most the predicted missing count
    however large b_in dt is.

    The larger b_in, the closer to all at once, and the harder the length is to learn:
    the generator sees missing tokens only at t below about ln(L) / b_in, and its
    insertion multiplier must reach b_in times a gap's missing count at t = 0. The
    default 100 inserts 99% of the tokens by t = 0.045.
    """

    name = "masked"
    a = 1.0

    class Options(Options):
        insert_rate: float = Field(
            100.0, ge=1, description="b_in of every token: E[T_in] = 1/(1 + b_in); larger is "
            "closer to all at once, smaller is easier to learn (missing tokens seen more often)."
        )

    @property
    def shared_insert_multiplier(self) -> float:
        """The b_in every token shares (read by the sampler)."""
        return self.options.insert_rate

    def forward(self, batch: Batch, t: torch.Tensor) -> TokenRates:
        """Return b_in = ``insert_rate`` and b_um = 1 at every position, (B, L) each."""
        ones = torch.ones(batch.x_1.shape, dtype=_float_dtype(t), device=batch.x_1.device)
        return TokenRates(b_in=ones * self.options.insert_rate, b_um=ones)


class KumaraswamyOptions(Options):
    """Options of the learned ``kumaraswamy`` order."""

    a: float = Field(1.0, gt=0, description="Shared Kumaraswamy shape a (released recipe: 1).")
    learn_unmask: bool = Field(
        False, description="Also learn b_um per token (unstable per the paper); off: b_um = 1."
    )
    backbone: Literal["separate", "shared"] = Field(
        "separate", description="separate: own DDiT trunk; shared: reuse the generator's trunk."
    )
    layers: int = Field(4, gt=0, description="Auxiliary trunk blocks (separate backbone).")
    width: int = Field(256, gt=0, description="Auxiliary trunk width (separate backbone).")
    heads: int = Field(4, gt=0, description="Auxiliary trunk heads; must divide width.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Auxiliary trunk residual dropout.")
    attention_dropout: float = Field(
        0.0, ge=0, lt=1, description="Auxiliary trunk dropout on attention probabilities."
    )
    block_form: Literal["pre-norm", "reference"] = Field(
        "pre-norm", description="Auxiliary trunk block form (see the transformer generator)."
    )
    min_rate: float = Field(1.01, ge=0, description="Floor of b (the reference aux uses 1.01).")
    max_rate: float = Field(100.0, gt=0, description="Ceiling of b for scalar_fn 'softplus'.")
    scalar_fn: Literal["softplus", "exp"] = Field(
        "softplus", description="softplus: b = softplus(s)(max - min) + min; exp: b = e^s + min."
    )
    use_time: bool = Field(True, description="Condition the auxiliary network on t.")
    reinforce_weight: float = Field(1.0, ge=0, description="Weight w_RF of the REINFORCE term.")
    mean_weight: float = Field(1.0, ge=0, description="Weight of the mixture-CDF mean term.")
    boundary_weight: float = Field(1.0, ge=0, description="Weight of the boundary hinges.")
    kl_weight: float = Field(1.0, ge=0, description="Weight of the KL-to-uniform term.")

    @model_validator(mode="after")
    def _check(self) -> KumaraswamyOptions:
        if self.backbone == "separate" and self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}; "
                             "choose heads that divide width")
        if self.scalar_fn == "softplus" and self.max_rate <= self.min_rate:
            raise ValueError("max_rate must exceed min_rate for scalar_fn 'softplus'")
        return self


class KumaraswamyDynamics(_SampledKumaraswamy):
    """LoFlexMDM's learned order: per-token b from an auxiliary network on (x_1, t).

    Hazards are b h_a(t) with h_a(t) = a t^(a-1) / (1 - t^a). With ``backbone="shared"``
    the generator's trunk is reused (it is not registered as a submodule here, so it is
    saved and optimised once, with the generator); only the rate heads belong to the order.
    """

    name = "kumaraswamy"
    learned = True
    Options = KumaraswamyOptions

    def __init__(self, options: KumaraswamyOptions, *, generator: nn.Module | None = None,
                 vocab_size: int = 0, max_length: int = 0):
        super().__init__(options, generator=generator, vocab_size=vocab_size,
                         max_length=max_length)
        self.a = options.a
        if options.backbone == "shared":
            object.__setattr__(self, "_shared_trunk", shared_trunk(generator, "kumaraswamy"))
        else:
            if vocab_size <= 0:
                raise ConfigError("kumaraswamy: vocab_size must be positive to build the "
                                  "auxiliary network; build the order through loflex.build")
            self.trunk = Trunk(vocab_size, options.layers, options.width, options.heads,
                               max_length, options.dropout, block_form=options.block_form,
                               attention_dropout=options.attention_dropout)
        trunk = self.backbone
        rate = dict(width=trunk.width, cond_dim=trunk.cond_dim, min_rate=options.min_rate,
                    max_rate=options.max_rate, fn=options.scalar_fn)
        self.insert_head = ScalarRateHead(**rate)
        self.unmask_head = ScalarRateHead(**rate) if options.learn_unmask else None

    @property
    def backbone(self) -> nn.Module:
        """The :class:`loflex.contracts.Trunk` the auxiliary network runs (its own or the
        generator's)."""
        shared = self.__dict__.get("_shared_trunk")
        return self.trunk if shared is None else shared

    @property
    def reinforce_weight(self) -> float:
        """w_RF, the weight of the REINFORCE term in the training objective."""
        return self.options.reinforce_weight

    @classmethod
    def learns_unmask(cls, options: KumaraswamyOptions) -> bool:
        return options.learn_unmask

    def forward(self, batch: Batch, t: torch.Tensor) -> TokenRates:
        """Return b_in and b_um (B, L) for the clean batch at times ``t`` (B,).

        The network reads x_1 (prompt included, pads masked out of attention) and t
        (or 1 when ``use_time`` is off). b_um is the constant 1 unless ``learn_unmask``.
        """
        trunk = self.backbone
        dtype = next(trunk.parameters()).dtype
        cond_t = t if self.options.use_time else torch.ones_like(t)
        out = trunk(batch.x_1, cond_t.to(dtype), batch.real)
        b_in = self.insert_head(out.hidden, out.cond)  # (B, L)
        if self.unmask_head is None:
            return TokenRates(b_in=b_in, b_um=torch.ones_like(b_in))
        return TokenRates(b_in=b_in, b_um=self.unmask_head(out.hidden, out.cond))

    def regulariser(self, rates: TokenRates, free: torch.Tensor,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """Return R per sequence (B,): mean, boundary and KL terms on b_in (and b_um if learned).

        Each schedule gets its own fresh 100-point stratified grid (docs/method.md §3.4).
        """
        total = self._schedule_term(rates.b_in, free, generator)
        if self.options.learn_unmask:
            total = total + self._schedule_term(rates.b_um, free, generator)
        return total

    def _schedule_term(self, b: torch.Tensor, free: torch.Tensor,
                       generator: torch.Generator | None) -> torch.Tensor:
        o = self.options
        grid = schedule.regulariser_grid(generator, b.dtype, b.device)
        return schedule.schedule_regulariser(self.a, b, free, grid, o.mean_weight,
                                             o.boundary_weight, o.kl_weight)


@hookimpl
def register_order_dynamics(register):
    """Register the built-in order dynamics."""
    register(UniformOrder)
    register(KumaraswamyDynamics)
    register(LeftToRightOrder)
    register(MaskedOrder)
