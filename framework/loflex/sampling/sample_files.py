"""Samples files chosen by extension: JSON Lines (re-scorable) or CSV (the domain's columns).

``.jsonl`` holds the token ids and text of every sample (``loflex evaluate --samples``
reads it back); ``.csv`` holds one row per sample with the columns of
:meth:`loflex.contracts.Domain.columns`. Both are written to ``<path>.partial`` and renamed
when complete, and never overwrite a file without ``force``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

from loflex.contracts import Domain, Generated
from loflex.errors import ConfigError
from loflex.sampling.samples_io import SampleWriter, refuse_overwrite
from loflex.training.rundir import open_regular

FORMATS = {".jsonl": "JSON Lines: token ids and text, re-scorable with `loflex evaluate`",
           ".csv": "CSV: one row per sample with the domain's columns"}


class CsvSampleWriter:
    """Write samples as CSV rows of ``domain.columns(sample)``, header from the first row.

    The same interface as :class:`loflex.sampling.samples_io.SampleWriter`: ``write``, ``close``,
    ``abort`` and ``count``.
    """

    def __init__(self, path: Path, force: bool = False):
        self.path = Path(path)
        refuse_overwrite(self.path, force)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(self.path.name + ".partial")
        fd = open_regular(self.partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        self.handle = os.fdopen(fd, "w", encoding="utf-8", newline="")
        self.table: csv.DictWriter | None = None
        self.count = 0

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

    def close(self) -> None:
        """Flush and fsync the partial file, then rename it to the final name."""
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        """Close and remove the partial file."""
        with suppress(OSError):
            self.handle.close()
        with suppress(FileNotFoundError):
            os.unlink(self.partial)


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
