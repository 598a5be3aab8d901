"""Collating examples into padded clean batches ``x_1`` with their ``fixed`` flags."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from loflex.contracts.examples import Batch, Example
from loflex.contracts.vocab import BOS, EOS, PAD

__all__ = ["Batch", "collate", "layout"]


def layout(example: Example) -> tuple[list[int], list[bool], list[float]]:
    """Return the ids, fixed flags and order-hint values of one example's full sequence."""
    prompt = list(example.prompt)
    bos = bool(prompt) and example.bos
    head = prompt + ([BOS] if bos else [])
    ids = head + list(example.target) + [EOS]
    fixed = [True] * len(head) + [False] * len(example.target) + [True]
    hint = example.order_hint if example.order_hint is not None else [0.0] * len(example.target)
    assert len(hint) == len(example.target), "order_hint must have one value per target token"
    return ids, fixed, [0.0] * len(head) + [float(v) for v in hint] + [0.0]


def collate(examples: Sequence[Example], length: int | None = None) -> Batch:
    """Pad examples into a :class:`Batch` of width ``length`` (default: the longest row)."""
    rows = [layout(ex) for ex in examples]
    width = max(len(ids) for ids, _, _ in rows) if length is None else length
    x_1 = torch.full((len(rows), width), PAD, dtype=torch.long)
    fixed = torch.zeros((len(rows), width), dtype=torch.bool)
    hint = torch.zeros((len(rows), width), dtype=torch.float32)
    for i, (ids, flags, values) in enumerate(rows):
        assert len(ids) <= width, f"example of length {len(ids)} exceeds batch width {width}"
        x_1[i, : len(ids)] = torch.tensor(ids)
        fixed[i, : len(ids)] = torch.tensor(flags)
        hint[i, : len(ids)] = torch.tensor(values)
    has_hint = any(ex.order_hint is not None for ex in examples)
    return Batch(x_1, fixed, hint if has_hint else None)
