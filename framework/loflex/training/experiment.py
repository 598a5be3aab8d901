"""Comparisons under one budget: train every entry with the same seed and budget, evaluate,
tabulate.

An entry is a named run: one order of a shared run (``--orders``), or any run file
with its own overrides (``--entry``, ``--entries``), so entries may differ in loss,
generator or sampler as well as in the order. An entry of an entries file may also start
from a saved model's weights (``init``, as ``loflex train --init``); the budget then
counts the fine-tuning only. An experiment directory holds one
sub-directory per entry (``<entry>/run`` is an ordinary run directory;
``<entry>/result.json`` marks the entry as finished), the settings in
``experiment.json``, and the results as ``results.md``, ``results.json`` and a
learning-curve plot. Re-running the same command resumes where it stopped: finished
entries are skipped and an interrupted one continues from its last checkpoint. SIGINT or
SIGTERM stops the experiment after checkpointing the entry in training, which is then
neither evaluated nor marked finished.
"""

from __future__ import annotations

import json
import os
import platform
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from loflex.config import Run, load_run, read_toml, validate_run
from loflex.errors import ConfigError, LoflexError
from loflex.sampling.inference import generate_all, load_model
from loflex.training.checkpoint import atomic_write_text
from loflex.training.fine_tuning import fine_tuning, starting_checkpoint
from loflex.training.rundir import excerpt, kind_of, open_regular
from loflex.training.train import train

ENTRY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
ENTRY_KEYS = {"run", "set", "init"}
SETTINGS_FIX = ("delete it and rerun the same command to write it again (finished entries are "
                "kept), or choose another -o")
RESULT_FIX = "delete it to train and evaluate that entry again"


@dataclass
class ExperimentSettings:
    """What every entry shares in one experiment, and each entry's run.

    Attributes:
        entries: entry names in table order.
        budget_minutes: training minutes per entry (``train.time_limit_minutes``).
        eval_samples, eval_steps: the evaluation every entry gets.
        curve_metric: the sampled metric of the learning-curve plot.
        seed: the seed every entry trains and samples with.
        runs: entry name -> its validated run as a JSON dictionary (budget and seed are
            applied on top).
        inits: entry name -> the model it starts from (entries that fine-tune only).
    """

    entries: list[str]
    budget_minutes: float
    eval_samples: int = 500
    eval_steps: int = 128
    curve_metric: str = "exact_match"
    seed: int = 0
    runs: dict[str, dict] = field(default_factory=dict)
    inits: dict[str, str] = field(default_factory=dict)


def check_entry_name(name: str) -> str:
    """Return ``name`` if it can name an entry's directory, else raise ConfigError."""
    if not ENTRY_NAME.fullmatch(name):
        raise ConfigError(f"entry name '{name}' cannot name a directory; use letters, digits, "
                          "'.', '_', '+' and '-' (not starting with '.', '_', '+' or '-')")
    return name


def order_runs(base: Run, orders: list[str]) -> dict[str, dict]:
    """Return one run per order: ``base`` with the order switched (its options dropped)."""
    runs = {}
    for order in orders:
        data = base.model_dump(mode="json")
        if order != data["order"]["name"]:
            data["order"] = {"name": order, "options": {}}
        runs[order] = validate_run(data).model_dump(mode="json")
    return runs


def entry_specs(text: str) -> tuple[str, str]:
    """Split an ``--entry NAME=RUNFILE`` argument into the name and the run file."""
    name, sep, run_file = text.partition("=")
    if not sep or not name.strip() or not run_file.strip():
        raise ConfigError(f"--entry '{text}' is not NAME=RUNFILE; write e.g. "
                          "--entry flexmdm=docs/runs/star-easy-flexmdm.toml")
    return check_entry_name(name.strip()), run_file.strip()


def read_entries(path: str | Path, default_run: str | Path | None = None) -> dict[str, dict]:
    """Read an entries file: ``[NAME]`` tables with ``run`` (a run file), ``set``
    (overrides) and ``init`` (a model to start from: name, run or checkpoint directory).

    A relative ``run`` is relative to the entries file; an entry without ``run`` uses
    ``default_run`` (an ``init`` entry may have neither: it takes the model's run). A
    relative ``init`` path is relative to the entries file; a model name is kept as it is.
    Returns name -> ``{"run": path or None, "set": [overrides], "init": model or None}``
    in file order.
    """
    path = Path(path)
    data = read_toml(path)
    if not data:
        raise ConfigError(f"entries file '{path}' lists no entries; add a [NAME] table per entry")
    entries = {}
    for name, spec in data.items():
        check_entry_name(name)
        if not isinstance(spec, dict):
            raise ConfigError(f"entries file '{path}': '{name}' must be a table "
                              f"([{name}] with run = \"RUN.toml\" and/or set = [...])")
        unknown = sorted(set(spec) - ENTRY_KEYS)
        if unknown:
            raise ConfigError(f"entries file '{path}': entry '{name}' has unknown key "
                              f"'{unknown[0]}'; an entry takes only 'run', 'set' and 'init'")
        overrides = spec.get("set", [])
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise ConfigError(f"entries file '{path}': '{name}.set' must be a list of "
                              "\"section.key=value\" strings")
        run = spec.get("run")
        if run is not None and not isinstance(run, str):
            raise ConfigError(f"entries file '{path}': '{name}.run' must be a run file path")
        init = spec.get("init")
        if init is not None and not isinstance(init, str):
            raise ConfigError(f"entries file '{path}': '{name}.init' must be a model name or "
                              "a run directory")
        if run is None and default_run is None and init is None:
            raise ConfigError(f"entries file '{path}': entry '{name}' names no run file; add "
                              "run = \"RUN.toml\" or pass a run file before --entries")
        entries[name] = {"run": path.parent / run if run is not None else default_run,
                         "set": overrides, "init": _model_reference(path.parent, init)}
    return entries


