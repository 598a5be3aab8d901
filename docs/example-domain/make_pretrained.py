"""Train the tiny pretrained model this package ships and write its folder (about 10 s).

A FlexMDM (uniform order) with a 1-layer, width-32 transformer, trained on the bundled
peptides on one CPU thread, packed as fp16 with its model card. Run it with the package
installed (``pip install -e .``), from this folder::

    python make_pretrained.py
"""

import json
import sys
import tempfile
from pathlib import Path

import loflex
from loflex.config import load_run
from loflex.extension.pretrained import pack
from loflex.extension.testing import card_architecture
from loflex.training.train import train

NAME = "protein-peptides-flexmdm"
FOLDER = Path(__file__).parent / "loflex_example_protein" / "pretrained" / NAME
SETTINGS = [
    "domain.name=protein", "order.name=uniform", "generator.options.layers=1",
    "generator.options.width=32", "generator.options.heads=2", "generator.options.cond_dim=32",
    "train.steps=600", "train.batch_size=32", "train.lr=3e-3", "train.warmup_steps=20",
    "train.threads=1", "train.eval_every=0", "train.ema=0.99", "train.checkpoint_every=0",
    "sample.steps=64", "seed=0",
]
EVALUATION = {"num_samples": 200, "steps": 64, "seed": 0}

CARD = """# {name}

A deliberately tiny FlexMDM (uniform insertion and unmasking order) for the `protein`
domain of this example package: it exists to show how a domain plugin ships a
pretrained model through the `register_pretrained` hook, not to design peptides.

| | |
|---|---|
| method | FlexMDM (order `uniform`) |
| generator | transformer, 1 layer, width 32, 2 heads, time condition 32 ({parameters:,} parameters) |
| weights | fp16 safetensors (the EMA weights, decay 0.99) |
| training | {steps} steps of 32 peptides, {seconds:.1f} s on one CPU thread ({hours:.4f} CPU-hours) |
| data | `data/peptides.fasta`: 300 synthetic peptides from `make_peptides.py`, split 240/30/30 |
| licence | synthetic data (seeded, no third-party source) and weights: MIT, as loflex |

Training command (the same run as `make_pretrained.py`, which also packs the folder and
writes this card):

```bash
loflex train {settings} -o runs/{name}
```

Measured with `loflex evaluate {name} -n {num_samples} --steps {eval_steps} --seed {seed}`:

| metric | value |
|---|---|
{metric_rows}
"""


def main() -> int:
    """Train, pack the folder, measure the metrics and write ``card.md`` and ``card.json``."""
    if FOLDER.exists():
        print(f"{FOLDER} exists; delete it to write a new model", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        result = train(load_run(None, SETTINGS), Path(tmp) / "run", progress=False)
        pack(result.run_dir, FOLDER, dtype="fp16")
    model = loflex.load(FOLDER)
    metrics = model.evaluate(EVALUATION["num_samples"], steps=EVALUATION["steps"],
                             seed=EVALUATION["seed"])
    metrics.pop("num_samples")
    parameters = sum(p.numel() for m in model.model.modules().values() for p in m.parameters())
    card = CARD.format(
        name=NAME, parameters=parameters, steps=result.step, seconds=result.wall_seconds,
        hours=result.wall_seconds / 3600, settings=" ".join(f"--set {s}" for s in SETTINGS),
        num_samples=EVALUATION["num_samples"], eval_steps=EVALUATION["steps"],
        seed=EVALUATION["seed"],
        metric_rows="\n".join(f"| {k} | {v:.4f} |" for k, v in metrics.items()))
    (FOLDER / "card.md").write_text(card, encoding="utf-8")
    run = json.loads((FOLDER / "run.json").read_text(encoding="utf-8"))
    card_json = {"metrics": {k: round(v, 4) for k, v in metrics.items()},
                 "evaluation": EVALUATION, "architecture": card_architecture(run, parameters)}
    (FOLDER / "card.json").write_text(json.dumps(card_json, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {FOLDER}: {metrics}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
