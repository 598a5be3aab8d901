"""The module named by the ``loflex`` entry point: it registers the domain."""

from loflex import hookimpl

from loflex_example_protein.domain import ProteinDomain


@hookimpl
def register_domains(register):
    """Register the ``protein`` domain."""
    register(ProteinDomain)
