"""The built-in ``sequences`` domain: your own sequences from a text, FASTA or CSV file.

Train on a file with one command and no plugin::

    loflex train --set domain.name=sequences --set domain.options.path=my.txt -o runs/my

Each line (FASTA record, CSV cell) is one example. With ``separator`` set, the part
before it is a fixed prompt and the part after it the target the model generates.
"""

from __future__ import annotations

import os
import random
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pydantic
from pydantic import Field

from loflex.config import Options
from loflex.contracts import SPLITS, Domain, Example, Generated
from loflex.contracts.options import expand_home
from loflex.contracts.vocab import SPECIAL_TOKENS, Vocabulary
from loflex.default_plugins.sequence_files import (
    Record,
    length_wasserstein,
    read_records,
    split_sizes,
)
from loflex.errors import CheckpointError, DataError
from loflex.extension.hookspecs import hookimpl
from loflex.training.rundir import excerpt, kind_of

PATTERN_SECONDS = 1.0  # most time the regex tokenizer may spend on one line


class SequencesOptions(Options):
    """Options of the ``sequences`` domain."""

    path: str = Field(description="A text file (one sequence per line), a FASTA file "
                                  "(.fa/.fasta, multi-line records) or a CSV file.")
    format: Literal["auto", "text", "fasta", "csv"] = Field(
        "auto", description="File format; 'auto' picks by suffix (.fa/.fasta, .csv, else text).")
    column: str | None = Field(
        None, description="CSV column holding the sequences (optional for one-column files).")
    tokenizer: Literal["char", "whitespace", "regex"] = Field(
        "char", description="char: one token per character; whitespace: split on spaces; "
                            "regex: the matches of `pattern`, which must cover every character.")
    pattern: str | None = Field(None, description="Token regex of the 'regex' tokenizer.")
    separator: str | None = Field(
        None, description="Prompt/target separator: the text before it is the fixed prompt.")
    alphabet: str | None = Field(
        None, description="Allowed characters (or tokens, split by the tokenizer); others are "
                          "an error or skipped, see outside_alphabet.")
    outside_alphabet: Literal["error", "skip"] = Field(
        "error", description="What to do with a sequence holding a token outside the alphabet.")
    max_length: int = Field(256, gt=0, description="Most target tokens per sequence.")
    too_long: Literal["skip", "truncate"] = Field(
        "skip", description="Longer sequences are skipped or cut to max_length (counted).")
    valid_fraction: float = Field(0.05, ge=0, lt=1, description="Share held out for validation.")
    test_fraction: float = Field(0.05, ge=0, lt=1, description="Share held out for testing.")
    seed: int = Field(0, description="Seed of the train/valid/test split.")

    @pydantic.field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        return str(expand_home(value).resolve())

    @pydantic.model_validator(mode="after")
    def _check(self) -> SequencesOptions:
        if self.valid_fraction + self.test_fraction >= 1:
            raise ValueError("valid_fraction + test_fraction must be below 1")
        if self.tokenizer == "regex":
            if not self.pattern:
                raise ValueError("tokenizer 'regex' needs a pattern, e.g. pattern='[A-Z][a-z]?|.'")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern '{excerpt(self.pattern)}' is not a valid regex: "
                                 f"{exc}") from None
            if nested_repetition(self.pattern):
                raise ValueError(f"pattern '{excerpt(self.pattern)}' repeats a repetition (like "
                                 "'(A+)+'), which can take exponential time on some lines; "
                                 "match one token at a time without nested repeats")
        return self


REPEATS = ("MAX_REPEAT", "MIN_REPEAT")


def nested_repetition(pattern: str) -> bool:
    """Whether ``pattern`` repeats (``*``, ``+``, ``{m,n}``) something that itself repeats.

    Such patterns (``(A+)+B``) backtrack exponentially on near-matching text.
    """
    try:
        from re import _parser as sre_parse  # Python >= 3.11
    except ImportError:  # pragma: no cover
        import sre_parse
    return _nested(sre_parse.parse(pattern), inside_repeat=False)


