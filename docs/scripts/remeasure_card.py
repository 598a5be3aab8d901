"""Re-measure a shipped model's card, optionally with a new default reveal rule.

    python docs/scripts/remeasure_card.py MODEL_FOLDER [--samples 200] [--steps 1024] \
        [--seed 0] [--confidence top_prob]

MODEL_FOLDER is a packed folder (``.../pretrained/NAME``). ``--confidence`` becomes the
model's default (its run.json ``sample.confidence``); then ``loflex evaluate`` runs on the
folder and ``card.json`` (metrics, evaluation) and the measured part of ``card.md`` (the
command line, the sampler settings and the metrics table) are rewritten. The weights, the
training description and everything above the measured part stay as they are.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from ship_model import evaluate, measured_section, set_default_confidence

MEASURED = re.compile(r"Measured on the packed folder with\n.*", re.DOTALL)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--steps", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--confidence", choices=("none", "top_prob", "prob_diff", "entropy"),
                   help="the model's new default reveal rule (default: keep its own)")
    args = p.parse_args()
    folder, name = args.folder, args.folder.name
    run = json.loads((folder / "run.json").read_text())
    if args.confidence is not None:
        set_default_confidence(folder, run, args.confidence)
    metrics = evaluate(folder, args.samples, args.steps, args.seed)
    card = json.loads((folder / "card.json").read_text())
    card["metrics"] = metrics
    card["evaluation"] = {"num_samples": args.samples, "steps": args.steps, "seed": args.seed}
    (folder / "card.json").write_text(json.dumps(card, indent=1) + "\n")
    text = (folder / "card.md").read_text()
    section = measured_section(name, run, metrics, args.samples, args.steps, args.seed)
    (folder / "card.md").write_text(MEASURED.sub(lambda _: section, text))
    print(f"{folder}: {metrics}")


if __name__ == "__main__":
    main()
