"""What a plugin author and a command-line user meet: settings listed, plugin commands,
quiet pipes, progress bars only on a terminal, samples files by extension."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import types

import loflex
import pytest
import torch
from loflex import Domain, contracts, hookimpl, load_run
from loflex.cli import build_parser, main
from loflex.commands import show_progress
from loflex.commands.experiment import curve_metric
from loflex.config import SampleConfig, TrainConfig
from loflex.extension import plugins, registry
from loflex.extension.testing import ToyDomain, registered
from loflex.training.train import train

TINY = ["domain.name=toy", "domain.options.size=32", "generator.options.layers=1",
        "generator.options.width=32", "generator.options.heads=2", "order.name=uniform",
        "train.steps=2", "train.batch_size=4", "train.eval_every=0", "train.threads=1"]


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    with registered(types.SimpleNamespace(register_domains=hookimpl(
            lambda register: register(ToyDomain))), name="toy-module"):
        run_dir = tmp_path_factory.mktemp("toy") / "run"
        train(load_run(None, TINY), run_dir, progress=False)
    return run_dir


# -- run settings ---------------------------------------------------------------------


def test_options_lists_every_train_and_sample_setting_with_its_description(capsys):
    assert main(["options", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert set(listed) == {"train", "sample"}
    for section, model in (("train", TrainConfig), ("sample", SampleConfig)):
        rows = {row["name"]: row for row in listed[section]}
        assert set(rows) == set(model.model_fields)
        assert all(row["description"] for row in rows.values())
    assert rows["top_k"]["default"] == 0 and rows["top_k"]["type"] == "int"
    assert main(["options"]) == 0
    text = capsys.readouterr().out
    assert "train settings (--set train.KEY=VALUE" in text and "\n  top_p = 1.0  (float) " in text


def test_components_options_shows_the_run_settings_too(capsys):
    assert main(["components", "--options"]) == 0
    text = capsys.readouterr().out
    assert "sample settings" in text and "\n  steps = 2000  (int) Optimiser steps." in text


def test_an_unknown_train_setting_lists_the_valid_ones(capsys, tmp_path):
    assert main(["train", "--set", "domain.name=sequences", "--set", "train.foo=1",
                 "-o", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error: invalid run config: train.foo: unknown option")
    assert "the train settings are steps, batch_size, lr, " in err
    assert not (tmp_path / "run").exists()


def test_an_unknown_component_option_lists_the_valid_ones(toy):
    with pytest.raises(loflex.ConfigError) as error:
        load_run(None, ["domain.name=toy", "domain.options.sise=3"])
    assert error.value.message == (
        "domain 'toy' has invalid options: sise: unknown option (remove it or check its "
        "spelling); the options are size, min_length, max_length, seed")


# -- the command line itself ----------------------------------------------------------


def test_a_closed_pipe_ends_quietly():
    """``loflex components | head`` with the reader gone before anything is written."""
    env = {**os.environ, "LOFLEX_LOAD_PLUGINS": ""}
    proc = subprocess.Popen([sys.executable, "-m", "loflex.cli", "components", "--options"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=300)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert proc.returncode == 141


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_only_on_a_terminal(monkeypatch):
    shown = argparse.Namespace(no_progress=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not show_progress(shown), "a log file gets no progress bar"
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert show_progress(shown)
    assert not show_progress(argparse.Namespace(no_progress=True))


def test_training_into_a_log_draws_no_bar(toy, tmp_path, capfd):
    args = ["train", "-o", str(tmp_path / "run")]
    for item in TINY:
        args += ["--set", item]
    assert main(args) == 0
    err = capfd.readouterr().err
    assert "\r" not in err and "it/s" not in err, err[-500:]


# -- samples files by extension -------------------------------------------------------


def test_sample_writes_csv_with_the_domains_columns(toy_model, tmp_path, toy):
    jsonl, table = tmp_path / "s.jsonl", tmp_path / "s.csv"
    common = ["-n", "4", "--steps", "6", "--seed", "3"]
    assert main(["sample", str(toy_model), *common, "-o", str(jsonl)]) == 0
    assert main(["sample", str(toy_model), *common, "-o", str(table)]) == 0
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    with open(table, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["prompt", "text", "length"]
    assert [row["text"] for row in rows] == [r["text"] for r in records], "same seed, same samples"
    assert [int(row["length"]) for row in rows] == [len(r["tokens"]) for r in records]
    assert [row["prompt"] for row in rows] == [r["prompt"] for r in records]


@pytest.mark.parametrize("name", ["samples.txt", "samples"])
def test_sample_refuses_an_unknown_extension_before_loading(tmp_path, capsys, name):
    out = tmp_path / name
    assert main(["sample", str(tmp_path / "no-such-model"), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "unknown extension" in err and ".jsonl" in err and ".csv" in err
    assert "no-such-model" not in err, "the extension is checked before the model is looked up"
    assert not out.exists()


# -- register_commands ----------------------------------------------------------------


def command_plugin(calls: list) -> types.SimpleNamespace:
    def hello(args) -> int:
        calls.append(args.name)
        return 0

    def register_commands(commands):
        commands.add("hello", help="greet someone", handler=hello).add_argument(
            "--name", default="world", help="whom to greet")
        commands.parser("sample").add_argument("--fragment", dest="prompt",
                                               help="a fragment (the same as --prompt)")

    return types.SimpleNamespace(register_commands=hookimpl(register_commands))


def test_a_plugin_adds_a_command_and_an_option_of_sample():
    calls: list = []
    with registered(command_plugin(calls), name="commands"):
        assert main(["hello", "--name", "plugin author"]) == 0
        args = build_parser().parse_args(["sample", "m", "-o", "x.jsonl", "--fragment", "C1"])
    assert calls == ["plugin author"]
    assert args.prompt == "C1"


def test_the_core_sample_command_has_no_fragment_flag(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sample", "m", "-o", "x.jsonl", "--fragment", "C1"])
    assert "unrecognized arguments: --fragment" in capsys.readouterr().err


def test_a_raising_register_commands_skips_only_its_plugin(capsys):
    def register_commands(commands):
        commands.parser("no-such-command")

    plugin = types.SimpleNamespace(register_commands=hookimpl(register_commands),
                                   register_domains=hookimpl(lambda register: register(ToyDomain)))
    with registered(plugin, name="clumsy"):
        assert main(["components"]) == 0
        assert "toy" not in registry.components(Domain), "a skipped plugin lists nothing"
        assert [f.plugin for f in plugins.failures] == ["clumsy"]
    captured = capsys.readouterr()
    assert "plugin 'clumsy' (distribution 'test') was skipped: hook register_commands raised " \
        "KeyError" in captured.err
    assert "no command 'no-such-command'" in captured.err


# -- the experiment's metric ----------------------------------------------------------


def test_the_learning_curve_metric_comes_from_the_domain(toy, capsys):
    runs = {"a": {"domain": {"name": "toy"}}}
    assert curve_metric(None, runs) == "exact_match"
    assert curve_metric("uniqueness", runs) == "uniqueness"
    assert curve_metric(None, {"a": {"domain": {"name": "sequences"}}}) == ""
    assert "domain 'sequences' names no headline metric" in capsys.readouterr().err


# -- a misnamed component, order hints, the former names ------------------------------


def test_a_misnamed_component_leaves_every_command_working(capsys):
    class Half(ToyDomain):
        name = "Half_Order"

    plugin = types.SimpleNamespace(register_domains=hookimpl(lambda register: register(Half)))
    with registered(plugin, name="half", check=False):
        assert main(["plugins", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert main(["components"]) == 0
    assert [f["plugin"] for f in report["failed"]] == ["half"]
    assert "Half_Order" in report["failed"][0]["problem"]
    assert "half" not in {p["name"] for p in report["plugins"]}


class HintedOrder(loflex.KumaraswamyOrder):
    """Reads the order hint: b_in = 1 + hint."""

    name = "hinted"
    needs_order_hint = True

    def forward(self, batch, t):
        b_in = 1 + batch.order_hint
        return loflex.TokenRates(b_in=b_in, b_um=torch.ones_like(b_in))


class HintingToy(ToyDomain):
    name = "hinting-toy"
    provides_order_hint = True


def test_an_order_that_needs_a_hint_is_refused_with_a_domain_without_one():
    plugin = types.SimpleNamespace(
        register_order_dynamics=hookimpl(lambda register: register(HintedOrder)),
        register_domains=hookimpl(lambda register: [register(ToyDomain), register(HintingToy)]))
    with registered(plugin, name="hints"):
        with pytest.raises(loflex.ConfigError) as error:
            load_run(None, ["domain.name=toy", "order.name=hinted"])
        assert error.value.message == (
            "order 'hinted' reads a per-token order hint, which domain 'toy' does not provide; "
            "pick a domain that does (hinting-toy) or another order")
        assert load_run(None, ["domain.name=hinting-toy", "order.name=hinted"]).order.name == \
            "hinted"


def test_the_former_names_keep_working():
    from loflex import config
    from loflex.default_plugins import transformer
    from loflex.diffusion import batch, order
    from loflex.inspection import report

    assert order.TokenRates is contracts.TokenRates and order.OrderDynamics is contracts.OrderDynamics
    assert batch.Batch is contracts.Batch and config.Options is contracts.Options
    assert config.ComponentSpec is contracts.ComponentSpec
    assert transformer.TrunkOutput is contracts.TrunkOutput
    assert report.order_correlation_figure is report.order_hint_figure
    with pytest.warns(DeprecationWarning, match="order_hint"):
        example = loflex.Example(target=[5, 6], side=[1.0, 2.0])
    assert example.order_hint == [1.0, 2.0]
    with pytest.warns(DeprecationWarning, match="Example.order_hint"):
        assert example.side == [1.0, 2.0]
    collated = loflex.collate([example])
    with pytest.warns(DeprecationWarning, match="Batch.order_hint"):
        assert collated.side.tolist() == [[1.0, 2.0, 0.0]]
    with pytest.warns(DeprecationWarning):
        assert loflex.Batch(collated.x_1, collated.fixed, side=collated.order_hint).order_hint \
            is collated.order_hint
    with pytest.raises(TypeError, match="order_hint only"):
        loflex.Example(target=[5], order_hint=[1.0], side=[1.0])
