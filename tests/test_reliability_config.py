"""Bad configuration gives one exact error class with a message naming the problem and the fix."""

from __future__ import annotations

import re

import pytest
from loflex.cli import main
from loflex.config import load_run, validate_run
from loflex.errors import ConfigError, UnknownComponentError


@pytest.fixture
def seqs(tmp_path):
    path = tmp_path / "seqs.txt"
    path.write_text("".join(f"{'ACGT' * (1 + i % 3)}\n" for i in range(40)), encoding="utf-8")
    return path


def run_dict(seqs, **sections) -> dict:
    return {"domain": {"name": "sequences", "options": {"path": str(seqs)}}, **sections}


def expect(error: type, data: dict, *patterns: str) -> str:
    """Validate ``data``; assert the exact error class and that every pattern is in the message."""
    with pytest.raises(error) as info:
        validate_run(data)
    assert type(info.value) is error, f"expected {error.__name__}, got {type(info.value).__name__}"
    text = str(info.value)
    for pattern in patterns:
        assert re.search(pattern, text), f"{pattern!r} not in {text!r}"
    return text


# -- unknown keys -------------------------------------------------------------------------

@pytest.mark.parametrize("extra, where", [
    ({"bogus": 1}, r"bogus"),
    ({"train": {"stepz": 10}}, r"train\.stepz"),
    ({"sample": {"top_q": 0.5}}, r"sample\.top_q"),
])
def test_unknown_run_key(seqs, extra, where):
    expect(ConfigError, run_dict(seqs, **extra), where, r"unknown option", r"spelling")


def test_unknown_component_option_names_component_and_key(seqs):
    data = run_dict(seqs)
    data["domain"]["options"]["colour"] = "red"
    expect(ConfigError, data, r"domain 'sequences'", r"colour", r"unknown option")


def test_unknown_order_option(seqs):
    expect(ConfigError, run_dict(seqs, order={"name": "uniform", "options": {"layerz": 2}}),
           r"order dynamics 'uniform'", r"layerz")


# -- wrong types and out-of-range values --------------------------------------------------

@pytest.mark.parametrize("section, key, value, problem", [
    ("train", "steps", "many", r"train\.steps: .*integer"),
    ("train", "lr", [1], r"train\.lr: .*number"),
    ("train", "ema", "yes", r"train\.ema"),
    ("sample", "confidence", "loud", r"sample\.confidence"),
    ("train", "lr", -1.0, r"train\.lr: .*greater than 0"),
    ("train", "batch_size", 0, r"train\.batch_size: .*greater than 0"),
    ("train", "ema", 1.0, r"train\.ema: .*less than 1"),
    ("sample", "top_p", 1.5, r"sample\.top_p: .*less than or equal to 1"),
    ("sample", "max_length", 1, r"sample\.max_length: .*greater than 1"),
])
def test_wrong_type_or_range(seqs, section, key, value, problem):
    expect(ConfigError, run_dict(seqs, **{section: {key: value}}), problem)


def test_wrong_type_of_a_section(seqs):
    expect(ConfigError, run_dict(seqs, train="fast"), r"train: .*dictionary")
    expect(ConfigError, {"domain": "sequences"}, r"domain: .*dictionary")


def test_out_of_range_component_option(seqs):
    data = run_dict(seqs, order={"name": "kumaraswamy", "options": {"a": -1.0}})
    expect(ConfigError, data, r"order dynamics 'kumaraswamy'", r"a: .*greater than 0")
    data = run_dict(seqs)
    data["domain"]["options"]["max_length"] = 0
    expect(ConfigError, data, r"domain 'sequences'", r"max_length")


def test_seed_out_of_range_is_a_config_error(seqs):
    expect(ConfigError, run_dict(seqs, seed=2**80), r"seed")
    expect(ConfigError, run_dict(seqs, seed=-1), r"seed")


def test_unknown_device_is_a_config_error(seqs):
    expect(ConfigError, run_dict(seqs, train={"device": "tpu"}), r"train\.device", r"cuda")


def test_several_bad_fields_are_all_listed(seqs):
    with pytest.raises(ConfigError) as info:
        validate_run(run_dict(seqs, train={"steps": 0, "lr": 0}, sample={"top_k": -1}))
    lines = [info.value.message, *info.value.details]
    assert len(lines) == 3, lines
    assert info.value.render().count("\n") == 2


# -- unknown component names -------------------------------------------------------------

