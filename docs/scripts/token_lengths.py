"""Tokens per molecule, brace depth and round trips of each molecule tokenisation.

    python docs/scripts/token_lengths.py [--molecules 20000] [--min-count 2]

Reads the first N molecules of the bundled MOSES training split (BracketSAFE), builds each
fragment tokenizer from the templates seen at least ``--min-count`` times among them,
and prints per tokenisation: mean and largest tokens per molecule, mean largest brace
depth, and how many molecules do not come back to their canonical SMILES after
tokenising and joining.
"""

from __future__ import annotations

import argparse
import csv
import gzip

from loflex_molecules.data import bundled_path
from loflex_molecules.fragment_tokens import FragmentTokenizer, count_templates, is_template
from loflex_molecules.fragment_tree import (
    CLOSE,
    OPEN,
    FragmentTreeTokenizer,
    count_marked_templates,
    is_fragment_token,
)
from loflex_molecules.representations import canonical, decode_strict, safe_to_bracket
from loflex_molecules.tokenize import AtomTokenizer


def depth(tokens: list[str]) -> int:
    """The deepest brace nesting of a token list."""
    level = deepest = 0
    for token in tokens:
        level += (token == OPEN) - (token == CLOSE)
        deepest = max(deepest, level)
    return deepest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--molecules", type=int, default=20000)
    p.add_argument("--min-count", type=int, default=2)
    args = p.parse_args()
    with gzip.open(bundled_path("moses_train.csv.gz"), "rt") as handle:
        rows = [row for _, row in zip(range(args.molecules), csv.DictReader(handle))]
    texts = [safe_to_bracket(row["SAFE"]) for row in rows]
    smiles = [canonical(row["SMILES"]) for row in rows]
    plain = count_templates(texts)
    marked = count_marked_templates(texts)

    def frequent(counts, test):
        return [t for t, n in counts.items() if n >= args.min_count and test(t)]

    tokenizers = {
        "atoms (SAFE)": (AtomTokenizer(), [row["SAFE"] for row in rows], "safe"),
        "fragments": (FragmentTokenizer(frequent(plain, is_template)), texts, "bracket-safe"),
        "fragment-tree": (FragmentTreeTokenizer(frequent(marked, is_fragment_token)), texts,
                          "bracket-safe"),
        "fragment-smiles": (FragmentTreeTokenizer(frequent(marked, is_fragment_token),
                                                  inline_last=True), texts, "bracket-safe"),
    }
    print(f"{len(rows)} molecules; | tokens | mean | largest | mean brace depth | round-trip failures |")
    for name, (tokenizer, inputs, rep) in tokenizers.items():
        lengths, depths, failures = [], [], 0
        for text, smi in zip(inputs, smiles):
            tokens = tokenizer.tokenize(text)
            lengths.append(len(tokens))
            depths.append(depth(tokens))
            failures += decode_strict(tokenizer.detokenize(tokens), rep) != smi
        print(f"| {name} | {sum(lengths) / len(lengths):.1f} | {max(lengths)} | "
              f"{sum(depths) / len(depths):.2f} | {failures} |")


if __name__ == "__main__":
    main()
