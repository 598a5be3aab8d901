"""Samples on disk: JSON Lines written in chunks, never overwriting without ``--force``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

from loflex.contracts import Domain, Example, Generated
from loflex.errors import DataError, LoflexError
from loflex.training.rundir import open_regular


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
        if sample.reference.order_hint is not None:
            record["reference_side"] = list(sample.reference.order_hint)
    if sample.reveal_step is not None:
        record["reveal_step"] = list(sample.reveal_step)
    return record


class SampleWriter:
    """Append samples to ``<path>.partial`` and rename to ``path`` when complete.

    The partial file is opened without following a symbolic link (a planted link is
    refused) and the rename replaces a link at ``path`` instead of writing through it.
    """

    def __init__(self, path: Path, force: bool = False, newline: str | None = None):
        self.path = Path(path)
        refuse_overwrite(self.path, force)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(self.path.name + ".partial")
        fd = open_regular(self.partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        self.handle = os.fdopen(fd, "w", encoding="utf-8", newline=newline)
        self.count = 0

    def write(self, domain: Domain, samples: Iterable[Generated]) -> None:
        for sample in samples:
            self.handle.write(json.dumps(sample_record(domain, sample)) + "\n")
            self.count += 1
        self.handle.flush()

    def close(self) -> None:
        """Flush and fsync the partial file, then rename it to the final name."""
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        """Close and remove the partial file (after a failure: a full disk, an interrupt)."""
        with suppress(OSError):
            self.handle.close()
        with suppress(FileNotFoundError):
            os.unlink(self.partial)


def read_samples(path: Path, vocab_size: int | None = None) -> list[Generated]:
    """Read samples written by :class:`SampleWriter` (or lines with a ``tokens`` list).

    Args:
        vocab_size: when given, every token id must lie in ``[0, vocab_size)``.

    Raises:
        DataError: the file is missing, not a regular file, not UTF-8, or a line is not a
            sample record (or holds an id outside the vocabulary); the line is named.
    """
    path = Path(path)
    if not os.path.lexists(path):
        raise DataError(f"samples file '{path}' does not exist; write one with `loflex sample`")
    try:
        handle = os.fdopen(open_regular(path, os.O_RDONLY, follow=True), "rb")
    except LoflexError as exc:
        raise DataError(f"samples {exc.message}") from None
    samples = []
    with handle:
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(f"'{path}' line {number} is not UTF-8 text; pass a samples file "
                                "written by `loflex sample`") from None
            if line.strip():
                samples.append(_sample(path, number, line, vocab_size))
    return samples


def _sample(path: Path, number: int, line: str, vocab_size: int | None) -> Generated:
    """One line of a samples file as a :class:`Generated`."""
    try:
        record = json.loads(line)
        tokens = [_token_id(i) for i in record["tokens"]]
        prompt = [_token_id(i) for i in record.get("prompt_ids", [])]
        reference_ids = record.get("reference_ids")
        reference = None if reference_ids is None else Example(
            target=[_token_id(i) for i in reference_ids], prompt=prompt,
            order_hint=record.get("reference_side"))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError,
            RecursionError):
        raise DataError(
            f"'{path}' line {number} is not a sample record with a 'tokens' list; "
            "pass a file written by `loflex sample`"
        ) from None
    if vocab_size is not None:
        outside = [i for i in tokens + prompt if not 0 <= i < vocab_size]
        if outside:
            raise DataError(f"'{path}' line {number} holds token id {outside[0]}, outside the "
                            f"model's vocabulary of {vocab_size} tokens; score samples of this "
                            "model")
    return Generated(tokens=tokens, prompt=prompt, reference=reference,
                     reveal_step=record.get("reveal_step"))


def _token_id(value) -> int:
    """A token id from JSON: an integer (bools and floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("token ids are integers")
    return value
