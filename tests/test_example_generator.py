"""The generator tutorial's package: installed, found through its entry point, checked,
and trained a few steps with a learned order sharing its trunk.

Also keeps ``docs/writing-a-generator.md`` in sync: every code block marked
``<!-- file: PATH -->`` must equal that file of ``docs/example-generator``.
"""

from __future__ import annotations

import re

import pytest
from installing import ROOT, assert_tutorial_shows_package, loflex, pip_install, run_tests

PACKAGE = ROOT / "docs" / "example-generator"
TUTORIAL = ROOT / "docs" / "writing-a-generator.md"
ENV = {"LOFLEX_LOAD_PLUGINS": "example-gru"}


@pytest.fixture(scope="module")
def installed():
    return pip_install(PACKAGE)


def test_tutorial_code_blocks_are_the_package_files():
    shown = {"pyproject.toml", "loflex_example_gru/generator.py",
             "loflex_example_gru/plugin.py", "tests/test_gru.py"}
    assert_tutorial_shows_package(TUTORIAL, PACKAGE, shown)


def test_components_lists_the_generator_through_its_entry_point(installed):
    result = loflex("components", env=ENV)
    assert result.returncode == 0, result.stderr
    generators = result.stdout.split("generators:")[1].split("order dynamics:")[0]
    assert re.search(r"^\s+gru\b.*\[example-gru\]", generators, re.M), result.stdout


def test_package_tests_pass(installed):
    result = run_tests(PACKAGE, env=ENV)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_trains_with_a_learned_order_sharing_its_trunk(installed, tmp_path):
    data = tmp_path / "words.txt"
    data.write_text("\n".join(["abcab", "bcabc", "cabca", "aabbc", "ccbba", "abcba"] * 10))
    settings = ["domain.name=sequences", f"domain.options.path={data}",
                "generator.name=gru", "generator.options.hidden=16", "generator.options.cond_dim=8",
                "order.name=kumaraswamy", "order.options.backbone=shared", "train.steps=3",
                "train.batch_size=4", "train.eval_every=0", "train.threads=1"]
    args = ["train", "--no-progress", "-o", str(tmp_path / "run")]
    for item in settings:
        args += ["--set", item]
    result = loflex(*args, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    config = (tmp_path / "run" / "config.toml").read_text()
    assert 'name = "gru"' in config and 'backbone = "shared"' in config
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert rows and '"step": 3' in rows[-1]
