"""What flows between the components: examples, clean batches and generated samples."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from loflex.contracts.deprecation import renamed_argument, renamed_attribute
from loflex.contracts.vocab import PAD

SPLITS = ("train", "valid", "test")


@dataclass(init=False)
class Example:
    """One training or evaluation example, as token ids (no BOS/EOS; the core adds them).

    Attributes:
        target: ids the model generates.
        prompt: ids given as fixed context (empty for unconditional domains).
        order_hint: optional per-target-token value for orders that read one, one float
            per target token (a star graph's distance of each edge from the junction).
            It reaches the order as ``Batch.order_hint`` aligned with ``x_1`` (0 at
            prompt, BOS, EOS and pad). A domain that provides it sets
            ``Domain.provides_order_hint``.
        bos: whether a BOS token follows a non-empty prompt (fragment prompts of an
            unconditional model use False).

    ``side`` is the former name of ``order_hint``, accepted for one more release.

    Example::

        Example(target=[7, 5, 6], prompt=[4, 4], order_hint=[2.0, 1.0, 0.0])
    """

    target: list[int]
    prompt: list[int] = field(default_factory=list)
    order_hint: list[float] | None = None
    bos: bool = True

    def __init__(self, target: list[int], prompt: list[int] | None = None,
                 order_hint: list[float] | None = None, bos: bool = True, *,
                 side: list[float] | None = None):
        order_hint = renamed_argument(order_hint, side, owner="Example", name="order_hint",
                                      old_name="side")
        self.target = target
        self.prompt = [] if prompt is None else prompt
        self.order_hint = order_hint
        self.bos = bos

    @property
    def side(self) -> list[float] | None:
        """Deprecated name of :attr:`order_hint`."""
        renamed_attribute("Example", "order_hint", "side")
        return self.order_hint

    @side.setter
    def side(self, value: list[float] | None) -> None:
        renamed_attribute("Example", "order_hint", "side")
        self.order_hint = value


@dataclass
class Generated:
    """One sample as handed to :meth:`Domain.metrics`.

    Attributes:
        tokens: generated target ids (no specials, EOS removed).
        prompt: the fixed prompt ids it was conditioned on.
        reference: the example the prompt came from, when there is one.
        reveal_step: for each generated token, the sampler step that revealed it
            (from the trajectory; None when not recorded).

    Example::

        Generated(tokens=[7, 5, 6], prompt=[4, 4], reference=example)
    """

    tokens: list[int]
    prompt: list[int] = field(default_factory=list)
    reference: Example | None = None
    reveal_step: list[int] | None = None


@dataclass(init=False)
class Batch:
    """A clean padded batch ``x_1``, what an order reads.

    Layout per row: ``[prompt] [BOS] target [EOS] [PAD...]`` for conditional examples,
    ``target [EOS] [PAD...]`` for unconditional ones (``loflex.diffusion.batch.collate`` builds it).

    Attributes:
        x_1: (B, L) long, the clean tokens.
        fixed: (B, L) bool, True on prompt, BOS and EOS (never dropped or masked in
            training; docs/method.md §1.3).
        order_hint: (B, L) float, the domain's per-token order hint (0 off-target), or
            None when the domain provides none.

    Example::

        batch = loflex.collate([Example(target=[5, 6]), Example(target=[7])])
        batch.x_1        # tensor([[5, 6, 3], [7, 3, 0]])
        batch.free       # tensor([[True, True, False], [True, False, False]])
    """

    x_1: torch.Tensor
    fixed: torch.Tensor
    order_hint: torch.Tensor | None = None

    def __init__(self, x_1: torch.Tensor, fixed: torch.Tensor,
                 order_hint: torch.Tensor | None = None, *, side: torch.Tensor | None = None):
        order_hint = renamed_argument(order_hint, side, owner="Batch", name="order_hint",
                                      old_name="side")
        self.x_1, self.fixed, self.order_hint = x_1, fixed, order_hint

    @property
    def side(self) -> torch.Tensor | None:
        """Deprecated name of :attr:`order_hint`."""
        renamed_attribute("Batch", "order_hint", "side")
        return self.order_hint

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
        hint = None if self.order_hint is None else self.order_hint.to(device)
        return Batch(self.x_1.to(device), self.fixed.to(device), hint)

    def __len__(self) -> int:
        return self.x_1.shape[0]

