"""GenMol's fragment-constrained tasks (docs/method.md §6.2).

Ten drugs times four tasks: motif extension, scaffold decoration, superstructure
generation (one attachment point drawn from ``list_individual_attach_points(mol,
depth=3)``) and one-step linker design (both side chains in one prompt, encoded
without further slicing). The prompt is the fragment's SAFE or BracketSAFE plus
``.``, fixed, without BOS; the model appends fragments. Samples that do not
contain the fragment (attachment points removed, as a SMARTS query) count as
failures.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import safe as sf
from loflex.errors import DataError
from rdkit import Chem

from loflex_molecules.chem import diversity, mean_distance
from loflex_molecules.data import bundled_path
from loflex_molecules.metrics import core_metrics
from loflex_molecules.representations import safe_to_bracket

TASKS = ("motif_extension", "scaffold_decoration", "superstructure_generation", "linker_design")
TASK_METRICS = ("validity", "uniqueness", "diversity", "quality", "quality_with_duplicates",
                "distance")


@dataclass(frozen=True)
class FragmentTask:
    """One (drug, task) input of the GenMol benchmark.

    Attributes:
        drug: the drug's name.
        drug_smiles: the original drug.
        task: one of :data:`TASKS`.
        fragment: SMILES with attachment points (``[n*]``) that the samples must contain.
    """

    drug: str
    drug_smiles: str
    task: str
    fragment: str

    @property
    def link(self) -> bool:
        """Whether the fragment is several pieces to be linked in one step."""
        return self.task == "linker_design"


def load_fragment_tasks(path: str | None = None, seed: int = 0) -> list[FragmentTask]:
    """Return the 40 tasks of GenMol's ``fragments.csv`` (bundled by default).

    Superstructure inputs have no attachment point; one is drawn (seeded) from
    ``sf.utils.list_individual_attach_points(mol, depth=3)``. Results are memoised
    per (path, seed), since listing attachment points takes seconds.
    """
    return list(_load_tasks(path, seed))


@lru_cache(maxsize=8)
def _load_tasks(path: str | None, seed: int) -> tuple[FragmentTask, ...]:
    rng = random.Random(seed)
    with open(path or bundled_path("genmol_fragments.csv"), encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    tasks = []
    for row in rows:
        for task in TASKS:
            fragment = row[task]
            if task == "superstructure_generation":
                fragment = pick_attachment(fragment, rng)
            tasks.append(FragmentTask(row["name"], row["smiles"], task, fragment))
    return tuple(tasks)


def pick_attachment(smiles: str, rng: random.Random) -> str:
    """Open one attachment point on ``smiles``, chosen at random among depth-3 options."""
    mol = Chem.MolFromSmiles(smiles)
    options = sorted(sf.utils.list_individual_attach_points(mol, depth=3))
    assert options, f"no attachment point can be opened on {smiles}"
    return rng.choice(options)


def check_fragment(fragment: str) -> Chem.Mol:
    """Parse a fragment with attachment points, or raise a DataError saying what is wrong.

    Raises:
        DataError: the SMILES does not parse, has no attachment point, or an
            attachment point (``*``) is not a terminal atom with one single bond.
    """
    mol = Chem.MolFromSmiles(fragment) if fragment.strip() else None
    if mol is None:
        raise DataError(
            f"fragment {fragment!r} is not valid SMILES; write it like c1ccc([*])cc1 "
            "with [*] or [1*] marking attachment points"
        )
    dummies = [a for a in mol.GetAtoms() if a.GetAtomicNum() == 0]
    if not dummies:
        raise DataError(
            f"fragment {fragment!r} has no attachment point; mark where the molecule grows "
            "with [*], e.g. c1ccc([*])cc1"
        )
    for atom in dummies:
        bonds = atom.GetBonds()
        if len(bonds) != 1 or bonds[0].GetBondType() != Chem.BondType.SINGLE:
            raise DataError(
                f"attachment point in {fragment!r} must hang on one atom by a single bond "
                "(like C[*]); move or remove the misplaced *"
            )
    return mol


def encode_fragment(fragment: str, representation: str, link: bool = False) -> str:
    """Return the prompt text: the fragment's (Bracket)SAFE followed by ``.``.

    Args:
        fragment: SMILES with attachment points (checked by :func:`check_fragment`).
        representation: "safe" or "bracket-safe".
        link: encode ``.``-separated pieces as they are (one-step linker design)
            instead of slicing them further with BRICS.

    Raises:
        DataError: the representation is SMILES, or SAFE cannot encode the fragment.
    """
    if representation not in ("safe", "bracket-safe"):
        raise DataError(
            f"fragment prompts need representation 'safe' or 'bracket-safe', not "
            f"'{representation}'; set the domain's `representation` option"
        )
    check_fragment(fragment)
    converter = sf.SAFEConverter(slicer=None if link else "brics", ignore_stereo=True)
    try:
        safe = converter.encoder(fragment, canonical=True, allow_empty=True)
        text = safe_to_bracket(safe) if representation == "bracket-safe" else safe
    except Exception as exc:  # safe raises several exception types
        raise DataError(f"SAFE cannot encode fragment {fragment!r} ({exc}); check it") from None
    return text + "."


def substructure_query(fragment: str) -> Chem.Mol:
    """Return the SMARTS query of ``fragment`` with its attachment points removed."""
    mol = Chem.MolFromSmiles(fragment)
    core = Chem.DeleteSubstructs(mol, Chem.MolFromSmarts("[#0]"))
    query = Chem.MolFromSmarts(Chem.MolToSmiles(core))
    assert query is not None, f"cannot build a substructure query from {fragment}"
    return query


def contains(smiles: Sequence[str | None], fragment: str) -> list[str | None]:
    """Return ``smiles`` with None wherever the molecule lacks ``fragment``."""
    query = substructure_query(fragment)
    out: list[str | None] = []
    for s in smiles:
        mol = Chem.MolFromSmiles(s) if s else None
        out.append(s if mol is not None and mol.HasSubstructMatch(query) else None)
    return out


def score_task(task: FragmentTask, smiles: Sequence[str | None], num_samples: int | None = None
               ) -> dict[str, float]:
    """Score one (drug, task): GenMol's per-fragment metrics.

    Args:
        task: the task the samples were drawn for.
        smiles: decoded canonical SMILES (None if invalid), one per sample.
        num_samples: the denominator N (default: ``len(smiles)``).

    Returns:
        validity, uniqueness, quality, quality_with_duplicates over constraint-
        satisfying samples; diversity and distance (mean Tanimoto distance of the
        unique samples to the drug, Morgan r=2, 1024 bits), NaN when none survive.
    """
    kept = contains(smiles, task.fragment)
    out = core_metrics(kept, num_samples or len(smiles))
    unique = list(dict.fromkeys(s for s in kept if s))
    out["diversity"] = diversity(unique) if unique else float("nan")
    out["distance"] = mean_distance(task.drug_smiles, unique)
    return out


def summarize(tasks: Sequence[FragmentTask], scores: Sequence[dict[str, float]]
              ) -> dict[str, float]:
    """Average per-drug scores per task: ``<task>/<metric>`` keys (NaNs skipped)."""
    out: dict[str, float] = {}
    for name in TASKS:
        rows = [s for t, s in zip(tasks, scores) if t.task == name]
        for metric in TASK_METRICS:
            values = np.array([r.get(metric, np.nan) for r in rows], dtype=np.float64)
            if rows and not np.isnan(values).all():
                out[f"{name}/{metric}"] = float(np.nanmean(values))
    return out
