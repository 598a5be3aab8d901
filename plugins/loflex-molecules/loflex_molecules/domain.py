"""The ``molecules`` domain: SAFE / BracketSAFE / SMILES sequences of small molecules."""

from __future__ import annotations

import io
import math
import os
import random
import sys
from collections import Counter
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from loflex.contracts import Domain, Example, Generated, Insertion, Refill
from loflex.contracts.options import expand_home
from loflex.contracts.vocab import MASK, SPECIAL_TOKENS, Vocabulary
from loflex.errors import ConfigError, DataError, LoflexError
from rdkit import Chem

from loflex_molecules import fragments as frag
from loflex_molecules.data import MoleculeSet, default_cache_dir, load_splits, represent
from loflex_molecules.export import export_molecules
from loflex_molecules.fragment_tokens import (
    FRAGMENT_BASE_TOKENS,
    FragmentTokenizer,
    count_templates,
    is_template,
)
from loflex_molecules.fragment_tree import (
    CLOSE,
    OPEN,
    TREE_BASE_TOKENS,
    FragmentTreeTokenizer,
    count_marked_templates,
    is_fragment_token,
    stray_close,
    unclosed,
)
from loflex_molecules.metrics import denovo_metrics
from loflex_molecules.moses import MosesReference
from loflex_molecules.options import MoleculeOptions
from loflex_molecules.representations import (
    bracket_to_safe,
    decode_lenient,
    decode_strict,
    encode_smiles,
)
from loflex_molecules.tokenize import (
    BASE_TOKENS,
    AtomTokenizer,
    detokenize,
    is_ring_number,
    tokenize,
)

# tokens option -> (tokenizer of a set of templates, template counter, template test,
# base tokens)
FRAGMENT_TOKENIZERS = {
    "fragments": (FragmentTokenizer, count_templates, is_template, FRAGMENT_BASE_TOKENS),
    "fragment-tree": (FragmentTreeTokenizer, count_marked_templates, is_fragment_token,
                      TREE_BASE_TOKENS),
    "fragment-smiles": (partial(FragmentTreeTokenizer, inline_last=True), count_marked_templates,
                        is_fragment_token, TREE_BASE_TOKENS),
}


def _is_atom(token: str) -> bool:
    """Whether a SMILES/SAFE token writes an atom (organic subset, aromatic, bracket, ``*``)."""
    return token[:1].isalpha() or token[:1] in ("[", "*")


class AugmentedExamples(Sequence):
    """Training examples re-encoded at random (atom and fragment order) on every draw.

    A draw whose random encoding is too long or uses a token outside the vocabulary
    falls back to the canonical example.
    """

    def __init__(self, smiles: list[str], canonical: list[Example], encode):
        assert len(smiles) == len(canonical), "one SMILES per canonical example"
        self.smiles, self.canonical, self.encode = smiles, canonical, encode
        self._rng = random.Random()
        self._pid = -1

    def __len__(self) -> int:
        return len(self.canonical)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if self._pid != os.getpid():  # reseed in every DataLoader worker
            self._pid = os.getpid()
            self._rng.seed(random.getrandbits(64) ^ self._pid)
        example = self.encode(self.smiles[i], self._rng.getrandbits(31))
        return example if example is not None else self.canonical[i]


