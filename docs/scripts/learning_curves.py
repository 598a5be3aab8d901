"""Plot and tabulate learning curves of several runs against CPU-minutes.

    python docs/scripts/learning_curves.py OUT.png NAME=RUN_DIR [NAME=RUN_DIR ...]

Reads each run's metrics.jsonl (``train_seconds`` is the CPU time of optimiser steps when
the run uses ``train.budget_clock = "cpu"``) and draws, per run, the masked-token accuracy
of the validation diagnostics (visible twin / other) and the sampled token accuracy and
exact match. Prints a markdown table of the same points.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = (
    ("diag/accuracy_visible_all", "masked-token accuracy, twin visible"),
    ("diag/accuracy_other_all", "masked-token accuracy, other tokens"),
    ("sample/token_accuracy", "sampled token accuracy"),
    ("sample/exact_match", "sampled exact match"),
)


def curves(run_dir: Path) -> dict[str, list[tuple[int, float, float]]]:
    """Return metric -> [(step, cpu_minutes, value)] from ``run_dir/metrics.jsonl``."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    clock: dict[int, float] = {}
    out: dict[str, list[tuple[int, float, float]]] = {key: [] for key, _ in PANELS}
    for row in rows:
        if "train_seconds" in row:
            clock[row["step"]] = row["train_seconds"] / 60
        for key, _ in PANELS:
            if row.get(key) is not None:
                minutes = clock.get(row["step"], max(clock.values(), default=0.0))
                out[key].append((row["step"], minutes, float(row[key])))
    return out


def main(argv: list[str]) -> None:
    picture, runs = Path(argv[0]), [item.split("=", 1) for item in argv[1:]]
    data = {name: curves(Path(path)) for name, path in runs}
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.4))
    for ax, (key, title) in zip(axes, PANELS):
        for name, series in data.items():
            if series[key]:
                ax.plot([m for _, m, _ in series[key]], [v for _, _, v in series[key]],
                        marker=".", label=name)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("CPU-minutes of optimiser steps")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(picture, dpi=110)
    print("| run | step | CPU-min | " + " | ".join(title for _, title in PANELS) + " |")
    print("|---|---:|---:|" + "---:|" * len(PANELS))
    for name, series in data.items():
        points = sorted({(s, m) for key, _ in PANELS for s, m, _ in series[key]})
        for step, minutes in points:
            values = []
            for key, _ in PANELS:
                hit = [v for s, _, v in series[key] if s == step]
                values.append(f"{hit[0]:.3f}" if hit else "")
            print(f"| {name} | {step} | {minutes:.1f} | " + " | ".join(values) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
