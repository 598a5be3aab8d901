"""Samples files chosen by extension: JSON Lines (re-scorable) or CSV (the domain's columns).

``.jsonl`` holds the token ids and text of every sample (``loflex evaluate --samples``
reads it back); ``.csv`` holds one row per sample with the columns of
:meth:`loflex.contracts.Domain.columns`. Both are written to ``<path>.partial`` and renamed
when complete, and never overwrite a file without ``force``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from loflex.contracts import Domain, Generated
from loflex.errors import ConfigError
from loflex.sampling.samples_io import SampleWriter

FORMATS = {".jsonl": "JSON Lines: token ids and text, re-scorable with `loflex evaluate`",
           ".csv": "CSV: one row per sample with the domain's columns"}


class CsvSampleWriter(SampleWriter):
    """Write samples as CSV rows of ``domain.columns(sample)``, header from the first row.

    A :class:`loflex.sampling.samples_io.SampleWriter` (partial file, ``close``, ``abort``,
    ``count``) whose ``write`` adds CSV rows.
    """

    def __init__(self, path: Path, force: bool = False):
        super().__init__(path, force, newline="")
        self.table: csv.DictWriter | None = None

    def write(self, domain: Domain, samples: Iterable[Generated]) -> None:
        """Append one row per sample."""
        for sample in samples:
            row = domain.columns(sample)
            if self.table is None:
                self.table = csv.DictWriter(self.handle, fieldnames=list(row))
                self.table.writeheader()
            assert list(row) == self.table.fieldnames, \
                f"{type(domain).__name__}.columns must give the same columns for every sample"
            self.table.writerow(row)
            self.count += 1
        self.handle.flush()


def check_format(path: Path) -> str:
    """Return ``path``'s samples format (its lower-case extension).

    Raises:
        ConfigError: the extension is neither ``.jsonl`` nor ``.csv`` (lists both).
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        known = "; ".join(f"{ext} ({what})" for ext, what in FORMATS.items())
        raise ConfigError(f"cannot write samples to '{path}': unknown extension "
                          f"'{suffix or '(none)'}'; name the file {known}")
    return suffix


def sample_writer(path: Path, force: bool = False) -> SampleWriter | CsvSampleWriter:
    """Return the writer for ``path``'s extension (see :func:`check_format`)."""
    if check_format(path) == ".csv":
        return CsvSampleWriter(path, force=force)
    return SampleWriter(path, force=force)
