"""The ``protein`` domain: peptides over the 20 standard amino acids."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import loflex
from loflex import DataError, Example, Generated, Vocabulary
from pydantic import Field

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
IUPAC_LETTERS = AMINO_ACIDS + "BJOUXZ"  # ambiguous and rare codes that data files may hold
BUNDLED = Path(__file__).parent / "data" / "peptides.fasta"


def read_fasta(path: Path) -> list[str]:
    """Return the sequences of a FASTA file (multi-line records joined, letters upper-cased).

    Raises:
        DataError: the file is missing, or a letter is not an IUPAC protein code.
    """
    if not path.is_file():
        raise DataError(f"protein file '{path}' does not exist; check domain.options.path")
    sequences: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip().upper()
        if line.startswith(">"):
            sequences.append("")
        elif line and sequences:
            bad = [ch for ch in line if ch not in IUPAC_LETTERS]
            if bad:
                raise DataError(f"'{path}' line {number}: {bad[0]!r} is not an amino-acid "
                                "letter; remove it or fix the file")
            sequences[-1] += line
    return [s for s in sequences if s]


def valid_protein(text: str | None) -> bool:
    """Return whether ``text`` is a non-empty string of the 20 standard amino acids."""
    return bool(text) and set(text) <= set(AMINO_ACIDS)


class ProteinDomain(loflex.Domain):
    """Unconditional generation of short peptides.

    The vocabulary is every letter of the training file (so it may hold 'X'); a sample
    is valid when it uses only the 20 standard amino acids.
    """

    name = "protein"

    class Options(loflex.Options):
        path: str | None = Field(None, description="FASTA file (default: the bundled peptides).")
        max_length: int = Field(32, gt=0, description="Longest peptide, in residues.")
        valid_fraction: float = Field(0.1, ge=0, lt=0.5, description="Share for validation.")
        test_fraction: float = Field(0.1, ge=0, lt=0.5, description="Share for testing.")
        seed: int = Field(0, description="Seed of the train/valid/test split.")

    def __init__(self, options: Options, *, state: dict | None = None, cache_dir=None):
        super().__init__(options, state=state, cache_dir=cache_dir)
        path = Path(options.path) if options.path else BUNDLED
        sequences = read_fasta(path)
        too_long = [s for s in sequences if len(s) > options.max_length]
        if too_long:
            raise DataError(f"{len(too_long)} sequences in '{path}' are longer than "
                            f"max_length={options.max_length}; raise domain.options.max_length")
        if state is None:
            self.vocab = Vocabulary.build(sequences)
        else:
            self.vocab = Vocabulary.from_json(state["vocab"])
        self._splits = self._split([self.encode(s) for s in sequences])

    def _split(self, encoded: list[list[int]]) -> dict[str, list[Example]]:
        order = list(range(len(encoded)))
        random.Random(self.options.seed).shuffle(order)
        n_valid = round(len(order) * self.options.valid_fraction)
        n_test = round(len(order) * self.options.test_fraction)
        parts = {"valid": order[:n_valid], "test": order[n_valid:n_valid + n_test],
                 "train": order[n_valid + n_test:]}
        return {split: [Example(target=encoded[i]) for i in sorted(indices)]
                for split, indices in parts.items()}

    @property
    def max_target_length(self) -> int:
        """Longest peptide the model generates."""
        return self.options.max_length

    def examples(self, split: str) -> list[Example]:
        """Return the peptides of ``split``."""
        return self._splits[split]

    def tokenize(self, text: str) -> list[str]:
        """Split a peptide into residues."""
        return list(text.strip().upper())

    def decode(self, ids: Sequence[int]) -> str | None:
        """Return the peptide of ``ids``, or None unless it is a valid protein."""
        text = self.to_text(ids)
        return text if valid_protein(text) else None

    def metrics(self, samples: Sequence[Generated]) -> dict[str, float]:
        """Score samples.

        ``valid_protein`` = valid / n; ``uniqueness`` = distinct valid / valid;
        ``novelty`` = distinct valid not in training / distinct valid; ``mean_length``
        in residues over all samples.
        """
        if not samples:
            return {}
        decoded = [self.decode(s.tokens) for s in samples]
        valid = [text for text in decoded if text is not None]
        distinct = set(valid)
        train = {self.to_text(ex.target) for ex in self.examples("train")}
        return {
            "valid_protein": len(valid) / len(samples),
            "uniqueness": len(distinct) / len(valid) if valid else 0.0,
            "novelty": len(distinct - train) / len(distinct) if distinct else 0.0,
            "mean_length": sum(len(s.tokens) for s in samples) / len(samples),
        }
