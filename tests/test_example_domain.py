"""The domain tutorial's package: installed with pip, found through its entry point, trained.

Also keeps ``docs/writing-a-domain.md`` in sync: every code block marked
``<!-- file: PATH -->`` must equal that file of ``docs/example-domain``.
"""

from __future__ import annotations

import re

import pytest
from installing import ROOT, assert_tutorial_shows_package, loflex, pip_install, run_tests

PACKAGE = ROOT / "docs" / "example-domain"
TUTORIAL = ROOT / "docs" / "writing-a-domain.md"
ENV = {"LOFLEX_LOAD_PLUGINS": "example-protein"}


@pytest.fixture(scope="module")
def installed():
    """Install docs/example-domain into a throwaway folder (pip fails: the test fails)."""
    return pip_install(PACKAGE)


def test_tutorial_code_blocks_are_the_package_files():
    shown = {"pyproject.toml", "loflex_example_protein/domain.py",
             "loflex_example_protein/plugin.py", "tests/test_example_protein.py"}
    assert_tutorial_shows_package(TUTORIAL, PACKAGE, shown)


def test_components_lists_the_domain_through_its_entry_point(installed):
    result = loflex("components", env=ENV)
    assert result.returncode == 0, result.stderr
    domains = result.stdout.split("domains:")[-1]
    assert re.search(r"^\s+protein\b", domains, re.M), result.stdout
    assert "loflex_example_protein" in domains or "example-protein" in domains, result.stdout


def test_package_tests_pass(installed):
    result = run_tests(PACKAGE, env=ENV)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.slow
def test_trains_a_few_steps(installed, tmp_path):
    run_dir = tmp_path / "run"
    settings = ["domain.name=protein", "train.steps=3", "train.batch_size=8",
                "train.threads=1", "generator.name=transformer", "generator.options.layers=1",
                "generator.options.width=32", "generator.options.heads=2", "order.name=uniform"]
    args = ["train"]
    for item in settings:
        args += ["--set", item]
    result = loflex(*args, "-o", str(run_dir), env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / "config.toml").is_file()
    assert 'name = "protein"' in (run_dir / "config.toml").read_text()
    assert (run_dir / "checkpoints" / "latest").is_file()
