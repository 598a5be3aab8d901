"""GenMol de novo metrics (metrics.md section 1) over decoded samples.

With N generated samples, ``valid`` the decoded canonical SMILES that survived
and ``unique`` their distinct values:

- validity = |valid| / N;
- uniqueness = |unique| / |valid|;
- diversity = mean over pairs of unique molecules of 1 - Tanimoto (Morgan r=2, 2048 bits);
- quality = |{x in unique : QED(x) >= 0.6 and SA(x) <= 4}| / N (GenMol);
- quality_with_duplicates = the same count over ``valid`` with duplicates (xlm-core).

The lenient decoder (GenMol's) gives the unsuffixed names; the strict decoder
gives ``validity_strict``, ``uniqueness_strict`` and ``quality_strict``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from loflex_molecules.chem import diversity, properties


def denovo_metrics(lenient: Sequence[str | None], strict: Sequence[str | None] | None = None
                   ) -> dict[str, float]:
    """Return the GenMol de novo metrics and property means.

    Args:
        lenient: one canonical SMILES (or None when invalid) per generated sample,
            decoded leniently; its length is N.
        strict: the same samples decoded strictly (optional).

    Returns:
        validity, uniqueness, diversity, quality, quality_with_duplicates,
        qed_mean, sa_mean, logp_mean, mw_mean (over valid samples, duplicates
        included), num_samples, and the ``_strict`` metrics when ``strict`` is given.
    """
    out = core_metrics(lenient, len(lenient))
    out["num_samples"] = float(len(lenient))
    out.update(property_means([s for s in lenient if s]))
    if strict is not None:
        assert len(strict) == len(lenient), "strict and lenient decodings must align"
        strict_scores = core_metrics(strict, len(strict))
        for key in ("validity", "uniqueness", "quality"):
            out[f"{key}_strict"] = strict_scores[key]
    return out


def core_metrics(decoded: Sequence[str | None], n: int) -> dict[str, float]:
    """Return validity, uniqueness, diversity, quality and quality_with_duplicates.

    Args:
        decoded: canonical SMILES or None per sample (only non-None ones count as valid).
        n: the denominator N of validity and quality (the number of samples asked for).
    """
    valid = [s for s in decoded if s]
    unique = list(dict.fromkeys(valid))
    n = max(n, 1)
    good = {s: properties(s).good for s in unique}
    return {
        "validity": len(valid) / n,
        "uniqueness": len(unique) / len(valid) if valid else 0.0,
        "diversity": diversity(unique),
        "quality": sum(good.values()) / n,
        "quality_with_duplicates": sum(good[s] for s in valid) / n,
    }


def property_means(valid: Sequence[str]) -> dict[str, float]:
    """Return the mean QED, SA, logP and molecular weight of ``valid`` (NaN if empty)."""
    if not valid:
        return {f"{k}_mean": float("nan") for k in ("qed", "sa", "logp", "mw")}
    props = [properties(s) for s in valid]
    return {
        "qed_mean": float(np.mean([p.qed for p in props])),
        "sa_mean": float(np.mean([p.sa for p in props])),
        "logp_mean": float(np.mean([p.logp for p in props])),
        "mw_mean": float(np.mean([p.mw for p in props])),
    }
