"""An example loflex domain plugin: short protein sequences."""

from loflex_example_protein.domain import AMINO_ACIDS, ProteinDomain, read_fasta, valid_protein

__all__ = ["AMINO_ACIDS", "ProteinDomain", "read_fasta", "valid_protein"]
