"""A broken plugin is named with its distribution, and the other plugins keep working.

The plugins here are real installed distributions (a ``.dist-info`` folder with an
``entry_points.txt`` on ``sys.path``), found the way third-party plugins are found.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from loflex.contracts import Domain
from loflex.diffusion.order import OrderDynamics
from loflex.errors import UnknownComponentError
from loflex.extension import plugins, registry

MODULES = {
    "fake_broken": "import a_dependency_that_is_not_installed  # noqa\n",
    "fake_raiser": textwrap.dedent("""
        from loflex.extension.hookspecs import hookimpl

        @hookimpl
        def register_domains(register):
            raise RuntimeError("the data index is unreachable")
    """),
    "fake_good": textwrap.dedent("""
        import torch
        from loflex.extension.hookspecs import hookimpl
        from loflex.diffusion.order import KumaraswamyOrder, TokenRates

        class Backwards(KumaraswamyOrder):
            \"\"\"A fixed test order.\"\"\"
            name = "fake-backwards"

            def forward(self, batch, t):
                ones = torch.ones(batch.x_1.shape)
                return TokenRates(b_in=ones, b_um=ones)

        @hookimpl
        def register_order_dynamics(register):
            register(Backwards)
    """),
    "fake_misspelt": textwrap.dedent("""
        from loflex.extension.hookspecs import hookimpl

        @hookimpl
        def register_domain(register):
            pass
    """),
}
ENTRY = {"fake-broken": "fake_broken", "fake-raiser": "fake_raiser", "fake-good": "fake_good",
         "fake-misspelt": "fake_misspelt"}


def install_distribution(root, name: str, entry: str, module: str) -> None:
    """Write one module and the metadata of a distribution ``name`` 1.2.3 providing it."""
    (root / f"{module}.py").write_text(MODULES[module])
    info = root / f"{name.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[loflex]\n{entry} = {module}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    for entry, module in ENTRY.items():
        install_distribution(tmp_path, f"loflex-{entry}", entry, module)
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in MODULES:
        monkeypatch.delitem(sys.modules, module, raising=False)
    return tmp_path


def load(monkeypatch, names: list[str]):
    monkeypatch.setenv("LOFLEX_LOAD_PLUGINS", ",".join(names))
    plugins.reset()
    return plugins.get_plugin_manager()


def test_import_failure_names_plugin_and_distribution(site, monkeypatch, capsys):
    load(monkeypatch, ["fake-broken", "fake-good"])
    err = capsys.readouterr().err
    assert ("Warning: plugin 'fake-broken' (distribution 'loflex-fake-broken 1.2.3') was skipped: "
            "import failed: ModuleNotFoundError") in err
    assert "a_dependency_that_is_not_installed" in err
    assert registry.get(OrderDynamics, "fake-backwards").__name__ == "Backwards"
    assert "uniform" in registry.components(OrderDynamics)


def test_hook_that_raises_names_plugin_and_distribution(site, monkeypatch, capsys):
    load(monkeypatch, ["fake-raiser", "fake-good"])
    assert "sequences" in registry.components(Domain)
    err = capsys.readouterr().err
    assert ("plugin 'fake-raiser' (distribution 'loflex-fake-raiser 1.2.3') was skipped: hook "
            "register_domains raised RuntimeError: the data index is unreachable") in err
    assert "fake-backwards" in registry.components(OrderDynamics)


def test_asking_for_a_component_of_a_failed_plugin(site, monkeypatch):
    load(monkeypatch, ["fake-broken", "fake-raiser"])
    registry.components(Domain)
    with pytest.raises(UnknownComponentError) as info:
        registry.get(Domain, "protein")
    message = info.value.message
    assert type(info.value) is UnknownComponentError
    assert "unknown domain 'protein'; registered: sequences" in message
    assert "fake-broken (loflex-fake-broken 1.2.3: import failed" in message
    assert "fake-raiser (loflex-fake-raiser 1.2.3: hook register_domains raised" in message
    assert message.endswith("Install the plugin that provides it or pick a registered name")


def test_misspelt_hook_names_plugin_distribution_and_the_hooks(site, monkeypatch, capsys):
    pm = load(monkeypatch, ["fake-misspelt", "fake-good"])
    failed = {f.plugin: f for f in plugins.failures}
    assert failed["fake-misspelt"].distribution == "loflex-fake-misspelt 1.2.3"
    message = failed["fake-misspelt"].problem
    assert "register_domain" in message and "register_domains" in message
    assert not pm.has_plugin("fake-misspelt")
    assert "fake-backwards" in registry.components(OrderDynamics), "the others keep working"
    assert "plugin 'fake-misspelt' (distribution 'loflex-fake-misspelt 1.2.3')" in \
        capsys.readouterr().err


def test_a_load_name_that_matches_nothing_is_warned_about(site, monkeypatch, capsys):
    load(monkeypatch, ["fake-good", "fake-goood"])
    err = capsys.readouterr().err
    assert "LOFLEX_LOAD_PLUGINS names 'fake-goood'" in err and "fake-good" in err
    assert "'fake-good'," not in err.split("installed:")[0], "a matching name is not warned"


def test_plugins_not_allowed_are_never_imported(site, monkeypatch):
    load(monkeypatch, ["fake-good"])
    registry.components(Domain)
    assert "fake_broken" not in sys.modules and "fake_raiser" not in sys.modules
    assert not plugins.failures


def test_cli_reports_failures_and_keeps_working(site):
    env = {**os.environ, "PYTHONPATH": str(site),
           "LOFLEX_LOAD_PLUGINS": "fake-broken,fake-raiser,fake-good"}
    cmd = [sys.executable, "-m", "loflex.cli", "plugins", "--json"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    failed = {f["plugin"]: f for f in report["failed"]}
    assert failed["fake-broken"]["distribution"] == "loflex-fake-broken 1.2.3"
    assert failed["fake-raiser"]["distribution"] == "loflex-fake-raiser 1.2.3"
    assert "the data index is unreachable" in failed["fake-raiser"]["problem"]
    loaded = {p["name"]: p for p in report["plugins"]}
    assert loaded["fake-good"]["distribution"] == "loflex-fake-good 1.2.3"
    assert "register_order_dynamics" in loaded["fake-good"]["hooks"]
