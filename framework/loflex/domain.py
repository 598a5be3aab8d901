"""The Domain contract: tokenizer, data, decoding, metrics and constraints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from loflex.config import Options
from loflex.vocab import Vocabulary

SPLITS = ("train", "valid", "test")


@dataclass
class Example:
    """One training or evaluation example, as token ids (no BOS/EOS; the core adds them).

    Attributes:
        target: ids the model generates.
        prompt: ids given as fixed context (empty for unconditional domains).
        side: optional per-target-token side information for order dynamics, one float per
            target token (e.g. a star graph's distance from the junction). It reaches the
            order as ``Batch.side`` aligned with ``x_1`` (0 at prompt, BOS, EOS and pad).
        bos: whether a BOS token follows a non-empty prompt (fragment prompts of an
            unconditional model use False).
    """

    target: list[int]
    prompt: list[int] = field(default_factory=list)
    side: list[float] | None = None
    bos: bool = True


@dataclass
class Generated:
    """One sample as handed to :meth:`Domain.metrics`.

    Attributes:
        tokens: generated target ids (no specials, EOS removed).
        prompt: the fixed prompt ids it was conditioned on.
        reference: the example the prompt came from, when there is one.
        reveal_step: for each generated token, the sampler step that revealed it
            (from the trajectory; None when not recorded).
    """

    tokens: list[int]
    prompt: list[int] = field(default_factory=list)
    reference: Example | None = None
    reveal_step: list[int] | None = None


class Domain:
    """Base class of sequence domains.

    Subclasses set ``name`` and ``Options``, build or restore ``self.vocab`` in
    ``__init__`` and implement :meth:`examples`, :meth:`tokenize`, :meth:`detokenize`,
    :meth:`decode` and :meth:`metrics`.

    Args:
        options: validated ``Options``.
        state: what :meth:`state_dict` returned when the model was saved (restores the
            vocabulary instead of rebuilding it), or None for a new run.
        cache_dir: where the domain may cache prepared data.
    """

    name: ClassVar[str]
    Options: ClassVar[type[Options]] = Options
    vocab: Vocabulary

    def __init__(self, options: Options, *, state: dict | None = None,
                 cache_dir: Path | None = None):
        self.options = options
        self.cache_dir = cache_dir

    # -- lengths -------------------------------------------------------------
    @property
    def max_prompt_length(self) -> int:
        """Longest prompt in tokens (0 for unconditional domains)."""
        return 0

    @property
    def max_target_length(self) -> int:
        """Longest target in tokens (without EOS)."""
        raise NotImplementedError

    @property
    def max_length(self) -> int:
        """Longest full sequence: prompt, BOS (if any prompt), target and EOS."""
        prompt = self.max_prompt_length
        return prompt + (1 if prompt else 0) + self.max_target_length + 1

    # -- data ----------------------------------------------------------------
    def examples(self, split: str) -> Sequence[Example]:
        """Return the examples of ``split`` ("train", "valid" or "test")."""
        raise NotImplementedError

    def prompts(self, split: str, n: int) -> list[Example]:
        """Return ``n`` examples whose prompts condition sampling (conditional domains)."""
        data = self.examples(split)
        return [data[i % len(data)] for i in range(n)]

    @property
    def conditional(self) -> bool:
        """Whether examples carry prompts (then sampling starts from one)."""
        return self.max_prompt_length > 0

    # -- text ----------------------------------------------------------------
    def tokenize(self, text: str) -> list[str]:
        """Split text into tokens."""
        raise NotImplementedError

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Join tokens back into text."""
        return "".join(tokens)

    def encode(self, text: str) -> list[int]:
        """Return the ids of ``text``; raises DataError on tokens outside the vocabulary."""
        return self.vocab.encode(self.tokenize(text))

    def to_text(self, ids: Sequence[int]) -> str:
        """Return the text of ``ids`` (special tokens dropped)."""
        return self.detokenize(self.vocab.decode(ids))

    def decode(self, ids: Sequence[int]) -> Any | None:
        """Return the domain object for ``ids`` (e.g. a molecule), or None if invalid."""
        return self.to_text(ids)

    # -- evaluation ----------------------------------------------------------
    def metrics(self, samples: Sequence[Generated]) -> dict[str, float]:
        """Score generated samples; keys are metric names, values floats."""
        raise NotImplementedError

    def parse_prompt(self, text: str) -> Example:
        """Turn user text (``loflex sample --prompt``) into a prompt-only example."""
        return Example(target=[], prompt=self.encode(text))

    def export(self, samples: Sequence[Generated], directory: Path) -> list[Path]:
        """Write domain-specific files for samples (e.g. SDF, images); return their paths."""
        return []

    def draw(self, tokens: Sequence[int], values: Sequence[float], path: Path, *,
             prompt: Sequence[int] = (), title: str = "") -> bool:
        """Draw one sequence with a value per target token (e.g. its insertion time).

        Args:
            tokens: target ids (no specials).
            values: one float per target token (times in [0, 1] or sampler steps).
            path: the image file to write (PNG or SVG by suffix).
            prompt: the prompt ids the target belongs to (e.g. a star graph's edges).
            title: a caption.

        Returns:
            False when the domain has no picture of its own (the core then draws a
            token strip), True once ``path`` is written.
        """
        return False

    def constrain_logits(self, logits: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        """Optionally forbid tokens: return ``logits`` (B, L, V) with -inf where disallowed."""
        return logits

    # -- persistence ---------------------------------------------------------
    def state_dict(self) -> dict:
        """Return JSON-able state stored with checkpoints (at least the vocabulary)."""
        return {"vocab": self.vocab.to_json()}

    def describe(self, example: Example) -> dict[str, Any]:
        """Return a readable form of one example (for ``loflex data``)."""
        return {
            "prompt": self.to_text(example.prompt),
            "target": self.to_text(example.target),
            "prompt_ids": list(example.prompt),
            "target_ids": list(example.target),
        }
