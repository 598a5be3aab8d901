"""The paper-scale run files (docs/runs/paper/) are valid, paper-sized, and train on a CPU.

Each file is checked three ways: it validates as written; its networks have the paper's
size (docs/method.md §4.1 gives about 93.8M parameters per 12 x 768 DDiT, computed from
the sizes; each network must be within 3% of it);
and, with every option kept except the sizes (one block of width 64), the batch and the
step count, it trains two steps on the CPU. The files use the graph and molecule domains,
so these tests load the installed plugins.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
from pathlib import Path

import pytest
from loflex import load_run
from loflex.training.memory import parameter_count
from loflex.training.train import train
from loflex_molecules.data import bundled_path

PAPER = Path(__file__).resolve().parents[1] / "docs" / "runs" / "paper"
FILES = sorted(PAPER.glob("*.toml"))
TRUNK = 93.8e6  # docs/method.md §4.1, per 12 x 768 trunk
SHRUNK = ["generator.options.layers=1", "generator.options.width=64",
          "generator.options.heads=4", "train.steps=2", "train.batch_size=4",
          "train.warmup_steps=1", "train.eval_every=0", "train.sample_every=0",
          "train.checkpoint_every=0", "train.device=cpu", "train.precision=fp32"]
AUX_SHRUNK = ["order.options.layers=1", "order.options.width=64", "order.options.heads=4"]


pytestmark = pytest.mark.usefixtures("installed_plugins")


def test_there_are_paper_run_files_for_every_task_and_method():
    names = {f.stem for f in FILES}
    for task in ("star-medium", "star-hard", "molecules"):
        assert {f"{task}-loflexmdm", f"{task}-flexmdm"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_a_paper_run_file_has_the_papers_sizes(path):
    run = load_run(path, [])
    assert (run.generator.options["layers"], run.generator.options["width"]) == (12, 768)
    assert run.train.lr == 1e-4 and run.train.ema == 0.9999 and run.train.precision == "bf16"
    networks = 2 if run.order.name == "kumaraswamy" else 1
    count = parameter_count(run)
    assert count == pytest.approx(networks * TRUNK, rel=0.03), f"{count:,} parameters"


@pytest.fixture(scope="module")
def few_molecules(tmp_path_factory) -> Path:
    """60 molecules of the bundled MOSES test subset, as a user CSV."""
    with gzip.open(bundled_path("moses_test.csv.gz"), "rt") as handle:
        smiles = [row["SMILES"] for _, row in zip(range(60), csv.DictReader(handle))]
    path = tmp_path_factory.mktemp("data") / "mols.csv"
    path.write_text("SMILES\n" + "".join(f"{s}\n" for s in smiles))
    return path


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_a_paper_run_file_trains_on_the_cpu_when_shrunk(path, tmp_path, few_molecules):
    overrides = [*SHRUNK]
    if "kumaraswamy" in path.read_text():
        overrides += AUX_SHRUNK
    if path.stem.startswith("molecules"):
        overrides += [f"domain.options.path={few_molecules}"]
    run = load_run(path, overrides)
    train(run, tmp_path / "run", progress=False)
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text()
             .splitlines()]
    losses = [line["loss"] for line in lines if "loss" in line]
    assert lines and max(line.get("step", 0) for line in lines) == 2
    assert losses and all(math.isfinite(x) for x in losses)