class MoleculeDomain(Domain):
    """Small molecules as SAFE, BracketSAFE or SMILES strings, with GenMol and MOSES metrics.

    The vocabulary is built from the training molecules (plus a base alphabet of
    atoms, bonds and ring numbers, and optionally the tokens of GenMol's fragment
    inputs) and restored from ``state`` when a saved model is loaded.
    """

    name = "molecules"
    Options = MoleculeOptions
    headline_metric = "validity"

    def __init__(self, options: MoleculeOptions, *, state: dict | None = None,
                 cache_dir: Path | None = None):
        super().__init__(options, state=state, cache_dir=cache_dir)
        self.rep = options.representation
        if options.tokens != "atoms" and self.rep != "bracket-safe":
            raise ConfigError(
                f"tokens = '{options.tokens}' needs representation = 'bracket-safe' (got "
                f"'{self.rep}'); set domain.options.representation = 'bracket-safe'"
            )
        self.tokenizer: AtomTokenizer | FragmentTokenizer | FragmentTreeTokenizer = \
            AtomTokenizer()
        if options.cache_dir is not None:
            self.data_cache = expand_home(options.cache_dir)
        elif cache_dir is not None:
            self.data_cache = Path(cache_dir) / "molecules"
        else:
            self.data_cache = default_cache_dir()
        self._splits: dict[str, MoleculeSet] | None = None
        self._examples: dict[str, Sequence[Example]] = {}
        self._reference: MosesReference | None = None
        self._train_tokens: tuple[list[list[str]], list[str]] | None = None
        self._marked: dict[tuple[int, int], torch.Tensor] = {}
        self._whole: torch.Tensor | None = None
        if state is not None:
            self._restore(state)
        else:
            self.vocab = self._build_vocab()

    # -- vocabulary ----------------------------------------------------------
    def _restore(self, state: dict) -> None:
        saved = state.get("representation", self.rep)
        if saved != self.rep:
            raise ConfigError(
                f"domain 'molecules' was trained with representation '{saved}' but the options "
                f"say '{self.rep}'; set representation = '{saved}'"
            )
        saved_tokens = state.get("tokens", "atoms")
        if saved_tokens != self.options.tokens:
            raise ConfigError(
                f"domain 'molecules' was trained with tokens = '{saved_tokens}' but the options "
                f"say '{self.options.tokens}'; set domain.options.tokens = '{saved_tokens}'"
            )
        self.vocab = Vocabulary.from_json(state["vocab"])
        if self.options.tokens in FRAGMENT_TOKENIZERS:
            tokenizer, _, is_whole, _ = FRAGMENT_TOKENIZERS[self.options.tokens]
            self.tokenizer = tokenizer(t for t in self.vocab.itos[len(SPECIAL_TOKENS):]
                                       if is_whole(t))

    def _build_vocab(self) -> Vocabulary:
        base = list(BASE_TOKENS)
        if self.options.tokens in FRAGMENT_TOKENIZERS:
            tokenizer, count, is_whole, base = FRAGMENT_TOKENIZERS[self.options.tokens]
            counts = count(represent(self.splits()["train"], self.rep)[0])
            self.tokenizer = tokenizer(shape for shape, n in counts.items()
                                       if n >= self.options.fragment_min_count and is_whole(shape))
        token_lists = [self._fit(tokens) or [] for tokens in self._tokenized("train")[0]]
        token_lists.append(list(base))
        if self.options.fragment_tokens and self.options.tokens in ("atoms", "fragments") and \
                self.rep != "smiles":
            token_lists += [self.tokenize(p) for p in self._fragment_texts()]
        return Vocabulary.build(token_lists)

    def _fragment_texts(self) -> list[str]:
        return [frag.encode_fragment(t.fragment, self.rep, t.link)
                for t in frag.load_fragment_tasks()]

    def state_dict(self) -> dict:
        """Return the vocabulary and the representation (stored with checkpoints)."""
        return {"vocab": self.vocab.to_json(), "representation": self.rep,
                "tokens": self.options.tokens}

    # -- data ----------------------------------------------------------------
    def splits(self) -> dict[str, MoleculeSet]:
        """Return the train/valid/test molecules, loading and converting them once."""
        if self._splits is None:
            o = self.options
            sizes = {"train": o.train_size, "valid": o.valid_size, "test": o.test_size}
            self._splits = load_splits(o.path, o.column, self.rep != "smiles", sizes,
                                       o.workers, self.data_cache)
        return self._splits

    @property
    def max_target_length(self) -> int:
        """Longest target in tokens (the ``max_length`` option)."""
        return self.options.max_length

    def _fit(self, tokens: list[str]) -> list[str] | None:
        """Apply the too_long rule: the tokens, truncated tokens, or None (skip)."""
        if len(tokens) <= self.options.max_length:
            return tokens
        return tokens[: self.options.max_length] if self.options.too_long == "truncate" else None

    def examples(self, split: str) -> Sequence[Example]:
        """Return the examples of ``split``; training ones re-encoded per draw if ``augment``."""
        if split not in self._examples:
            self._examples[split] = self._make_examples(split)
        return self._examples[split]

    def _tokenized(self, split: str) -> tuple[list[list[str]], list[str]]:
        """Return the tokens and canonical SMILES of ``split`` (memoised for train)."""
        if split == "train" and self._train_tokens is not None:
            return self._train_tokens
        texts, smiles = represent(self.splits()[split], self.rep)
        written = [(self._written(t), smi) for t, smi in zip(texts, smiles)]
        result = ([t for t, _ in written if t], [smi for t, smi in written if t])
        if split == "train":
            self._train_tokens = result
        return result

    def _make_examples(self, split: str) -> Sequence[Example]:
        token_lists, smiles = self._tokenized(split)
        if split == "train":
            self._train_tokens = None  # built once; free the memo
        examples, kept, too_long, unknown = [], [], 0, 0
        for full, smi in zip(token_lists, smiles):
            too_long += len(full) > self.options.max_length
            tokens = self._fit(full)
            if tokens is None:
                continue
            if any(tok not in self.vocab for tok in tokens):
                unknown += 1
                continue
            examples.append(Example(target=self.vocab.encode(tokens)))
            kept.append(smi)
        self._report(split, len(token_lists), too_long, unknown)
        if split == "train" and self.options.augment:
            return AugmentedExamples(kept, examples, self._random_example)
        return examples

    def _random_example(self, smiles: str, seed: int) -> Example | None:
        try:
            tokens = self.tokenize(encode_smiles(smiles, self.rep, seed))
        except ValueError:
            return None
        if len(tokens) > self.options.max_length or any(t not in self.vocab for t in tokens):
            return None
        return Example(target=self.vocab.encode(tokens))

    def _report(self, split: str, total: int, too_long: int, unknown: int) -> None:
        parts = []
        if too_long:
            action = "truncated" if self.options.too_long == "truncate" else "skipped"
            parts.append(f"{too_long} longer than max_length={self.options.max_length} tokens "
                         f"({action})")
        if unknown:
            parts.append(f"{unknown} with tokens outside the vocabulary (skipped)")
        if parts:
            print(f"loflex-molecules: {split} split, {total} molecules: " + "; ".join(parts),
                  file=sys.stderr)

    # -- text and molecules --------------------------------------------------
    def _written(self, text: str) -> list[str]:
        """The tokens of a data text; empty when fragment-tree tokens cannot write it."""
        try:
            return self.tokenize(text)
        except DataError:
            return []

    def tokenize(self, text: str) -> list[str]:
        """Split a SMILES / SAFE / BracketSAFE string into tokens (lossless).

        Raises:
            DataError: fragment-tree tokens and a text that is not one tree of fragments
                (e.g. a fragment prompt).
        """
        try:
            return self.tokenizer.tokenize(text)
        except ValueError as exc:
            raise DataError(f"cannot write {text[:60]!r} as a fragment tree ({exc}); "
                            "fragment-tree tokens take whole molecules only; for fragment "
                            "prompts use a model with tokens = 'fragments', such as the "
                            "shipped molecules-atoms-loflexmdm") from None

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Join tokens back into a string."""
        return self.tokenizer.detokenize(tokens)

    def to_smiles(self, ids: Sequence[int], strict: bool = False) -> str | None:
        """Decode ids to canonical SMILES (lenient by default), or None if invalid."""
        text = self.to_text(ids)
        return decode_strict(text, self.rep) if strict else decode_lenient(text, self.rep)

    def missing_structure(self, prompt: Sequence[int], target: Sequence[int]
                          ) -> list[Insertion | Refill]:
        """Fragment-tree tokens: what a sample lacks to be one tree of fragments.

        - the ``}`` of groups left open, at the end (alone: the rest is asked next round);
        - before a ``}`` that closes no group, ``{`` and a leaf (a fragment bonded only to
          its parent), so that the brace closes a group holding it (alone, too);
        - a parent before a first fragment marked ``<^>``: a fragment with one ``<*>`` and
          no ``<^>``, which takes the whole sample as its subtree;
        - a fragment for each group (or root) that holds groups but no fragment, with one
          ``<*>`` per group;
        - a fragment with fewer ``<*>`` than groups, or with a ``<^>`` where there is no
          parent or none below the root, is chosen again among those that fit;
        - one group ``{ leaf }`` per attachment point ``<*>`` left without a fragment.

        The generator chooses each fragment, among whole templates only; no edit is named
        where no template fits. Other tokens, and prompt tokens, get none.
        """
        if not isinstance(self.tokenizer, FragmentTreeTokenizer):
            return []
        tokens, start = self.vocab.decode([*prompt, *target]), len(prompt)
        stoi = self.vocab.stoi
        if unclosed(tokens) > 0:
            return [Insertion(len(target), (stoi[CLOSE],) * unclosed(tokens))]
        leaves = self._templates_with_marks((1, 0))
        stray = stray_close(tokens)
        if stray is not None:
            fits = stray >= start and bool(leaves.any())
            return [Insertion(stray - start, (stoi[OPEN], MASK), leaves)] if fits else []
        out: list[Insertion | Refill] = []
        parents = self._templates_with_marks((0, 1))
        if not prompt and parents.any() and self.tokenizer.orphan_root(tokens):
            out.append(Insertion(0, (MASK,), parents))
        for gap, marks in self.tokenizer.empty_fragments(tokens):
            if gap >= start and self._templates_with_marks(marks).any():
                out.append(Insertion(gap - start, (MASK,), self._templates_with_marks(marks)))
        for index, marks in self.tokenizer.misfit_fragments(tokens):
            if index >= start and self._templates_with_marks(marks).any():
                out.append(Refill(index - start, self._templates_with_marks(marks)))
        if leaves.any():
            group = (stoi[OPEN], MASK, stoi[CLOSE])
            out += [Insertion(gap - start, group * count, leaves)
                    for gap, count in self.tokenizer.missing_groups(tokens) if gap >= start]
        return out

    def constrain_logits(self, logits: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        """With ``spelled_fragments = false`` and fragment-tree tokens: -inf on every token
        but whole fragments and group braces (``logits`` (B, L, V)); else unchanged."""
        if self.options.spelled_fragments or not isinstance(self.tokenizer, FragmentTreeTokenizer):
            return logits
        if self._whole is None:
            self._whole = torch.tensor([t in self.tokenizer.templates or t in (OPEN, CLOSE)
                                        for t in self.vocab.itos])
        return logits.masked_fill(~self._whole.to(logits.device), -torch.inf)

    def _templates_with_marks(self, marks: tuple[int, int]) -> torch.Tensor:
        """(V,) bool: the whole templates with ``marks`` = (``<^>``, ``<*>``) counts (cached)."""
        if marks not in self._marked:
            self._marked[marks] = torch.tensor([self.tokenizer.marks(t) == marks
                                                for t in self.vocab.itos])
        return self._marked[marks]

    def decode(self, ids: Sequence[int]) -> Chem.Mol | None:
        """Return the RDKit molecule of ``ids`` (lenient decoding), or None if invalid."""
        smiles = self.to_smiles(ids)
        return Chem.MolFromSmiles(smiles) if smiles else None

    def draw(self, tokens: Sequence[int], values: Sequence[float], path: Path, *,
             prompt: Sequence[int] = (), title: str = "") -> bool:
        """Draw the molecule with every atom coloured by its token's value (prompt atoms grey).

        SAFE is SMILES syntax, so RDKit numbers atoms in the order their tokens are
        written. A string that does not parse whole (e.g. a partial state) is drawn
        fragment by fragment, dropping unpaired ring-bond numbers and fragments that
        still do not parse. Returns False when nothing parses or for SMILES-free input.
        """
        import matplotlib as mpl
        from matplotlib.figure import Figure
        from rdkit.Chem.Draw import rdMolDraw2D

        written = self.vocab.decode(list(prompt)) + self.vocab.decode(list(tokens))
        values = [math.nan] * len(self.vocab.decode(list(prompt))) + [float(v) for v in values]
        expanded = self.tokenizer.pieces(written)
        pieces = [piece for piece, _ in expanded]
        marks = [values[source] for _, source in expanded]
        mol, atom_values = self._partial_mol(pieces, marks)
        if mol is None:
            return False
        finite = [v for v in atom_values if math.isfinite(v)]
        times = all(0.0 <= v <= 1.0 for v in finite)
        norm = mpl.colors.Normalize(0.0, 1.0) if times else mpl.colors.Normalize(
            min(finite, default=0.0), max(max(finite, default=1.0), min(finite, default=0.0) + 1))
        colours = mpl.cm.ScalarMappable(norm=norm, cmap="viridis")
        lit = {i: tuple(colours.to_rgba(v)[:3]) for i, v in enumerate(atom_values)
               if math.isfinite(v)}
        canvas = rdMolDraw2D.MolDraw2DCairo(500, 400)
        rdMolDraw2D.PrepareAndDrawMolecule(canvas, mol, highlightAtoms=list(lit),
                                           highlightAtomColors=lit, kekulize=False)
        canvas.FinishDrawing()
        fig = Figure(figsize=(6.2, 4.4), layout="constrained")
        ax = fig.subplots()
        ax.imshow(mpl.image.imread(io.BytesIO(canvas.GetDrawingText()), format="png"))
        ax.set_axis_off()
        ax.set_title(title, fontsize=9)
        fig.colorbar(colours, ax=ax, fraction=0.04, label="time" if times else "sampler step")
        fig.savefig(path, dpi=100)
        return True

    def _partial_mol(self, pieces: list[str], values: list[float]):
        """Return (RDKit mol, value per atom) of SAFE pieces, fragment by fragment if needed."""
        text = detokenize(pieces)
        text = bracket_to_safe(text) if self.rep == "bracket-safe" else text
        atoms = [v for p, v in zip(pieces, values) if _is_atom(p)]
        mol = Chem.MolFromSmiles(text, sanitize=False)
        if mol is None:  # keep the fragments that parse once unpaired ring numbers are dropped
            parts, kept, k = [], [], 0
            for part in text.split("."):
                toks = tokenize(part)
                counts = Counter(t for t in toks if is_ring_number(t))
                part = "".join(t for t in toks if not is_ring_number(t) or counts[t] % 2 == 0)
                n = sum(map(_is_atom, toks))
                if n and Chem.MolFromSmiles(part, sanitize=False) is not None:
                    parts.append(part)
                    kept += atoms[k:k + n]
                k += n
            mol = Chem.MolFromSmiles(".".join(parts), sanitize=False) if parts else None
            atoms = kept
        if mol is None or mol.GetNumAtoms() != len(atoms):
            return None, []
        mol.UpdatePropertyCache(strict=False)
        return mol, atoms

    def parse_prompt(self, text: str) -> Example:
        """Turn a fragment SMILES with ``[*]`` attachment points into a prompt.

        The prompt is the fragment's SAFE or BracketSAFE followed by ``.``, fixed and
        without BOS (GenMol's fragment completion); pieces joined by ``.`` are kept
        whole and linked in one step.

        Raises:
            DataError: the fragment is malformed, has no usable attachment point,
                the representation is SMILES, or a token is outside the vocabulary.
        """
        link = "." in text
        prompt = frag.encode_fragment(text.strip(), self.rep, link=link)
        return Example(target=[], prompt=self.encode(prompt), bos=False)

    @property
    def conditional(self) -> bool:
        """True when sampling starts from the fragment-task prompts (``prompts="fragments"``)."""
        return self.options.prompts == "fragments"

    def prompts(self, split: str, n: int) -> list[Example]:
        """Return ``n`` fragment-task prompts, cycling over the 40 tasks (fragments mode)."""
        tasks = [example for _, example in self.fragment_prompts()]
        return [tasks[i % len(tasks)] for i in range(n)]

    def fragment_prompts(self, seed: int = 0) -> list[tuple[frag.FragmentTask, Example]]:
        """Return GenMol's 40 (drug, task) inputs with their prompt examples."""
        out = []
        for task in frag.load_fragment_tasks(seed=seed):
            text = frag.encode_fragment(task.fragment, self.rep, task.link)
            out.append((task, Example(target=[], prompt=self.encode(text), bos=False)))
        return out

    # -- evaluation ----------------------------------------------------------
    def reference(self) -> MosesReference:
        """Return the MOSES reference (training set for novelty, test set for the rest)."""
        if self._reference is None:
            splits = self.splits()
            self._reference = MosesReference(splits["train"].smiles, splits["test"].smiles,
                                             self.data_cache)
        return self._reference

    def metrics(self, samples: Sequence[Generated]) -> dict[str, float]:
        """Score samples: GenMol de novo metrics, MOSES metrics and, for samples whose
        prompt is a GenMol fragment task, the per-task fragment metrics."""
        full = [list(s.prompt) + list(s.tokens) for s in samples]
        lenient = [self.to_smiles(ids) for ids in full]
        strict = [self.to_smiles(ids, strict=True) for ids in full]
        out = denovo_metrics(lenient, strict)
        if self.options.moses_metrics and not any(s.prompt for s in samples):
            out.update(self.reference().metrics([s for s in lenient if s], self.options.fcd,
                                                self.options.fcd_min_samples))
        if any(s.prompt for s in samples):
            out.update(self.fragment_metrics(samples, lenient))
        return out

    def fragment_metrics(self, samples: Sequence[Generated], smiles: Sequence[str | None]
                         ) -> dict[str, float]:
        """Group samples by fragment-task prompt and return ``<task>/<metric>`` averages."""
        by_prompt = {tuple(ex.prompt): task for task, ex in self._safe_fragment_prompts()}
        groups: dict[Any, list[str | None]] = {}
        for sample, smi in zip(samples, smiles):
            task = by_prompt.get(tuple(sample.prompt))
            if task is not None:
                groups.setdefault(task, []).append(smi)
        tasks = list(groups)
        scores = [frag.score_task(t, groups[t]) for t in tasks]
        return frag.summarize(tasks, scores)

    def _safe_fragment_prompts(self) -> list[tuple[frag.FragmentTask, Example]]:
        if self.rep == "smiles":
            return []
        try:
            return self.fragment_prompts()
        except LoflexError:  # out-of-vocabulary fragments: nothing to group by
            return []

    def columns(self, sample: Generated) -> dict[str, str | int | float | None]:
        """One CSV row: the prompt and generated text, canonical SMILES (empty if invalid)
        and validity."""
        text = self.to_text(list(sample.prompt) + list(sample.tokens))
        smiles = decode_lenient(text, self.rep)
        return {"prompt": self.to_text(sample.prompt), "text": text, "smiles": smiles or "",
                "valid": int(smiles is not None)}

    def export(self, samples: Sequence[Generated], directory: Path) -> list[Path]:
        """Write samples.csv (SMILES, QED, SA, logP, MW, valid), samples.sdf and grid images."""
        full = [list(s.prompt) + list(s.tokens) for s in samples]
        texts = [self.to_text(ids) for ids in full]
        smiles = [decode_lenient(t, self.rep) for t in texts]
        return export_molecules(texts, smiles, directory, self.options.export_valid_only,
                                self.options.export_unique_only)
