"""Security: no unpickling, safetensors weights, plugins only from entry points, no silent
overwrites, and no writes outside the run directory."""

from __future__ import annotations

import ast
import html
import json
import os
import shutil
import struct
import sys
from pathlib import Path

import pytest
import torch
from loflex import load_run
from loflex.cli import main
from loflex.contracts import Domain
from loflex.errors import LoflexError, UnknownComponentError
from loflex.extension import plugins, registry
from loflex.training import checkpoint as ckpt
from loflex.training.train import train

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
    from loflex.sampling.inference import load_model

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
    out = existing(tmp_path / "out" / "result.jsonl")
    args = [a.format(model=model_dir, out=out, seqs=seqs) for a in command]
    assert main(args) == 1
    assert "already exists; pass --force to overwrite it" in capsys.readouterr().err
    assert out.read_text() == "precious\n"
    assert main([*args, "--force"]) == 0
    assert out.read_text() != "precious\n"


def train_cli(seqs: Path, out: str, *extra: str) -> list[str]:
    args = ["train", "--set", "domain.name=sequences", "--set", f"domain.options.path={seqs}",
            "--set", "train.steps=1", "--no-progress", "-o", out, *extra]
    for item in TINY:
        args += ["--set", item]
    return args


def test_training_into_a_users_folder_needs_force(seqs, tmp_path, capsys):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "config.toml").write_bytes(VICTIM_BYTES)
    (project / "notes.md").write_text("mine\n")
    before = tree_bytes(project)
    assert main(train_cli(seqs, str(project))) == 1
    one_line_error(capsys, "proj' already holds files and is not a loflex run directory",
                   "pass --force")
    assert tree_bytes(project) == before
    assert sorted(p.name for p in project.iterdir()) == ["config.toml", "notes.md"]
    assert main(train_cli(seqs, str(project), "--force")) == 0
    assert (project / "config.toml").read_bytes() != VICTIM_BYTES
    assert (project / "notes.md").read_text() == "mine\n"


