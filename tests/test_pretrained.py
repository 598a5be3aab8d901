"""Pretrained models: the hook, name resolution, checking, loading, fine-tuning, versions.

``tests/data/checkpoint-v1`` is a checkpoint written by ``loflex train`` (toy domain,
uniform order, a 1-layer width-16 transformer, 2 steps; ``optim.safetensors`` left out).
The shipped-model tests pack it into a throw-away package registered through
``register_pretrained``; the last tests install ``docs/example-domain`` and use its
shipped model through the real entry point.
"""

from __future__ import annotations

import itertools
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from loflex import hookimpl, load
from loflex.cli import main
from loflex.errors import CheckpointError, ConfigError, PluginError
from loflex.extension.pretrained import available, pack, read_header
from loflex.extension.testing import check_shipped_model, registered
from loflex.training import checkpoint as ckpt
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "checkpoint-v1"
NAME = "toy-reverse-flexmdm"
CARD_METRICS = {"exact_match": 0.25}
_packages = itertools.count()


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def make_package(root: Path, dtype: str = "fp16") -> str:
    """Write an importable package under ``root`` shipping the fixture as ``NAME``."""
    package = f"shipping_{next(_packages)}"
    folder = root / package / "pretrained" / NAME
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    pack(FIXTURE, folder, dtype=dtype)
    (folder / "card.md").write_text(f"# {NAME}\n\nThe toy fixture.\n")
    (folder / "card.json").write_text(json.dumps({"metrics": CARD_METRICS}))
    return package


class Shipping:
    """A plugin shipping one pretrained model from ``package``."""

    def __init__(self, package: str, name: str = NAME):
        self.package, self.name = package, name

    @hookimpl
    def register_pretrained(self, register):
        register(self.name, package=self.package, description="toy reversal, 1 layer")


@pytest.fixture
def package_root(tmp_path, monkeypatch):
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.chdir(tmp_path)
    return root


@pytest.fixture
def shipped(toy, package_root):
    """Register a package shipping the fixture as ``NAME``; yield its model folder."""
    package = make_package(package_root)
    with registered(Shipping(package), name="shipping"):
        yield package_root / package / "pretrained" / NAME
    sys.modules.pop(package, None)


# -- checkpoint format versions ---------------------------------------------------------


def copy_fixture(tmp_path: Path, format_value: str | None) -> Path:
    target = tmp_path / "checkpoint"
    shutil.copytree(FIXTURE, target)
    state = json.loads((target / "state.json").read_text())
    if format_value is None:
        state.pop("format")
    else:
        state["format"] = format_value
    (target / "state.json").write_text(json.dumps(state))
    return target


def test_the_fixture_is_a_current_version_1_checkpoint(toy):
    saved = ckpt.load(FIXTURE)
    assert saved.state["format"] == "loflex-checkpoint-1" == ckpt.FORMAT
    assert saved.step == 2
    loaded = load(FIXTURE)
    assert loaded.run.generator.options["width"] == 16
    assert len(loaded.sample(3, steps=4)) == 3


def test_a_checkpoint_without_a_version_number_is_version_1(toy, tmp_path):
    path = copy_fixture(tmp_path, "loflex-checkpoint")
    assert ckpt.format_version(json.loads((path / "state.json").read_text()), path) == 1
    assert ckpt.load(path).step == 2


def test_a_newer_checkpoint_names_both_versions(tmp_path, capsys):
    path = copy_fixture(tmp_path, "loflex-checkpoint-7")
    with pytest.raises(CheckpointError, match=r"version 7 checkpoint.*versions up to 1"):
        ckpt.load(path)
    assert main(["sample", str(path), "-o", str(tmp_path / "s.jsonl")]) == 1
    assert "version 7" in one_line_error(capsys)


@pytest.mark.parametrize("value", [None, "loflex-checkpoint-0", "loflex-checkpoint-x", 3])
def test_a_foreign_format_is_not_a_loflex_checkpoint(tmp_path, value):
    path = copy_fixture(tmp_path, value)
    with pytest.raises(CheckpointError, match="is not a loflex checkpoint"):
        ckpt.load(path)