def _nested(items, inside_repeat: bool) -> bool:
    for op, value in items:
        name = str(op).upper()
        if name in REPEATS:
            low, high, body = value
            repeats = high > 1
            if repeats and inside_repeat:
                return True
            if _nested(body, inside_repeat or repeats):
                return True
        elif name == "BRANCH":
            if any(_nested(branch, inside_repeat) for branch in value[1]):
                return True
        elif name in ("SUBPATTERN", "ATOMIC_GROUP", "ASSERT", "ASSERT_NOT"):
            if _nested(value[-1], inside_repeat):
                return True
    return False


class PatternTooSlow(Exception):
    """The token pattern ran past its time budget on one line."""


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Raise :class:`PatternTooSlow` inside the block after ``seconds`` (main thread only).

    The regex engine checks for signals while it backtracks, so SIGALRM stops it; an
    interval timer and handler that were set before are restored afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise PatternTooSlow

    previous = signal.signal(signal.SIGALRM, expire)
    earlier, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        left, _ = signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if earlier:
            signal.setitimer(signal.ITIMER_REAL, max(earlier - (seconds - left), 1e-3))


@dataclass
class LoadReport:
    """What reading the file kept and dropped."""

    records: int = 0
    too_long: int = 0
    outside_alphabet: int = 0


