"""`loflex experiment` end to end at a tiny budget: tables, curve, resume, changed settings,
entries that differ in more than the order."""

from __future__ import annotations

import json

import pytest
from loflex import ConfigError, load_run
from loflex.cli import main
from loflex.config import dumps_toml
from loflex.training.experiment import (
    ExperimentSettings,
    entry_run,
    order_runs,
    prepare,
    read_entries,
    run_experiment,
)

TINY = ["domain.name=toy", "domain.options.size=32", "generator.options.layers=1",
        "generator.options.width=32", "generator.options.heads=2", "train.batch_size=8",
        "train.steps=4", "train.eval_every=0", "train.sample_every=2", "train.sample_count=4",
        "train.checkpoint_every=2", "sample.steps=4", "order.options.layers=1",
        "order.options.width=32", "order.options.heads=2"]


def settings(run, orders=("uniform", "kumaraswamy", "left-to-right"),
             **changes) -> ExperimentSettings:
    base = dict(entries=list(orders), budget_minutes=5.0, eval_samples=6, eval_steps=4, seed=0,
                runs=order_runs(run, list(orders)))
    return ExperimentSettings(**{**base, **changes})


def test_experiment_runs_every_order_and_resumes(tmp_path, toy):
    run = load_run(None, TINY)
    rows = run_experiment(tmp_path, settings(run), progress=False)
    assert [r["order"] for r in rows] == ["uniform", "kumaraswamy", "left-to-right"]
    assert [r["entry"] for r in rows] == ["uniform", "kumaraswamy", "left-to-right"]
    assert all(r["train_steps"] == 4 and r["eval_samples"] == 6 for r in rows)
    assert all("exact_match" in r for r in rows)
    table = (tmp_path / "results.md").read_text()
    assert len(table.strip().splitlines()) == 2 + 3 and "| kumaraswamy |" in table
    assert json.loads((tmp_path / "results.json").read_text())["results"] == rows
    assert (tmp_path / "exact_match_curve.png").stat().st_size > 0
    # a second run reuses finished orders instead of training them again
    marker = tmp_path / "uniform" / "run" / "metrics.jsonl"
    before = marker.read_text()
    assert run_experiment(tmp_path, settings(run), progress=False) == rows
    assert marker.read_text() == before


def test_interrupted_order_continues_from_its_checkpoint(tmp_path, toy):
    from loflex.training.train import train

    run = load_run(None, TINY)
    chosen = settings(run, orders=["uniform"])
    partial = entry_run("uniform", chosen).model_copy()
    partial.train.steps = 2  # as if killed after the step-2 checkpoint
    prepare(tmp_path, chosen)
    train(partial, tmp_path / "uniform" / "run", progress=False)
    rows = run_experiment(tmp_path, chosen, progress=False)
    assert rows[0]["train_steps"] == 4
    steps = [json.loads(line)["step"] for line in
             (tmp_path / "uniform" / "run" / "metrics.jsonl").read_text().splitlines()
             if '"loss"' in line]
    assert steps == sorted(set(steps)) and steps[-1] == 4  # no step trained twice


def test_changed_settings_are_refused(tmp_path, toy):
    run = load_run(None, TINY)
    run_experiment(tmp_path, settings(run, orders=["uniform"]), progress=False)
    with pytest.raises(ConfigError, match="other settings.*budget_minutes"):
        run_experiment(tmp_path, settings(run, orders=["uniform"], budget_minutes=9.0),
                       progress=False)
    with pytest.raises(ConfigError, match="other settings.*runs"):
        run_experiment(tmp_path, settings(load_run(None, [*TINY, "train.lr=5e-4"]),
                                          orders=["uniform"]), progress=False)


def test_experiment_written_before_entries_resumes(tmp_path, toy):
    """An experiment.json of the orders-only format (orders + one shared run) still resumes."""
    run = load_run(None, TINY)
    chosen = settings(run, orders=["uniform", "left-to-right"])
    old = {"orders": ["uniform", "left-to-right"], "budget_minutes": 5.0, "eval_samples": 6,
           "eval_steps": 4, "curve_metric": "exact_match", "seed": 0,
           "run": run.model_dump(mode="json")}
    (tmp_path / "experiment.json").write_text(json.dumps(old))
    prepare(tmp_path, chosen)  # accepted
    with pytest.raises(ConfigError, match="other settings.*entries"):
        prepare(tmp_path, settings(run, orders=["uniform"]))


def write_run(path, overrides: list[str]) -> None:
    path.write_text(dumps_toml(load_run(None, overrides).model_dump(mode="json",
                                                                   exclude_none=True)))