@pytest.mark.parametrize("section, kind", [("order", "order dynamics"), ("generator", "generator")])
def test_unknown_component_lists_registered(seqs, section, kind):
    text = expect(UnknownComponentError, run_dict(seqs, **{section: {"name": "nope"}}),
                  rf"unknown {kind} 'nope'", r"registered: ", r"Install the plugin")
    assert ("uniform" in text) if section == "order" else ("transformer" in text)


def test_unknown_domain(seqs):
    expect(UnknownComponentError, {"domain": {"name": "nope"}}, r"unknown domain 'nope'",
           r"sequences")


def test_missing_domain():
    expect(ConfigError, {"train": {"steps": 3}}, r"names no domain", r"--set domain\.name")


# -- TOML files ---------------------------------------------------------------------------

def test_toml_syntax_error_names_file_and_line(tmp_path, seqs):
    path = tmp_path / "run.toml"
    path.write_text(f'seed = 0\n[domain]\nname = "sequences"\noptions = {{path = "{seqs}"\n')
    with pytest.raises(ConfigError) as info:
        load_run(path)
    assert type(info.value) is ConfigError
    assert "run.toml" in info.value.message
    assert re.search(r"line 4", info.value.message)
    assert "fix the syntax" in info.value.message


def test_toml_duplicate_key_names_line(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[train]\nsteps = 3\nsteps = 4\n')
    with pytest.raises(ConfigError, match=r"line 3"):
        load_run(path)


def test_run_file_not_utf8(tmp_path):
    path = tmp_path / "run.toml"
    path.write_bytes(b'[domain]\nname = "s\xe9quences"\n')
    with pytest.raises(ConfigError, match=r"not UTF-8.*save it as UTF-8"):
        load_run(path)


def test_missing_run_file(tmp_path):
    with pytest.raises(ConfigError, match=r"does not exist; check the path"):
        load_run(tmp_path / "absent.toml")


@pytest.mark.parametrize("override, problem", [
    ("train.steps", r"has no '='"),
    ("train..steps=3", r"empty key part"),
    ("seed.x=3", r"'seed' is a value, not a section"),
])
def test_bad_overrides(seqs, override, problem):
    with pytest.raises(ConfigError, match=problem):
        load_run(None, ["domain.name=sequences", f"domain.options.path={seqs}", "seed=1",
                        override])


# -- contradictory options ---------------------------------------------------------------

def test_fractions_that_leave_no_training_data(seqs):
    data = run_dict(seqs)
    data["domain"]["options"].update(valid_fraction=0.6, test_fraction=0.5)
    text = expect(ConfigError, data, r"valid_fraction \+ test_fraction must be below 1")
    assert "Value error" not in text


def test_regex_tokenizer_without_pattern(seqs):
    data = run_dict(seqs)
    data["domain"]["options"]["tokenizer"] = "regex"
    expect(ConfigError, data, r"needs a pattern", r"pattern=")


def test_prompt_longer_than_max_length(seqs, tmp_path):
    from loflex.contracts import Example
    from loflex.sampling.inference import check_prompt_fits

    with pytest.raises(ConfigError) as info:
        check_prompt_fits(None, Example(target=[], prompt=[4] * 30), max_length=12)
    assert type(info.value) is ConfigError
    assert re.search(r"30 tokens .* maximum length is 12; shorten the prompt", str(info.value))


# -- the CLI shows one line and exits 1 ---------------------------------------------------

def test_cli_renders_config_errors_without_traceback(seqs, tmp_path, capsys):
    code = main(["train", "--set", "domain.name=sequences", "--set", f"domain.options.path={seqs}",
                 "--set", "train.lr=-1", "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("Error: invalid run config: train.lr")
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists(), "an invalid run must not create its run directory"


# -- a run file that is not a regular file -------------------------------------------------

@pytest.mark.parametrize("kind", ["folder", "FIFO", "device"])
@pytest.mark.parametrize("command", ["train", "bench"])
def test_a_run_file_that_is_not_a_regular_file(tmp_path, capsys, kind, command):
    import os

    path = {"folder": tmp_path, "FIFO": tmp_path / "run.toml", "device": "/dev/zero"}[kind]
    if kind == "FIFO":
        os.mkfifo(path)
    shown = {"folder": "a folder", "FIFO": "a FIFO (named pipe)",
             "device": "a character device"}[kind]
    args = ["train", str(path), "-o", str(tmp_path / "run")] if command == "train" else \
        ["bench", "train", str(path)]
    assert main(args) == 1
    assert capsys.readouterr().err == (f"Error: run file '{path}' is {shown}, not a regular "
                                       "file; pass a TOML run file\n")
    assert not (tmp_path / "run").exists()


# -- absurd sizes fail fast -----------------------------------------------------------------

GiB = 1024 ** 3
SMALL = ["order.name=uniform", "generator.options.width=32", "generator.options.heads=2",
         "train.eval_every=0"]


@pytest.fixture
def eight_gib_free(monkeypatch):
    import loflex.training.memory

    monkeypatch.setattr(loflex.training.memory, "available_bytes", lambda device: 8 * GiB)


@pytest.mark.parametrize("override, problem", [
    ("generator.options.width=1e9", r"the model is too large to allocate at all "
                                    r"\(generator\.options\.width=1000000000\); reduce the sizes"),
    ("generator.options.width=1e30", r"generator 'transformer' has invalid options: width: Unable "
                                     r"to parse input string as an integer, exceeded maximum size"),
    # 10^6 blocks of 12 D^2 + 13 D + 6 C D parameters (D = 32, C = 128): 3.73e10
    ("generator.options.layers=1000000", r"training needs at least 9\d\d GiB of memory on cpu "
                                         r"\(3\.73e\+10 parameters: .*\) but 8 GiB is free; reduce "
                                         r"the sizes \(generator\.options\.layers=1000000, "
                                         r"train\.batch_size=64\)"),
    ("train.batch_size=1000000000", r"training needs at least \d+(\.\d+)? TiB .* but 8 GiB is "
                                    r"free; reduce the sizes \(train\.batch_size=1000000000\)"),
])
def test_absurd_sizes_are_refused_before_anything_is_allocated(seqs, tmp_path, capsys,
                                                               eight_gib_free, override, problem):
    import time

    args = ["train", "--set", "domain.name=sequences", "--set", f"domain.options.path={seqs}",
            "--no-progress", "-o", str(tmp_path / "run")]
    for item in [*SMALL, override]:
        args += ["--set", item]
    started = time.monotonic()
    assert main(args) == 1
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and err.count("\n") == 1 and re.search(problem, err), err
    assert not (tmp_path / "run").exists()


def test_a_width_of_two_to_the_62_is_refused_as_too_large(seqs, tmp_path, capsys):
    run_file = tmp_path / "run.toml"
    run_file.write_text(f'[domain]\nname = "sequences"\noptions = {{path = "{seqs}"}}\n'
                        '[generator]\nname = "transformer"\n'
                        'options = {width = 4611686018427387904, heads = 2}\n')
    assert main(["train", str(run_file), "-o", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err == ("Error: the model is too large to allocate at all (generator.options.width="
                   "4611686018427387904); reduce the sizes\n"), err


def test_the_parameter_estimate_matches_the_closed_form(seqs):
    from loflex.extension.assemble import assemble
    from loflex.training.memory import estimate

    run = load_run(None, ["domain.name=sequences", f"domain.options.path={seqs}", *SMALL,
                          "generator.options.layers=3", "sample.max_length=12"])
    model = assemble(run)
    built = sum(p.numel() for p in model.generator.parameters())
    width, cond = 32, model.generator.options.cond_dim
    per_block = 12 * width ** 2 + 13 * width + 6 * cond * width  # norms, qkv, out, MLP, adaLN
    extra_tokens = len(model.domain.vocab) - 5  # the estimate assumes one data token
    # each further token: a row of the input embedding and a column of the output head
    assert estimate(run).parameters == built - extra_tokens * 2 * width
    many = run.model_copy(update={"generator": run.generator.model_copy(
        update={"options": {**run.generator.options, "layers": 1_000_003}})})
    assert estimate(many).parameters == estimate(run).parameters + 1_000_000 * per_block


# -- command-line values that used to end in a traceback ------------------------------------

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    data = root / "seqs.txt"
    data.write_text("".join(f"{w}\n" for w in ["ACGT", "GATTACA", "CAT", "TAG"] * 5))
    args = ["train", "--no-progress", "-o", str(root / "run")]
    for item in ["domain.name=sequences", f"domain.options.path={data}", *SMALL,
                 "generator.options.layers=1", "train.steps=1", "train.batch_size=4"]:
        args += ["--set", item]
    assert main(args) == 0
    return root / "run"


@pytest.mark.parametrize("command, message", [
    (["sample", "{run}", "-n", "1", "--seed", str(2 ** 70), "-o", "{out}"],
     f"--seed must be between 0 and 4294967295, not {2 ** 70}"),
    (["sample", "{run}", "-n", "1", "--seed", "-1", "-o", "{out}"],
     "--seed must be between 0 and 4294967295, not -1"),
    (["sample", "{run}", "-n", "1", "--device", "bogus", "-o", "{out}"],
     "--device 'bogus' is not a device; use cpu, or cuda (cuda:N for one of several GPUs)"),
    (["evaluate", "{run}", "-n", "1", "--device", "nonsense:7"],
     "--device 'nonsense:7' is not a device"),
    (["report", "{run}", "--steps", "-4", "-o", "{out}"],
     "--steps must be at least 1, not -4 (leave it out to use the run's sample.steps)"),
    (["report", "{run}", "--steps", "0", "-o", "{out}"], "--steps must be at least 1, not 0"),
    (["report", "{run}", "--examples", "-1", "-o", "{out}"], "--examples must be 0 or more"),
    (["order", "{run}", "--example", "0", "--device", "bogus"], "--device 'bogus' is not a device"),
    (["bench", "train", "--set", "domain.name=sequences", "--set", "domain.options.path=x",
      "--nominal-peak-gflops", "-5"], "--nominal-peak-gflops must be positive (or 0 when "
                                      "unknown), not -5.0"),
    (["bench", "train", "--set", "domain.name=sequences", "--set", "domain.options.path=x",
      "--nominal-peak-gflops", "nan"], "--nominal-peak-gflops must be positive"),
    (["train", "--set", f"train.steps={'9' * 5000}", "-o", "{out}"],
     "a number has more than 4300 digits; no setting takes one that large"),
    (["sample", "{run}", "-n", "1", "--set", "sample.top_k=-1", "-o", "{out}"],
     "invalid run config: sample.top_k: Input should be greater than or equal to 0"),
    (["evaluate", "{run}", "-n", "1", "--set", "sample.top_p=1.5"],
     "invalid run config: sample.top_p: Input should be less than or equal to 1"),
    (["sample", "{run}", "-n", "1", "--set", "sample.temperature=0", "-o", "{out}"],
     "invalid run config: sample.temperature: Input should be greater than 0"),
    (["sample", "{run}", "-n", "1", "--set", "sample.stepz=3", "-o", "{out}"],
     "invalid run config: sample.stepz: unknown option (remove it or check its spelling)"),
    (["evaluate", "{run}", "-n", "1", "--set", "sample"],
     "override 'sample' has no '='; write it as section.key=value"),
])
def test_bad_command_line_values_give_one_line(model_dir, tmp_path, capsys, command, message):
    args = [a.format(run=model_dir, out=tmp_path / "out.jsonl") for a in command]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"Error: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "out.jsonl").exists()


def test_cuda_on_a_machine_without_it(model_dir, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["sample", str(model_dir), "-n", "1", "--device", "cuda",
                 "-o", str(tmp_path / "s.jsonl")]) == 1
    assert capsys.readouterr().err == ("Error: --device 'cuda' asks for CUDA, but no CUDA device "
                                       "is available; use --device cpu\n")


def test_a_read_only_location(seqs, tmp_path, capsys, monkeypatch):
    import errno
    import os
    from pathlib import Path

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    out = tmp_path / "ro" / "run"
    assert main(["train", "--set", "domain.name=sequences", "--set", f"domain.options.path={seqs}",
                 "-o", str(out)]) == 1
    assert capsys.readouterr().err == (f"Error: Read-only file system: '{out}'; the file system "
                                       "is read-only; choose a writable location\n")


def test_resume_refuses_to_switch_the_order(model_dir, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(model_dir, run_dir)
    before = (run_dir / "metrics.jsonl").read_bytes()
    assert main(["train", "--resume", str(run_dir), "--set", "order.name=left-to-right",
                 "--set", "train.steps=2", "--no-progress"]) == 1
    assert capsys.readouterr().err == (
        f"Error: --resume continues '{run_dir}' with its order 'uniform'; --set order.name="
        "left-to-right would switch it mid-run, so start a new run instead (-o, with --init "
        f"{run_dir} to keep its weights)\n")
    assert (run_dir / "metrics.jsonl").read_bytes() == before


# -- damaged files of an experiment directory ------------------------------------------------

def experiment_args(seqs, out) -> list[str]:
    """The arguments of a one-order experiment on ``seqs`` into ``out``."""
    run_file = out.parent / "run.toml"
    run_file.write_text(f'[domain]\nname = "sequences"\noptions = {{ path = "{seqs}" }}\n')
    return ["experiment", str(run_file), "--orders", "uniform", "--budget-minutes", "0.01",
            "--curve-metric", "exact_match",
            "--no-progress", "-o", str(out)]


SETTINGS_FIX = ("delete it and rerun the same command to write it again (finished entries are "
                "kept), or choose another -o")


@pytest.mark.parametrize("content, problem", [
    (b'{"entries": ["uniform"', r"is not valid JSON \(Expecting .*\)"),
    (b"\xff\xfe{}", r"is not valid JSON \(.*utf-8.*\)"),
    (b"[" * 100_000 + b"]" * 100_000, r"is not valid JSON \(maximum recursion depth.*\)"),
    (b"[1, 2]", r"holds a JSON list, not an object"),
    (b'"text"', r"holds a JSON str, not an object"),
    (b'{"entries": "uniform"}', r"is damaged \('entries' is str, not a list of entry names\)"),
    (b'{"budget_minutes": "ten"}', r"is damaged \('budget_minutes' is str, not a number\)"),
    (b'{"seed": true}', r"is damaged \('seed' is bool, not an integer\)"),
    (b'{"runs": [1]}', r"is damaged \('runs' is list, not a table of runs\)"),
    (b'{"orders": 5, "run": {}}',
     r"is damaged \('orders' must be a list of names and 'run' a table\)"),
    (b'{"orders": ["uniform"], "run": {"train": 1}}', r"is damaged \(.*\)"),
], ids=["cut-off", "not-utf8", "deep", "list", "string", "entries", "budget", "seed-bool",
        "runs", "old-orders", "old-run"])
def test_a_damaged_experiment_json_is_one_line_and_left_alone(seqs, tmp_path, capsys, content,
                                                              problem):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "experiment.json").write_bytes(content)
    assert main(experiment_args(seqs, out)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert re.fullmatch(rf"Error: '{re.escape(str(out))}/experiment.json' {problem}; "
                        rf"{re.escape(SETTINGS_FIX)}\n", err), err
    assert (out / "experiment.json").read_bytes() == content
    assert sorted(p.name for p in out.iterdir()) == ["experiment.json"]


def test_an_experiment_json_that_is_a_folder(seqs, tmp_path, capsys):
    out = tmp_path / "exp"
    (out / "experiment.json").mkdir(parents=True)
    assert main(experiment_args(seqs, out)) == 1
    assert capsys.readouterr().err == (f"Error: '{out}/experiment.json' is a folder, not a "
                                       f"regular file; {SETTINGS_FIX}\n")


@pytest.mark.parametrize("content, problem", [
    (b'{"exact_match": 0.5', r"is not valid JSON"),
    (b"[0.5]", r"holds a JSON list, not an object"),
], ids=["cut-off", "list"])
def test_a_damaged_result_json_names_the_entry_file(seqs, tmp_path, content, problem):
    from loflex.training.experiment import ExperimentSettings, order_runs, run_experiment

    run = load_run(None, ["domain.name=sequences", f"domain.options.path={seqs}"])
    settings = ExperimentSettings(entries=["uniform"], budget_minutes=0.01,
                                  runs=order_runs(run, ["uniform"]))
    result = tmp_path / "uniform" / "result.json"
    result.parent.mkdir(parents=True)
    result.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        run_experiment(tmp_path, settings, progress=False)
    assert re.fullmatch(rf"'{re.escape(str(result))}' {problem}.*; delete it to train and "
                        r"evaluate that entry again", info.value.message), info.value.message
    assert result.read_bytes() == content


def test_the_learning_curve_leaves_out_damaged_metrics_lines(tmp_path):
    from loflex.training.experiment import learning_curve

    (tmp_path / "metrics.jsonl").write_text(
        '{"step": 1, "sample/exact_match": 0.1}\n[1, 2]\n{"step": 2, "sample/exact_m\n'
        '{"sample/exact_match": 0.3}\n{"step": "x", "sample/exact_match": 0.4}\n'
        '{"step": 3, "sample/exact_match": "high"}\n\xff\n{"step": 4, "sample/exact_match": 0.5}\n',
        encoding="latin-1")
    assert learning_curve(tmp_path, "exact_match") == [(1, 0.1), (4, 0.5)]