def test_training_into_a_new_an_empty_or_an_unfinished_run_folder_needs_no_force(seqs, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(train_cli(seqs, str(empty))) == 0
    assert main(train_cli(seqs, str(tmp_path / "new" / "run"))) == 0
    unfinished = tmp_path / "unfinished"  # killed before its first checkpoint
    assert main(train_cli(seqs, str(unfinished))) == 0
    shutil.rmtree(unfinished / "checkpoints")
    assert main(train_cli(seqs, str(unfinished))) == 0


@pytest.mark.parametrize("where", ["file", "below a file"])
def test_a_run_directory_that_is_a_file_is_refused(seqs, tmp_path, capsys, where):
    user_file = tmp_path / "results.csv"
    user_file.write_bytes(VICTIM_BYTES)
    out = user_file if where == "file" else user_file / "run"
    assert main(train_cli(seqs, str(out))) == 1
    one_line_error(capsys, *{"file": ["results.csv' is a regular file, not a folder; choose "
                                      "another -o"],
                             "below a file": ["Not a directory", "a part of the path is a file, "
                                              "not a folder; choose another path"]}[where])
    assert user_file.read_bytes() == VICTIM_BYTES


@pytest.mark.parametrize("command", ["train", "sample", "evaluate"])
def test_an_empty_output_path_is_refused(model_dir, capsys, command):
    args = {"train": ["train", "-o", ""],
            "sample": ["sample", str(model_dir), "-o", " "],
            "evaluate": ["evaluate", str(model_dir), "-o", ""]}[command]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    assert "the output path is empty; name a file or folder" in capsys.readouterr().err


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
    import loflex.sampling.inference

    real = loflex.sampling.inference.generate

    def crashing(*args, **kwargs):
        for count, item in enumerate(real(*args, **kwargs)):
            if count == 1:
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(loflex.sampling.inference, "generate", crashing)
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


# -- writes never follow symbolic links out of the run directory ---------------------------

VICTIM_BYTES = b"the user's own file\n\x00\xff keep me\n"


@pytest.fixture
def victim(tmp_path):
    """A file outside every run directory; a test ends by checking it is byte-identical."""
    path = tmp_path / "outside" / "victim.txt"
    path.parent.mkdir()
    path.write_bytes(VICTIM_BYTES)
    return path


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` with its bytes (links not followed)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def one_line_error(capsys, *words: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err, err
    return err


def test_a_planted_partial_sample_link_is_refused(model_dir, tmp_path, victim, capsys):
    out = tmp_path / "out" / "s.jsonl"
    out.parent.mkdir()
    out.with_name("s.jsonl.partial").symlink_to(victim)
    for extra in ([], ["--force"]):
        assert main(["sample", str(model_dir), "-n", "2", "--steps", "2", "-o", str(out),
                     *extra]) == 1
        one_line_error(capsys, "s.jsonl.partial' is a symbolic link", "does not write")
    assert victim.read_bytes() == VICTIM_BYTES
    assert not out.exists()


@pytest.mark.parametrize("command", [
    ["sample", "{model}", "-n", "2", "--steps", "2", "-o", "{out}", "--force"],
    ["evaluate", "{model}", "-n", "2", "--steps", "2", "-o", "{out}", "--force"],
    ["data", "sequences", "--set", "domain.options.path={seqs}", "-o", "{out}", "--force"],
])
def test_a_linked_output_file_is_replaced_not_written_through(model_dir, seqs, tmp_path, victim,
                                                              command):
    out = tmp_path / "out.jsonl"
    out.symlink_to(victim)
    assert main([a.format(model=model_dir, out=out, seqs=seqs) for a in command]) == 0
    assert victim.read_bytes() == VICTIM_BYTES
    assert not out.is_symlink() and out.read_bytes() != VICTIM_BYTES


def test_an_existing_link_counts_as_an_existing_output(model_dir, tmp_path, capsys):
    out = tmp_path / "dangling.jsonl"
    out.symlink_to(tmp_path / "nowhere")
    assert main(["sample", str(model_dir), "-n", "2", "--steps", "2", "-o", str(out)]) == 1
    one_line_error(capsys, "already exists; pass --force")
    assert not (tmp_path / "nowhere").exists()


def outside_checkpoints(model_dir: Path, tmp_path: Path) -> Path:
    """Move the run's checkpoints outside it (with a user's file among them), link them back."""
    outside = tmp_path / "outside" / "checkpoints"
    (model_dir / "checkpoints").rename(outside)
    (outside / "step-00000001" / "important.txt").write_bytes(VICTIM_BYTES)
    (model_dir / "checkpoints").symlink_to(outside, target_is_directory=True)
    return outside


def test_a_checkpoints_link_is_refused_and_nothing_behind_it_deleted(model_dir, tmp_path, victim,
                                                                   capsys):
    outside = outside_checkpoints(model_dir, tmp_path)
    before = tree_bytes(outside.parent)
    assert main(["train", "--resume", str(model_dir), "--set", "train.steps=3",
                 "--set", "train.keep_checkpoints=1", "--no-progress"]) == 1
    one_line_error(capsys, "checkpoints' is a symbolic link")
    assert tree_bytes(outside.parent) == before
    for call in (lambda: ckpt.keep_last(model_dir / "checkpoints", 0),
                 lambda: ckpt.save(model_dir / "checkpoints" / "step-00000002", run={},
                                   state={"step": 2}, model={"w": torch.zeros(2)})):
        with pytest.raises(LoflexError, match="is a symbolic link"):
            call()
    assert tree_bytes(outside.parent) == before


def test_a_step_link_is_removed_itself_never_followed(tmp_path, victim):
    folder = tmp_path / "run" / "checkpoints"
    for step in (1, 2):
        ckpt.save(folder / f"step-{step:08d}", run={}, state={"step": step},
                  model={"w": torch.zeros(2)})
    (folder / "step-00000000").symlink_to(victim.parent, target_is_directory=True)
    (folder / ".step-00000009.tmp-x").symlink_to(victim.parent, target_is_directory=True)
    ckpt.keep_last(folder, 1)
    assert sorted(p.name for p in folder.iterdir()) == ["step-00000002"]
    assert victim.read_bytes() == VICTIM_BYTES


@pytest.mark.parametrize("entry", ["metrics.jsonl", "config.toml", "checkpoints/latest",
                                   ".loflex.lock"])
def test_a_run_whose_managed_file_is_a_link_is_refused(model_dir, victim, capsys, entry):
    link = model_dir / entry
    link.unlink(missing_ok=True)
    link.symlink_to(victim)
    assert main(["train", "--resume", str(model_dir), "--set", "train.steps=3",
                 "--no-progress"]) == 1
    one_line_error(capsys, f"{link.name}' is a symbolic link")
    assert victim.read_bytes() == VICTIM_BYTES


def test_metrics_are_never_appended_through_a_link(tmp_path, victim):
    from loflex.training.train import log_line

    link = tmp_path / "metrics.jsonl"
    link.symlink_to(victim)
    with pytest.raises(LoflexError, match="metrics.jsonl' is a symbolic link"):
        log_line(link, {"step": 1})
    assert victim.read_bytes() == VICTIM_BYTES


def test_a_linked_report_folder_is_refused(model_dir, tmp_path, victim, capsys):
    (model_dir / "report").symlink_to(victim.parent, target_is_directory=True)
    before = tree_bytes(victim.parent)
    assert main(["report", str(model_dir), "-n", "1", "--steps", "2", "--examples", "0"]) == 1
    one_line_error(capsys, "report' is a symbolic link")
    assert tree_bytes(victim.parent) == before


def test_a_linked_report_picture_is_replaced_not_written_through(model_dir, victim):
    from loflex.inspection.report import write_report

    (model_dir / "report").mkdir()
    (model_dir / "report" / "curves.png").symlink_to(victim)
    index = write_report(model_dir, num_samples=1, steps=2, examples=0)
    assert victim.read_bytes() == VICTIM_BYTES
    curves = model_dir / "report" / "curves.png"
    assert not curves.is_symlink() and curves.read_bytes().startswith(b"\x89PNG")
    assert index.exists() and not list((model_dir / "report").glob(".report-*"))


# -- the report escapes every value read from a file ----------------------------------------

HOSTILE = "<script>alert(document.cookie)</script>"
HOSTILE_NAME = "run<img src=x onerror=alert(1)>"


def test_report_escapes_every_value_read_from_the_run(tmp_path):
    from loflex.inspection.report import write_report

    data = tmp_path / "hostile.txt"  # tokens (and so vocabulary and samples) are markup
    data.write_text("".join(f"{HOSTILE} <b>{i % 3}</b> <i\tonclick=x>\n" for i in range(20)))
    run_dir = tmp_path / HOSTILE_NAME
    train(load_run(None, ["domain.name=sequences", f"domain.options.path={data}",
                          "domain.options.tokenizer=whitespace", "train.steps=1", *TINY]),
          run_dir, progress=False)
    with open(run_dir / "config.toml", "a") as handle:
        handle.write(f"# {HOSTILE}\n")
    with open(run_dir / "metrics.jsonl", "a") as handle:
        for record in ({"step": HOSTILE, "loss": HOSTILE, f"sample/{HOSTILE}": HOSTILE},
                       {"step": 2, "loss": 1.0, "sample/$\\frac{": 0.5},
                       {"step": HOSTILE, f"sample/{HOSTILE}": 1.0, "lr": [HOSTILE]}):
            handle.write(json.dumps(record) + "\n")
        handle.write(HOSTILE + "\n[1, 2]\n{\"step\": 3, \"loss\"")  # junk and a cut-off line

    page = write_report(run_dir, tmp_path / "out", num_samples=4, steps=4, examples=1).read_text()
    for raw in ("<script", "<img src=x", "<b>", "<i\t"):
        assert raw not in page.lower()
    assert f"(step {html.escape(HOSTILE)})" in page  # the last sample/* record's step
    assert html.escape(HOSTILE) in page.split("config.toml")[1]
    assert html.escape(HOSTILE_NAME) in page
    assert html.escape("<b>") in page.split("Samples")[1]  # generated text


def test_report_escapes_a_hostile_checkpoint_error(model_dir, tmp_path):
    from loflex.inspection.report import write_report

    state_path = ckpt.resolve(model_dir) / "state.json"
    state = json.loads(state_path.read_text())
    state_path.write_text(json.dumps({**state, "format": HOSTILE}))
    page = write_report(model_dir, tmp_path / "out").read_text()
    assert "No model pictures" in page and "<script" not in page.lower()
    assert html.escape(HOSTILE[:20]) in page
