"""Hook implementations of this plugin: the ``molecules`` domain and ``--fragment``."""

from __future__ import annotations

from loflex.extension.hookspecs import hookimpl


@hookimpl
def register_domains(register):
    """Register :class:`loflex_molecules.domain.MoleculeDomain`."""
    from loflex_molecules.domain import MoleculeDomain

    register(MoleculeDomain)


@hookimpl
def register_commands(commands):
    """Add ``--fragment SMILES`` to ``loflex sample``: the same as ``--prompt``."""
    commands.parser("sample").add_argument(
        "--fragment", dest="prompt", metavar="FRAGMENT",
        help="molecule fragment to grow from, in the model's representation (the same as "
        "--prompt; molecules plugin)")
