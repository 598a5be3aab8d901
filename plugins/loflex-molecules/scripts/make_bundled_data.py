"""Rebuild the MOSES subset bundled in ``loflex_molecules/data``.

Usage: python scripts/make_bundled_data.py MOSES_DIR

MOSES_DIR holds the MOSES ``train.csv.gz`` and ``test.csv.gz`` (MIT licence). The
script draws, with seed 0, 100,000 training and 5,000 validation molecules from
the MOSES train split and 10,000 test molecules from its test split, and writes
each as a gzipped CSV with columns SMILES (RDKit canonical) and SAFE (canonical
SAFE encoding).
"""

from __future__ import annotations

import csv
import gzip
import io
import random
import sys
from multiprocessing import Pool
from pathlib import Path

from loflex_molecules.representations import canonical, encode_smiles

SIZES = {"train": 100_000, "valid": 5_000, "test": 10_000}
OUT = Path(__file__).resolve().parents[1] / "loflex_molecules" / "data"


def read_smiles(path: Path) -> list[str]:
    with gzip.open(path, "rt") as handle:
        return [row["SMILES"] for row in csv.DictReader(handle)]


def to_safe(smiles: str) -> tuple[str, str] | None:
    smiles = canonical(smiles)
    if smiles is None:
        return None
    try:
        return smiles, encode_smiles(smiles, "safe")
    except ValueError:
        return None


def write(name: str, smiles: list[str], pool: Pool) -> None:
    rows = [row for row in pool.map(to_safe, smiles, chunksize=500) if row is not None]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["SMILES", "SAFE"])
    writer.writerows(rows)
    with gzip.GzipFile(OUT / f"moses_{name}.csv.gz", "wb", compresslevel=9, mtime=0) as handle:
        handle.write(buffer.getvalue().encode())


def main(moses_dir: str) -> None:
    rng = random.Random(0)
    train = read_smiles(Path(moses_dir) / "train.csv.gz")
    test = read_smiles(Path(moses_dir) / "test.csv.gz")
    picked = rng.sample(train, SIZES["train"] + SIZES["valid"])
    with Pool() as pool:
        write("train", picked[: SIZES["train"]], pool)
        write("valid", picked[SIZES["train"]:], pool)
        write("test", rng.sample(test, SIZES["test"]), pool)


if __name__ == "__main__":
    main(sys.argv[1])
