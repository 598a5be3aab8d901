"""Collating examples into padded clean batches ``x_1`` with their ``fixed`` flags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from loflex.domain import Example
from loflex.vocab import BOS, EOS, PAD


@dataclass
class Batch:
    """A clean padded batch.

    Layout per row: ``[prompt] [BOS] target [EOS] [PAD...]`` for conditional examples,
    ``target [EOS] [PAD...]`` for unconditional ones.

    Attributes:
        x_1: (B, L) long, the clean tokens.
        fixed: (B, L) bool, True on prompt, BOS and EOS (never dropped or masked in
            training; method.md section 5).
        side: (B, L) float, the domain's per-token side information (0 off-target), or None.
    """

    x_1: torch.Tensor
    fixed: torch.Tensor
    side: torch.Tensor | None = None

    @property
    def real(self) -> torch.Tensor:
        """(B, L) bool: True on non-pad positions."""
        return self.x_1 != PAD

    @property
    def free(self) -> torch.Tensor:
        """(B, L) bool: the positions the order acts on (non-pad, non-fixed)."""
        return self.real & ~self.fixed

    def to(self, device: torch.device | str) -> Batch:
        """Return the batch on ``device``."""
        side = None if self.side is None else self.side.to(device)
        return Batch(self.x_1.to(device), self.fixed.to(device), side)

    def __len__(self) -> int:
        return self.x_1.shape[0]


def layout(example: Example) -> tuple[list[int], list[bool], list[float]]:
    """Return the ids, fixed flags and side values of one example's full sequence."""
    prompt = list(example.prompt)
    bos = bool(prompt) and example.bos
    head = prompt + ([BOS] if bos else [])
    ids = head + list(example.target) + [EOS]
    fixed = [True] * len(head) + [False] * len(example.target) + [True]
    side_target = example.side if example.side is not None else [0.0] * len(example.target)
    assert len(side_target) == len(example.target), "side must have one value per target token"
    side = [0.0] * len(head) + [float(v) for v in side_target] + [0.0]
    return ids, fixed, side


def collate(examples: Sequence[Example], length: int | None = None) -> Batch:
    """Pad examples into a :class:`Batch` of width ``length`` (default: the longest row)."""
    rows = [layout(ex) for ex in examples]
    width = max(len(ids) for ids, _, _ in rows) if length is None else length
    x_1 = torch.full((len(rows), width), PAD, dtype=torch.long)
    fixed = torch.zeros((len(rows), width), dtype=torch.bool)
    side = torch.zeros((len(rows), width), dtype=torch.float32)
    for i, (ids, flags, values) in enumerate(rows):
        assert len(ids) <= width, f"example of length {len(ids)} exceeds batch width {width}"
        x_1[i, : len(ids)] = torch.tensor(ids)
        fixed[i, : len(ids)] = torch.tensor(flags)
        side[i, : len(ids)] = torch.tensor(values)
    has_side = any(ex.side is not None for ex in examples)
    return Batch(x_1, fixed, side if has_side else None)
