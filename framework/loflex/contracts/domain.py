"""The Domain contract: tokenizer, data, decoding, metrics, and the optional capabilities.

A domain owns everything about one kind of sequence: its vocabulary (built from the
training data, stored with every checkpoint), the train/valid/test examples, text
conversion, decoding into domain objects and the metrics. Optional capabilities are
declared by the protocols at the end of this module; :func:`supports` tells whether a
domain has one.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch

from loflex.contracts.examples import Example, Generated
from loflex.contracts.options import Options
from loflex.contracts.vocab import Vocabulary


class Domain(abc.ABC):
    """Base class of sequence domains.

    Subclasses set ``name`` and ``Options``, build or restore ``self.vocab`` in
    ``__init__`` and implement the four abstract members: :attr:`max_target_length`,
    :meth:`examples`, :meth:`tokenize` and :meth:`metrics`.

    Args:
        options: validated ``Options``.
        state: what :meth:`state_dict` returned when the model was saved (restores the
            vocabulary instead of rebuilding it), or None for a new run.
        cache_dir: where the domain may cache prepared data.

    Class attributes:
        name: the registered lower-kebab name.
        Options: the pydantic options model (every field with a description).
        provides_order_hint: True when :meth:`examples` fill ``Example.order_hint``;
            orders with ``needs_order_hint`` are refused for other domains.
        headline_metric: the metric key of :meth:`metrics` that summarises quality
            (``loflex experiment`` plots it), or None.

    Example::

        class Digits(loflex.Domain):
            name = "digits"
            headline_metric = "exact_match"

            def __init__(self, options, *, state=None, cache_dir=None):
                super().__init__(options, state=state, cache_dir=cache_dir)
                self.vocab = Vocabulary([str(d) for d in range(10)])

            max_target_length = 8

            def examples(self, split):
                return [Example(target=self.encode("1 2 3"))]

            def tokenize(self, text):
                return text.split()

            def metrics(self, samples):
                return {"exact_match": 1.0}
    """

    name: ClassVar[str]
    Options: ClassVar[type[Options]] = Options
    provides_order_hint: ClassVar[bool] = False
    headline_metric: ClassVar[str | None] = None
    vocab: Vocabulary
    options: Options
    cache_dir: Path | None

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
    @abc.abstractmethod
    def max_target_length(self) -> int:
        """Longest target in tokens (without EOS)."""

    @property
    def max_length(self) -> int:
        """Longest full sequence: prompt, BOS (if any prompt), target and EOS."""
        prompt = self.max_prompt_length
        return prompt + (1 if prompt else 0) + self.max_target_length + 1

    # -- data ----------------------------------------------------------------
    @abc.abstractmethod
    def examples(self, split: str) -> Sequence[Example]:
        """Return the examples of ``split`` ("train", "valid" or "test")."""

    def prompts(self, split: str, n: int) -> list[Example]:
        """Return ``n`` examples whose prompts condition sampling (conditional domains)."""
        data = self.examples(split)
        return [data[i % len(data)] for i in range(n)]

    @property
    def conditional(self) -> bool:
        """Whether examples carry prompts (then sampling starts from one)."""
        return self.max_prompt_length > 0

    # -- text ----------------------------------------------------------------
    @abc.abstractmethod
    def tokenize(self, text: str) -> list[str]:
        """Split text into tokens."""

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
    @abc.abstractmethod
    def metrics(self, samples: Sequence[Generated]) -> dict[str, float]:
        """Score generated samples; keys are metric names, values floats."""

    def columns(self, sample: Generated) -> dict[str, str | int | float | None]:
        """Return one sample as the named columns of ``loflex sample -o FILE.csv``.

        The default gives ``prompt``, ``text`` and ``length`` (target tokens); a domain
        may add its own (a molecule's SMILES and validity).
        """
        return {"prompt": self.to_text(sample.prompt), "text": self.to_text(sample.tokens),
                "length": len(sample.tokens)}

    # -- optional capabilities: defaults that mean "not supported" -----------
    def parse_prompt(self, text: str) -> Example:
        """Turn user text (``loflex sample --prompt``) into a prompt-only example.

        The default encodes the text as the prompt; see :class:`PromptParsingDomain`.
        """
        return Example(target=[], prompt=self.encode(text))

    def export(self, samples: Sequence[Generated], directory: Path) -> list[Path]:
        """Write domain files for samples; the default writes none (see :class:`ExportingDomain`)."""
        return []

    def draw(self, tokens: Sequence[int], values: Sequence[float], path: Path, *,
             prompt: Sequence[int] = (), title: str = "") -> bool:
        """Draw one sequence; the default draws nothing and returns False (see :class:`DrawableDomain`)."""
        return False

    def constrain_logits(self, logits: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        """Return ``logits`` unchanged; see :class:`LogitConstrainedDomain`."""
        return logits

    def missing_structure(self, prompt: Sequence[int], target: Sequence[int]) -> list[Insertion]:
        """Return no insertions; see :class:`StructureCompletingDomain`."""
        return []

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


# -- capabilities ----------------------------------------------------------------------
#
# Each protocol names one optional member of Domain. A domain has the capability when its
# class overrides that member; test it with ``supports(domain, Protocol)``, not
# ``isinstance`` (every Domain carries the "not supported" default of each member).


class PromptParsingDomain(Protocol):
    """A domain that turns user text into a prompt its own way (``--prompt``).

    Example: a star graph parses ``"0-1 1-2 | 0 2"`` into the edge list and the query.
    """

    def parse_prompt(self, text: str) -> Example:
        """Return a prompt-only :class:`Example` (``target`` empty) for ``text``.

        Set ``bos=False`` for an unconditional model grown from a fragment.
        """


class ExportingDomain(Protocol):
    """A domain that writes its own files for samples (``loflex sample --export``)."""

    def export(self, samples: Sequence[Generated], directory: Path) -> list[Path]:
        """Write domain-specific files (e.g. SDF, images) into ``directory``; return them."""


class DrawableDomain(Protocol):
    """A domain with its own picture of a sequence (reports, ``loflex order``)."""

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
            True once ``path`` is written; False to let the core draw a token strip.
        """


class LogitConstrainedDomain(Protocol):
    """A domain that forbids tokens while sampling (e.g. grammar or valence rules)."""

    def constrain_logits(self, logits: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        """Return ``logits`` (B, L, V) with -inf where a token is not allowed at ``x_t`` (B, L)."""


@dataclass(frozen=True)
class Insertion:
    """Tokens a finished target lacks, to insert before its token ``gap``.

    Attributes:
        gap: where the tokens go: before target token ``gap`` (``len(target)``: at the end).
        tokens: the ids to insert, in order; ``MASK`` marks a slot the generator fills.
        fill: (V,) bool, the tokens a ``MASK`` slot may take (the generator's most
            probable allowed one is written); None allows every non-special token.
    """

    gap: int
    tokens: tuple[int, ...]
    fill: torch.Tensor | None = None


@dataclass(frozen=True)
class Refill:
    """A token of a finished target that does not fit its place, to be chosen again.

    Attributes:
        position: the target token to replace (an index into the target).
        fill: (V,) bool, the tokens that fit there (the generator's most probable allowed
            one is written); None allows every non-special token.
    """

    position: int
    fill: torch.Tensor | None = None


class StructureCompletingDomain(Protocol):
    """A domain that can tell where a finished sample is structurally incomplete.

    The sampler's structure rounds (``sample.structure_rounds``) ask it after the last
    step, insert what it names and mask the tokens it names for refilling, then let the
    generator choose the tokens of every ``MASK`` slot among those allowed there.
    Example: a molecule fragment with an attachment point and no fragment bonded there
    gets a group holding one fragment with a single attachment point; a fragment with
    more groups than attachment points is chosen again among fragments with enough.
    """

    def missing_structure(self, prompt: Sequence[int], target: Sequence[int]
                          ) -> list[Insertion | Refill]:
        """Return the edits that complete a finished sample; [] when it is complete or
        cannot be completed by inserting into ``target`` and refilling its tokens.

        Args:
            prompt: the sample's prompt ids (no specials; empty when unconditional).
            target: the generated ids (no specials); every ``Insertion.gap`` and
                ``Refill.position`` indexes them (no two refills of one position).
        """


CAPABILITIES: dict[type, str] = {
    PromptParsingDomain: "parse_prompt",
    ExportingDomain: "export",
    DrawableDomain: "draw",
    LogitConstrainedDomain: "constrain_logits",
    StructureCompletingDomain: "missing_structure",
}


def supports(domain: Domain | type[Domain], capability: type) -> bool:
    """Return whether ``domain`` (an instance or class) implements ``capability``.

    Args:
        capability: one of :class:`PromptParsingDomain`, :class:`ExportingDomain`,
            :class:`DrawableDomain`, :class:`LogitConstrainedDomain`,
            :class:`StructureCompletingDomain`.
    """
    member = CAPABILITIES[capability]
    cls = domain if isinstance(domain, type) else type(domain)
    return getattr(cls, member) is not getattr(Domain, member)
