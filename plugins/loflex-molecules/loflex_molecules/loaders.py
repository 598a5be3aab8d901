"""Read molecule strings from user files: CSV, SMILES lists, SDF and Parquet.

Supported inputs (any of them may be gzipped, except Parquet):

- ``.csv``: one column of SMILES (the ``column`` option, matched case-insensitively);
- ``.smi`` / ``.txt``: one molecule per line, the first whitespace-separated field;
  a header line ``SMILES`` is skipped;
- ``.sdf``: every record, written back as SMILES (unreadable records are bad);
- ``.parquet``: one column; a directory of Parquet shards (Hugging Face datasets
  layout, e.g. the SAFE-GPT corpus with column ``input``) is read shard by shard.

SAFE strings are valid SMILES, so columns of SAFE strings load the same way.
A file that cannot be read at all raises :class:`loflex.DataError`; single bad
molecules are left for the converter to count.
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path

from loflex.contracts.options import expand_home
from loflex.errors import DataError

TEXT_SUFFIXES = (".smi", ".txt")
FORMATS = ".csv, .smi, .txt (optionally .gz), .sdf, .parquet or a directory of .parquet shards"
FALLBACK_COLUMNS = ("input", "smiles")  # tried when `column` is left at "SMILES"


@dataclass
class RawMolecules:
    """Molecule strings read from one source, before validation.

    Attributes:
        source: the file or directory they came from.
        strings: SMILES (or SAFE) strings, one per molecule.
        unreadable: descriptions of records that could not be read (SDF only).
        safe: a pre-computed canonical SAFE column aligned with ``strings``, if any.
    """

    source: Path
    strings: list[str]
    unreadable: list[str] = field(default_factory=list)
    safe: list[str] | None = None


def read_molecules(path: str | Path, column: str = "SMILES") -> RawMolecules:
    """Read the molecule strings of ``path``.

    Raises:
        DataError: the path is missing, of an unknown format, binary, not UTF-8,
            lacks the column, or holds no molecule at all.
    """
    path = expand_home(path)
    if not path.exists():
        raise DataError(f"molecule file '{path}' does not exist; check the domain's `path` option")
    if path.is_dir():
        raw = _read_parquet_dir(path, column)
    else:
        raw = _read_file(path, column)
    if not raw.strings and not raw.unreadable:
        raise DataError(f"'{path}' contains no molecules; give a file with one SMILES per row")
    return raw


def _read_file(path: Path, column: str) -> RawMolecules:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".parquet"):
        return RawMolecules(path, _parquet_column(path, column))
    if name.endswith(".sdf"):
        return _read_sdf(path)
    if name.endswith(".csv"):
        return _read_csv(path, _read_text(path), column)
    if name.endswith(TEXT_SUFFIXES):
        return RawMolecules(path, _smiles_lines(_read_text(path)))
    raise DataError(f"'{path}' has an unsupported format; use {FORMATS}")


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError):
            raise DataError(f"'{path}' is not a valid gzip file; re-compress it or drop .gz") from None
    return data


def _read_text(path: Path) -> str:
    data = _read_bytes(path)
    if b"\x00" in data[:8192]:
        raise DataError(f"'{path}' looks binary, not text; give a text file of SMILES ({FORMATS})")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"'{path}' is not UTF-8 text (byte {exc.start}); re-save it with UTF-8 encoding"
        ) from None


def _smiles_lines(text: str) -> list[str]:
    rows = [line.split()[0] for line in text.splitlines() if line.strip()]
    if rows and rows[0].lower() == "smiles":
        rows = rows[1:]
    return rows


def _read_csv(path: Path, text: str, column: str) -> RawMolecules:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise DataError(f"'{path}' is empty; give a CSV with a header row and a '{column}' column")
    index = _column_index(path, [h.strip() for h in header], column)
    strings, safe = [], []
    safe_index = header.index("SAFE") if "SAFE" in header and column == "SMILES" else None
    for row in reader:
        if len(row) > index and row[index].strip():
            strings.append(row[index].strip())
            if safe_index is not None:
                safe.append(row[safe_index] if len(row) > safe_index else "")
    return RawMolecules(path, strings, safe=safe if safe_index is not None else None)


def _column_index(path: Path, names: list[str], column: str) -> int:
    lowered = [name.lower() for name in names]
    fallback = FALLBACK_COLUMNS if column.lower() == "smiles" else ()
    for wanted in (column, *fallback):
        if wanted.lower() in lowered:
            return lowered.index(wanted.lower())
    shown = ", ".join(repr(n) for n in names[:10])
    raise DataError(
        f"'{path}' has no column '{column}' (columns: {shown}); "
        "set the domain's `column` option to the column holding the SMILES"
    )


def _read_sdf(path: Path) -> RawMolecules:
    from rdkit import Chem

    data = _read_bytes(path)
    if not data.strip():
        raise DataError(f"'{path}' is empty; give an SDF file with at least one record")
    supplier = Chem.ForwardSDMolSupplier(io.BytesIO(data), sanitize=True)
    strings, unreadable = [], []
    for i, mol in enumerate(supplier):
        if mol is None or mol.GetNumAtoms() == 0:
            unreadable.append(f"record {i + 1}")
        else:
            strings.append(Chem.MolToSmiles(mol))
    return RawMolecules(path, strings, unreadable)


def _parquet_column(path: Path, column: str) -> list[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            "reading Parquet needs pyarrow; install it with `pip install loflex-molecules[parquet]`"
        ) from None
    try:
        names = pq.read_schema(path).names
    except Exception as exc:  # pyarrow raises ArrowInvalid and OSError subclasses
        raise DataError(f"'{path}' is not a readable Parquet file ({exc}); check the file") from None
    name = names[_column_index(path, names, column)]
    values = pq.read_table(path, columns=[name]).column(name).to_pylist()
    return [str(v).strip() for v in values if v is not None and str(v).strip()]


def _read_parquet_dir(path: Path, column: str) -> RawMolecules:
    shards = sorted(path.rglob("*.parquet"))
    if not shards:
        raise DataError(f"directory '{path}' holds no .parquet shards; point `path` at a file")
    return read_shards(path, shards, column)


def read_shards(source: Path, shards: list[Path], column: str) -> RawMolecules:
    """Read one column from each Parquet shard, concatenated."""
    strings: list[str] = []
    for shard in shards:
        strings += _parquet_column(shard, column)
    if not strings:
        raise DataError(f"the Parquet shards of '{source}' hold no molecules; check `column`")
    return RawMolecules(source, strings)


def split_shards(path: Path) -> dict[str, list[Path]] | None:
    """Return ``{split: shards}`` when a Parquet directory is split by shard name.

    Shards named ``train*``, ``valid*``/``validation*`` and ``test*`` (anywhere in the
    tree, as Hugging Face writes them) map to those splits; None if no shard is
    named ``train*``.
    """
    if not path.is_dir():
        return None
    found: dict[str, list[Path]] = {}
    for shard in sorted(path.rglob("*.parquet")):
        stem = shard.name.lower()
        for split, prefixes in (("train", ("train",)), ("valid", ("valid", "validation")),
                                ("test", ("test",))):
            if stem.startswith(prefixes):
                found.setdefault(split, []).append(shard)
    return found if "train" in found else None
