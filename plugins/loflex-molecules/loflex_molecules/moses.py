"""MOSES metrics (metrics.md section 5) against a training and a test set.

- novelty = |set(gen) - train| / |set(gen)| over canonical SMILES;
- FCD = Frechet distance of ChemNet activations (``fcd`` package, weights bundled in
  its wheel) between generated and test molecules; reported with ``fcd_n``, since
  FCD depends strongly on the sample size;
- IntDiv_p = 1 - (1/|G|) sum_x ((1/|G|) sum_y T(x, y)^p)^(1/p) over all valid
  generated molecules, duplicates and self-pairs included (Morgan r=2, 1024 bits);
- SNN = mean over generated x of max_y T(x, y), y in the test set (1024 bits);
- Frag / Scaf = cosine similarity of BRICS-fragment / Bemis-Murcko-scaffold
  (at least 2 rings) count vectors of generated and test molecules;
- ``w_<prop>`` = Wasserstein-1 distance of QED, SA, logP and MW distributions.

Reference statistics of the test set are computed once and cached on disk.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rdkit import Chem
from rdkit.Chem import BRICS
from rdkit.Chem.Scaffolds import MurckoScaffold
from scipy.stats import wasserstein_distance

from loflex_molecules.chem import fingerprints, properties, similarity_matrix, to_mol

PROPERTY_NAMES = ("qed", "sa", "logp", "mw")
CACHE_VERSION = "1"


def intdiv(smiles: Sequence[str], p: int = 1) -> float:
    """Return MOSES internal diversity IntDiv_p of valid SMILES (duplicates kept)."""
    if not smiles:
        return float("nan")
    fps = fingerprints(smiles, 1024)
    sim = similarity_matrix(fps, fps)
    return float(1.0 - np.mean(np.mean(sim**p, axis=1) ** (1.0 / p)))


def snn(smiles: Sequence[str], reference_fps: Sequence) -> float:
    """Return the mean nearest-neighbour Tanimoto similarity to the reference."""
    if not smiles:
        return float("nan")
    sim = similarity_matrix(fingerprints(smiles, 1024), reference_fps)
    return float(np.mean(sim.max(axis=1)))


def fragment_counts(smiles: Sequence[str]) -> Counter:
    """Count BRICS fragments (as SMILES) over all molecules."""
    counts: Counter = Counter()
    for s in smiles:
        frags = Chem.MolToSmiles(BRICS.BreakBRICSBonds(to_mol(s))).split(".")
        counts.update(frags)
    return counts


def scaffold_counts(smiles: Sequence[str], min_rings: int = 2) -> Counter:
    """Count Bemis-Murcko scaffolds with at least ``min_rings`` rings."""
    counts: Counter = Counter()
    for s in smiles:
        try:
            scaffold = MurckoScaffold.GetScaffoldForMol(to_mol(s))
        except (ValueError, RuntimeError):
            continue
        text = Chem.MolToSmiles(scaffold)
        if text and scaffold.GetRingInfo().NumRings() >= min_rings:
            counts[text] += 1
    return counts


def cosine_similarity(a: Counter, b: Counter) -> float:
    """Return the cosine similarity of two count vectors (NaN if either is empty)."""
    if not a or not b:
        return float("nan")
    keys = sorted(set(a) | set(b))
    va = np.array([a.get(k, 0) for k in keys], dtype=np.float64)
    vb = np.array([b.get(k, 0) for k in keys], dtype=np.float64)
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))


def chemnet_stats(smiles: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Return the mean (512,) and covariance (512, 512) of ChemNet activations."""
    import fcd

    acts = fcd.get_predictions(fcd.load_ref_model(), list(smiles), n_jobs=0, device="cpu")
    return acts.mean(axis=0), np.cov(acts.T)


def frechet(stats_a: tuple[np.ndarray, np.ndarray], stats_b: tuple[np.ndarray, np.ndarray]
            ) -> float:
    """Return the Frechet distance of two Gaussians given as (mean, covariance)."""
    import fcd

    return float(fcd.calculate_frechet_distance(stats_a[0], stats_a[1], stats_b[0], stats_b[1]))


class MosesReference:
    """Train and test sets with lazily computed, disk-cached test statistics.

    Args:
        train: canonical SMILES of the training set (for novelty).
        test: canonical SMILES of the test set.
        cache_dir: where the test statistics are cached (None: no disk cache).
    """

    def __init__(self, train: Sequence[str], test: Sequence[str], cache_dir: Path | None = None):
        self.train = set(train)
        self.test = list(test)
        key = hashlib.sha256(("\n".join(self.test) + CACHE_VERSION).encode()).hexdigest()[:24]
        self.cache = None if cache_dir is None else Path(cache_dir) / f"moses-reference-{key}"
        self._stats: dict = {}

    def _cached(self, name: str, compute):
        if name in self._stats:
            return self._stats[name]
        path = None if self.cache is None else self.cache.with_name(f"{self.cache.name}-{name}.npz")
        value = _load_npz(path) if path is not None else None
        if value is None:
            value = compute()
            if path is not None:
                _save_npz(path, value)
        self._stats[name] = value
        return value

    def fcd_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the test set's ChemNet (mean, covariance)."""
        value = self._cached("fcd", lambda: dict(zip(("mu", "sigma"), chemnet_stats(self.test))))
        return value["mu"], value["sigma"]

    def counts(self, kind: str) -> Counter:
        """Return the test set's BRICS (``frag``) or scaffold (``scaf``) counts."""
        fn = fragment_counts if kind == "frag" else scaffold_counts

        def compute():
            counts = fn(self.test)
            return {"json": np.array(json.dumps(counts))}

        return Counter(json.loads(str(self._cached(kind, compute)["json"])))

    def property_arrays(self) -> dict[str, np.ndarray]:
        """Return the test set's QED, SA, logP and MW values."""
        def compute():
            props = [properties(s) for s in self.test]
            return {k: np.array([getattr(p, k) for p in props]) for k in PROPERTY_NAMES}

        return self._cached("props", compute)

    def fingerprints(self) -> list:
        """Return the test set's Morgan fingerprints (1024 bits), kept in memory."""
        if "fps" not in self._stats:
            self._stats["fps"] = fingerprints(self.test, 1024)
        return self._stats["fps"]

    def metrics(self, valid: Sequence[str], fcd: bool = True, fcd_min_samples: int = 2
                ) -> dict[str, float]:
        """Return novelty, FCD (with fcd_n), IntDiv1/2, SNN, Frag, Scaf and w_<prop>."""
        unique = set(valid)
        out = {
            "novelty": len(unique - self.train) / len(unique) if unique else float("nan"),
            "intdiv1": intdiv(valid, 1),
            "intdiv2": intdiv(valid, 2),
        }
        if not valid:
            return out
        out["snn"] = snn(valid, self.fingerprints())
        out["frag"] = cosine_similarity(fragment_counts(valid), self.counts("frag"))
        out["scaf"] = cosine_similarity(scaffold_counts(valid), self.counts("scaf"))
        reference = self.property_arrays()
        for name in PROPERTY_NAMES:
            values = [getattr(properties(s), name) for s in valid]
            out[f"w_{name}"] = float(wasserstein_distance(values, reference[name]))
        if fcd and len(valid) >= max(fcd_min_samples, 2):
            out["fcd"] = frechet(chemnet_stats(valid), self.fcd_stats())
            out["fcd_n"] = float(len(valid))
        return out


def _load_npz(path: Path) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError):
        return None


def _save_npz(path: Path, value: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, **value)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(buffer.getvalue())
        os.replace(tmp, path)
    except OSError:
        pass
