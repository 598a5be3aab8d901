"""Write generated molecules to disk: CSV with properties, SDF, and grid images."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from rdkit import Chem
from rdkit.Chem import Draw

from loflex_molecules.chem import properties, to_mol

GRID_MAX = 100


def export_molecules(texts: Sequence[str], smiles: Sequence[str | None], directory: str | Path,
                     valid_only: bool = False, unique_only: bool = False) -> list[Path]:
    """Write ``samples.csv``, ``samples.sdf``, ``samples.png`` and ``samples.svg``.

    Args:
        texts: the generated strings (SAFE, BracketSAFE or SMILES), one per sample.
        smiles: their decoded canonical SMILES, None where invalid.
        directory: created if missing.
        valid_only: drop invalid samples from the CSV.
        unique_only: keep only the first occurrence of each molecule.

    Returns:
        The paths written. The SDF and the images hold valid molecules only; the
        images show at most the first 100.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rows = _rows(texts, smiles, valid_only, unique_only)
    valid = [(text, smi) for text, smi in rows if smi]
    paths = [_write_csv(directory / "samples.csv", rows), _write_sdf(directory / "samples.sdf", valid)]
    if valid:
        paths += _write_grid(directory, [smi for _, smi in valid[:GRID_MAX]])
    return paths


def _rows(texts, smiles, valid_only, unique_only) -> list[tuple[str, str | None]]:
    rows, seen = [], set()
    for text, smi in zip(texts, smiles):
        if valid_only and not smi:
            continue
        if unique_only and smi:
            if smi in seen:
                continue
            seen.add(smi)
        rows.append((text, smi))
    return rows


def _write_csv(path: Path, rows: list[tuple[str, str | None]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["smiles", "valid", "qed", "sa", "logp", "mw", "generated"])
        for text, smi in rows:
            if smi:
                p = properties(smi)
                writer.writerow([smi, 1, f"{p.qed:.4f}", f"{p.sa:.4f}", f"{p.logp:.4f}",
                                 f"{p.mw:.2f}", text])
            else:
                writer.writerow(["", 0, "", "", "", "", text])
    return path


def _write_sdf(path: Path, valid: list[tuple[str, str]]) -> Path:
    writer = Chem.SDWriter(str(path))
    for text, smi in valid:
        mol = to_mol(smi)
        p = properties(smi)
        mol.SetProp("_Name", smi)
        for key, value in (("generated", text), ("QED", p.qed), ("SA", p.sa), ("logP", p.logp),
                           ("MW", p.mw)):
            mol.SetProp(key, str(value))
        writer.write(mol)
    writer.close()
    return path


def _write_grid(directory: Path, smiles: list[str]) -> list[Path]:
    mols = [to_mol(s) for s in smiles]
    legends = [f"QED {properties(s).qed:.2f} SA {properties(s).sa:.2f}" for s in smiles]
    kwargs = {"molsPerRow": 5, "subImgSize": (250, 200), "legends": legends}
    png = directory / "samples.png"
    Draw.MolsToGridImage(mols, **kwargs).save(png)
    svg = directory / "samples.svg"
    svg.write_text(Draw.MolsToGridImage(mols, useSVG=True, **kwargs), encoding="utf-8")
    return [png, svg]
