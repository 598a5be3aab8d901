"""Summarise ``loflex bench --json`` files: median and spread over repeats, by name.

Files are named ``<name>-r<repeat>.json``; usage: python docs/scripts/summarise.py DIR
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

KEYS = ("median_step_s", "cpu_step_s", "seqs_per_s", "tokens_per_s", "padded_tokens_per_s",
        "gflop_per_step", "gflops", "matmul_peak_gflops", "peak_fraction", "overhead",
        "peak_rss_mib")


def load(directory: Path) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for path in sorted(directory.glob("*.json")):
        text = path.read_text().strip()
        if not text:
            continue
        groups[re.sub(r"-r\d+$", "", path.stem)].append(json.loads(text))
    return groups


def main(directory: str) -> None:
    for name, runs in load(Path(directory)).items():
        print(f"{name} ({len(runs)} runs)")
        for key in KEYS:
            values = [r[key] for r in runs]
            print(f"  {key:>20}: median {statistics.median(values):10.4g}   "
                  f"min {min(values):10.4g}   max {max(values):10.4g}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/scripts/results")
