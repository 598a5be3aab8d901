"""`loflex experiment` end to end at a tiny budget: tables, curve, resume, changed settings."""

from __future__ import annotations

import json

import pytest
from loflex import ConfigError, load_run
from loflex.experiment import ExperimentSettings, run_experiment

TINY = ["domain.name=toy", "domain.options.size=32", "generator.options.layers=1",
        "generator.options.width=32", "generator.options.heads=2", "train.batch_size=8",
        "train.steps=4", "train.eval_every=0", "train.sample_every=2", "train.sample_count=4",
        "train.checkpoint_every=2", "sample.steps=4", "order.options.layers=1",
        "order.options.width=32", "order.options.heads=2"]


def settings(run, **changes) -> ExperimentSettings:
    base = dict(orders=["uniform", "kumaraswamy", "left-to-right"], budget_minutes=5.0,
                eval_samples=6, eval_steps=4, seed=0, run=run.model_dump(mode="json"))
    return ExperimentSettings(**{**base, **changes})


def test_experiment_runs_every_order_and_resumes(tmp_path, toy):
    run = load_run(None, TINY)
    rows = run_experiment(tmp_path, run, settings(run), progress=False)
    assert [r["order"] for r in rows] == ["uniform", "kumaraswamy", "left-to-right"]
    assert all(r["train_steps"] == 4 and r["eval_samples"] == 6 for r in rows)
    assert all("exact_match" in r for r in rows)
    table = (tmp_path / "results.md").read_text()
    assert len(table.strip().splitlines()) == 2 + 3 and "| kumaraswamy |" in table
    assert json.loads((tmp_path / "results.json").read_text())["results"] == rows
    assert (tmp_path / "exact_match_curve.png").stat().st_size > 0
    # a second run reuses finished orders instead of training them again
    marker = tmp_path / "uniform" / "run" / "metrics.jsonl"
    before = marker.read_text()
    assert run_experiment(tmp_path, run, settings(run), progress=False) == rows
    assert marker.read_text() == before


def test_interrupted_order_continues_from_its_checkpoint(tmp_path, toy):
    from loflex.experiment import order_run
    from loflex.train import train

    run = load_run(None, TINY)
    chosen = settings(run, orders=["uniform"])
    partial = order_run(run, "uniform", chosen).model_copy()
    partial.train.steps = 2  # as if killed after the step-2 checkpoint
    from loflex.experiment import prepare

    prepare(tmp_path, chosen)
    train(partial, tmp_path / "uniform" / "run", progress=False)
    rows = run_experiment(tmp_path, run, chosen, progress=False)
    assert rows[0]["train_steps"] == 4
    steps = [json.loads(line)["step"] for line in
             (tmp_path / "uniform" / "run" / "metrics.jsonl").read_text().splitlines()
             if '"loss"' in line]
    assert steps == sorted(set(steps)) and steps[-1] == 4  # no step trained twice


def test_changed_settings_are_refused(tmp_path, toy):
    run = load_run(None, TINY)
    run_experiment(tmp_path, run, settings(run, orders=["uniform"]), progress=False)
    with pytest.raises(ConfigError, match="other settings.*budget_minutes"):
        run_experiment(tmp_path, run, settings(run, orders=["uniform"], budget_minutes=9.0),
                       progress=False)