# -- weights dtypes ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype,torch_dtype", [("fp16", torch.float16),
                                               ("bf16", torch.bfloat16),
                                               ("fp32", torch.float32)])
def test_packed_weights_load_as_fp32_of_the_ema(toy, tmp_path, dtype, torch_dtype):
    folder = pack(FIXTURE, tmp_path / "model", dtype=dtype)
    assert sorted(p.name for p in folder.iterdir()) == ["model.safetensors", "run.json",
                                                        "state.json"]
    stored = load_file(str(folder / "model.safetensors"))
    assert {t.dtype for t in stored.values()} == {torch_dtype}
    ema = load_file(str(FIXTURE / "ema.safetensors"))
    loaded = load(folder)
    params = dict(loaded.model.generator.named_parameters(prefix="generator"))
    for name, value in params.items():
        assert value.dtype == torch.float32
        assert torch.equal(value, ema[name].to(torch_dtype).float()), name


def test_weights_in_another_dtype_are_refused(toy, tmp_path, capsys):
    folder = pack(FIXTURE, tmp_path / "model", dtype="fp32")
    weights = load_file(str(folder / "model.safetensors"))
    name = sorted(weights)[0]
    weights[name] = weights[name].to(torch.float64)
    save_file(weights, str(folder / "model.safetensors"))
    assert main(["evaluate", str(folder)]) == 1
    assert f"stores '{name}' in model.safetensors as float64" in one_line_error(capsys)


def test_pack_refuses_an_unknown_dtype_and_an_existing_folder(tmp_path):
    with pytest.raises(ConfigError, match="int8"):
        pack(FIXTURE, tmp_path / "a", dtype="int8")
    (tmp_path / "b").mkdir()
    with pytest.raises(ConfigError, match="already exists"):
        pack(FIXTURE, tmp_path / "b")


def test_read_header_matches_the_tensors():
    header = read_header(FIXTURE / "model.safetensors")
    tensors = load_file(str(FIXTURE / "model.safetensors"))
    assert set(header) == set(tensors)
    for name, tensor in tensors.items():
        assert header[name]["shape"] == list(tensor.shape)
        assert header[name]["dtype"] == "F32"


# -- the hook and `loflex models` -------------------------------------------------------


def test_models_lists_name_domain_order_size_and_card_metrics(shipped, capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows] == [NAME]
    row = rows[0]
    values = sum(t.numel() for t in load_file(str(shipped / "model.safetensors")).values())
    disk = sum(p.stat().st_size for p in shipped.iterdir())
    assert (row["domain"], row["order"], row["generator"]) == ("toy", "uniform", "transformer")
    assert row["parameters"] == values
    assert row["megabytes"] == pytest.approx(disk / 1e6, abs=1e-3)
    assert row["metrics"] == CARD_METRICS
    assert row["distribution"] == "test" and row["package"].startswith("shipping_")
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    assert NAME in table and "exact_match=0.25" in table and f"{values:,}" in table


