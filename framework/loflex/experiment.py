"""Order comparisons: train every order with the same run and budget, evaluate, tabulate.

An experiment directory holds one sub-directory per order (``<order>/run`` is an
ordinary run directory; ``<order>/result.json`` marks the order as finished), the
settings in ``experiment.json``, and the results as ``results.md``, ``results.json``
and a learning-curve plot. Re-running the same command resumes where it stopped:
finished orders are skipped and an interrupted one continues from its last checkpoint.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from loflex.checkpoint import atomic_write_text
from loflex.config import Run, validate_run
from loflex.errors import ConfigError


@dataclass
class ExperimentSettings:
    """What every order shares in one experiment."""

    orders: list[str]
    budget_minutes: float
    eval_samples: int = 500
    eval_steps: int = 128
    curve_metric: str = "exact_match"
    seed: int = 0
    run: dict = field(default_factory=dict)


def order_run(base: Run, order: str, settings: ExperimentSettings) -> Run:
    """Return ``base`` with ``order`` selected and the shared budget and seed applied."""
    data = base.model_dump(mode="json")
    if order != data["order"]["name"]:
        data["order"] = {"name": order, "options": {}}
    data["seed"] = settings.seed
    data["train"]["time_limit_minutes"] = settings.budget_minutes
    return validate_run(data)


def prepare(out: Path, settings: ExperimentSettings) -> None:
    """Write ``experiment.json``, or check it matches when resuming."""
    path = out / "experiment.json"
    if path.exists():
        saved = json.loads(path.read_text())
        if saved != asdict(settings):
            changed = sorted(k for k in saved if saved[k] != asdict(settings).get(k))
            raise ConfigError(
                f"'{out}' holds an experiment with other settings ({', '.join(changed)}); "
                "rerun with the same settings to resume it, or choose another -o"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(asdict(settings), indent=1))


def run_order(out: Path, base: Run, order: str, settings: ExperimentSettings,
              progress: bool = True) -> dict:
    """Train (or resume) and evaluate one order; return its result row."""
    from loflex.inference import generate_all, load_model
    from loflex.train import train

    folder = out / order
    result_path = folder / "result.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    run = order_run(base, order, settings)
    run_dir = folder / "run"
    resume = any((run_dir / "checkpoints").glob("step-*"))
    started = time.time()
    trained = train(run, run_dir, resume=resume, progress=progress)
    loaded = load_model(run_dir)
    sample = loaded.run.sample.model_copy(update={"num_samples": settings.eval_samples,
                                                  "steps": settings.eval_steps})
    samples = generate_all(loaded.model, sample, seed=settings.seed)
    metrics = loaded.model.domain.metrics(samples)
    row = {"order": order, **metrics, "train_steps": trained.step,
           "train_minutes": trained.train_seconds / 60,
           "wall_minutes": (time.time() - started) / 60, "eval_samples": len(samples)}
    atomic_write_text(result_path, json.dumps(row, indent=1))
    return row


def learning_curve(run_dir: Path, metric: str) -> list[tuple[int, float]]:
    """Return ``(step, value)`` of ``sample/<metric>`` from a run's metrics.jsonl."""
    path = run_dir / "metrics.jsonl"
    points = []
    if path.exists():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if f"sample/{metric}" in record:
                points.append((record["step"], record[f"sample/{metric}"]))
    return points


def markdown_table(rows: list[dict]) -> str:
    """Render result rows as a Markdown table (metrics as columns)."""
    columns = ["order"] + sorted({k for r in rows for k in r} - {"order"}, key=_column_rank)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [_cell(row.get(c)) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _column_rank(name: str) -> tuple[int, str]:
    trailing = ("train_steps", "train_minutes", "wall_minutes", "eval_samples")
    return (trailing.index(name) + 1 if name in trailing else 0, name)


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def plot_curves(out: Path, orders: list[str], metric: str) -> Path | None:
    """Plot ``metric`` against training steps for every order; return the PNG path."""
    curves = {o: learning_curve(out / o / "run", metric) for o in orders}
    if not any(curves.values()):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for order, points in curves.items():
        if points:
            ax.plot(*zip(*points), marker="o", label=order)
    ax.set_xlabel("training step")
    ax.set_ylabel(metric)
    ax.legend()
    ax.grid(alpha=0.3)
    path = out / f"{metric}_curve.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def machine() -> str:
    """Describe this machine in one line (for results tables)."""
    threads = torch.get_num_threads()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return f"{platform.processor() or platform.machine()}, {threads} torch threads, {device}"


def run_experiment(out: Path, base: Run, settings: ExperimentSettings,
                   progress: bool = True) -> list[dict]:
    """Run (or resume) every order, then write results.md, results.json and the plot."""
    prepare(out, settings)
    rows = [run_order(out, base, order, settings, progress) for order in settings.orders]
    summary = {"settings": asdict(settings), "machine": machine(), "results": rows}
    atomic_write_text(out / "results.json", json.dumps(summary, indent=1))
    atomic_write_text(out / "results.md", markdown_table(rows) + "\n")
    plot_curves(out, settings.orders, settings.curve_metric)
    return rows
