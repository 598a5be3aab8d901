"""Hook implementations of this plugin: the ``molecules`` domain."""

from __future__ import annotations

from loflex.hookspecs import hookimpl


@hookimpl
def register_domains(register):
    """Register :class:`loflex_molecules.domain.MoleculeDomain`."""
    from loflex_molecules.domain import MoleculeDomain

    register(MoleculeDomain)
