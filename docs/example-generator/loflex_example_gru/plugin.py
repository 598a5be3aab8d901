"""The module the entry point names: it registers the ``gru`` generator."""

from loflex import hookimpl

from loflex_example_gru.generator import GRUGenerator


@hookimpl
def register_generators(register):
    register(GRUGenerator)
