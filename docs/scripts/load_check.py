"""Measure the peak memory of ``loflex sample`` at two sample counts (docs/reliability.md).

Trains a tiny model for a few steps, then runs ``loflex sample`` in a fresh process for
each count and prints a Markdown table of peak RSS, wall time and lines written. The
molecules domain (SMILES, bundled MOSES subset) is used when the loflex-molecules plugin is
installed; ``--domain sequences`` uses a generated text file instead.

    python docs/scripts/load_check.py                    # 10,000 and 50,000 molecules
    python docs/scripts/load_check.py --counts 1000 5000 --domain sequences
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = ["order.name=uniform", "generator.options.layers=1", "generator.options.width=32",
        "generator.options.heads=2", "train.batch_size=16", "train.eval_every=0",
        "train.steps=5", "train.threads=1"]
MOLECULES = ["domain.name=molecules", "domain.options.representation=smiles",
             "domain.options.train_size=2000", "domain.options.valid_size=50",
             "domain.options.test_size=200", "domain.options.moses_metrics=false",
             "domain.options.fcd=false"]
CHILD = """
import resource, sys
from loflex.cli import main
code = main(sys.argv[1:])
print("RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
sys.exit(code)
"""


def domain_settings(domain: str, work: Path) -> list[str]:
    """Return the ``--set`` items of the domain to train on."""
    if domain == "molecules":
        return [*MOLECULES, f"domain.options.cache_dir={work / 'cache'}"]
    rng = random.Random(0)
    path = work / "seqs.txt"
    path.write_text("".join("".join(rng.choice("ACGT") for _ in range(rng.randint(20, 60))) + "\n"
                            for _ in range(500)))
    return ["domain.name=sequences", f"domain.options.path={path}"]


def loflex(args: list[str], env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True,
                            text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"loflex {' '.join(args)} failed:\n{result.stderr}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--domain", choices=("molecules", "sequences"), default="molecules")
    parser.add_argument("--steps", type=int, default=4, help="sampler steps")
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train = ["train", "--no-progress", "-o", str(work / "run")]
        for item in [*domain_settings(args.domain, work), *TINY]:
            train += ["--set", item]
        loflex(train, env)
        print(f"| samples ({args.domain}) | peak RSS (MB) | wall (s) | lines written |")
        print("|---:|---:|---:|---:|")
        for count in args.counts:
            out = work / f"samples-{count}.jsonl"
            start = time.time()
            result = loflex(["sample", str(work / "run"), "-n", str(count), "--steps",
                             str(args.steps), "--batch-size", str(args.batch_size),
                             "-o", str(out)], env)
            wall = time.time() - start
            rss_mb = int(result.stdout.split("RSS_KB")[1].split()[0]) / 1024
            lines = sum(1 for _ in open(out, encoding="utf-8"))
            print(f"| {count:,} | {rss_mb:.0f} | {wall:.1f} | {lines:,} |")


if __name__ == "__main__":
    main()
