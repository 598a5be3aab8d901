"""Shared fixtures: a few hundred bundled MOSES molecules and a private cache."""

from __future__ import annotations

import csv
import gzip

import pytest
from loflex_molecules.data import bundled_path


@pytest.fixture(scope="session")
def moses_smiles() -> list[str]:
    """The first 400 molecules of the bundled MOSES test subset."""
    with gzip.open(bundled_path("moses_test.csv.gz"), "rt") as handle:
        return [row["SMILES"] for _, row in zip(range(400), csv.DictReader(handle))]


@pytest.fixture()
def cache(tmp_path):
    """A fresh conversion cache directory."""
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def small_csv(tmp_path_factory, moses_smiles):
    """A user CSV of 400 MOSES molecules (column 'smiles')."""
    path = tmp_path_factory.mktemp("data") / "mols.csv"
    path.write_text("id,smiles\n" + "".join(f"{i},{s}\n" for i, s in enumerate(moses_smiles)))
    return path
