from __future__ import annotations

import importlib.metadata
import sys
import types

import loflex
import pytest
import torch
from loflex import Domain, Generator, OrderDynamics, PluginError, TokenRates, UnknownComponentError
from loflex.diffusion.order import KumaraswamyOrder
from loflex.extension import plugins, registry
from loflex.extension.hookspecs import hookimpl
from loflex.extension.testing import ToyDomain, registered


def fake_entry_point(name: str, module: types.ModuleType) -> importlib.metadata.EntryPoint:
    """An entry point whose module lives only in sys.modules (no install needed)."""
    sys.modules[module.__name__] = module
    return importlib.metadata.EntryPoint(name=name, value=module.__name__, group="loflex")


def module_with(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(mod, key, value)
    return mod


class Reverse(KumaraswamyOrder):
    """A test order."""

    name = "test-reverse"

    def forward(self, batch, t):
        ones = torch.ones(batch.x_1.shape)
        return TokenRates(b_in=ones, b_um=ones)


def plugin_module(name: str) -> types.ModuleType:
    def register_order_dynamics(register):
        register(Reverse)

    return module_with(name, register_order_dynamics=hookimpl(register_order_dynamics))


def test_builtins_register_through_hooks():
    assert "transformer" in registry.components(Generator)
    names = [info["name"] for info in plugins.plugin_infos()]
    assert all(name.startswith("loflex.default_plugins") for name in names)


def test_entry_point_discovery_with_fake_distribution(monkeypatch):
    monkeypatch.delenv("LOFLEX_LOAD_PLUGINS")
    pm = plugins.get_plugin_manager()
    plugins.load_entry_points(pm, [fake_entry_point("fake", plugin_module("fake_plugin_a"))])
    assert registry.get(OrderDynamics, "test-reverse") is Reverse
    assert registry.owner(OrderDynamics, "test-reverse").plugin == "fake"


def test_env_filter_loads_only_named(monkeypatch):
    pm = plugins.get_plugin_manager()
    eps = [fake_entry_point("one", plugin_module("fake_plugin_one")),
           fake_entry_point("two", module_with("fake_plugin_two"))]
    monkeypatch.setenv("LOFLEX_LOAD_PLUGINS", "two")
    plugins.load_entry_points(pm, eps)
    assert pm.has_plugin("two") and not pm.has_plugin("one")
    monkeypatch.setenv("LOFLEX_LOAD_PLUGINS", "")
    plugins.reset()
    pm = plugins.get_plugin_manager()
    plugins.load_entry_points(pm, eps)
    assert not pm.has_plugin("one") and not pm.has_plugin("two")


def test_duplicate_name_skips_the_later_plugin_and_names_both(capsys):
    with registered(plugin_module("dup_a"), name="first"):
        with registered(plugin_module("dup_b"), name="second", check=False):
            assert registry.owner(OrderDynamics, "test-reverse").plugin == "first"
            failed = {f.plugin: f.problem for f in plugins.failures}
    assert set(failed) == {"second"}
    assert "'test-reverse'" in failed["second"] and "'first'" in failed["second"]
    assert "plugin 'second'" in capsys.readouterr().err


def test_duplicate_name_raises_in_a_checked_test_registration():
    with registered(plugin_module("dup_c"), name="first"):
        with pytest.raises(PluginError, match="plugin 'second'.*'test-reverse'.*'first'"):
            with registered(plugin_module("dup_d"), name="second"):
                pass


def test_misspelled_hook_fails_loudly():
    bad = module_with("misspelled", register_domain=hookimpl(lambda register: None))
    with pytest.raises(PluginError, match="register_domain"):
        with registered(bad, name="typo"):
            pass
    assert not plugins.get_plugin_manager().has_plugin("typo")


def test_non_subclass_registration_names_the_class():
    class NotADomain:
        name = "nope"

    mod = module_with("wrong", register_domains=hookimpl(lambda register: register(NotADomain)))
    with pytest.raises(PluginError, match="NotADomain.*not a subclass of loflex.Domain"):
        with registered(mod, name="wrong"):
            pass


def test_bad_component_name_is_rejected():
    class Bad(ToyDomain):
        name = "Bad_Name"

    mod = module_with("badname", register_domains=hookimpl(lambda register: register(Bad)))
    with pytest.raises(PluginError, match="lower-kebab"):
        with registered(mod, name="badname"):
            pass


def test_a_misnamed_component_skips_only_its_plugin(capsys):
    class HalfOrder(Reverse):
        name = "Half_Order"

    def register_order_dynamics(register):
        register(HalfOrder)

    def register_domains(register):
        register(ToyDomain)

    mod = module_with("half", register_order_dynamics=hookimpl(register_order_dynamics),
                      register_domains=hookimpl(register_domains))
    with registered(mod, name="half", check=False):
        assert "uniform" in registry.components(OrderDynamics)
        assert "toy" not in registry.components(Domain), "a skipped plugin lists nothing"
        assert [f.plugin for f in plugins.failures] == ["half"]
    err = capsys.readouterr().err
    assert "plugin 'half' (distribution 'test') was skipped" in err and "Half_Order" in err


def test_an_abstract_component_is_refused_naming_the_missing_members():
    class NoForward(KumaraswamyOrder):
        name = "no-forward"

    mod = module_with("abstract", register_order_dynamics=hookimpl(
        lambda register: register(NoForward)))
    with pytest.raises(PluginError, match="abstract members unimplemented: forward"):
        with registered(mod, name="abstract"):
            pass


def test_an_option_without_description_is_refused():
    class Terse(Reverse):
        name = "terse"

        class Options(loflex.Options):
            speed: float = 1.0

    mod = module_with("terse", register_order_dynamics=hookimpl(lambda register: register(Terse)))
    with pytest.raises(PluginError, match="options speed have no description"):
        with registered(mod, name="terse"):
            pass


def test_import_failure_names_plugin_and_others_keep_working(monkeypatch, capsys):
    monkeypatch.delenv("LOFLEX_LOAD_PLUGINS")
    broken = importlib.metadata.EntryPoint(name="broken", value="no_such_module_xyz",
                                           group="loflex")
    good = fake_entry_point("good", plugin_module("fake_plugin_good"))
    plugins.load_entry_points(plugins.get_plugin_manager(), [broken, good])
    assert "broken" in capsys.readouterr().err
    failed = {f.plugin: f for f in plugins.failures}
    assert "broken" in failed and "good" not in failed
    assert "no_such_module_xyz" in failed["broken"].problem
    assert registry.get(OrderDynamics, "test-reverse") is Reverse


def test_hook_that_raises_is_skipped_and_reported(capsys):
    def register_domains(register):
        raise RuntimeError("boom")

    def register_order_dynamics(register):
        register(Reverse)

    raiser = module_with("raiser", register_domains=hookimpl(register_domains),
                         register_order_dynamics=hookimpl(register_order_dynamics))
    with registered(raiser, name="raiser", check=False):
        table = registry.components(Domain)
        assert "sequences" in table
        assert "test-reverse" not in registry.components(OrderDynamics), \
            "a plugin whose hook raised lists none of its components"
        with pytest.raises(UnknownComponentError, match="failed to load: raiser"):
            registry.get(Domain, "missing")
    assert "boom" in capsys.readouterr().err


def test_unknown_component_lists_registered_names():
    with pytest.raises(UnknownComponentError) as err:
        registry.get(OrderDynamics, "kumaraswammy")
    message = str(err.value)
    assert "unknown order dynamics 'kumaraswammy'" in message
    assert "kumaraswamy" in message and "uniform" in message


def test_plugin_registered_in_test_is_seen_at_once(toy):
    assert registry.get(Domain, "toy") is ToyDomain
