"""The molecule models shipped in ``loflex_molecules/pretrained`` load, match their cards,
and write SAFE strings that decode."""

from __future__ import annotations

import loflex
import pytest
from loflex.extension.testing import check_shipped_model
from loflex_molecules.plugin import PRETRAINED


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_a_shipped_molecule_model_matches_its_card_and_writes_molecules(name):
    """16 de novo samples, 64 steps: most decode to a molecule in GenMol's lenient sense
    (the largest piece that RDKit reads; the cards give strict validity separately)."""
    loaded = check_shipped_model(name)
    molecules = loaded.sample(16, steps=64, seed=0)
    assert len(molecules) == 16
    decoded = [m for m in molecules if m is not None]
    assert len(decoded) >= 12, f"{len(decoded)} of 16 samples decode"
    assert all(m.GetNumAtoms() > 0 for m in decoded)


def test_structure_rounds_complete_what_shipped_samples_lack():
    """32 samples at 16 steps: some lack a group, a brace or a fragment, or hold a fragment
    that does not fit its place (14 of 32); with three structure rounds none does, and
    more of them decode strictly (31 against 18)."""
    loaded = loflex.load("molecules-loflexmdm")
    domain = loaded.domain
    plain = loaded.generate(32, steps=16, seed=0, structure_rounds=0)
    completed = loaded.generate(32, steps=16, seed=0, structure_rounds=3)

    def strict(samples) -> int:
        return sum(domain.to_smiles(s.tokens, strict=True) is not None for s in samples)

    assert sum(bool(domain.missing_structure([], s.tokens)) for s in plain) >= 4
    assert not any(domain.missing_structure([], s.tokens) for s in completed)
    assert strict(completed) >= strict(plain) + 4


def test_shipped_fragment_models_sample_whole_fragments_unless_told_otherwise():
    """The fragment-smiles models default to whole fragments only; the domain option set
    back to true lets them spell a fragment atom by atom again."""
    loaded = loflex.load("molecules-loflexmdm")
    domain = loaded.domain

    def spelled(samples) -> int:
        return sum(t not in domain.tokenizer.templates and t not in ("{", "}")
                   for s in samples for t in domain.vocab.decode(s.tokens))

    assert spelled(loaded.generate(32, steps=16, seed=0)) == 0
    spelling = loflex.load("molecules-loflexmdm",
                           overrides=["domain.options.spelled_fragments=true"])
    assert spelled(spelling.generate(32, steps=16, seed=0)) > 0
