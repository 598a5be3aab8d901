"""Molecular properties, fingerprints and Tanimoto statistics (RDKit, offline).

QED is ``rdkit.Chem.QED.qed``; SA is Ertl and Schuffenhauer's score from RDKit's
Contrib ``sascorer`` (the same numbers as TDC's and MOSES's copies, metrics.md
section 4); fingerprints are Morgan radius 2 bit vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from rdkit import Chem, DataStructs, RDLogger
from rdkit.Chem import QED, Crippen, Descriptors, rdFingerprintGenerator
from rdkit.Contrib.SA_Score import sascorer

RDLogger.DisableLog("rdApp.*")

QED_MIN = 0.6
SA_MAX = 4.0


@dataclass(frozen=True)
class Properties:
    """Drug-likeness properties of one molecule."""

    qed: float
    sa: float
    logp: float
    mw: float

    @property
    def good(self) -> bool:
        """GenMol's quality criterion: QED >= 0.6 and SA <= 4."""
        return self.qed >= QED_MIN and self.sa <= SA_MAX


def to_mol(smiles: str | None) -> Chem.Mol | None:
    """Parse SMILES; None when it is empty or does not parse."""
    if not smiles:
        return None
    mol = Chem.MolFromSmiles(smiles)
    return mol if mol is not None and mol.GetNumAtoms() > 0 else None


@lru_cache(maxsize=200_000)
def properties(smiles: str) -> Properties:
    """Return QED, SA, logP (Crippen) and molecular weight of a valid SMILES."""
    mol = to_mol(smiles)
    assert mol is not None, f"properties need a valid molecule, got {smiles!r}"
    return Properties(
        qed=float(QED.qed(mol)),
        sa=float(sascorer.calculateScore(mol)),
        logp=float(Crippen.MolLogP(mol)),
        mw=float(Descriptors.MolWt(mol)),
    )


@lru_cache(maxsize=4)
def _generator(n_bits: int):
    return rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=n_bits)


def fingerprints(smiles: Sequence[str], n_bits: int) -> list:
    """Return Morgan radius-2 bit vectors of ``n_bits`` bits for valid SMILES."""
    gen = _generator(n_bits)
    return [gen.GetFingerprint(to_mol(s)) for s in smiles]


def similarity_matrix(fps_a: Sequence, fps_b: Sequence) -> np.ndarray:
    """Return the (|A|, |B|) Tanimoto similarity matrix (two empty vectors give 1)."""
    rows = [DataStructs.BulkTanimotoSimilarity(fp, list(fps_b)) for fp in fps_a]
    sim = np.array(rows, dtype=np.float64).reshape(len(fps_a), len(fps_b))
    empty_a = np.array([fp.GetNumOnBits() == 0 for fp in fps_a], dtype=bool)
    empty_b = np.array([fp.GetNumOnBits() == 0 for fp in fps_b], dtype=bool)
    sim[np.outer(empty_a, empty_b)] = 1.0
    return sim


def diversity(unique_smiles: Sequence[str]) -> float:
    """Return TDC's diversity: mean of 1 - Tanimoto over unordered pairs (2048 bits).

    The input is deduplicated first; fewer than two molecules give 0.
    """
    smiles = list(dict.fromkeys(unique_smiles))
    if len(smiles) < 2:
        return 0.0
    fps = fingerprints(smiles, 2048)
    sim = similarity_matrix(fps, fps)
    upper = sim[np.triu_indices(len(smiles), k=1)]
    return float(np.mean(1.0 - upper))


def mean_distance(reference: str, smiles: Sequence[str], n_bits: int = 1024) -> float:
    """Return the mean Tanimoto distance of ``smiles`` to ``reference`` (GenMol distance)."""
    if not smiles:
        return float("nan")
    ref = fingerprints([reference], n_bits)[0]
    sims = DataStructs.BulkTanimotoSimilarity(ref, fingerprints(smiles, n_bits))
    return float(np.mean(1.0 - np.asarray(sims)))