def test_entries_differ_in_more_than_the_order(tmp_path, toy):
    """A FlexMDM-style entry and a learned-order entry: same budget, seed and evaluation."""
    (tmp_path / "runs").mkdir()
    write_run(tmp_path / "runs" / "base.toml", TINY)
    (tmp_path / "entries.toml").write_text(
        '[flexmdm]\nrun = "runs/base.toml"\nset = ["order.name=uniform", '
        '"train.loss_normalisation=flexmdm", "generator.options.insert_head=flexmdm"]\n\n'
        '[loflexmdm]\nrun = "runs/base.toml"\nset = ["sample.top_p_rule=reference"]\n')
    out = tmp_path / "exp"
    args = ["experiment", "--entries", str(tmp_path / "entries.toml"), "--set", "train.steps=4",
            "--budget-minutes", "5", "--eval-samples", "6", "--eval-steps", "4", "--seed", "3",
            "-o", str(out), "--no-progress"]
    assert main(args) == 0
    rows = json.loads((out / "results.json").read_text())["results"]
    assert [(r["entry"], r["order"]) for r in rows] == [("flexmdm", "uniform"),
                                                        ("loflexmdm", "kumaraswamy")]
    assert all(r["train_steps"] == 4 and r["eval_samples"] == 6 for r in rows)
    flex = load_run(out / "flexmdm" / "run" / "config.toml")
    lo = load_run(out / "loflexmdm" / "run" / "config.toml")
    assert flex.train.loss_normalisation == "flexmdm" and lo.train.loss_normalisation == \
        "per-sequence"
    assert flex.generator.options["insert_head"] == "flexmdm"
    assert lo.generator.options["insert_head"] == "rate"
    assert lo.sample.top_p_rule == "reference" and flex.sample.top_p_rule == "inclusive"
    for run in (flex, lo):
        assert run.seed == 3 and run.train.time_limit_minutes == 5.0
    assert (out / "results.md").read_text().startswith("| entry | order |")
    # the same command again resumes: nothing is trained twice
    before = (out / "flexmdm" / "run" / "metrics.jsonl").read_text()
    assert main(args) == 0
    assert (out / "flexmdm" / "run" / "metrics.jsonl").read_text() == before


def test_entries_start_from_a_saved_model(tmp_path, toy):
    """``init`` entries fine-tune a model's weights (any order on a uniform-order model)."""
    from loflex.sampling.inference import load_model

    fixed = [o for o in TINY if not o.startswith("order.")]
    write_run(tmp_path / "base.toml", [*fixed, "order.name=uniform"])
    assert main(["train", str(tmp_path / "base.toml"), "-o", str(tmp_path / "base"),
                 "--no-progress"]) == 0
    (tmp_path / "e.toml").write_text(
        '[fine]\ninit = "base"\n\n'
        '[learned]\ninit = "base"\nset = ["order.name=kumaraswamy", "order.options.layers=1", '
        '"order.options.width=32", "order.options.heads=2"]\n\n'
        '[fresh]\nrun = "base.toml"\n')
    out = tmp_path / "exp"
    assert main(["experiment", "--entries", str(tmp_path / "e.toml"), "--set", "train.steps=4",
                 "--set", "train.lr=1e-5", "--budget-minutes", "5", "--eval-samples", "4",
                 "--eval-steps", "4", "-o", str(out), "--no-progress"]) == 0
    rows = json.loads((out / "results.json").read_text())["results"]
    assert [(r["entry"], r["order"], r.get("init")) for r in rows] == [
        ("fine", "uniform", str(tmp_path / "base")),
        ("learned", "kumaraswamy", str(tmp_path / "base")), ("fresh", "uniform", None)]
    assert (out / "results.md").read_text().startswith("| entry | order | init |")

    def generator(folder):
        return load_model(folder).model.generator.state_dict()

    base = generator(tmp_path / "base")

    def distance(folder):
        other = generator(folder)
        return sum(float((other[k] - v).abs().sum()) for k, v in base.items())

    assert distance(out / "fine" / "run") < 0.05 * distance(out / "fresh" / "run")
    assert distance(out / "learned" / "run") < 0.05 * distance(out / "fresh" / "run")


def test_entry_option_names_run_files(tmp_path, toy):
    fixed = [o for o in TINY if not o.startswith("order.")]
    write_run(tmp_path / "a.toml", [*fixed, "order.name=uniform"])
    write_run(tmp_path / "b.toml", [*fixed, "order.name=left-to-right", "train.lr=5e-4"])
    out = tmp_path / "exp"
    assert main(["experiment", "--entry", f"a={tmp_path / 'a.toml'}", "--entry",
                 f"b={tmp_path / 'b.toml'}", "--budget-minutes", "5", "--eval-samples", "4",
                 "--eval-steps", "4", "-o", str(out), "--no-progress"]) == 0
    saved = json.loads((out / "experiment.json").read_text())
    assert saved["entries"] == ["a", "b"]
    assert saved["runs"]["b"]["train"]["lr"] == 5e-4
    assert saved["runs"]["a"]["order"]["name"] == "uniform"


