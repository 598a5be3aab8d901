"""Security: no unpickling, safetensors weights, plugins only from entry points, no silent
overwrites, and no writes outside the run directory."""

from __future__ import annotations

import ast
import json
import os
import struct
import sys
from pathlib import Path

import pytest
from loflex import load_run, plugins, registry
from loflex.cli import main
from loflex.domain import Domain
from loflex.errors import UnknownComponentError
from loflex.train import train

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "framework" / "loflex", *ROOT.glob("plugins/*/loflex_*"),
           *ROOT.glob("docs/example-*/loflex_*"), ROOT / "docs" / "scripts"]
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve", "marshal",
                  "joblib"}
TINY = ["order.name=uniform", "generator.options.layers=1", "generator.options.width=32",
        "generator.options.heads=2", "train.batch_size=4", "train.eval_every=0"]


# -- no pickle, no torch.load without weights_only=True ------------------------------------

def _keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name and isinstance(kw.value, ast.Constant):
            return kw.value.value
    return None


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else "?"


def unsafe_calls(source: str, filename: str = "<string>") -> list[str]:
    """Return one line per unsafe deserialisation in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [f"{where} imports {a.name}" for a in node.names
                      if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
            found.append(f"{where} imports from {node.module}")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in ("torch.load", "torch.serialization.load") and \
                    _keyword(node, "weights_only") is not True:
                found.append(f"{where} calls {name} without weights_only=True")
            elif name in ("np.load", "numpy.load") and _keyword(node, "allow_pickle") is True:
                found.append(f"{where} calls {name} with allow_pickle=True")
            elif name.endswith("read_pickle") or name in ("yaml.load", "yaml.unsafe_load"):
                found.append(f"{where} calls {name}")
            elif name in ("eval", "exec"):
                found.append(f"{where} calls {name}")
    return found


def test_the_scanner_finds_unsafe_code():
    bad = ("import pickle\nfrom dill import loads\nimport torch, numpy as np\n"
           "torch.load('x')\ntorch.load('x', weights_only=False)\nnp.load('x', allow_pickle=True)\n"
           "eval('1')\n")
    assert len(unsafe_calls(bad)) == 6
    good = "import torch\ntorch.load('x', weights_only=True)\nimport numpy as np\nnp.load('x')\n"
    assert unsafe_calls(good) == []


def test_no_unsafe_deserialisation_anywhere():
    files = [path for folder in SOURCES for path in folder.rglob("*.py")]
    assert len(files) > 30, "the scan must cover the core and the plugins"
    found = [line for path in files for line in unsafe_calls(path.read_text(), str(path))]
    assert found == []


# -- weights are safetensors ----------------------------------------------------------------

@pytest.fixture
def seqs(tmp_path):
    path = tmp_path / "data" / "seqs.txt"
    path.parent.mkdir()
    path.write_text("".join(f"{w}\n" for w in ["ACGT", "GATTACA", "CAT", "TAG"] * 5))
    return path


def test_checkpoint_weights_are_safetensors(tmp_path, seqs):
    run_dir = tmp_path / "run"
    train(load_run(None, ["domain.name=sequences", f"domain.options.path={seqs}",
                          "train.steps=1", *TINY]), run_dir, progress=False)
    step = run_dir / "checkpoints" / "step-00000001"
    for name in ("model.safetensors", "ema.safetensors", "optim.safetensors"):
        data = (step / name).read_bytes()
        size = struct.unpack("<Q", data[:8])[0]
        header = json.loads(data[8:8 + size])
        assert all(v["dtype"] in {"F32", "I64", "U8", "BF16", "F64"} for k, v in header.items()
                   if k != "__metadata__")
    for name in ("run.json", "state.json"):
        json.loads((step / name).read_text())


# -- plugins come only from installed entry points ------------------------------------------

@pytest.fixture
def trap(tmp_path, monkeypatch):
    """A module on sys.path that leaves a marker file when imported."""
    marker = tmp_path / "imported"
    (tmp_path / "trap_module.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "trap_module", raising=False)
    return marker


@pytest.mark.parametrize("name", ["trap_module", "trap_module:Domain", "trap-module"])
def test_component_names_never_import_modules(trap, name):
    with pytest.raises(UnknownComponentError):
        load_run(None, [f"domain.name={name}"])
    with pytest.raises(UnknownComponentError):
        load_run(None, ["domain.name=sequences", "domain.options.path=x", f"order.name={name}"])
    assert not trap.exists()


def test_load_plugins_variable_only_selects_entry_points(trap, monkeypatch):
    monkeypatch.setenv("LOFLEX_LOAD_PLUGINS", "trap_module")
    plugins.reset()
    registry.components(Domain)
    assert not trap.exists()
    assert "trap_module" not in {info["name"] for info in plugins.plugin_infos()}


def test_checkpoint_owner_names_are_not_imported(trap, tmp_path, seqs):
    run_dir = tmp_path / "run"
    train(load_run(None, ["domain.name=sequences", f"domain.options.path={seqs}",
                          "train.steps=1", *TINY]), run_dir, progress=False)
    state_path = run_dir / "checkpoints" / "step-00000001" / "state.json"
    state = json.loads(state_path.read_text())
    state["owners"]["sequences"] = {"plugin": "trap_module", "distribution": "trap_module"}
    state_path.write_text(json.dumps(state))
    from loflex.inference import load_model

    load_model(run_dir)
    assert not trap.exists()


def test_docs_say_that_installing_a_plugin_runs_its_code():
    for doc in ("docs/writing-plugins.md", "docs/reliability.md"):
        text = (ROOT / doc).read_text()
        assert "Installing a plugin" in text and "runs its code" in text, doc


# -- no overwriting without --force ---------------------------------------------------------

@pytest.fixture
def model_dir(tmp_path, seqs):
    run_dir = tmp_path / "run"
    train(load_run(None, ["domain.name=sequences", f"domain.options.path={seqs}",
                          "train.steps=1", *TINY]), run_dir, progress=False)
    return run_dir


def existing(path: Path, text: str = "precious\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("command", [
    ["sample", "{model}", "-n", "2", "--steps", "2", "-o", "{out}"],
    ["evaluate", "{model}", "-n", "2", "--steps", "2", "-o", "{out}"],
    ["data", "sequences", "--set", "domain.options.path={seqs}", "-o", "{out}"],
])
def test_outputs_are_not_overwritten_without_force(model_dir, seqs, tmp_path, capsys, command):
    out = existing(tmp_path / "out" / "result.txt")
    args = [a.format(model=model_dir, out=out, seqs=seqs) for a in command]
    assert main(args) == 1
    assert "already exists; pass --force to overwrite it" in capsys.readouterr().err
    assert out.read_text() == "precious\n"
    assert main([*args, "--force"]) == 0
    assert out.read_text() != "precious\n"


def test_trajectory_and_export_folders_are_not_overwritten(model_dir, tmp_path, capsys):
    trajectories = existing(tmp_path / "traj" / "trajectories.jsonl")
    exported = existing(tmp_path / "export" / "samples.csv")
    base = ["sample", str(model_dir), "-n", "2", "--steps", "2"]
    assert main([*base, "-o", str(tmp_path / "a.jsonl"), "--trajectory",
                 str(trajectories.parent)]) == 1
    assert main([*base, "-o", str(tmp_path / "b.jsonl"), "--export", str(exported.parent)]) == 1
    err = capsys.readouterr().err
    assert err.count("pass --force") == 2
    assert trajectories.read_text() == exported.read_text() == "precious\n"
    assert not (tmp_path / "a.jsonl").exists() and not (tmp_path / "b.jsonl").exists()


def test_an_interrupted_sample_never_leaves_a_file_under_the_final_name(model_dir, tmp_path,
                                                                       monkeypatch):
    import loflex.inference

    real = loflex.inference.generate

    def crashing(*args, **kwargs):
        for count, item in enumerate(real(*args, **kwargs)):
            if count == 1:
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(loflex.inference, "generate", crashing)
    out = tmp_path / "samples.jsonl"
    assert main(["sample", str(model_dir), "-n", "6", "--batch-size", "2", "--steps", "2",
                 "-o", str(out)]) == 130
    assert not out.exists()


# -- writes stay inside the run directory ---------------------------------------------------

def snapshot(root: Path, skip: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*")
            if skip not in p.parents and p != skip}


def test_training_and_sampling_write_only_inside_the_run_directory(tmp_path, seqs, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    before = snapshot(tmp_path, run_dir)
    train(load_run(None, ["domain.name=sequences", f"domain.options.path={seqs}",
                          "train.steps=2", "train.checkpoint_every=1", *TINY]),
          run_dir, progress=False)
    assert main(["sample", str(run_dir), "-n", "2", "--steps", "2",
                 "-o", str(run_dir / "samples.jsonl")]) == 0
    assert snapshot(tmp_path, run_dir) == before


def test_component_names_cannot_name_paths(tmp_path, seqs, capsys):
    run_file = tmp_path / "run.toml"
    run_file.write_text(f'[domain]\nname = "sequences"\noptions = {{path = "{seqs}"}}\n')
    out = tmp_path / "exp" / "inner"
    code = main(["experiment", str(run_file), "--orders", "uniform,../../escape",
                 "--budget-minutes", "0.01", "-o", str(out)])
    assert code == 1
    assert "unknown order dynamics '../../escape'" in capsys.readouterr().err
    assert not (tmp_path / "escape").exists() and not (tmp_path / "exp").exists()


def test_run_directory_permissions_follow_the_umask(tmp_path, seqs):
    run_dir = tmp_path / "run"
    train(load_run(None, ["domain.name=sequences", f"domain.options.path={seqs}",
                          "train.steps=1", *TINY]), run_dir, progress=False)
    umask = os.umask(0)
    os.umask(umask)
    step = run_dir / "checkpoints" / "step-00000001"
    assert (step.stat().st_mode & 0o777) == 0o777 & ~umask
    assert ((run_dir / "config.toml").stat().st_mode & 0o777) == 0o666 & ~umask