def test_models_shows_the_cards_headline_metrics_only(shipped, capsys):
    card = {"metrics": {"exact_match": 0.25, "token_accuracy": 0.5, "valid_path": 0.3},
            "headline": ["token_accuracy", "exact_match"]}
    (shipped / "card.json").write_text(json.dumps(card))
    assert main(["models", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["metrics"] == {"token_accuracy": 0.5,
                                                                 "exact_match": 0.25}


@pytest.mark.parametrize("headline", [["no_such_metric"], "exact_match"])
def test_a_card_headline_that_is_not_a_list_of_its_metrics_is_damage(shipped, capsys,
                                                                      headline):
    card = {"metrics": {"exact_match": 0.25}, "headline": headline}
    (shipped / "card.json").write_text(json.dumps(card))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "DAMAGED: pretrained model" in out and "'headline' must list" in out


def test_models_without_any(capsys):
    assert main(["models"]) == 0
    assert "no pretrained models installed" in capsys.readouterr().out
    assert main(["models", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.parametrize("kwargs,problem", [
    ({"name": "Toy_Model"}, "lower-kebab"),
    ({"name": "toymodel"}, "lower-kebab"),
    ({"description": ""}, "description"),
    ({"description": "two\nlines"}, "description"),
    ({"folder": "../elsewhere"}, "relative path"),
    ({"folder": "/abs/path"}, "relative path"),
    ({"folder": 3}, "relative path"),
    ({"folder": "."}, "relative path"),
    ({"package": None}, "importable package"),
])
def test_bad_registrations_are_plugin_errors(kwargs, problem):
    arguments = {"name": NAME, "package": "somewhere", "description": "a model", **kwargs}

    class Bad:
        @hookimpl
        def register_pretrained(self, register):
            register(arguments.pop("name"), **arguments)

    with registered(Bad(), name="bad"), pytest.raises(PluginError, match=problem):
        available()


def test_a_name_registered_twice_names_both_plugins(shipped):
    with registered(Shipping("other_package"), name="second"):
        with pytest.raises(PluginError, match=r"registered twice.*'shipping'.*'second'"):
            available()


def test_a_raising_hook_is_skipped_and_the_others_listed(shipped, capsys):
    class Broken:
        @hookimpl
        def register_pretrained(self, register):
            raise RuntimeError("boom")

    with registered(Broken(), name="broken"):
        assert list(available()) == [NAME]
    assert "'broken'" in capsys.readouterr().err


# -- name resolution --------------------------------------------------------------------


def test_a_name_works_in_sample_evaluate_and_order(shipped, tmp_path, capsys):
    out = tmp_path / "out" / "samples.jsonl"
    assert main(["sample", NAME, "-n", "4", "--steps", "4", "-o", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 4
    assert main(["evaluate", NAME, "-n", "4", "--steps", "4", "-o", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["num_samples"] == 4
    assert main(["order", NAME, "--example", "0", "--grid", "4", "--json"]) == 0
    assert "tokens" in capsys.readouterr().out


def test_an_existing_path_of_that_name_wins(shipped, capsys):
    Path(NAME).mkdir()
    assert main(["evaluate", NAME]) == 1
    assert "holds no checkpoint" in one_line_error(capsys)


def test_an_unknown_name_lists_the_models(shipped, capsys):
    assert main(["evaluate", "toy-nothing-flexmdm"]) == 1
    line = one_line_error(capsys)
    assert "'toy-nothing-flexmdm' does not exist; pass a run directory" in line
    assert line.endswith(f"a pretrained model name (installed: {NAME})")


def test_report_of_a_model_needs_an_output_folder_outside_it(shipped, tmp_path, capsys):
    assert main(["report", NAME]) == 1
    assert "choose the report folder with -o" in one_line_error(capsys)
    assert main(["report", NAME, "-o", str(shipped / "report")]) == 1
    assert "inside the installed model" in one_line_error(capsys)
    assert main(["report", NAME, "-o", str(tmp_path / "report"), "-n", "2", "--steps", "4",
                 "--examples", "1"]) == 0
    assert (tmp_path / "report" / "index.html").is_file()
    assert sorted(p.name for p in shipped.iterdir()) == ["card.json", "card.md",
                                                         "model.safetensors", "run.json",
                                                         "state.json"]


def test_the_python_api(shipped):
    model = load(NAME)
    samples = model.sample(5, steps=4, seed=1)
    assert len(samples) == 5 and all(s is None or isinstance(s, str) for s in samples)
    assert samples == model.sample(5, steps=4, seed=1)
    metrics = model.evaluate(6, steps=4)
    assert metrics["num_samples"] == 6 and 0.0 <= metrics["exact_match"] <= 1.0
    with pytest.raises(ConfigError, match="stepz"):
        model.sample(2, stepz=3)


# -- damaged models ---------------------------------------------------------------------


def damaged_error(capsys) -> str:
    assert main(["sample", NAME, "-n", "1", "-o", "s.jsonl"]) == 1
    line = one_line_error(capsys)
    assert f"pretrained model '{NAME}'" in line and "package shipping_" in line
    return line


def test_a_missing_weight_file_names_model_and_package(shipped, capsys):
    (shipped / "model.safetensors").unlink()
    assert "model.safetensors is missing" in damaged_error(capsys)


def test_a_truncated_weight_file_names_model_and_package(shipped, capsys):
    data = (shipped / "model.safetensors").read_bytes()
    (shipped / "model.safetensors").write_bytes(data[:len(data) // 2])
    assert "model.safetensors is corrupt (truncated" in damaged_error(capsys)


def test_garbage_weights_name_model_and_package(shipped, capsys):
    (shipped / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    assert "model.safetensors is corrupt" in damaged_error(capsys)


def test_a_corrupt_state_names_model_and_package(shipped, capsys):
    (shipped / "state.json").write_text("{ truncated")
    assert "state.json is corrupt" in damaged_error(capsys)


def test_shipped_weights_in_another_dtype_name_the_model(shipped, capsys):
    weights = load_file(str(shipped / "model.safetensors"))
    name = sorted(weights)[-1]
    weights[name] = weights[name].to(torch.int8)
    save_file(weights, str(shipped / "model.safetensors"))
    assert f"stores '{name}' in model.safetensors as I8" in damaged_error(capsys)


def test_a_damaged_model_is_listed_as_damaged(shipped, capsys):
    (shipped / "run.json").unlink()
    assert main(["models"]) == 0
    assert "DAMAGED: pretrained model" in capsys.readouterr().out


# -- fine-tuning ------------------------------------------------------------------------


FINE_TUNE = ["--set", "train.steps=1", "--set", "train.lr=1e-12", "--set", "train.warmup_steps=0",
             "--set", "train.eval_every=0", "--set", "train.threads=1", "--set",
             "train.batch_size=8", "--no-progress"]


def trained_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(ckpt.resolve(run_dir) / "model.safetensors"))


def test_train_init_starts_from_the_model_weights(shipped, tmp_path):
    start = {k: v.float() for k, v in load_file(str(shipped / "model.safetensors")).items()}
    assert main(["train", "--init", NAME, "--set", "seed=5", *FINE_TUNE,
                 "-o", str(tmp_path / "tuned")]) == 0
    tuned = trained_weights(tmp_path / "tuned")
    assert set(tuned) == set(start)
    # one AdamW step at lr 1e-12 moves a weight by about 1e-12
    assert max((tuned[k] - start[k]).abs().max().item() for k in start) < 1e-6
    config = (tmp_path / "tuned" / "config.toml").read_text()
    assert "width = 16" in config and 'name = "uniform"' in config
    assert main(["train", "--set", "domain.name=toy", "--set", "order.name=uniform",
                 "--set", "generator.options.layers=1", "--set", "generator.options.width=16",
                 "--set", "generator.options.heads=2", "--set", "generator.options.cond_dim=16",
                 "--set", "seed=5", *FINE_TUNE, "-o", str(tmp_path / "fresh")]) == 0
    fresh = trained_weights(tmp_path / "fresh")
    assert max((fresh[k] - start[k]).abs().max().item() for k in start) > 1e-3


@pytest.mark.parametrize("setting,message", [
    ("generator.options.width=32", "generator.options.width is 32 in the run config but 16"),
    ("generator.options.layers=2", "generator.options.layers is 2 in the run config but 1"),
])
def test_train_init_refuses_another_architecture(shipped, tmp_path, capsys, setting, message):
    assert main(["train", "--init", NAME, "--set", setting, "-o", str(tmp_path / "x")]) == 1
    line = one_line_error(capsys)
    assert message in line and line.startswith(f"Error: --init {NAME}:")
    assert not (tmp_path / "x").exists()


def test_a_fixed_order_model_starts_a_learned_order_run(shipped, tmp_path):
    """FlexMDM -> LoFlexMDM: the generator's weights carry over, the order starts fresh."""
    start = {k: v.float() for k, v in load_file(str(shipped / "model.safetensors")).items()}
    assert not any(k.startswith("order.") for k in start)
    assert main(["train", "--init", NAME, "--set", "order.name=kumaraswamy",
                 "--set", "order.options.layers=1", "--set", "order.options.width=16",
                 "--set", "order.options.heads=2", *FINE_TUNE, "-o", str(tmp_path / "lo")]) == 0
    tuned = trained_weights(tmp_path / "lo")
    assert {k for k in tuned if k.startswith("generator.")} == set(start)
    assert max((tuned[k] - start[k]).abs().max().item() for k in start) < 1e-6
    assert any(k.startswith("order.") for k in tuned)
    assert 'name = "kumaraswamy"' in (tmp_path / "lo" / "config.toml").read_text()


def test_train_init_and_resume_exclude_each_other(shipped, tmp_path, capsys):
    assert main(["train", "--init", NAME, "--resume", str(tmp_path)]) == 1
    assert "pass one" in one_line_error(capsys)


def test_the_shipped_folder_is_never_written(shipped, tmp_path):
    before = {p.name: p.stat().st_mtime_ns for p in shipped.iterdir()}
    load(NAME).sample(2, steps=2)
    assert main(["train", "--init", NAME, *FINE_TUNE, "-o", str(tmp_path / "t")]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in shipped.iterdir()} == before


# -- every model the installed plugins ship ---------------------------------------------

MAX_MODEL_BYTES = 12_000_000
MAX_TOTAL_BYTES = 60_000_000


def test_shipped_models_fit_the_size_budget(monkeypatch):
    monkeypatch.delenv("LOFLEX_LOAD_PLUGINS")
    from loflex.extension import plugins

    plugins.reset()
    sizes = {}
    for name, model in available().items():
        folder = model.path()
        sizes[name] = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        header = read_header(folder / "model.safetensors")
        assert {info["dtype"] for info in header.values()} <= {"F16", "BF16", "F32"}, name
    assert all(size <= MAX_MODEL_BYTES for size in sizes.values()), sizes
    assert sum(sizes.values()) <= MAX_TOTAL_BYTES, sizes


@pytest.mark.slow
def test_every_installed_model_loads_and_samples(monkeypatch):
    monkeypatch.delenv("LOFLEX_LOAD_PLUGINS")
    from loflex.extension import plugins

    plugins.reset()
    for name in available():
        loaded = check_shipped_model(name)
        samples = loaded.generate(16, steps=16, batch_size=16)
        assert len(samples) == 16, name
        assert len(loaded.sample(2, steps=4)) == 2, name

# -- the example domain's shipped model through its entry point -------------------------

EXAMPLE = ROOT / "docs" / "example-domain"
EXAMPLE_MODEL = "protein-peptides-flexmdm"


@pytest.fixture(scope="module")
def example_installed():
    from installing import pip_install

    pip_install(EXAMPLE)


@pytest.mark.slow
def test_the_example_domain_ships_a_model_through_its_entry_point(example_installed, tmp_path):
    from installing import loflex

    env = {"LOFLEX_LOAD_PLUGINS": "example-protein"}
    listed = loflex("models", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows[EXAMPLE_MODEL]["domain"] == "protein"
    assert rows[EXAMPLE_MODEL]["package"] == "loflex_example_protein"
    assert rows[EXAMPLE_MODEL]["megabytes"] < 0.2
    out = tmp_path / "somewhere" / "samples.jsonl"
    sampled = loflex("sample", EXAMPLE_MODEL, "-n", "4", "--steps", "16", "-o", str(out), env=env)
    assert sampled.returncode == 0, sampled.stderr
    assert len(out.read_text().splitlines()) == 4


@pytest.mark.slow
def test_the_example_model_card_metrics_are_reproduced(example_installed, tmp_path):
    from installing import loflex

    folder = EXAMPLE / "loflex_example_protein" / "pretrained" / EXAMPLE_MODEL
    card = json.loads((folder / "card.json").read_text())
    evaluation = card["evaluation"]
    measured = loflex("evaluate", EXAMPLE_MODEL, "-n", str(evaluation["num_samples"]),
                      "--steps", str(evaluation["steps"]), "--seed", str(evaluation["seed"]),
                      "-o", str(tmp_path / "m.json"), env={"LOFLEX_LOAD_PLUGINS": "example-protein"})
    assert measured.returncode == 0, measured.stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["num_samples"] == evaluation["num_samples"]
    for key, value in card["metrics"].items():
        assert metrics[key] == pytest.approx(value, abs=5e-5), key
    assert card["metrics"]["valid_protein"] >= 0.9