def _model_reference(base: Path, init: str | None) -> str | None:
    """``init`` as a path relative to ``base`` when that path exists, else as written."""
    if init is None or Path(init).is_absolute() or not (base / init).exists():
        return init
    return str(base / init)


def entry_runs(entries: dict[str, dict], overrides: list[str]) -> dict[str, dict]:
    """Load and validate every entry's run: its file, then ``overrides``, then its own ``set``.

    An entry with ``init`` takes the model's architecture and sampler first, as
    ``loflex train --init`` does.
    """
    runs = {}
    for name, spec in entries.items():
        sets = [*overrides, *spec["set"]]
        if spec.get("init") is not None:
            run = fine_tuning(spec["init"], spec["run"], sets)[1]
        else:
            run = load_run(spec["run"], sets)
        runs[name] = run.model_dump(mode="json")
    return runs


def entry_run(name: str, settings: ExperimentSettings) -> Run:
    """Return entry ``name``'s run with the shared budget and seed applied."""
    data = json.loads(json.dumps(settings.runs[name]))
    data["seed"] = settings.seed
    data["train"]["time_limit_minutes"] = settings.budget_minutes
    return validate_run(data)


def _upgrade(saved: dict[str, Any]) -> dict[str, Any]:
    """Read the settings of an experiment written before entries (``orders`` + one ``run``)."""
    saved = {"inits": {}, **saved}  # written before entries could start from a model
    if "orders" not in saved or "run" not in saved:
        return saved
    if not _strings(saved["orders"]) or not isinstance(saved["run"], dict):
        raise ConfigError("'orders' must be a list of names and 'run' a table")
    upgraded = {k: v for k, v in saved.items() if k not in ("orders", "run")}
    upgraded["entries"] = saved["orders"]
    upgraded["runs"] = order_runs(validate_run(saved["run"]), saved["orders"])
    return upgraded


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


SETTING_CHECKS = {
    "entries": (_strings, "a list of entry names"),
    "budget_minutes": (_number, "a number"),
    "eval_samples": (_integer, "an integer"),
    "eval_steps": (_integer, "an integer"),
    "curve_metric": (lambda v: isinstance(v, str), "a string"),
    "seed": (_integer, "an integer"),
    "runs": (lambda v: isinstance(v, dict) and all(isinstance(r, dict) for r in v.values()),
             "a table of runs"),
    "inits": (lambda v: isinstance(v, dict) and all(isinstance(r, str) for r in v.values()),
              "a table of model names"),
}


def settings_problem(saved: dict[str, Any]) -> str | None:
    """Return what is wrong with the types of saved experiment settings, or None."""
    for key, (valid, expected) in SETTING_CHECKS.items():
        if key in saved and not valid(saved[key]):
            return f"'{key}' is {type(saved[key]).__name__}, not {expected}"
    return None


def read_json_object(path: Path, fix: str) -> dict[str, Any]:
    """Read a JSON object the experiment wrote; never changes the file.

    Args:
        path: the file (a regular file; a link to one is followed).
        fix: what to do about a damaged file, ending the error message.

    Raises:
        ConfigError: the file is not a regular file, not UTF-8 JSON or not an object.
    """
    try:
        with os.fdopen(open_regular(path, os.O_RDONLY, follow=True), "rb") as handle:
            value = json.loads(handle.read().decode("utf-8"))
    except LoflexError:
        raise ConfigError(f"'{path}' is {kind_of(path)}, not a regular file; {fix}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ConfigError(f"'{path}' is not valid JSON ({excerpt(str(exc), 80)}); {fix}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"'{path}' holds a JSON {type(value).__name__}, not an object; {fix}")
    return value


