"""Star-graph splits as compact ragged arrays, their on-disk cache and a lazy example view."""

from __future__ import annotations

import os
import random
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from loflex.contracts import Example

from loflex_graphs.graphs import (
    Preset,
    generate_graph,
    prompt_nodes,
    target_nodes,
    target_side,
)

CACHE_VERSION = 1
FIELDS = ("prompt", "prompt_offsets", "target", "target_offsets", "side")


@dataclass
class SplitArrays:
    """One split as ragged arrays of node ids (vocabulary-independent).

    Attributes:
        prompt: (P,) int16, every prompt's node ids concatenated.
        prompt_offsets: (N + 1,) int64, example i's prompt is ``prompt[off[i]:off[i+1]]``.
        target: (T,) int16, every target's node ids concatenated.
        target_offsets: (N + 1,) int64, likewise for ``target`` and ``side``.
        side: (T,) int16, per target token the junction distance of its edge.
    """

    prompt: np.ndarray
    prompt_offsets: np.ndarray
    target: np.ndarray
    target_offsets: np.ndarray
    side: np.ndarray

    def __len__(self) -> int:
        return len(self.prompt_offsets) - 1


def generate_split(preset: Preset, seed: int, size: int) -> SplitArrays:
    """Generate ``size`` graphs from the random stream seeded by ``seed``."""
    rng = random.Random(seed)
    prompts: list[int] = []
    targets: list[int] = []
    sides: list[int] = []
    prompt_lengths, target_lengths = [], []
    for _ in range(size):
        graph = generate_graph(rng, preset)
        prompt, target = prompt_nodes(graph), target_nodes(graph.path)
        prompts += prompt
        targets += target
        sides += target_side(graph)
        prompt_lengths.append(len(prompt))
        target_lengths.append(len(target))
    return SplitArrays(
        prompt=np.asarray(prompts, dtype=np.int16),
        prompt_offsets=_offsets(prompt_lengths),
        target=np.asarray(targets, dtype=np.int16),
        target_offsets=_offsets(target_lengths),
        side=np.asarray(sides, dtype=np.int16),
    )


def _offsets(lengths: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)


def cache_path(directory: Path, difficulty: str, seed: int, split: str, size: int) -> Path:
    """Return the cache file of one split, keyed by difficulty, seed, split and size."""
    name = f"star-graph-v{CACHE_VERSION}-{difficulty}-seed{seed}-{split}-{size}.npz"
    return directory / name


def save_split(arrays: SplitArrays, path: Path) -> None:
    """Write ``arrays`` to ``path`` atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **{name: getattr(arrays, name) for name in FIELDS})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_split(path: Path, size: int) -> SplitArrays | None:
    """Read a cached split; return None when it is missing, unreadable or the wrong size."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = SplitArrays(**{name: data[name] for name in FIELDS})
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return arrays if len(arrays) == size else None


class StarExamples(Sequence[Example]):
    """A read-only sequence of :class:`loflex.Example` built on access from ragged arrays.

    Args:
        arrays: the split.
        node_ids: (num_nodes,) token id of every node id (from the domain's vocabulary).
    """

    def __init__(self, arrays: SplitArrays, node_ids: np.ndarray):
        self.arrays = arrays
        self._prompt = node_ids[arrays.prompt.astype(np.int64)].astype(np.int32)
        self._target = node_ids[arrays.target.astype(np.int64)].astype(np.int32)

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"example {index} out of range for a split of {n}")
        i = index % n
        p0, p1 = self.arrays.prompt_offsets[i], self.arrays.prompt_offsets[i + 1]
        t0, t1 = self.arrays.target_offsets[i], self.arrays.target_offsets[i + 1]
        return Example(
            target=self._target[t0:t1].tolist(),
            prompt=self._prompt[p0:p1].tolist(),
            order_hint=self.arrays.side[t0:t1].astype(float).tolist(),
        )
