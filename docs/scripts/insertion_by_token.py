"""Median insertion time of each token type under a model's order, over test sequences.

    python docs/scripts/insertion_by_token.py MODEL [--examples 200] [--top 12]

For a learned order this shows whether tokens of different kinds (atoms, ring bonds,
branches, fragment separators in SAFE strings) are inserted at different times. Prints a
markdown table: token, count, mean and spread of the per-token median insertion time, and
the mean b_in at t = 0.5. Uses the test split; fixed orders give the same time for every
token kind (up to their position rule).
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

import loflex
from loflex.inspection.insertion_times import insertion_times


def by_token(model_name: str, examples: int) -> dict[str, tuple[list[float], list[float]]]:
    """Return token -> (median insertion times, b_in at t = 0.5) over ``examples`` sequences."""
    loaded = loflex.load(model_name)
    vocab = loaded.domain.vocab
    found: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for example in loaded.domain.examples("test")[:examples]:
        times = insertion_times(loaded.model, example, grid=16)
        middle = times.b_in[len(times.grid) // 2]  # (n,) b_in at the grid point nearest 0.5
        for token, median, b in zip(times.tokens, times.median, middle.tolist()):
            found[vocab.itos[token]][0].append(median)
            found[vocab.itos[token]][1].append(b)
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--examples", type=int, default=200)
    p.add_argument("--top", type=int, default=12, help="the most frequent token kinds shown")
    args = p.parse_args()
    found = by_token(args.model, args.examples)
    rows = sorted(found.items(), key=lambda kv: -len(kv[1][0]))[:args.top]
    print(f"{args.model}, {args.examples} test sequences\n")
    print("| token | count | median insertion time, mean | its std | b_in at t = 0.5, mean |")
    print("|---|---:|---:|---:|---:|")
    for token, (medians, b) in sorted(rows, key=lambda kv: statistics.mean(kv[1][0])):
        print(f"| `{token}` | {len(medians)} | {statistics.mean(medians):.3f} | "
              f"{statistics.pstdev(medians):.3f} | {statistics.mean(b):.2f} |")


if __name__ == "__main__":
    main()
