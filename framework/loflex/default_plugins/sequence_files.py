"""Reading sequence files (text, FASTA, CSV) and small statistics of the sequences domain."""

from __future__ import annotations

import csv
import io
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loflex.errors import DataError

FASTA_SUFFIXES = (".fa", ".fasta", ".faa", ".fna")


@dataclass
class Record:
    """One raw sequence of the file and where it came from (for error messages)."""

    text: str
    where: str


def read_text(path: Path) -> str:
    """Return the UTF-8 text of ``path``, or raise DataError for a missing or binary file."""
    if not path.is_file():
        raise DataError(f"sequence file '{path}' does not exist; check domain.options.path")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"'{path}' line {line} has bytes that are not UTF-8 (0x{data[exc.start]:02x}); "
            "save the file as UTF-8 text"
        ) from None


def read_records(path: Path, fmt: str, column: str | None) -> list[Record]:
    """Return the non-empty sequences of a text, FASTA or CSV file, in file order."""
    text = read_text(path)
    if fmt == "auto":
        suffix = path.suffix.lower()
        fmt = "fasta" if suffix in FASTA_SUFFIXES else "csv" if suffix == ".csv" else "text"
    if fmt == "fasta":
        return fasta_records(text, path)
    if fmt == "csv":
        return csv_records(text, path, column)
    lines = text.splitlines()
    return [Record(s.strip(), f"'{path}' line {i}") for i, s in enumerate(lines, 1) if s.strip()]


def fasta_records(text: str, path: Path) -> list[Record]:
    """Return one record per ``>`` header; sequence lines are joined, ``;`` lines ignored."""
    records: list[Record] = []
    for i, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line.startswith(">"):
            records.append(Record("", f"'{path}' record at line {i}"))
        elif line and not line.startswith(";"):
            if not records:
                raise DataError(f"'{path}' line {i} comes before the first '>' header; "
                                "start every FASTA record with a '>name' line")
            records[-1].text += line
    return [r for r in records if r.text]


def csv_records(text: str, path: Path, column: str | None) -> list[Record]:
    """Return the non-empty cells of one CSV column (``column``, or the only one)."""
    reader = csv.DictReader(io.StringIO(text))
    names = reader.fieldnames or []
    if column is None and len(names) == 1:
        column = names[0]
    if column is None or column not in names:
        shown = ", ".join(repr(n) for n in names) or "none"
        raise DataError(f"CSV file '{path}' has columns {shown}; set domain.options.column "
                        "to the one holding the sequences")
    records = []
    for row in reader:
        cell = (row.get(column) or "").strip()
        if cell:
            records.append(Record(cell, f"'{path}' line {reader.line_num}"))
    return records


def length_wasserstein(a: Sequence[float], b: Sequence[float]) -> float:
    """Return the 1-Wasserstein distance between two empirical distributions on the line.

    W1(a, b) = integral of |F_a(x) - F_b(x)| dx, with F the empirical CDFs.
    """
    assert len(a) > 0 and len(b) > 0, "both samples need at least one value"
    a_sorted, b_sorted = sorted(a), sorted(b)
    points = sorted(set(a_sorted) | set(b_sorted))
    total = 0.0
    for left, right in zip(points, points[1:]):
        f_a = bisect_right(a_sorted, left) / len(a_sorted)
        f_b = bisect_right(b_sorted, left) / len(b_sorted)
        total += abs(f_a - f_b) * (right - left)
    return total


def split_sizes(n: int, valid_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """Return (train, valid, test) counts; a non-zero fraction gets at least one example."""
    n_valid = max(1, round(n * valid_fraction)) if valid_fraction > 0 else 0
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    return n - n_valid - n_test, n_valid, n_test
