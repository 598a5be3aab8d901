"""The example plugin in docs/ is installed and used through its entry point."""

from __future__ import annotations

import pytest
from installing import ROOT, loflex, pip_install, run_tests

EXAMPLE = ROOT / "docs" / "example-plugin"


@pytest.fixture(scope="module")
def installed():
    pip_install(EXAMPLE)


def test_components_lists_it_only_when_loaded(installed):
    shown = loflex("components")
    assert shown.returncode == 0, shown.stderr
    assert "right-to-left" in shown.stdout
    hidden = loflex("components", env={"LOFLEX_LOAD_PLUGINS": ""})
    assert "right-to-left" not in hidden.stdout and "uniform" in hidden.stdout
    only = loflex("components", env={"LOFLEX_LOAD_PLUGINS": "reverse"})
    assert "right-to-left" in only.stdout


def test_its_own_tests_pass(installed):
    result = run_tests(EXAMPLE)
    assert result.returncode == 0, result.stdout[-2000:]


def test_a_run_can_select_it(installed, tmp_path):
    data = tmp_path / "words.txt"
    data.write_text("\n".join(["abcab", "bcabc", "cabca", "aabbc", "ccbba", "abcba"] * 10))
    result = loflex("train", "--set", "domain.name=sequences",
                    "--set", f"domain.options.path={data}",
                    "--set", "order.name=right-to-left", "--set", "train.steps=2",
                    "--set", "train.batch_size=4", "--set", "train.eval_every=0",
                    "--set", "generator.options.layers=1", "--set", "generator.options.width=32",
                    "--set", "generator.options.heads=2", "--no-progress",
                    "-o", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "right-to-left" in (tmp_path / "run" / "config.toml").read_text()
