"""Build the three components of a run in the documented order: domain, generator, order.

``Model`` is the former name of :class:`Assembly`, kept for one release.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from loflex.config import Run
from loflex.contracts import Domain, Generator
from loflex.diffusion.order import OrderDynamics
from loflex.extension import registry


@dataclass
class Assembly:
    """A domain with its generator and order dynamics, as :func:`assemble` builds them.

    Not an ``nn.Module`` itself: :meth:`modules` gives the two trainable networks.
    """

    domain: Domain
    generator: Generator
    order: OrderDynamics

    def modules(self) -> dict[str, nn.Module]:
        """Return the trainable modules by checkpoint prefix."""
        return {"generator": self.generator, "order": self.order}


def assemble(run: Run, domain_state: dict | None = None, cache_dir: Path | None = None) -> Assembly:
    """Build domain, generator and order for ``run``.

    The domain comes first (it fixes vocabulary and lengths), then the generator, then
    the order, which receives the generator so a ``shared`` backbone can reuse its trunk.

    Args:
        run: the validated run.
        domain_state: a checkpoint's domain state (restores the vocabulary).
        cache_dir: where the domain may cache prepared data.
    """
    domain = registry.build(Domain, run.domain, state=domain_state, cache_dir=cache_dir)
    order_cls = registry.get(OrderDynamics, run.order.name)
    order_options = registry.validate_options(OrderDynamics, run.order.name, run.order.options)
    max_length = run.sample.max_length or domain.max_length
    max_length = max(max_length, domain.max_length)
    generator = registry.build(
        Generator,
        run.generator,
        vocab_size=len(domain.vocab),
        max_length=max_length,
        learn_unmask=order_cls.learns_unmask(order_options),
    )
    order = order_cls(order_options, generator=generator, vocab_size=len(domain.vocab),
                      max_length=max_length)
    return Assembly(domain, generator, order)


def __getattr__(name: str):
    """Return :class:`Assembly` for its deprecated name ``Model``, with a warning."""
    if name == "Model":
        warnings.warn("loflex.extension.assemble.Model is deprecated and will be removed in the next "
                      "release; use loflex.extension.assemble.Assembly", DeprecationWarning, stacklevel=2)
        return Assembly
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
