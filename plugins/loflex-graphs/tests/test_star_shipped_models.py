"""The star-graph models shipped in ``loflex_graphs/pretrained`` load, match their cards,
and write paths in the task's format."""

from __future__ import annotations

import pytest
from loflex.extension.testing import check_shipped_model
from loflex_graphs.plugin import PRETRAINED


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_a_shipped_star_model_matches_its_card_and_writes_paths(name):
    """16 test graphs, 64 steps: every token is a node id; a path starts at the source
    and ends at the goal (the format the shipped models have learned: 63-64 of 64
    at this setting when they were packed)."""
    loaded = check_shipped_model(name)
    nodes = {i for i, token in enumerate(loaded.domain.vocab.itos) if token.isdigit()}
    samples = loaded.generate(16, steps=64, batch_size=16, seed=0)
    assert len(samples) == 16
    assert all(set(s.tokens) <= nodes for s in samples), "a token that is not a node"
    framed = sum(list(s.tokens[:1]) == s.reference.target[:1]
                 and list(s.tokens[-1:]) == s.reference.target[-1:] for s in samples)
    assert framed >= 14, f"{framed} of 16 paths start at the source and end at the goal"
