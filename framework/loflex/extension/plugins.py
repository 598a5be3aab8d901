"""The plugin manager: built-ins, installed entry points and ``LOFLEX_LOAD_PLUGINS``.

Installing a plugin distribution runs its code: loflex imports every module
named in the ``loflex`` entry-point group of the installed distributions
(filtered by ``LOFLEX_LOAD_PLUGINS``), and nothing else.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from dataclasses import dataclass

import pluggy

from loflex.errors import PluginError
from loflex.extension import hookspecs

ENTRY_POINT_GROUP = "loflex"
DEFAULT_PLUGINS = (
    "loflex.default_plugins.transformer",
    "loflex.default_plugins.orders",
    "loflex.default_plugins.sequences",
)

_manager: pluggy.PluginManager | None = None


@dataclass
class PluginFailure:
    """A plugin that could not be loaded or whose hook raised; the others keep working."""

    plugin: str
    distribution: str
    problem: str


failures: list[PluginFailure] = []
distributions: dict[str, str] = {}


def get_plugin_manager() -> pluggy.PluginManager:
    """Return the process-wide plugin manager, creating it on first use."""
    global _manager
    if _manager is None:
        _manager = _create()
    return _manager


def reset() -> None:
    """Forget the plugin manager so the next lookup reloads every plugin (for tests)."""
    global _manager
    _manager = None
    failures.clear()
    distributions.clear()


def _create() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("loflex")
    pm.add_hookspecs(hookspecs)
    for module_name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
        distributions[module_name] = "loflex"
    load_entry_points(pm)
    return pm


def allowed_plugins() -> set[str] | None:
    """Return the entry-point names ``LOFLEX_LOAD_PLUGINS`` allows (None: all)."""
    value = os.environ.get("LOFLEX_LOAD_PLUGINS")
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def load_entry_points(pm: pluggy.PluginManager, entry_points=None) -> None:
    """Import and register the plugins of the ``loflex`` entry-point group.

    A plugin whose import fails, or which implements a hook that does not exist, is
    recorded in :data:`failures` with a warning on stderr and left out; the others keep
    loading. A name in ``LOFLEX_LOAD_PLUGINS`` that no entry point has gets a warning
    listing the installed ones.
    """
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    entry_points = list(entry_points)
    allowed = allowed_plugins()
    if allowed is not None:
        warn_unmatched(allowed, [ep.name for ep in entry_points])
    for ep in entry_points:
        if allowed is not None and ep.name not in allowed:
            continue
        if pm.has_plugin(ep.name):
            continue
        _load_one(pm, ep)


def _load_one(pm: pluggy.PluginManager, ep) -> None:
    """Import and register one entry point; record (never raise) its failure."""
    dist = _distribution_name(ep)
    try:
        plugin = ep.load()  # plugin loading: the one place loflex imports by name
    except Exception as exc:  # a broken third-party plugin must not stop the others
        record_failure(ep.name, dist, f"import failed: {type(exc).__name__}: {exc}")
        return
    pm.register(plugin, name=ep.name)
    distributions[ep.name] = dist
    try:
        check_hooks(pm, ep.name)
    except PluginError as exc:
        record_failure(ep.name, dist, exc.message)


def warn_unmatched(allowed: set[str], names: list[str]) -> None:
    """Warn on stderr about ``LOFLEX_LOAD_PLUGINS`` names that no entry point has."""
    for name in sorted(allowed - set(names)):
        installed = ", ".join(sorted(set(names))) or "none"
        print(f"Warning: LOFLEX_LOAD_PLUGINS names '{name}', but no installed plugin has that "
              f"entry-point name (installed: {installed}); check the spelling", file=sys.stderr)


def check_hooks(pm: pluggy.PluginManager, name: str) -> None:
    """Raise :class:`PluginError` if plugin ``name`` implements an unknown hook."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        pm.unregister(name=name)
        known = ", ".join(sorted(h for h in dir(hookspecs) if h.startswith("register_")))
        raise PluginError(
            f"plugin '{name}' ({distributions.get(name, 'unknown distribution')}) "
            f"implements a hook that does not exist: {exc}; the hooks are {known}"
        ) from None


def has_failed(plugin: str) -> bool:
    """Whether ``plugin`` was skipped (import, hook or registration failure)."""
    return any(f.plugin == plugin for f in failures)


def forget(plugin: str) -> None:
    """Drop the recorded failures of ``plugin`` (an in-test plugin leaving)."""
    failures[:] = [f for f in failures if f.plugin != plugin]


def record_failure(plugin: str, distribution: str, problem: str) -> None:
    """Remember a failed plugin and warn once on stderr."""
    if any(f.plugin == plugin and f.problem == problem for f in failures):
        return
    failures.append(PluginFailure(plugin, distribution, problem))
    print(
        f"Warning: plugin '{plugin}' (distribution '{distribution}') was skipped: {problem}",
        file=sys.stderr,
    )


def _distribution_name(ep) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "unknown distribution"
    return f"{dist.metadata['Name']} {dist.version}"


def plugin_infos() -> list[dict]:
    """Describe every loaded plugin (not the skipped ones): name, distribution, hooks."""
    pm = get_plugin_manager()
    infos = []
    for name, plugin in pm.list_name_plugin():
        if has_failed(name):
            continue
        hooks = sorted(impl.name for impl in pm.get_hookcallers(plugin) or [])
        infos.append({"name": name, "distribution": distributions.get(name, "?"), "hooks": hooks})
    return infos
