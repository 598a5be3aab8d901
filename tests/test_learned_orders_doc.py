"""The learned order of docs/learned-orders.md runs: it passes the contract checks without
a warning and trains with the generator."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch
from loflex import Generator, collate
from loflex.diffusion import loss
from loflex.extension import registry
from loflex.extension.testing import check_order_dynamics, default_examples

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "learned-orders.md"
VOCAB = 12


def guide_order():
    text = GUIDE.read_text(encoding="utf-8")
    code = re.search(r"<!-- tested: tests/test_learned_orders_doc.py -->\n```python\n(.*?)```",
                     text, re.S)
    assert code, "docs/learned-orders.md lost its tested code block"
    namespace: dict = {}
    exec(compile(code.group(1), str(GUIDE), "exec"), namespace)
    return namespace["EmbeddingOrder"]


def test_the_guides_order_passes_the_checks_without_a_warning():
    order_cls = guide_order()
    torch.manual_seed(0)
    order = order_cls(order_cls.Options(), vocab_size=VOCAB)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_order_dynamics(order, draws=1000, vocab_size=VOCAB)
    assert order.reinforce_weight == 1.0


def test_the_guides_order_trains_with_the_generator():
    order_cls = guide_order()
    torch.manual_seed(0)
    order = order_cls(order_cls.Options(reinforce_weight=0.5), vocab_size=VOCAB)
    generator = registry.build(Generator, {"name": "transformer", "options": {
        "layers": 1, "width": 16, "heads": 2}}, vocab_size=VOCAB, max_length=16)
    batch = collate(default_examples(VOCAB) * 2)
    terms = loss.training_loss(batch, generator, order, length_scale=16.0,
                               rng=torch.Generator().manual_seed(0))
    terms.loss.backward()
    assert order.embed.weight.grad is not None and bool(order.embed.weight.grad.abs().sum() > 0)
    assert float(terms.regulariser) > 0, "the regulariser enters the objective"
