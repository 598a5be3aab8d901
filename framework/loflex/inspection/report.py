"""``loflex report``: one self-contained HTML page (plus its PNGs) about a training run.

The page holds the training curves, the sampler settings, the domain's metric table
on fresh samples, a grid of samples, a generation trajectory, learned-order pictures
of a few test sequences and, where the domain gives a per-token order hint
(``Example.order_hint``), the order-hint figure. Images are inlined as base64, so the
page opens without a network or the PNG files next to it.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from loflex.errors import DataError, LoflexError
from loflex.inspection import pictures
from loflex.training import rundir
from loflex.training.checkpoint import atomic_write_text

CURVE_PANELS = {
    "loss terms": ("loss", "loss_theta", "unmask", "insertion", "reinforce", "regulariser"),
    "learning rate": ("lr",),
    "validation loss": ("valid_loss",),
}


@dataclass
class Page:
    """Sections of the report, each a heading and an HTML body."""

    title: str
    sections: list[tuple[str, str]] = field(default_factory=list)

    def add(self, heading: str, body: str) -> None:
        self.sections.append((heading, body))

    def render(self) -> str:
        """Return the full HTML document."""
        parts = [f"<h2>{html.escape(h)}</h2>\n{body}" for h, body in self.sections]
        return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>"
                f"{html.escape(self.title)}</title><style>{STYLE}</style></head><body>\n"
                f"<h1>{html.escape(self.title)}</h1>\n" + "\n".join(parts) + "\n</body></html>\n")


STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
         "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}"
         "img{max-width:100%}pre{background:#f4f4f4;padding:8px;overflow:auto}")


def image_tag(path: Path) -> str:
    """Return an ``<img>`` element with the PNG at ``path`` inlined as base64."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"<p><img alt='{html.escape(Path(path).stem)}' src='data:image/png;base64,{data}'></p>"


def table(rows: Sequence[Sequence], header: Sequence[str]) -> str:
    """Return an HTML table (floats shown with 4 decimals)."""
    def cell(v) -> str:
        return f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def read_text(path: Path) -> str:
    """Return a regular file's text (bad UTF-8 replaced); FIFOs and devices are refused."""
    with os.fdopen(rundir.open_regular(path, os.O_RDONLY), encoding="utf-8",
                   errors="replace") as handle:
        return handle.read()


