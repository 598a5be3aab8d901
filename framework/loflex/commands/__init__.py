"""Sub-commands of the ``loflex`` CLI, one module per group, and what they share.

A plugin adds commands, or options of existing commands, through the
``register_commands`` hook, which receives a :class:`Commands`.

The CLI imports every command module when it starts, so a command imports the machinery
it runs (training, sampling, plotting) inside its handler, when it runs: the one place
where loflex imports its own modules inside functions (tests/test_imports.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def add_set_option(parser: argparse.ArgumentParser) -> None:
    """Add the repeatable ``--set section.key=value`` override option."""
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a run setting, e.g. train.lr=3e-4")


def show_progress(args: argparse.Namespace) -> bool:
    """Whether to draw a progress bar: not hidden by ``--no-progress``, stderr a terminal."""
    return not getattr(args, "no_progress", False) and sys.stderr.isatty()


class Commands:
    """The sub-commands of ``loflex``, as handed to the ``register_commands`` hook.

    Example::

        @hookimpl
        def register_commands(commands):
            p = commands.add("hello", help="say hello", handler=lambda args: print("hi"))
            p.add_argument("--name", help="whom to greet")
            commands.parser("sample").add_argument(
                "--fragment", dest="prompt", help="a fragment to grow from (as --prompt)")
    """

    def __init__(self, sub: argparse._SubParsersAction):
        self._sub = sub

    @property
    def names(self) -> list[str]:
        """The names of every command registered so far."""
        return sorted(self._sub.choices)

    def add(self, name: str, *, help: str,
            handler: Callable[[argparse.Namespace], int | None]) -> argparse.ArgumentParser:
        """Add the command ``name``; ``handler(args)`` runs it and returns the exit status.

        Raises:
            ValueError: a command of that name exists.
        """
        if name in self._sub.choices:
            raise ValueError(f"the command '{name}' exists already; choose another name")
        parser = self._sub.add_parser(name, help=help)
        parser.set_defaults(handler=handler)
        return parser

    def parser(self, name: str) -> argparse.ArgumentParser:
        """Return the parser of the existing command ``name`` (to add options to it).

        Raises:
            KeyError: no command has that name (lists them).
        """
        if name not in self._sub.choices:
            raise KeyError(f"no command '{name}'; the commands are {', '.join(self.names)}")
        return self._sub.choices[name]
