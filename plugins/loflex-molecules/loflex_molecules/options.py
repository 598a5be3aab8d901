"""Options of the ``molecules`` domain."""

from __future__ import annotations

from typing import Literal

from loflex.config import Options
from pydantic import Field


class MoleculeOptions(Options):
    """Options of the ``molecules`` domain."""

    representation: Literal["safe", "bracket-safe", "smiles"] = Field(
        "safe", description="String form of molecules: SAFE, BracketSAFE (GenMol) or SMILES."
    )
    tokens: Literal["atoms", "fragments", "fragment-tree", "fragment-smiles"] = Field(
        "atoms",
        description="Token granularity: one token per atom, bond and ring number; or (with "
        "representation = 'bracket-safe') one token per frequent fragment, followed by its "
        "attachment numbers ('fragments'), or by one { ... } group per bonded subtree "
        "('fragment-tree', no numbers to pair), or with the last subtree written inline as "
        "SMILES continues a chain ('fragment-smiles'); rare fragments are written atom by atom.",
    )
    spelled_fragments: bool = Field(
        True,
        description="With fragment-tree tokens: whether sampling may spell a fragment atom "
        "by atom, as training data does for rare ones; False restricts every sampled token to "
        "whole fragments and group braces. A sampling setting: it may change on a trained model.",
    )
    fragment_min_count: int = Field(
        2, gt=0,
        description="With fragment tokens: how often a fragment template must occur in "
        "the training data to become one token.",
    )
    path: str | None = Field(
        None,
        description="Molecule file (.csv, .smi, .txt, .sdf, .parquet, optionally .gz) or a "
        "directory of Parquet shards; default: the bundled MOSES subset.",
    )
    column: str = Field("SMILES", description="Column holding the SMILES in CSV/Parquet files.")
    train_size: int | None = Field(None, gt=0, description="Most training molecules (None: all).")
    valid_size: int | None = Field(1000, gt=0, description="Most validation molecules.")
    test_size: int | None = Field(
        10000, gt=0, description="Most test molecules (the MOSES reference set)."
    )
    max_length: int = Field(128, gt=1, description="Longest target in tokens.")
    too_long: Literal["skip", "truncate"] = Field(
        "skip", description="What to do with molecules longer than max_length (counted)."
    )
    augment: bool = Field(
        False,
        description="Re-encode each training molecule at random (atom and fragment order) "
        "every time it is drawn.",
    )
    workers: int | None = Field(
        None, gt=0, description="Processes converting SMILES to SAFE (default: all cores)."
    )
    cache_dir: str | None = Field(
        None, description="Cache of converted data (default: ~/.cache/loflex/molecules)."
    )
    fragment_tokens: bool = Field(
        True,
        description="Add the tokens of GenMol's fragment-task inputs to the vocabulary, so "
        "every fragment prompt can be encoded.",
    )
    moses_metrics: bool = Field(
        True, description="Compute MOSES metrics (novelty, SNN, Frag, Scaf, IntDiv, FCD)."
    )
    fcd: bool = Field(True, description="Compute the FCD to the test set (ChemNet, CPU).")
    fcd_min_samples: int = Field(
        100, gt=1, description="Skip FCD when fewer valid samples than this."
    )
    prompts: Literal["none", "fragments"] = Field(
        "none",
        description="What sampling starts from: nothing (de novo) or GenMol's 40 fragment-task "
        "prompts (10 drugs x 4 tasks, cycled), scored per task by `loflex evaluate`.",
    )
    export_valid_only: bool = Field(False, description="Drop invalid samples from samples.csv.")
    export_unique_only: bool = Field(False, description="Drop repeated molecules on export.")