def read_metrics(run_dir: Path) -> list[dict]:
    """Return the records of ``RUN_DIR/metrics.jsonl`` (empty when there is none).

    Lines that are not JSON objects (a line cut short by a crash) are left out.
    """
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    records = []
    for line in read_text(path).splitlines():
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _number(value) -> float | None:
    """``value`` as a finite float, None when it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _label(text: str) -> str:
    """A metric name as a matplotlib label (``$`` would start mathtext)."""
    return text.replace("$", r"\$")


def training_curves(records: Sequence[dict], path: Path) -> Path | None:
    """Plot loss terms, learning rate, validation loss and ``sample/*`` metrics against step.

    Returns:
        ``path``, or None when no record has any of them. One 4.5 x 3.2 inch panel per
        group that has data, side by side.
    """
    panels = dict(CURVE_PANELS)
    sampled = sorted({k for r in records for k in r if k.startswith("sample/")})
    if sampled:
        panels["sample metrics"] = tuple(sampled)
    series = {name: {k: _series(records, k) for k in keys} for name, keys in panels.items()}
    series = {name: {k: s for k, s in d.items() if s[0]} for name, d in series.items()}
    series = {name: d for name, d in series.items() if d}
    if not series:
        return None
    fig = Figure(figsize=(4.5 * len(series), 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(series)))
    for ax, (name, curves) in zip(axes, series.items()):
        for key, (steps, values) in curves.items():
            ax.plot(steps, values, label=_label(key), marker="." if len(steps) < 30 else None)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    return pictures._save(fig, path, pictures.DPI)


def _series(records: Sequence[dict], key: str) -> tuple[list[float], list[float]]:
    """Steps and values of ``key`` over the records where both are finite numbers."""
    rows = [(_number(r.get("step")), _number(r.get(key))) for r in records]
    rows = [(s, v) for s, v in rows if s is not None and v is not None]
    return [s for s, _ in rows], [v for _, v in rows]


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Return Spearman's rho (average ranks for ties), None when undefined."""
    if len(x) < 2 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    rx, ry = _ranks(x), _ranks(y)
    return float(np.corrcoef(rx, ry)[0, 1])


def _ranks(values: Sequence[float]) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    sorted_values = np.sort(values)
    low = np.searchsorted(sorted_values, values, side="left")
    high = np.searchsorted(sorted_values, values, side="right")
    return (low + high - 1) / 2.0


def order_hint_figure(samples: Sequence, path: Path) -> tuple[Path, float] | None:
    """Plot reveal step against the domain's order hint of every generated token.

    Uses samples whose reference carries ``order_hint`` and whose ``reveal_step`` is
    known; token k of a sample is paired with hint value k of its reference.

    Returns:
        ``(path, mean per-sample Spearman rho)``, or None when no sample qualifies.
    """
    pairs, rhos = [], []
    for s in samples:
        ref = s.reference
        if ref is None or ref.order_hint is None or s.reveal_step is None:
            continue
        n = min(len(s.reveal_step), len(ref.order_hint))
        hint, steps = list(ref.order_hint[:n]), [float(v) for v in s.reveal_step[:n]]
        pairs.extend(zip(hint, steps))
        rho = rank_correlation(steps, hint)
        if rho is not None:
            rhos.append(rho)
    if not pairs or not rhos:
        return None
    mean_rho = float(np.mean(rhos))
    fig = Figure(figsize=(4.5, 3.5), layout="constrained")
    ax = fig.subplots()
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(pairs))
    ax.scatter(np.array([p[0] for p in pairs]) + jitter, [p[1] for p in pairs], s=8, alpha=0.5)
    ax.set_xlabel("order hint of the token (Example.order_hint)")
    ax.set_ylabel("reveal step")
    ax.set_title(f"mean Spearman rho = {mean_rho:.3f} over {len(rhos)} samples", fontsize=9)
    return pictures._save(fig, path, pictures.DPI), mean_rho


order_correlation_figure = order_hint_figure  # the former name, kept for one release


def write_report(run_dir: str | Path, out_dir: str | Path | None = None, *, force: bool = False,
                 num_samples: int = 16, steps: int | None = None, examples: int = 3,
                 device: str = "cpu", seed: int = 0) -> Path:
    """Write ``index.html`` and its PNGs for the run in ``run_dir``.

    Args:
        run_dir: a directory written by ``loflex train`` or a checkpoint directory.
        out_dir: where to write (default ``RUN_DIR/report``).
        force: overwrite an existing report.
        num_samples: samples drawn for the metric table, the grid and the correlation.
        steps: sampler steps (default: the run's ``sample.steps``).
        examples: test sequences shown with their learned insertion times.
        device: where to run the model; seed: the sampling seed.

    Returns:
        The path of ``index.html``.

    Every value read from the run's files is HTML-escaped. A report inside the run
    directory holds the run's writer lock while it is written, and its folder may not be
    a link; the pictures are drawn into a hidden temporary folder and renamed into place,
    so a link planted under a picture's name is replaced, never written through.

    Raises:
        DataError: ``run_dir`` is not a run directory; LoflexError: the report exists,
            another process writes into the run, or the report folder is a link.
    """
    run_dir = Path(run_dir)
    config_file(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir / "report"
    inside = _inside(out, run_dir)
    with rundir.run_lock(run_dir) if inside else nullcontext():
        if inside:
            rundir.refuse_links_in_run(run_dir)
            rundir.refuse_link(out)
        index = out / "index.html"
        if os.path.lexists(index) and not force:
            raise LoflexError(f"'{index}' already exists; pass --force to overwrite it or "
                              "choose -o")
        out.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=out, prefix=".report-"))
        try:
            page = _page(run_dir, work, num_samples=num_samples, steps=steps,
                         examples=examples, device=device, seed=seed)
            for picture in sorted(work.iterdir()):
                os.replace(picture, out / picture.name)
            atomic_write_text(index, page.render())
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return index


def config_file(run_dir: Path) -> Path:
    """The run's config: a run directory's ``config.toml``, else a checkpoint's ``run.json``.

    Raises:
        DataError: neither is there.
    """
    for name in ("config.toml", "run.json"):
        if (run_dir / name).is_file():
            return run_dir / name
    raise DataError(f"'{run_dir}' has no config.toml; pass a run directory written by "
                    "`loflex train`, one of its checkpoints or a pretrained model name")


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies in ``folder``, by its written path or once links are resolved."""
    plain = Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))
    return plain or Path(path).resolve().is_relative_to(Path(folder).resolve())


def _page(run_dir: Path, out: Path, *, num_samples: int, steps: int | None, examples: int,
          device: str, seed: int) -> Page:
    """Build the report page of ``run_dir``, drawing its pictures into ``out``."""
    page = Page(f"loflex report: {run_dir.resolve().name}")
    config = config_file(run_dir)
    config_text = read_text(config)
    page.add("Run", f"<p>{html.escape(str(run_dir.resolve()))}</p>"
                    f"<details><summary>{config.name}</summary><pre>{html.escape(config_text)}"
                    "</pre></details>")
    records = read_metrics(run_dir)
    curves = training_curves(records, out / "curves.png")
    page.add("Training curves", image_tag(curves) if curves else "<p>No metrics logged.</p>")
    model_sections(page, run_dir, out, num_samples=num_samples, steps=steps, examples=examples,
                   device=device, seed=seed, records=records)
    return page


def model_sections(page: Page, run_dir: Path, out: Path, *, num_samples: int, steps: int | None,
                   examples: int, device: str, seed: int, records: Sequence[dict]) -> None:
    """Add the sections that need the trained model (skipped with a note without one)."""
    from loflex.errors import CheckpointError
    from loflex.sampling.inference import load_model

    try:
        loaded = load_model(run_dir, device=device)
    except CheckpointError as exc:
        page.add("Model", f"<p>No model pictures: {html.escape(exc.message)}</p>")
        return
    model, run = loaded.model, loaded.run
    update = {"num_samples": num_samples, **({"steps": steps} if steps else {})}
    settings = run.sample.model_copy(update=update)
    page.add("Model", table([("domain", run.domain.name), ("order", run.order.name),
                             ("generator", run.generator.name),
                             ("checkpoint step", loaded.checkpoint.step)], ("", "")))
    page.add("Sampler settings", table(list(settings.model_dump().items()), ("setting", "value")))
    samples, trajectories = _draw_samples(model, settings, seed, device)
    _metric_section(page, model, samples, records)
    _sample_section(page, model, samples, trajectories, out)
    _order_section(page, model, examples, out)
    correlation = order_hint_figure(samples, out / "order-hint.png")
    if correlation is not None:
        page.add("Reveal order against the order hint", image_tag(correlation[0]) +
                 "<p>Each generated token: the step that revealed it against the domain's "
                 "order hint for it. Rho near -1: tokens with large hints are revealed "
                 "first.</p>")


def _draw_samples(model, settings, seed: int, device: str):
    from loflex.inspection.trajectory import output_records, sample_from_record
    from loflex.sampling.inference import generate

    samples, trajectories = [], []
    for batch, output in generate(model, settings, seed=seed, device=device, trajectory=True):
        samples.extend(batch)
        trajectories.extend(sample_from_record(r, lambda ids: pictures._pieces(model.domain, ids))
                            for r in output_records(output))
    for trajectory, sample in zip(trajectories, samples):
        trajectory.text = model.domain.to_text(sample.tokens)
    return samples, trajectories


def _metric_section(page: Page, model, samples, records: Sequence[dict]) -> None:
    metrics = model.domain.metrics(samples) if samples else {}
    body = table([("num_samples", len(samples)), *metrics.items()], ("metric", "value"))
    logged = [r for r in records if any(k.startswith("sample/") for k in r)]
    if logged:
        last = logged[-1]
        rows = [(k[len("sample/"):], v) for k, v in last.items() if k.startswith("sample/")]
        step = html.escape(str(last.get("step")))
        body += f"<p>Last metrics logged in training (step {step}):</p>"
        body += table(rows, ("metric", "value"))
    page.add("Metrics", body)


def _sample_section(page: Page, model, samples, trajectories, out: Path) -> None:
    if not samples:
        return
    grid = pictures.samples_figure(model.domain, samples, out / "samples.png")
    texts = table([(i, model.domain.to_text(s.prompt), model.domain.to_text(s.tokens))
                   for i, s in enumerate(samples[:12])], ("sample", "prompt", "generated"))
    page.add("Samples", image_tag(grid) + "<p>Colour: the sampler step that revealed each "
             "token.</p>" + texts)
    heat = pictures.trajectory_heatmap(trajectories[0], out / "trajectory.png",
                                       title="sample 0: token by step")
    strip = pictures.filmstrip(model.domain, trajectories[0], out / "filmstrip.png")
    page.add("Generation trajectory", image_tag(heat) + image_tag(strip))


def _order_section(page: Page, model, examples: int, out: Path) -> None:
    from loflex.inspection.insertion_times import insertion_times

    body = ("<p>Median insertion time of every token, from the order's time-dependent hazard "
            "(earlier = generated first).</p>")
    data = model.domain.examples("test")
    for k in range(min(examples, len(data))):
        example = data[k]
        times = insertion_times(model, example)
        image = pictures.draw_values(model.domain, example.target, times.median,
                                     out / f"order-{k}.png", prompt=example.prompt,
                                     title=f"test example {k}", label="median insertion time",
                                     vmin=0.0, vmax=1.0)
        body += image_tag(image)
    page.add(f"Learned order ({model.order.name})", body)
