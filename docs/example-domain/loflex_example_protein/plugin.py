"""The module named by the ``loflex`` entry point: the domain and its pretrained model."""

from loflex import hookimpl

from loflex_example_protein.domain import ProteinDomain


@hookimpl
def register_domains(register):
    """Register the ``protein`` domain."""
    register(ProteinDomain)


@hookimpl
def register_pretrained(register):
    """Register the tiny model in ``pretrained/protein-peptides-flexmdm/``."""
    register("protein-peptides-flexmdm", package=__package__,
             description="FlexMDM on the bundled peptides: 1 layer, width 32 (a demonstration)")
