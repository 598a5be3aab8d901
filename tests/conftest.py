"""Core tests run with only the built-in plugins (LOFLEX_LOAD_PLUGINS=""), plus in-test ones."""

from __future__ import annotations

import pytest
from loflex.extension import plugins


@pytest.fixture(autouse=True)
def builtins_only(monkeypatch):
    monkeypatch.setenv("LOFLEX_LOAD_PLUGINS", "")
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture
def toy():
    """Register the toy domain for one test."""
    from loflex.extension.testing import ToyPlugin, registered

    with registered(ToyPlugin(), name="toy"):
        yield


@pytest.fixture
def installed_plugins(builtins_only, monkeypatch):
    """Every installed plugin, as a user's run would see them (for tests of the run files
    in docs/, which use the graph and molecule domains)."""
    monkeypatch.delenv("LOFLEX_LOAD_PLUGINS")
    plugins.reset()
