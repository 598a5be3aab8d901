"""Plugin tests see every installed plugin (the core tests run with built-ins only)."""

from __future__ import annotations

import pytest
from loflex import plugins


@pytest.fixture(autouse=True)
def all_plugins(monkeypatch):
    monkeypatch.delenv("LOFLEX_LOAD_PLUGINS", raising=False)
    plugins.reset()
    yield
    plugins.reset()
