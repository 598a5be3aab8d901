"""Pack a training run as a shipped model folder, evaluate it and write its card.

    python docs/scripts/ship_model.py NAME RUN_DIR PACKAGE_DIR RUN_FILE \
        [--samples 200] [--steps 64] [--seed 0] [--summary TEXT]

Writes ``PACKAGE_DIR/pretrained/NAME/`` (fp16 EMA weights, run.json, state.json), then
``card.json`` with the metrics ``loflex evaluate`` measures on the packed folder itself and
``card.md`` with the training command, steps, CPU time, data and licence. The folder must
not exist yet.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from loflex import checkpoint as ckpt
from loflex.pretrained import count_parameters, pack


def training_figures(run_dir: Path) -> tuple[int, float]:
    """Return (steps, CPU-hours of optimiser steps) of the packed checkpoint's run."""
    step = int(ckpt.load(run_dir).state["step"])
    seconds = 0.0
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "train_seconds" in row and row["step"] <= step:
            seconds = max(seconds, row["train_seconds"])
    return step, seconds / 3600


def evaluate(folder: Path, samples: int, steps: int, seed: int) -> dict[str, float]:
    out = folder.parent / f".{folder.name}-metrics.json"
    subprocess.run([str(Path(sys.executable).parent / "loflex"), "evaluate", str(folder),
                    "-n", str(samples), "--steps", str(steps), "--seed", str(seed),
                    "-o", str(out), "--force"], check=True, stdout=subprocess.DEVNULL)
    metrics = json.loads(out.read_text())
    out.unlink()
    metrics.pop("num_samples", None)
    return metrics


def card(name: str, run: dict, run_file: str, steps: int, cpu_hours: float, params: int,
         metrics: dict, samples: int, sample_steps: int, seed: int, summary: str) -> str:
    generator, order, domain = run["generator"], run["order"], run["domain"]
    rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in metrics.items())
    gen = f"`{generator['name']}` {json.dumps(generator.get('options', {}))}"
    training = (f"{steps:,} steps of batch {run['train']['batch_size']}, {cpu_hours:.2f} "
                "CPU-hours of optimiser steps on one thread of a 2-core CPU")
    data = (f"`{domain['name']}` {json.dumps(domain.get('options', {}))}: graphs generated "
            "by the plugin (seed 42), no third-party data")
    return f"""# {name}

{summary}

| | |
|---|---|
| method | order `{order['name']}` {json.dumps(order.get('options', {}))} |
| generator | {gen} ({params:,} parameters in all) |
| weights | fp16 safetensors (the EMA weights, decay {run['train']['ema']}) |
| training | {training} |
| data | {data} |
| licence | MIT, as loflex |

Training command:

```bash
loflex train {run_file} -o runs/{name}
```

Measured on the packed folder with
`loflex evaluate {name} -n {samples} --steps {sample_steps} --seed {seed}` (test split,
greedy tokens, no confidence):

| metric | value |
|---|---|
{rows}
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name")
    p.add_argument("run_dir", type=Path)
    p.add_argument("package_dir", type=Path)
    p.add_argument("run_file")
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--summary", default="")
    args = p.parse_args()
    folder = pack(args.run_dir, args.package_dir / "pretrained" / args.name)
    steps, cpu_hours = training_figures(args.run_dir)
    run = json.loads((folder / "run.json").read_text())
    metrics = evaluate(folder, args.samples, args.steps, args.seed)
    evaluation = {"num_samples": args.samples, "steps": args.steps, "seed": args.seed}
    (folder / "card.json").write_text(json.dumps({"metrics": metrics, "evaluation": evaluation},
                                                 indent=1) + "\n")
    params = count_parameters(folder / "model.safetensors")
    (folder / "card.md").write_text(card(args.name, run, args.run_file, steps, cpu_hours, params,
                                         metrics, args.samples, args.steps, args.seed,
                                         args.summary))
    print(f"{folder}: {steps} steps, {cpu_hours:.2f} CPU-hours, {metrics}")


if __name__ == "__main__":
    main()
