"""Every run file, fine-tuning file and entries file in docs/runs/ loads, validates and
builds its networks.

These are the files the docs tell users to run, so a renamed option or a typo in one of
them must fail here rather than in a user's hour-long run. The files use the graph and
molecule domains, so these tests load the installed plugins.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from loflex import load_run
from loflex.config import validate_run
from loflex.training.experiment import entry_runs, read_entries
from loflex.training.fine_tuning import fine_tuning
from loflex.training.memory import parameter_count

RUNS = Path(__file__).resolve().parents[1] / "docs" / "runs"
FILES = sorted(RUNS.rglob("*.toml"))
INIT_COMMAND = re.compile(r"^#\s+loflex train --init (\S+)", re.MULTILINE)
MODELS = ("molecules-atoms-flexmdm", "molecules-flexmdm", "star-easy-flexmdm", "star-medium-flexmdm")


def kind(path: Path) -> str:
    """``run`` (a whole run), ``entries`` (a table per experiment entry, each with ``run``,
    ``set`` or ``init``) or ``init`` (settings laid over a model's: a header line
    ``#   loflex train --init MODEL ...``)."""
    text = path.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    if INIT_COMMAND.search(text):
        return "init"
    if "domain" in data:
        return "run"
    if all(isinstance(v, dict) and set(v) <= {"run", "set", "init"} for v in data.values()):
        return "entries"
    return "init"


KINDS = {path: kind(path) for path in FILES}


def of_kind(name: str) -> list[Path]:
    return [path for path, found in KINDS.items() if found == name]


def ids(path: Path) -> str:
    return str(path.relative_to(RUNS))


pytestmark = pytest.mark.usefixtures("installed_plugins")


def test_the_cpu_recipes_are_there():
    names = {f.stem for f in FILES}
    for task in ("star-easy", "star-medium"):
        assert {f"{task}-flexmdm-cpu", f"{task}-loflexmdm-cpu"} <= names
    assert {"molecules-cpu", "molecules-loflexmdm-cpu", "quickstart"} <= names


@pytest.mark.parametrize("path", of_kind("run"), ids=ids)
def test_a_run_file_validates_and_builds(path):
    run = load_run(path, [])
    assert parameter_count(run) > 0


@pytest.mark.parametrize("path", of_kind("entries"), ids=ids)
def test_an_entries_file_names_valid_runs(path):
    entries = read_entries(path)
    for spec in entries.values():
        assert spec["init"] is None or spec["init"] in MODELS, f"{spec['init']} is not shipped"
    runs = entry_runs(entries, [])
    assert len(runs) >= 2
    for data in runs.values():
        assert parameter_count(validate_run(data)) > 0


@pytest.mark.parametrize("path", of_kind("init"), ids=ids)
def test_a_fine_tuning_file_applies_to_the_shipped_model_it_names(path):
    """A fine-tuning file names its starting model in its header comment
    (``loflex train --init MODEL``); the run it makes from that model validates and builds."""
    header = path.read_text(encoding="utf-8")
    model = INIT_COMMAND.search(header).group(1)
    assert model in MODELS, f"{path.name} starts from {model}, which is not a shipped model"
    _, run = fine_tuning(model, path, [])
    assert parameter_count(run) > 0
