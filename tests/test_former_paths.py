"""Every module that moved into a concept subpackage keeps its former path for one release.

``import loflex.schedule`` (and every other former path) warns with a DeprecationWarning
naming the new path and gives the new module itself, so the same objects and the same
module attributes; ``loflex.domain`` and ``loflex.generator`` re-export the contract names
from :mod:`loflex.contracts`. loflex's own modules import only the new paths.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import loflex
import loflex.contracts
import pytest

FRAMEWORK = Path(__file__).resolve().parents[1] / "framework"

MOVED = {
    "vocab": "loflex.contracts.vocab",
    "batch": "loflex.diffusion.batch",
    "loss": "loflex.diffusion.loss",
    "order": "loflex.diffusion.order",
    "process": "loflex.diffusion.process",
    "schedule": "loflex.diffusion.schedule",
    "inference": "loflex.sampling.inference",
    "sample_files": "loflex.sampling.sample_files",
    "sampler": "loflex.sampling.sampler",
    "samples_io": "loflex.sampling.samples_io",
    "bench": "loflex.training.bench",
    "checkpoint": "loflex.training.checkpoint",
    "data": "loflex.training.data",
    "experiment": "loflex.training.experiment",
    "memory": "loflex.training.memory",
    "optim": "loflex.training.optim",
    "rundir": "loflex.training.rundir",
    "runtime": "loflex.training.runtime",
    "train": "loflex.training.train",
    "diagnostics": "loflex.inspection.diagnostics",
    "insertion_times": "loflex.inspection.insertion_times",
    "pictures": "loflex.inspection.pictures",
    "report": "loflex.inspection.report",
    "trajectory": "loflex.inspection.trajectory",
    "assemble": "loflex.extension.assemble",
    "hookspecs": "loflex.extension.hookspecs",
    "plugins": "loflex.extension.plugins",
    "pretrained": "loflex.extension.pretrained",
    "registry": "loflex.extension.registry",
    "scaffold": "loflex.extension.scaffold",
    "testing": "loflex.extension.testing",
}
CONTRACT_MODULES = ("domain", "generator")


def _forget(monkeypatch, old: str) -> None:
    monkeypatch.delitem(sys.modules, f"loflex.{old}", raising=False)
    monkeypatch.delattr(loflex, old, raising=False)


def _import_former(monkeypatch, old: str):
    _forget(monkeypatch, old)
    return importlib.import_module(f"loflex.{old}")


@pytest.mark.parametrize("old", sorted(MOVED))
def test_a_former_path_warns_and_is_the_new_module(monkeypatch, old):
    new = importlib.import_module(MOVED[old])
    with pytest.warns(DeprecationWarning, match=rf"loflex\.{old} is deprecated.*{MOVED[old]}"):
        former = _import_former(monkeypatch, old)
    assert former is new
    public = getattr(new, "__all__", None) or [n for n in vars(new) if not n.startswith("_")]
    for name in public:
        assert getattr(former, name) is getattr(new, name)
    with pytest.warns(DeprecationWarning):
        _forget(monkeypatch, old)
        exec(f"from loflex import {old} as module", namespace := {})
    assert namespace["module"] is new


@pytest.mark.parametrize("old", CONTRACT_MODULES)
def test_the_former_contract_modules_warn_and_give_the_contract_names(monkeypatch, old):
    with pytest.warns(DeprecationWarning, match=rf"loflex\.{old} is deprecated.*loflex\.contracts"):
        former = _import_former(monkeypatch, old)
    assert former.__all__
    for name in former.__all__:
        assert getattr(former, name) is getattr(loflex.contracts, name)


def test_monkeypatching_a_former_path_patches_the_new_module(monkeypatch):
    from loflex.training import checkpoint

    with pytest.warns(DeprecationWarning):
        former = _import_former(monkeypatch, "checkpoint")
    monkeypatch.setattr(former, "FORMAT_VERSION_FOR_TEST", 7, raising=False)
    assert checkpoint.FORMAT_VERSION_FOR_TEST == 7


def test_every_former_top_level_module_is_a_shim():
    shims = {p.stem for p in (FRAMEWORK / "loflex").glob("*.py")
             if p.read_text(encoding="utf-8").startswith('"""Deprecated:')}
    assert shims == set(MOVED) | set(CONTRACT_MODULES) | {"learned_order"}


LOAD_EVERYTHING = """
import importlib, json, pathlib, sys, warnings
warnings.filterwarnings("error", category=DeprecationWarning, message=r".*loflex\\.")
root = pathlib.Path(sys.argv[1])
modules = []
for path in sorted((root / "loflex").rglob("*.py")):
    if path.read_text(encoding="utf-8").startswith('\"\"\"Deprecated:'):
        continue
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    modules.append(".".join(parts))
for name in modules:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m.startswith("loflex"))))
"""


def test_loflex_itself_imports_no_former_path():
    """Importing every module at its new path loads no shim and warns about no former path."""
    result = subprocess.run([sys.executable, "-c", LOAD_EVERYTHING, str(FRAMEWORK)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    former = {f"loflex.{m}" for m in [*MOVED, *CONTRACT_MODULES, "learned_order"]}
    # a swapped shim leaves its former name in sys.modules, so none may be there
    assert not loaded & former, sorted(loaded & former)