class SequencesDomain(Domain):
    """Sequences from a user's file: text lines, FASTA records or a CSV column.

    The vocabulary is built from every kept sequence of the file and stored with the
    checkpoint; with ``state`` the vocabulary and lengths are restored and the file is
    only read when examples or metrics are needed.
    """

    name = "sequences"
    Options = SequencesOptions
    options: SequencesOptions

    def __init__(self, options: SequencesOptions, *, state: dict | None = None,
                 cache_dir: Path | None = None):
        super().__init__(options, state=state, cache_dir=cache_dir)
        self._regex = re.compile(options.pattern) if options.tokenizer == "regex" else None
        self._allowed = None if options.alphabet is None else set(
            self._tokens(options.alphabet, "domain.options.alphabet"))
        self._splits: dict[str, list[Example]] | None = None
        self.report = LoadReport()
        if state is None:
            prompts, targets = self._load()
            self.vocab = Vocabulary.build(prompts + targets)
            self._max_prompt = max(len(p) for p in prompts)
            self._max_target = max(len(t) for t in targets)
            self._make_splits(prompts, targets)
        else:
            self._restore(state)

    # -- lengths and persistence ---------------------------------------------
    @property
    def max_prompt_length(self) -> int:
        """Longest prompt in the file, in tokens (0 without a separator)."""
        return self._max_prompt

    @property
    def max_target_length(self) -> int:
        """Longest kept target in the file, in tokens (at most ``max_length``)."""
        return self._max_target

    def state_dict(self) -> dict:
        """Return the vocabulary and the lengths the model was built for."""
        return {"vocab": self.vocab.to_json(), "max_prompt_length": self._max_prompt,
                "max_target_length": self._max_target}

    def _restore(self, state: dict) -> None:
        missing = {"vocab", "max_prompt_length", "max_target_length"} - set(state)
        if missing:
            raise CheckpointError(f"sequences domain state lacks {sorted(missing)}; use a "
                                  "checkpoint written with domain 'sequences'")
        self.vocab = Vocabulary.from_json(state["vocab"])
        self._max_prompt = int(state["max_prompt_length"])
        self._max_target = int(state["max_target_length"])

    # -- text ----------------------------------------------------------------
    def tokenize(self, text: str) -> list[str]:
        """Split ``text`` with the configured tokenizer (char, whitespace or regex)."""
        return self._tokens(text, "text")

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Join tokens: with spaces for the whitespace tokenizer, else with nothing."""
        return (" " if self.options.tokenizer == "whitespace" else "").join(tokens)

    def _tokens(self, text: str, where: str) -> list[str]:
        if self.options.tokenizer == "char":
            return list(text)
        if self.options.tokenizer == "whitespace":
            return text.split()
        tokens, end = [], 0
        try:
            with time_budget(PATTERN_SECONDS):
                for match in self._regex.finditer(text):
                    if match.start() != end:
                        break
                    if match.end() > match.start():
                        tokens.append(match.group(0))
                        end = match.end()
        except PatternTooSlow:
            raise DataError(f"{where}: the token pattern '{excerpt(self.options.pattern)}' took "
                            f"over {PATTERN_SECONDS:g} s on this text; simplify "
                            "domain.options.pattern") from None
        if end != len(text):
            raise DataError(f"{where}: character {text[end]!r} is not matched by the token "
                            f"pattern '{excerpt(self.options.pattern)}'; extend "
                            "domain.options.pattern")
        return tokens

    def decode(self, ids: Sequence[int]) -> str | None:
        """Return the text of ``ids``, or None if they hold special or unknown ids."""
        if any(not len(SPECIAL_TOKENS) <= int(i) < len(self.vocab) for i in ids):
            return None
        return self.to_text(ids)

    def parse_prompt(self, text: str) -> Example:
        """Turn user text into a prompt; for unconditional data a start fragment (no BOS)."""
        return Example(target=[], prompt=self.encode(text), bos=self.conditional)

    # -- data ----------------------------------------------------------------
    def examples(self, split: str) -> list[Example]:
        """Return the examples of ``split``: a seeded, deterministic split of the file."""
        assert split in SPLITS, f"split must be one of {SPLITS}, not {split!r}"
        if self._splits is None:
            prompts, targets = self._load()
            self._make_splits(prompts, targets)
        return self._splits[split]

    def _load(self) -> tuple[list[list[str]], list[list[str]]]:
        opts = self.options
        if os.path.exists(opts.path) and not os.path.isfile(opts.path):
            raise DataError(f"sequence file '{opts.path}' is {kind_of(Path(opts.path))}, not a "
                            "regular file; set domain.options.path to a text, FASTA or CSV file")
        records = read_records(Path(opts.path), opts.format, opts.column)
        if not records:
            raise DataError(f"sequence file '{opts.path}' contains no sequences; put one "
                            "sequence per line (or FASTA records, or a CSV column)")
        self.report = LoadReport(records=len(records))
        prompts, targets = [], []
        for record in records:
            pair = self._parse(record)
            if pair is not None:
                prompts.append(pair[0])
                targets.append(pair[1])
        self._summarise()
        self._check_count(len(targets))
        return prompts, targets

    def _parse(self, record: Record) -> tuple[list[str], list[str]] | None:
        sep = self.options.separator
        prompt_text, target_text = "", record.text
        if sep is not None:
            if sep not in record.text:
                raise DataError(f"{record.where} has no separator '{excerpt(sep)}'; write each "
                                f"line as PROMPT{excerpt(sep)}TARGET")
            prompt_text, target_text = (s.strip() for s in record.text.split(sep, 1))
            if not target_text:
                raise DataError(f"{record.where} has nothing after the separator "
                                f"'{excerpt(sep)}'; give every line a target")
        prompt = self._tokens(prompt_text, record.where)
        target = self._tokens(target_text, record.where)
        if not self._within_alphabet(prompt + target, record.where):
            return None
        if len(target) > self.options.max_length:
            self.report.too_long += 1
            if self.options.too_long == "skip":
                return None
            target = target[: self.options.max_length]
        return prompt, target

    def _within_alphabet(self, tokens: list[str], where: str) -> bool:
        reserved = [tok for tok in tokens if tok in SPECIAL_TOKENS]
        if reserved:
            raise DataError(f"{where} holds the reserved token '{excerpt(reserved[0])}'; "
                            "remove it from the data")
        if self._allowed is None:
            return True
        outside = [tok for tok in tokens if tok not in self._allowed]
        if not outside:
            return True
        if self.options.outside_alphabet == "skip":
            self.report.outside_alphabet += 1
            return False
        kind = "character" if self.options.tokenizer == "char" else "token"
        raise DataError(f"{where}: {kind} '{excerpt(outside[0])}' is not in the alphabet; remove "
                        "it, add "
                        "it to domain.options.alphabet, or set domain.options.outside_alphabet"
                        "=skip")

    def _summarise(self) -> None:
        opts, report = self.options, self.report
        notes = []
        if report.too_long:
            action = "skipped" if opts.too_long == "skip" else "truncated"
            notes.append(f"{report.too_long} longer than max_length={opts.max_length} "
                         f"tokens were {action}")
        if report.outside_alphabet:
            notes.append(f"{report.outside_alphabet} with tokens outside the alphabet "
                         "were skipped")
        if notes:
            print(f"Note: sequences domain: of {report.records} sequences in '{opts.path}', "
                  + "; ".join(notes), file=sys.stderr)

    def _check_count(self, n: int) -> None:
        opts = self.options
        n_train = split_sizes(n, opts.valid_fraction, opts.test_fraction)[0]
        if n_train < 1:
            raise DataError(
                f"sequence file '{opts.path}' has {n} usable sequence{'s' * (n != 1)}, too few "
                "to split into train, valid and test; add sequences or set "
                "domain.options.valid_fraction=0 and domain.options.test_fraction=0")

    def _make_splits(self, prompts: list[list[str]], targets: list[list[str]]) -> None:
        opts = self.options
        order = list(range(len(targets)))
        random.Random(opts.seed).shuffle(order)
        n_train, n_valid, _ = split_sizes(len(order), opts.valid_fraction, opts.test_fraction)
        bounds = {"train": order[:n_train], "valid": order[n_train:n_train + n_valid],
                  "test": order[n_train + n_valid:]}
        self._splits = {
            split: [Example(target=self.vocab.encode(targets[i]),
                            prompt=self.vocab.encode(prompts[i])) for i in sorted(indices)]
            for split, indices in bounds.items()
        }

    # -- evaluation ----------------------------------------------------------
    def metrics(self, samples: Sequence[Generated]) -> dict[str, float]:
        """Score samples: exact match for prompted data, else diversity and lengths.

        With prompts: ``exact_match`` = share of the samples with a reference whose
        tokens equal the reference target. Without, with S the set of distinct samples
        and D the training targets: ``uniqueness`` = |S| / n, ``novelty`` = |S \\ D| / |S|,
        ``mean_length``, ``data_mean_length``, ``length_abs_diff`` = |mean - data mean| and
        ``length_wasserstein`` = W1 between sample and training target lengths.
        """
        out = {"num_samples": float(len(samples))}
        if not samples:
            return out
        if self.conditional:
            referenced = [s for s in samples if s.reference is not None]
            hits = [list(s.tokens) == list(s.reference.target) for s in referenced]
            if referenced:
                out["exact_match"] = sum(hits) / len(referenced)
            return out
        train = [tuple(ex.target) for ex in self.examples("train")]
        distinct = {tuple(s.tokens) for s in samples}
        lengths = [len(s.tokens) for s in samples]
        data_lengths = [len(t) for t in train]
        out["uniqueness"] = len(distinct) / len(samples)
        out["novelty"] = len(distinct - set(train)) / len(distinct)
        out["mean_length"] = sum(lengths) / len(lengths)
        out["data_mean_length"] = sum(data_lengths) / len(data_lengths)
        out["length_abs_diff"] = abs(out["mean_length"] - out["data_mean_length"])
        out["length_wasserstein"] = length_wasserstein(lengths, data_lengths)
        return out


@hookimpl
def register_domains(register: Callable[[type], None]) -> None:
    """Register the built-in ``sequences`` domain."""
    register(SequencesDomain)
