from __future__ import annotations

import json

import pytest
from loflex.cli import main

TINY = ["--set", "generator.options.layers=1", "--set", "generator.options.width=32",
        "--set", "generator.options.heads=2", "--set", "train.batch_size=8",
        "--set", "train.eval_every=0", "--set", "train.log_every=1"]


def test_components_lists_builtins(capsys):
    assert main(["components"]) == 0
    out = capsys.readouterr().out
    for name in ("transformer", "uniform", "kumaraswamy", "left-to-right", "sequences"):
        assert name in out


def test_components_options_and_json(capsys):
    assert main(["components", "--options"]) == 0
    assert "layers" in capsys.readouterr().out
    assert main(["components", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert "kumaraswamy" in table["order dynamics"]
    options = {o["name"]: o for o in table["generators"]["transformer"]["options"]}
    assert options["layers"]["description"]


def test_plugins_json(capsys):
    assert main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {p["name"] for p in data["plugins"]} >= {"loflex.default_plugins.orders"}


def test_user_error_is_one_line_and_exit_1(capsys):
    assert main(["train", "--set", "domain.name=nope", "-o", "x"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: unknown domain 'nope'")


def test_invalid_options_render_with_indented_details(capsys, toy):
    code = main(["train", "--set", "domain.name=toy", "--set", "generator.options.layers=0",
                 "--set", "generator.options.heads=0", "-o", "x"])
    assert code == 1
    lines = capsys.readouterr().err.rstrip().splitlines()
    assert lines[0].startswith("Error: generator 'transformer' has invalid options:")
    assert all(line.startswith("  ") for line in lines[1:]) and len(lines) == 3


def test_bad_override_syntax(capsys):
    assert main(["train", "--set", "train.steps", "-o", "x"]) == 1
    assert "no '='" in capsys.readouterr().err


def test_data_command_shows_examples(capsys, toy):
    assert main(["data", "toy", "--limit", "2", "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert len(rows) == 2
    assert rows[0]["target"] == " ".join(reversed(rows[0]["prompt"].split()))


def test_data_command_takes_domain_overrides(capsys, toy, tmp_path):
    out = tmp_path / "d.txt"
    assert main(["data", "toy", "--set", "domain.options.max_length=3", "--limit", "50",
                 "-o", str(out)]) == 0
    assert all(len(line.split()) <= 1 + 3 for line in out.read_text().splitlines()
               if line.startswith("target:"))
    assert main(["data", "toy", "-o", str(out)]) == 1  # refuses to overwrite
    assert "--force" in capsys.readouterr().err


def test_train_sample_evaluate_end_to_end(tmp_path, toy, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "--set", "domain.name=toy", "--set", "train.steps=3", *TINY,
                 "--no-progress", "-o", str(run_dir)]) == 0
    assert (run_dir / "config.toml").exists() and (run_dir / "checkpoints" / "latest").exists()
    samples = tmp_path / "s.jsonl"
    assert main(["sample", str(run_dir), "-n", "5", "--steps", "8", "-o", str(samples)]) == 0
    records = [json.loads(line) for line in samples.read_text().splitlines()]
    assert len(records) == 5 and all("tokens" in r and "prompt" in r for r in records)
    assert main(["sample", str(run_dir), "-n", "5", "-o", str(samples)]) == 1  # no overwrite
    metrics = tmp_path / "m.json"
    assert main(["evaluate", str(run_dir), "--samples", str(samples), "-o", str(metrics)]) == 0
    assert "exact_match" in json.loads(metrics.read_text())
    ckpt_dir = sorted((run_dir / "checkpoints").glob("step-*"))[-1]
    assert main(["evaluate", str(ckpt_dir), "-n", "4", "--steps", "4"]) == 0
    assert "| exact_match |" in capsys.readouterr().out


def test_train_refuses_to_overwrite_a_run(tmp_path, toy, capsys):
    args = ["train", "--set", "domain.name=toy", "--set", "train.steps=1", *TINY,
            "--no-progress", "-o", str(tmp_path / "run")]
    assert main(args) == 0
    assert main(args) == 1
    assert "--resume" in capsys.readouterr().err


@pytest.mark.parametrize("target", ["nothing-here", "file.txt"])
def test_sample_from_a_missing_model(tmp_path, capsys, target):
    path = tmp_path / target
    if target.endswith(".txt"):
        path.write_text("x")
    assert main(["sample", str(path), "-o", str(tmp_path / "s.jsonl")]) == 1
    assert capsys.readouterr().err.startswith("Error:")
