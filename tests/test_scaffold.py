"""``loflex new plugin``: each kind's package installs, registers through its entry point,
is lint-clean and passes its own contract-check tests."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from installing import BIN, loflex, pip_install, run_tests
from loflex.cli import main
from loflex.extension.scaffold import names, plugin_files

KIND_TITLES = {"order": "order dynamics", "generator": "generators", "domain": "domains"}


@pytest.fixture(scope="module", params=sorted(KIND_TITLES))
def package(request, tmp_path_factory) -> tuple[str, str, Path]:
    kind = request.param
    name = f"scaffolded-{kind}"
    folder = tmp_path_factory.mktemp(kind) / name
    assert main(["new", "plugin", name, "--kind", kind, "-o", str(folder)]) == 0
    pip_install(folder)
    return kind, name, folder


def test_the_package_is_lint_clean(package):
    _, _, folder = package
    result = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=folder, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]


def test_the_component_is_listed_through_its_entry_point(package):
    kind, name, _ = package
    env = {"LOFLEX_LOAD_PLUGINS": name}
    listed = loflex("components", env=env)
    assert listed.returncode == 0, listed.stderr
    section = listed.stdout.split(f"{KIND_TITLES[kind]}:")[1]
    assert re.search(rf"^\s+{name}\b.*\[{name}\]", section, re.M), listed.stdout
    plugins = json.loads(loflex("plugins", "--json", env=env).stdout)
    assert plugins["failed"] == [] and name in {p["name"] for p in plugins["plugins"]}
    assert "Warning" not in listed.stderr, listed.stderr


def test_its_own_tests_pass(package):
    _, name, folder = package
    result = run_tests(folder, env={"LOFLEX_LOAD_PLUGINS": name})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]
    assert "2 passed" in result.stdout


def test_names_follow_the_plugin_name():
    assert names("my-order") == {"name": "my-order", "package": "loflex_my_order",
                                 "cls": "MyOrder", "distribution": "loflex-my-order"}
    files = plugin_files("my-order", "order")
    assert set(files) == {"pyproject.toml", "README.md", "loflex_my_order/__init__.py",
                          "loflex_my_order/component.py", "loflex_my_order/plugin.py",
                          "tests/test_my_order.py"}
    assert 'my-order = "loflex_my_order.plugin"' in files["pyproject.toml"]


@pytest.mark.parametrize("name", ["My_Order", "9lives", "double--dash", "trailing-"])
def test_a_name_that_is_not_lower_kebab_is_refused(name, tmp_path, capsys):
    assert main(["new", "plugin", name, "--kind", "order", "-o", str(tmp_path / "p")]) == 1
    assert f"plugin name '{name}' is not lower-kebab" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_a_folder_with_files_is_refused_without_force(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["new", "plugin", "my-order", "--kind", "order", "-o", str(tmp_path)]) == 1
    assert "already holds files" in capsys.readouterr().err
    assert main(["new", "plugin", "my-order", "--kind", "order", "-o", str(tmp_path),
                 "--force"]) == 0
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "loflex_my_order" / "component.py").is_file()
