"""The star-graph domain and star-oracle order through the core loss and sampler."""

from __future__ import annotations

import torch
from loflex import Domain, Generator, OrderDynamics, SampleConfig, collate, loss, registry, sampler


def test_one_training_step_and_sampling_give_star_metrics():
    torch.manual_seed(0)
    domain = registry.build(Domain, {"name": "star-graph", "options": {
        "difficulty": "medium", "cache": False, "train_size": 32, "test_size": 6}})
    deps = {"vocab_size": len(domain.vocab), "max_length": domain.max_length}
    gen = registry.build(Generator, {"name": "transformer",
                                     "options": {"layers": 1, "width": 32, "heads": 2}}, **deps)
    order = registry.build(OrderDynamics, {"name": "star-oracle"}, generator=gen, **deps)
    batch = collate(list(domain.examples("train"))[:8])
    terms = loss.training_loss(batch, gen, order, length_scale=float(domain.max_length))
    terms.loss.backward()
    assert torch.isfinite(terms.loss.detach())
    assert any(p.grad is not None for p in gen.parameters())
    out = sampler.sample(gen, order, list(domain.examples("test")),
                         SampleConfig(steps=8, batch_size=6))
    samples = out.generated()
    assert len(samples) == 6 and all(s.reference is not None for s in samples)
    metrics = domain.metrics(samples)
    assert {"valid_path", "exact_match", "token_accuracy", "token_accuracy_padded"} <= set(metrics)
    assert all(0.0 <= metrics[k] <= 1.0 for k in ("valid_path", "exact_match", "token_accuracy"))
