"""The contract checks of loflex.extension.testing catch what a plugin author gets wrong."""

from __future__ import annotations

import warnings

import pytest
import torch
from loflex import ConfigError, Generator, OrderDynamics, Prediction, TokenRates
from loflex.contracts import Trunk, TrunkOutput, trunk_problem
from loflex.diffusion.order import KumaraswamyOrder
from loflex.extension import registry
from loflex.extension.testing import (
    check_generator,
    check_order_dynamics,
    check_trunk,
    default_examples,
)
from torch import nn

VOCAB = 12


class ConstantOrder(KumaraswamyOrder):
    """A 'learned' order whose rates ignore its parameter (b_in = 2 everywhere)."""

    name = "constant"
    learned = True

    def __init__(self, options, **deps):
        super().__init__(options, **deps)
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, batch, t):
        b_in = torch.full(batch.x_1.shape, 2.0)
        return TokenRates(b_in=b_in, b_um=torch.ones_like(b_in))


class EmbeddingOrder(KumaraswamyOrder):
    """A learned order: b_in = 1 + softplus(embedding of the token), without a regulariser."""

    name = "embedding"
    learned = True

    def __init__(self, options, *, vocab_size=VOCAB, **deps):
        super().__init__(options, **deps)
        self.embed = nn.Embedding(vocab_size, 1)

    def forward(self, batch, t):
        b_in = 1 + nn.functional.softplus(self.embed(batch.x_1)[..., 0])  # (B, L)
        return TokenRates(b_in=b_in, b_um=torch.ones_like(b_in))


class RegularisedEmbeddingOrder(EmbeddingOrder):
    name = "regularised-embedding"

    def regulariser(self, rates, free, generator=None):
        return ((rates.b_in - 1) * free).pow(2).sum(-1)  # (B,)


def test_a_learned_order_that_ignores_its_parameters_fails():
    with pytest.raises(AssertionError, match="must depend on its parameters"):
        check_order_dynamics(ConstantOrder(ConstantOrder.Options()), draws=200)


def test_a_learned_order_without_a_regulariser_is_warned_about():
    with pytest.warns(UserWarning, match="'embedding' is learned but keeps the default "
                      "regulariser"):
        check_order_dynamics(EmbeddingOrder(EmbeddingOrder.Options()), draws=500)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_order_dynamics(RegularisedEmbeddingOrder(RegularisedEmbeddingOrder.Options()),
                             draws=500)


def test_the_default_examples_stay_inside_the_given_vocabulary():
    for size in (5, 6, 10, 40):
        ids = {i for ex in default_examples(size) for i in ex.target + ex.prompt}
        assert ids and min(ids) >= 4 and max(ids) < size
    order = EmbeddingOrder(EmbeddingOrder.Options(), vocab_size=6)
    with pytest.raises(IndexError):
        check_order_dynamics(order, draws=200)  # the default ids go up to 9
    with pytest.warns(UserWarning):
        check_order_dynamics(order, draws=200, vocab_size=6)
    with pytest.raises(AssertionError, match="no data tokens"):
        default_examples(4)


def test_the_learned_builtin_passes_without_a_warning():
    order = registry.build(OrderDynamics, {"name": "kumaraswamy", "options": {
        "layers": 1, "width": 16, "heads": 2}}, vocab_size=VOCAB, max_length=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_order_dynamics(order, draws=300, vocab_size=VOCAB)


# -- generators and trunks ------------------------------------------------------------


class HalfTrunk(nn.Module):
    """A trunk that forgot cond_dim (the walkthrough's GRU)."""

    def __init__(self):
        super().__init__()
        self.width = 8
        self.embed = nn.Embedding(VOCAB, 8)

    def forward(self, x, t, real):
        hidden = self.embed(x)
        return TrunkOutput(hidden=hidden, cond=hidden.mean(1))


class GoodTrunk(HalfTrunk):
    def __init__(self):
        super().__init__()
        self.cond_dim = 8


class BagGenerator(Generator):
    """Per-slot logits and rates from the trunk; the signs flip a rate to break the contract."""

    name = "bag"

    def __init__(self, options, *, vocab_size, max_length, learn_unmask=False, trunk=None,
                 insert_sign=1.0, unmask_sign=1.0, unmask=True):
        super().__init__(options, vocab_size=vocab_size, max_length=max_length,
                         learn_unmask=learn_unmask)
        self.trunk = trunk if trunk is not None else GoodTrunk()
        self.head = nn.Linear(8, vocab_size + 2)
        self.signs = torch.tensor([insert_sign, unmask_sign])
        self.unmask = unmask

    def forward(self, x_t, t, real):
        out = self.head(self.trunk(x_t, t, real).hidden)  # (B, L, V + 2)
        rates = nn.functional.softplus(out[..., -2:]) * self.signs  # (B, L, 2)
        unmask = rates[..., 1] if self.learn_unmask and self.unmask else None
        return Prediction(logits=out[..., :-2], insert_multiplier=rates[..., 0], unmask_rate=unmask)


def bag(**kwargs) -> BagGenerator:
    torch.manual_seed(0)
    return BagGenerator(Generator.Options(), vocab_size=VOCAB, max_length=16, **kwargs)


def test_a_generator_that_keeps_its_contract_passes():
    check_generator(bag())
    check_generator(bag(learn_unmask=True))


def test_generator_checks_catch_bad_rates():
    with pytest.raises(AssertionError, match="insert_multiplier must be non-negative"):
        check_generator(bag(insert_sign=-1.0))
    with pytest.raises(AssertionError, match="learn_unmask needs unmask_rate"):
        check_generator(bag(learn_unmask=True, unmask=False))
    with pytest.raises(AssertionError, match="unmask_rate must be non-negative"):
        check_generator(bag(learn_unmask=True, unmask_sign=-1.0))


def test_a_trunk_without_cond_dim_fails_its_check():
    assert trunk_problem(HalfTrunk()) == "it has no integer cond_dim"
    assert trunk_problem(GoodTrunk()) is None and isinstance(GoodTrunk(), Trunk)
    with pytest.raises(AssertionError, match="does not satisfy loflex.contracts.Trunk: it has "
                       "no integer cond_dim"):
        check_generator(bag(trunk=HalfTrunk()))
    check_trunk(GoodTrunk(), VOCAB)


def test_a_trunk_of_the_wrong_width_fails_its_check():
    trunk = GoodTrunk()
    trunk.width = 9
    with pytest.raises(AssertionError, match=r"hidden must be \(B, L, width=9\), got \(3, 7, 8\)"):
        check_trunk(trunk, VOCAB)


def test_sharing_a_trunk_that_breaks_the_protocol_is_a_one_line_error():
    generator = bag(trunk=HalfTrunk())
    with pytest.raises(ConfigError, match="kumaraswamy: the trunk of generator 'bag' does not "
                       "satisfy loflex.contracts.Trunk \\(it has no integer cond_dim\\)"):
        registry.build(OrderDynamics, {"name": "kumaraswamy", "options": {"backbone": "shared"}},
                       generator=generator, vocab_size=VOCAB, max_length=16)
    order = registry.build(OrderDynamics, {"name": "kumaraswamy", "options": {
        "backbone": "shared"}}, generator=bag(), vocab_size=VOCAB, max_length=16)
    check_order_dynamics(order, draws=300, vocab_size=VOCAB)
