"""GenMol de novo and MOSES metrics on hand-picked molecules."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from loflex_molecules.chem import diversity, mean_distance, properties
from loflex_molecules.metrics import denovo_metrics
from loflex_molecules.moses import (
    MosesReference,
    chemnet_stats,
    cosine_similarity,
    frechet,
    intdiv,
    scaffold_counts,
)
from rdkit import Chem
from rdkit.Chem import AllChem

BARICITINIB = "CCS(=O)(=O)N1CC(CC#N)(n2cc(-c3ncnc4[nH]ccc34)cn2)C1"
LOVASTATIN = "CC[C@H](C)C(=O)O[C@H]1C[C@@H](C)C=C2C=C[C@H](C)[C@H](CC[C@@H]3C[C@@H](O)CC(=O)O3)[C@H]21"
LIOTHYRONINE = "N[C@@H](Cc1cc(I)c(Oc2ccc(O)c(I)c2)c(I)c1)C(=O)O"


def canon(smiles):
    return Chem.MolToSmiles(Chem.MolFromSmiles(smiles))


def legacy_tanimoto(a, b, n_bits):
    """Tanimoto from the legacy fingerprint API and Python sets (an independent route)."""
    fa, fb = (set(AllChem.GetMorganFingerprintAsBitVect(Chem.MolFromSmiles(s), 2, nBits=n_bits)
                  .GetOnBits()) for s in (a, b))
    return len(fa & fb) / len(fa | fb)


@pytest.mark.parametrize("smiles, sa", [(BARICITINIB, 3.24973), (LOVASTATIN, 4.690329),
                                        (LIOTHYRONINE, 3.131782)])
def test_sa_scores_match_metrics_md(smiles, sa):
    assert properties(smiles).sa == pytest.approx(sa, abs=1e-5)


def test_qed_bounds_and_ordering():
    # QED is a desirability in (0, 1); a bare ethane is far from drug-like
    assert 0 < properties("CC").qed < 0.5 < properties(BARICITINIB).qed < 1


def test_denovo_metrics_by_hand():
    bari, lova, lio = canon(BARICITINIB), canon(LOVASTATIN), canon(LIOTHYRONINE)
    # good = QED >= 0.6 and SA <= 4: baricitinib yes; lovastatin has SA 4.69 > 4;
    # liothyronine's QED is below 0.6 (three iodines, a zwitterion)
    assert properties(lio).qed < 0.6
    lenient = [bari, bari, lova, lio, None]
    strict = [bari, None, None, lio, None]
    m = denovo_metrics(lenient, strict)
    assert m["validity"] == pytest.approx(4 / 5)
    assert m["uniqueness"] == pytest.approx(3 / 4)
    assert m["quality"] == pytest.approx(1 / 5)  # duplicates removed first (GenMol)
    assert m["quality_with_duplicates"] == pytest.approx(2 / 5)  # xlm-core
    assert m["validity_strict"] == pytest.approx(2 / 5)
    assert m["uniqueness_strict"] == pytest.approx(1.0)
    assert m["quality_strict"] == pytest.approx(1 / 5)
    pairs = [(bari, lova), (bari, lio), (lova, lio)]
    expected = sum(1 - legacy_tanimoto(a, b, 2048) for a, b in pairs) / 3
    assert m["diversity"] == pytest.approx(expected)
    assert m["num_samples"] == 5
    assert m["sa_mean"] == pytest.approx((2 * 3.24973 + 4.690329 + 3.131782) / 4, abs=1e-5)


def test_no_valid_samples_gives_zeros():
    m = denovo_metrics([None, None], [None, None])
    assert m["validity"] == m["uniqueness"] == m["quality"] == m["diversity"] == 0
    assert math.isnan(m["qed_mean"])


def test_diversity_and_distance_by_hand():
    assert diversity(["CCO", "CCO"]) == 0.0
    a, b = canon(BARICITINIB), canon(LOVASTATIN)
    assert diversity([a, b]) == pytest.approx(1 - legacy_tanimoto(a, b, 2048))
    assert mean_distance(a, [a, b]) == pytest.approx((1 - legacy_tanimoto(a, b, 1024)) / 2)


def test_intdiv_two_molecules_by_hand():
    a, b = "c1ccccc1O", "c1ccccc1N"
    s = legacy_tanimoto(a, b, 1024)
    # self-pairs are included: mean_y T(x, y) = (1 + s) / 2 for both x
    assert intdiv([a, b], 1) == pytest.approx(1 - (1 + s) / 2)
    assert intdiv([a, b], 2) == pytest.approx(1 - math.sqrt((1 + s * s) / 2))
    assert intdiv([a, a, a], 1) == pytest.approx(0.0)


def test_cosine_and_scaffolds():
    assert cosine_similarity(Counter(a=1, b=1), Counter(a=1, b=1)) == pytest.approx(1.0)
    assert cosine_similarity(Counter(a=1), Counter(b=3)) == pytest.approx(0.0)
    assert cosine_similarity(Counter(a=3, b=4), Counter(a=1)) == pytest.approx(3 / 5)
    # benzene has one ring (dropped, min_rings=2); naphthalene's scaffold is itself
    counts = scaffold_counts(["c1ccccc1C", "c1ccc2ccccc2c1CC", "c1ccc2ccccc2c1"])
    assert counts == Counter({"c1ccc2ccccc2c1": 2})


def test_novelty_snn_against_reference(moses_smiles):
    test = [canon(s) for s in moses_smiles[:50]]
    ref = MosesReference(train=["CCO", "c1ccccc1"], test=test)
    out = ref.metrics(["CCO", "CCO", "CCN", test[0]], fcd=False)
    assert out["novelty"] == pytest.approx(2 / 3)  # unique {CCO, CCN, test[0]}, CCO in train
    ref_self = MosesReference(train=[], test=test)
    out = ref_self.metrics(test, fcd=False)
    assert out["snn"] == pytest.approx(1.0)
    assert out["frag"] == pytest.approx(1.0)
    assert out["w_qed"] == pytest.approx(0.0, abs=1e-12)


def test_fcd_of_a_set_against_itself_is_zero(moses_smiles, tmp_path):
    smiles = [canon(s) for s in moses_smiles[:300]]
    stats = chemnet_stats(smiles)
    assert frechet(stats, stats) == pytest.approx(0.0, abs=1e-3)
    other = chemnet_stats([canon(s) for s in moses_smiles[300:400]] or smiles)
    assert frechet(stats, other) > 0.1
    ref = MosesReference(train=[], test=smiles, cache_dir=tmp_path)
    out = ref.metrics(smiles, fcd=True, fcd_min_samples=10)
    assert out["fcd"] == pytest.approx(0.0, abs=1e-3) and out["fcd_n"] == 300
    assert any(p.name.endswith("-fcd.npz") for p in tmp_path.iterdir())  # cached on disk
    assert "fcd" not in ref.metrics(smiles[:5], fcd=True, fcd_min_samples=10)
