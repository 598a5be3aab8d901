"""GenMol fragment tasks: inputs, prompts, the substructure filter and scoring."""

from __future__ import annotations

import pytest
from loflex import DataError
from loflex_molecules.fragments import (
    TASKS,
    check_fragment,
    encode_fragment,
    load_fragment_tasks,
    score_task,
    summarize,
)
from loflex_molecules.representations import decode_lenient
from rdkit import Chem


@pytest.fixture(scope="module")
def tasks():
    return load_fragment_tasks()


def test_forty_tasks_with_attachment_points(tasks):
    assert len(tasks) == 40
    assert {t.task for t in tasks} == set(TASKS)
    assert len({t.drug for t in tasks}) == 10
    for t in tasks:
        mol = check_fragment(t.fragment)
        assert any(a.GetAtomicNum() == 0 for a in mol.GetAtoms())
    linkers = [t for t in tasks if t.task == "linker_design"]
    assert all(t.fragment.count(".") == 1 for t in linkers)


@pytest.mark.parametrize("representation", ["safe", "bracket-safe"])
def test_prompts_encode_the_fragment(tasks, representation):
    for t in tasks:
        text = encode_fragment(t.fragment, representation, t.link)
        assert text.endswith(".")
        # the prompt alone decodes to the fragment with its attachment points capped
        capped = Chem.MolToSmiles(Chem.MolFromSmiles(
            Chem.MolToSmiles(Chem.ReplaceSubstructs(
                Chem.MolFromSmiles(t.fragment), Chem.MolFromSmarts("[#0]"),
                Chem.MolFromSmiles("[H]"), replaceAll=True)[0])))
        decoded = decode_lenient(text[:-1], representation)
        if not t.link:  # linker prompts are two molecules; lenient keeps the larger
            assert Chem.MolFromSmiles(decoded).GetNumHeavyAtoms() == \
                Chem.MolFromSmiles(capped).GetNumHeavyAtoms(), (t, text)


def test_the_drug_satisfies_its_own_constraint(tasks):
    for t in tasks:
        drug = Chem.MolToSmiles(Chem.MolFromSmiles(t.drug_smiles))
        scores = score_task(t, [drug, drug, None, "CCO"])
        assert scores["validity"] == pytest.approx(2 / 4), t  # CCO lacks the fragment
        assert scores["uniqueness"] == pytest.approx(1 / 2)
        assert scores["distance"] == pytest.approx(0.0)
        assert scores["diversity"] == 0.0


def test_summary_skips_drugs_without_samples(tasks):
    motif = [t for t in tasks if t.task == "motif_extension"][:2]
    good = score_task(motif[0], [motif[0].drug_smiles])
    empty = score_task(motif[1], [None, None])
    out = summarize(motif, [good, empty])
    assert out["motif_extension/validity"] == pytest.approx(0.5)
    assert out["motif_extension/distance"] == pytest.approx(0.0)  # NaN of the empty one skipped


@pytest.mark.parametrize("fragment, match", [
    ("c1ccc", "not valid SMILES"),
    ("CCO", "no attachment point"),
    ("C*C", "single bond"),
    ("C=[*]", "single bond"),
    ("", "not valid SMILES"),
])
def test_malformed_fragments_raise(fragment, match):
    with pytest.raises(DataError, match=match):
        encode_fragment(fragment, "safe")


def test_smiles_representation_has_no_fragment_prompts():
    with pytest.raises(DataError, match="representation 'safe' or 'bracket-safe'"):
        encode_fragment("c1ccc([*])cc1", "smiles")
