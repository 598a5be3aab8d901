"""The GRU generator keeps the Generator contract and lends its trunk to a learned order."""

import loflex
import torch
from loflex.extension.testing import check_generator, check_order_dynamics, check_trunk
from loflex_example_gru.generator import GRUGenerator

VOCAB = 12


def gru(learn_unmask: bool = False) -> GRUGenerator:
    options = GRUGenerator.Options(hidden=16, cond_dim=8)
    return GRUGenerator(options, vocab_size=VOCAB, max_length=20, learn_unmask=learn_unmask)


def test_contract():
    check_generator(gru())
    check_generator(gru(learn_unmask=True))
    check_trunk(gru().trunk, VOCAB)


def test_registered_through_its_entry_point():
    assert loflex.components(loflex.Generator)["gru"] is GRUGenerator


def test_a_learned_order_shares_the_trunk():
    generator = gru()
    order = loflex.build(loflex.OrderDynamics, {"name": "kumaraswamy", "options": {
        "backbone": "shared"}}, generator=generator, vocab_size=VOCAB, max_length=20)
    assert order.backbone is generator.trunk
    check_order_dynamics(order, draws=500, vocab_size=VOCAB)


def test_the_padding_of_a_row_changes_nothing():
    generator = gru().eval()
    x = torch.tensor([[5, 6, 7, 3]])
    wide = torch.tensor([[5, 6, 7, 3, 0, 0]])
    t = torch.tensor([0.4])
    with torch.no_grad():
        narrow_out = generator(x, t, x != 0).logits
        wide_out = generator(wide, t, wide != 0).logits[:, :4]
    assert torch.allclose(narrow_out, wide_out, atol=1e-5)
