"""Samples on disk: JSON Lines written in chunks, never overwriting without ``--force``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from loflex.domain import Domain, Example, Generated
from loflex.errors import DataError, LoflexError
from loflex.rundir import open_regular


def refuse_overwrite(path: Path, force: bool) -> None:
    """Raise if ``path`` exists (a dangling link counts) and ``force`` is not set."""
    if os.path.lexists(path) and not force:
        raise LoflexError(f"'{path}' already exists; pass --force to overwrite it or choose -o")


def refuse_filled_folder(path: Path, force: bool) -> None:
    """Raise if the folder ``path`` already holds files and ``force`` is not set."""
    if path.is_dir() and any(path.iterdir()) and not force:
        raise LoflexError(f"'{path}' already holds files; pass --force to overwrite them or "
                          "choose another folder")


def sample_record(domain: Domain, sample: Generated) -> dict:
    """Return the JSON form of one sample (text plus ids to re-score it later)."""
    record = {"text": domain.to_text(sample.tokens), "tokens": list(sample.tokens)}
    if sample.prompt:
        record["prompt"] = domain.to_text(sample.prompt)
        record["prompt_ids"] = list(sample.prompt)
    if sample.reference is not None:
        record["reference_ids"] = list(sample.reference.target)
        if sample.reference.side is not None:
            record["reference_side"] = list(sample.reference.side)
    if sample.reveal_step is not None:
        record["reveal_step"] = list(sample.reveal_step)
    return record


class SampleWriter:
    """Append samples to ``<path>.partial`` and rename to ``path`` when complete.

    The partial file is opened without following a symbolic link (a planted link is
    refused) and the rename replaces a link at ``path`` instead of writing through it.
    """

    def __init__(self, path: Path, force: bool = False):
        self.path = Path(path)
        refuse_overwrite(self.path, force)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(self.path.name + ".partial")
        fd = open_regular(self.partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        self.handle = os.fdopen(fd, "w", encoding="utf-8")
        self.count = 0

    def write(self, domain: Domain, samples: Iterable[Generated]) -> None:
        for sample in samples:
            self.handle.write(json.dumps(sample_record(domain, sample)) + "\n")
            self.count += 1
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()
        os.replace(self.partial, self.path)


def read_samples(path: Path) -> list[Generated]:
    """Read samples written by :class:`SampleWriter` (or lines with a ``tokens`` list)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"samples file '{path}' does not exist; write one with `loflex sample`")
    samples = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                tokens = [int(i) for i in record["tokens"]]
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                raise DataError(
                    f"'{path}' line {number} is not a sample record with a 'tokens' list; "
                    "pass a file written by `loflex sample`"
                ) from None
            reference = None
            if "reference_ids" in record:
                reference = Example(target=record["reference_ids"],
                                    prompt=record.get("prompt_ids", []),
                                    side=record.get("reference_side"))
            samples.append(Generated(tokens=tokens, prompt=record.get("prompt_ids", []),
                                     reference=reference, reveal_step=record.get("reveal_step")))
    return samples