def read_settings(path: Path) -> dict[str, Any]:
    """Read ``experiment.json`` (the settings of an experiment being resumed).

    Raises:
        ConfigError: the file is damaged (not JSON, not an object, a field of the wrong type),
            naming it and saying how to rewrite it.
    """
    saved = read_json_object(path, SETTINGS_FIX)
    try:
        saved = _upgrade(saved)
    except LoflexError as exc:
        raise ConfigError(f"'{path}' is damaged ({exc.message}); {SETTINGS_FIX}") from None
    problem = settings_problem(saved)
    if problem is not None:
        raise ConfigError(f"'{path}' is damaged ({problem}); {SETTINGS_FIX}")
    return saved


def prepare(out: Path, settings: ExperimentSettings) -> None:
    """Write ``experiment.json``, or check it matches when resuming."""
    path = out / "experiment.json"
    if path.exists():
        saved = read_settings(path)
        if saved != asdict(settings):
            changed = sorted(k for k in {*saved, *asdict(settings)}
                             if saved.get(k) != asdict(settings).get(k))
            raise ConfigError(
                f"'{out}' holds an experiment with other settings ({', '.join(changed)}); "
                "rerun with the same settings to resume it, or choose another -o"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(asdict(settings), indent=1))


def run_entry(out: Path, name: str, settings: ExperimentSettings, progress: bool = True) -> dict:
    """Train (or resume) and evaluate one entry; return its result row.

    Raises:
        KeyboardInterrupt: SIGINT or SIGTERM stopped the training; the entry is
            checkpointed, not evaluated, and a rerun continues it.
    """
    folder = out / name
    result_path = folder / "result.json"
    if result_path.exists():
        return {"entry": name, **read_json_object(result_path, RESULT_FIX)}
    run = entry_run(name, settings)
    run_dir = folder / "run"
    resume = any((run_dir / "checkpoints").glob("step-*"))
    init = settings.inits.get(name)
    start = starting_checkpoint(init) if init is not None and not resume else None
    started = time.time()
    trained = train(run, run_dir, resume=resume, progress=progress, init=start)
    if trained.stopped_by == "signal":  # an unfinished entry is neither scored nor kept
        raise KeyboardInterrupt(f"entry '{name}' stopped at step {trained.step} and is "
                                "checkpointed; rerun the same command to continue it")
    loaded = load_model(run_dir)
    sample = loaded.run.sample.model_copy(update={"num_samples": settings.eval_samples,
                                                  "steps": settings.eval_steps})
    samples = generate_all(loaded.model, sample, seed=settings.seed)
    metrics = loaded.model.domain.metrics(samples)
    row = {"entry": name, "order": run.order.name, **({"init": init} if init else {}),
           **metrics, "train_steps": trained.step,
           "train_minutes": trained.train_seconds / 60,
           "wall_minutes": (time.time() - started) / 60, "eval_samples": len(samples)}
    atomic_write_text(result_path, json.dumps(row, indent=1))
    return row


def learning_curve(run_dir: Path, metric: str) -> list[tuple[int, float]]:
    """Return ``(step, value)`` of ``sample/<metric>`` from a run's metrics.jsonl.

    Lines that are not JSON objects with a numeric ``step`` and value (a line cut off by a
    crash, say) are left out.
    """
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    records = (_record(line) for line in path.read_text(errors="replace").splitlines())
    key = f"sample/{metric}"
    return [(r["step"], r[key]) for r in records
            if _number(r.get("step")) and _number(r.get(key))]


def _record(line: str) -> dict:
    """Return the JSON object of a metrics line, or an empty one for anything else."""
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        return {}
    return record if isinstance(record, dict) else {}


def markdown_table(rows: list[dict]) -> str:
    """Render result rows as a Markdown table (entry and order first, metrics as columns)."""
    first = [c for c in ("entry", "order", "init") if any(c in r for r in rows)]
    columns = first + sorted({k for r in rows for k in r} - set(first), key=_column_rank)
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


def plot_curves(out: Path, entries: list[str], metric: str) -> Path | None:
    """Plot ``metric`` against training steps for every entry; return the PNG path."""
    curves = {name: learning_curve(out / name / "run", metric) for name in entries}
    if not any(curves.values()):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, points in curves.items():
        if points:
            ax.plot(*zip(*points), marker="o", label=name)
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


def run_experiment(out: Path, settings: ExperimentSettings, progress: bool = True) -> list[dict]:
    """Run (or resume) every entry, then write results.md, results.json and the plot."""
    if not settings.entries:
        raise ConfigError("the experiment has no entries; name them with --orders, --entry "
                          "or --entries")
    missing = [name for name in settings.entries if name not in settings.runs]
    if missing:
        raise ConfigError(f"the experiment has no run for entry '{missing[0]}'; give every "
                          "entry a run")
    for name in settings.entries:
        check_entry_name(name)
    prepare(out, settings)
    rows = [run_entry(out, name, settings, progress) for name in settings.entries]
    summary = {"settings": asdict(settings), "machine": machine(), "results": rows}
    atomic_write_text(out / "results.json", json.dumps(summary, indent=1))
    atomic_write_text(out / "results.md", markdown_table(rows) + "\n")
    plot_curves(out, settings.entries, settings.curve_metric)
    return rows
