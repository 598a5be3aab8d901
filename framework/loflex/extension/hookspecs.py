"""The plugin hooks of loflex.

Each registration hook receives a ``register`` callback. The three component hooks
call it once per class they provide: classes are registered, not instances; each has a
lower-kebab ``name`` and a nested pydantic ``Options`` model whose every field has a
description. Built-in components are registered through these same hooks (see
:mod:`loflex.default_plugins`). ``register_pretrained`` calls it once per pretrained
model folder the plugin ships. ``register_commands`` receives the command table instead.

A plugin whose hook raises or registers something invalid is skipped with a warning
naming it and its distribution; the other plugins keep working.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from loflex.commands import Commands

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


@hookspec
def register_pretrained(register: Callable[..., None]) -> None:
    """Register pretrained models shipped inside the plugin's package.

    ``register(name, *, package, description, folder=None)``: ``name`` is lower-kebab
    ``<domain-task>-<method>``; ``folder`` (default ``pretrained/<name>``) is the model's
    folder inside the importable ``package``, found with :mod:`importlib.resources` and
    only ever read. The folder is a checkpoint folder (``run.json``, ``state.json``,
    ``model.safetensors``) plus ``card.md`` and an optional ``card.json``; see
    :mod:`loflex.extension.pretrained`.

    Example::

        @hookimpl
        def register_pretrained(register):
            register("protein-peptides-flexmdm", package=__package__,
                     description="FlexMDM on the bundled peptides, 1 layer, width 32")
    """


@hookspec
def register_commands(commands: Commands) -> None:
    """Add sub-commands to ``loflex``, or options to its existing commands.

    Called once when the command line is built. ``commands.add(name, help=...,
    handler=...)`` returns the new command's ``argparse`` parser; ``handler(args)`` runs
    it and returns the exit status. ``commands.parser(name)`` returns an existing
    command's parser, to add an option that the plugin's domain understands.

    Example::

        @hookimpl
        def register_commands(commands):
            commands.parser("sample").add_argument(
                "--fragment", dest="prompt", help="molecule fragment to grow from "
                "(the same as --prompt)")
    """
