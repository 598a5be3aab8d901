"""The three plugin hooks of loflex.

Each hook receives a ``register`` callback and calls it once per class it
provides. Classes are registered, not instances; each has a lower-kebab
``name`` and a nested pydantic ``Options`` model. Built-in components are
registered through these same hooks (see :mod:`loflex.default_plugins`).
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("loflex")
hookimpl = pluggy.HookimplMarker("loflex")


@hookspec
def register_generators(register: Callable[[type], None]) -> None:
    """Register denoiser networks (:class:`loflex.Generator` subclasses).

    Called whenever the table of generators is built (on every lookup, so a
    plugin registered inside a test is seen at once).

    Example::

        @hookimpl
        def register_generators(register):
            register(MyGenerator)
    """


@hookspec
def register_order_dynamics(register: Callable[[type], None]) -> None:
    """Register order-dynamics parameterizations (:class:`loflex.OrderDynamics` subclasses).

    An order dynamics defines, per token of a clean sequence, the distribution of
    its insertion and unmasking times.

    Example::

        @hookimpl
        def register_order_dynamics(register):
            register(ReverseOrder)
    """


@hookspec
def register_domains(register: Callable[[type], None]) -> None:
    """Register sequence domains (:class:`loflex.Domain` subclasses).

    A domain owns a tokenizer, the train/valid/test data, decoding and metrics.

    Example::

        @hookimpl
        def register_domains(register):
            register(ProteinDomain)
    """
