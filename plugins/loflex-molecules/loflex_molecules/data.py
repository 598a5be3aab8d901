"""Molecule data: the bundled MOSES subset, conversion to SAFE and its disk cache.

Conversion validates every molecule with RDKit, canonicalises it and encodes it
as SAFE, in a process pool over all cores. Results are cached on disk, keyed by a
hash of the input strings and the converter version, and written atomically.
A file's own SAFE column is checked row by row (it must decode to the row's molecule);
only the bundled subset's is taken as it is. Bad molecules are skipped and reported in
one line per reason on stderr.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import sys
import tempfile
from dataclasses import dataclass
from functools import partial
from importlib import resources
from multiprocessing import Pool
from pathlib import Path

import safe as sf
from loflex.errors import DataError

from loflex_molecules.loaders import RawMolecules, read_molecules, read_shards, split_shards
from loflex_molecules.representations import canonical, encode_smiles, safe_to_bracket, too_long

CACHE_VERSION = "1"
BUNDLED_SPLITS = {"train": "moses_train.csv.gz", "valid": "moses_valid.csv.gz",
                  "test": "moses_test.csv.gz"}
BAD_SAFE = "bad SAFE"
BAD_SAFE_REASON = "whose SAFE column does not encode the row's SMILES"
PARALLEL_MIN = 2000


@dataclass
class MoleculeSet:
    """Valid molecules of one split.

    Attributes:
        smiles: canonical SMILES.
        safe: canonical SAFE strings aligned with ``smiles`` (None when not needed).
    """

    smiles: list[str]
    safe: list[str] | None

    def __len__(self) -> int:
        return len(self.smiles)

    def head(self, n: int | None) -> MoleculeSet:
        """Return the first ``n`` molecules (all when n is None)."""
        if n is None:
            return self
        return MoleculeSet(self.smiles[:n], None if self.safe is None else self.safe[:n])


def bundled_path(name: str) -> Path:
    """Return the path of a file shipped in ``loflex_molecules/data``."""
    return Path(str(resources.files("loflex_molecules") / "data" / name))


BUNDLED_FILES = {bundled_path(name) for name in BUNDLED_SPLITS.values()}


def default_cache_dir() -> Path:
    """Return ``$XDG_CACHE_HOME/loflex/molecules`` (``~/.cache/loflex/molecules``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "loflex" / "molecules"


def _convert_one(text: str, need_safe: bool) -> tuple[str, str | None] | None:
    smiles = canonical(text)
    if smiles is None:
        return None
    if not need_safe:
        return smiles, None
    try:
        return smiles, encode_smiles(smiles, "safe")
    except ValueError:
        return None


def convert(raw: RawMolecules, need_safe: bool, workers: int | None = None,
            cache_dir: Path | None = None) -> MoleculeSet:
    """Validate, canonicalise and (if ``need_safe``) SAFE-encode ``raw``.

    Uses a process pool of ``workers`` (default: all cores) with chunks, and the
    disk cache in ``cache_dir`` (default :func:`default_cache_dir`).

    A SAFE column of a file other than the bundled subset is checked row by row: a row
    whose SAFE string does not decode to its molecule is skipped and counted.

    Raises:
        DataError: no molecule of ``raw`` is valid (or none has a usable SAFE string).
    """
    if raw.safe is not None and Path(raw.source) in BUNDLED_FILES:  # shipped, pre-converted
        return MoleculeSet(list(raw.strings), list(raw.safe) if need_safe else None)
    cache = (cache_dir or default_cache_dir()) / f"{_cache_key(raw, need_safe)}.json.gz"
    result = _read_cache(cache)
    if result is None:
        result = _convert_rows(raw, need_safe, workers)
        result["bad"] = raw.unreadable + result["bad"]
        _write_cache(cache, result)
    total = len(raw.strings) + len(raw.unreadable)
    report_bad(raw.source, result["bad"], total)
    report_bad(raw.source, result.get("bad_safe", []), total, BAD_SAFE_REASON)
    if not result["smiles"]:
        raise DataError(_nothing_usable(raw.source, result))
    return MoleculeSet(result["smiles"], result["safe"] if need_safe else None)


def _nothing_usable(source: Path | str, result: dict) -> str:
    """The one-line error for a file none of whose rows can be trained on."""
    if result.get("bad_safe"):
        return (f"no usable molecule in '{source}': its SAFE column does not encode the row's "
                "SMILES in any row that RDKit can read; fix the SAFE column, or remove it to have "
                "SAFE computed from the SMILES")
    return (f"no valid molecule in '{source}' (RDKit could not read any of them); check that the "
            "column holds SMILES")


def _convert_rows(raw: RawMolecules, need_safe: bool, workers: int | None) -> dict:
    """Convert every row of ``raw``, checking its SAFE column when SAFE is needed."""
    if raw.safe is None or not need_safe:
        return _convert_all(raw.strings, need_safe, workers)
    converted = _map(_convert_checked, list(zip(raw.strings, raw.safe)), workers)
    result = _collect(raw.strings, converted)
    result["bad_safe"] = [safe for safe, c in zip(raw.safe, converted) if c == BAD_SAFE]
    return result


def _convert_all(strings: list[str], need_safe: bool, workers: int | None) -> dict:
    """Canonicalise (and SAFE-encode when ``need_safe``) every string."""
    return _collect(strings, _map(partial(_convert_one, need_safe=need_safe), strings, workers))


def _collect(strings: list[str], converted: list) -> dict:
    """Gather converted rows: the good ``(SMILES, SAFE)`` pairs and the unreadable strings."""
    good = [c for c in converted if isinstance(c, tuple)]
    bad = [s for s, c in zip(strings, converted) if c is None]
    return {"smiles": [c[0] for c in good], "safe": [c[1] for c in good], "bad": bad}


def _map(fn, items: list, workers: int | None) -> list:
    """Apply ``fn`` to ``items``, in a process pool of ``workers`` when there are many."""
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(items) >= PARALLEL_MIN:
        chunk = max(64, len(items) // (workers * 16))
        with Pool(workers) as pool:
            return pool.map(fn, items, chunksize=chunk)
    return [fn(item) for item in items]


def _convert_checked(row: tuple[str, str]) -> tuple[str, str] | str | None:
    """Check one row of a file with a SAFE column (an empty cell: SAFE is computed).

    Returns:
        ``(canonical SMILES, SAFE)``; None when RDKit cannot read the SMILES; ``BAD_SAFE``
        when the SAFE string does not decode to the same molecule.
    """
    text, safe = row
    if not safe.strip():
        return _convert_one(text, need_safe=True)
    smiles = canonical(text)
    if smiles is None:
        return None
    if too_long(safe):
        return BAD_SAFE
    decoded = sf.decode(safe, canonical=True, fix=False, ignore_errors=True)
    if not decoded or canonical(decoded) != smiles:
        return BAD_SAFE
    return smiles, safe


def _cache_key(raw: RawMolecules, need_safe: bool) -> str:
    digest = hashlib.sha256()
    for part in (CACHE_VERSION, sf.__version__, str(need_safe), *raw.unreadable):
        digest.update(part.encode() + b"\0")
    digest.update("\n".join(raw.strings).encode())
    if raw.safe is not None:
        digest.update(b"\0SAFE\0" + "\n".join(raw.safe).encode())
    return digest.hexdigest()[:32]


def _read_cache(path: Path) -> dict | None:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError, EOFError):
        return None


def _write_cache(path: Path, result: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as raw, gzip.open(raw, "wt", encoding="utf-8") as handle:
            json.dump(result, handle)
        os.replace(tmp, path)
    except OSError as exc:
        print(f"loflex-molecules: could not write the cache {path} ({exc})", file=sys.stderr)


def report_bad(source: Path | str, bad: list[str], total: int,
               reason: str = "that RDKit or SAFE cannot read") -> None:
    """Print one stderr line counting skipped molecules and why, with the first few of them."""
    if not bad:
        return
    shown = ", ".join(repr(b[:60]) for b in bad[:3])
    print(
        f"loflex-molecules: skipped {len(bad)} of {total} molecules in '{source}' {reason} "
        f"(e.g. {shown})",
        file=sys.stderr,
    )


def load_splits(path: str | Path | None, column: str, need_safe: bool, sizes: dict[str, int | None],
                workers: int | None = None, cache_dir: Path | None = None
                ) -> dict[str, MoleculeSet]:
    """Load train/valid/test molecules, limited to ``sizes[split]`` (None: all).

    With ``path`` None the bundled MOSES subset is used. A Parquet directory with
    shards named by split keeps its splits; any other source is shuffled (seed 0)
    and cut into test, valid (each at most a tenth of it) and train.
    """
    load = partial(convert, need_safe=need_safe, workers=workers, cache_dir=cache_dir)
    if path is None:
        splits = {s: load(read_molecules(bundled_path(f), "SMILES")) for s, f in BUNDLED_SPLITS.items()}
    elif (shards := split_shards(Path(path))) is not None:
        splits = {s: load(read_shards(Path(path), files, column)) for s, files in shards.items()}
        splits = _carve(splits["train"], sizes, splits)
    else:
        splits = _carve(load(read_molecules(path, column)), sizes, {})
    return {s: splits[s].head(sizes.get(s)) for s in ("train", "valid", "test")}


def _carve(pool: MoleculeSet, sizes: dict[str, int | None], given: dict[str, MoleculeSet]
           ) -> dict[str, MoleculeSet]:
    missing = [s for s in ("test", "valid") if s not in given]
    if not missing:
        return given
    order = list(range(len(pool)))
    random.Random(0).shuffle(order)
    safe = pool.safe
    out = dict(given)
    start = 0
    for split in missing:
        n = min(sizes.get(split) or len(pool), len(pool) // 10)
        idx = order[start:start + n]
        out[split] = MoleculeSet([pool.smiles[i] for i in idx],
                                 None if safe is None else [safe[i] for i in idx])
        start += n
    idx = order[start:]
    out["train"] = MoleculeSet([pool.smiles[i] for i in idx],
                               None if safe is None else [safe[i] for i in idx])
    return out


def represent(molecules: MoleculeSet, representation: str) -> tuple[list[str], list[str]]:
    """Return (texts, smiles) of ``molecules`` in ``representation`` (canonical encoding)."""
    if representation == "smiles":
        return list(molecules.smiles), list(molecules.smiles)
    assert molecules.safe is not None, "SAFE strings are needed for a SAFE representation"
    if representation == "safe":
        return list(molecules.safe), list(molecules.smiles)
    texts, smiles = [], []
    for safe, smi in zip(molecules.safe, molecules.smiles):
        try:
            texts.append(safe_to_bracket(safe))
            smiles.append(smi)
        except ValueError:
            continue
    return texts, smiles