def test_entries_file_without_run_uses_the_run_file(tmp_path, toy):
    write_run(tmp_path / "base.toml", TINY)
    (tmp_path / "e.toml").write_text('[one]\nset = ["order.name=uniform"]\n[two]\n')
    entries = read_entries(tmp_path / "e.toml", tmp_path / "base.toml")
    assert list(entries) == ["one", "two"]
    assert entries["two"] == {"run": tmp_path / "base.toml", "set": [], "init": None}


@pytest.mark.parametrize("text, message", [
    ('[a]\nrun = "r.toml"\nseed = 3\n', "unknown key 'seed'"),
    ('[a]\nset = "train.lr=1"\n', "must be a list"),
    ('a = 3\n', "must be a table"),
    ('[a]\nset = []\n', "names no run file"),
    ('[a]\ninit = 3\n', "must be a model name"),
    ('["../up"]\nrun = "r.toml"\n', "cannot name a directory"),
    ('', "lists no entries"),
])
def test_entries_file_errors_name_the_fix(tmp_path, text, message):
    (tmp_path / "e.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_entries(tmp_path / "e.toml")


def test_command_line_errors(tmp_path, toy, capsys):
    write_run(tmp_path / "base.toml", TINY)
    out = tmp_path / "exp"
    common = ["--budget-minutes", "1", "-o", str(out)]
    cases = [
        (["experiment", str(tmp_path / "base.toml"), "--orders", "uniform",
          "--entry", f"a={tmp_path / 'base.toml'}"], "cannot be combined"),
        (["experiment", "--entry", f"a={tmp_path / 'base.toml'}",
          "--entry", f"a={tmp_path / 'base.toml'}"], "named twice"),
        (["experiment", "--entry", "a"], "is not NAME=RUNFILE"),
        (["experiment", "--entry", f"x/y={tmp_path / 'base.toml'}"], "cannot name a directory"),
        (["experiment", "--orders", "uniform"], "give the run file"),
        (["experiment", "--entry", f"a={tmp_path / 'missing.toml'}"], "does not exist"),
    ]
    for argv, message in cases:
        assert main([*argv, *common]) == 1
        assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_signal_stops_the_experiment_and_a_rerun_continues_the_entry(tmp_path, toy,
                                                                       monkeypatch):
    """SIGINT/SIGTERM during an entry's training: the entry is checkpointed but neither
    evaluated nor marked finished, the command exits 130 naming the fix, and the same
    command then trains the rest of the entry and scores it."""
    from loflex.training import train as train_module

    class SignalledAtOnce(train_module.StopFlag):
        def __enter__(self):
            super().__enter__()
            self.raised = True  # as if SIGINT arrived during the first step
            return self

    run = load_run(None, TINY)
    chosen = settings(run, orders=["uniform"])
    monkeypatch.setattr(train_module, "StopFlag", SignalledAtOnce)
    with pytest.raises(KeyboardInterrupt, match="entry 'uniform' stopped at step 1 .*rerun"):
        run_experiment(tmp_path, chosen, progress=False)
    assert not (tmp_path / "uniform" / "result.json").exists()
    assert (tmp_path / "uniform" / "run" / "checkpoints" / "latest").read_text().strip() \
        == "step-00000001"
    monkeypatch.undo()
    rows = run_experiment(tmp_path, chosen, progress=False)
    assert rows[0]["train_steps"] == 4 and rows[0]["eval_samples"] == 6
    assert (tmp_path / "uniform" / "result.json").exists()


def test_the_command_line_names_the_interrupted_entry(tmp_path, toy, monkeypatch, capsys):
    from loflex.training import experiment

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt("entry 'uniform' stopped at step 1 and is checkpointed; "
                                "rerun the same command to continue it")

    monkeypatch.setattr(experiment, "run_experiment", interrupted)
    run_file = tmp_path / "run.toml"
    run_file.write_text(dumps_toml(load_run(None, TINY).model_dump(mode="json")))
    code = main(["experiment", str(run_file), "--orders", "uniform", "--budget-minutes", "1",
                 "-o", str(tmp_path / "exp"), "--no-progress"])
    assert code == 130
    err = capsys.readouterr().err.strip()
    assert err == ("Interrupted: entry 'uniform' stopped at step 1 and is checkpointed; rerun "
                   "the same command to continue it")
