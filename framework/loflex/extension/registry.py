"""Component tables built from the plugin hooks, and construction from config.

Tables are rebuilt on every lookup (as in ``llm``), so a plugin registered
inside a test is seen at once.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic

from loflex.contracts import Domain, Generator, OrderDynamics, undocumented_options
from loflex.errors import ConfigError, PluginError, UnknownComponentError
from loflex.extension import plugins

T = TypeVar("T")
NAME_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
KINDS: dict[type, tuple[str, str]] = {
    Generator: ("register_generators", "generator"),
    OrderDynamics: ("register_order_dynamics", "order dynamics"),
    Domain: ("register_domains", "domain"),
}


@dataclass(frozen=True)
class Registration:
    """One registered class and the plugin that registered it."""

    cls: type
    plugin: str
    distribution: str


def kind_of(base: type) -> str:
    """Return the human name of a component base class ("generator", ...)."""
    return KINDS[base][1]


def registrations(base: type) -> dict[str, Registration]:
    """Collect every class registered for ``base`` through its hook.

    Every component hook of every plugin runs on each call (tables are never cached). A
    plugin whose hook raises or registers something invalid (not a subclass of the base,
    abstract members left, a bad name, an option without a description, a name another
    plugin took first) is skipped as a whole: recorded in ``loflex.extension.plugins.failures``
    with a warning naming it and its distribution, and none of its components listed.
    """
    return _tables()[base]


def _tables() -> dict[type, dict[str, Registration]]:
    """Build the three component tables, leaving out every plugin that fails."""
    offered = _offered()
    tables: dict[type, dict[str, Registration]] = {base: {} for base in KINDS}
    for plugin, (dist, classes) in offered.items():
        if plugins.has_failed(plugin):
            continue
        problem = _first_clash(tables, plugin, classes)
        if problem is not None:
            plugins.record_failure(plugin, dist, problem)
            continue
        for base, cls in classes:
            tables[base][cls.name] = Registration(cls, plugin, dist)
    return tables


def _offered() -> dict[str, tuple[str, list[tuple[type, type]]]]:
    """Run every component hook; return plugin -> (distribution, [(base, class), ...]).

    A plugin whose hook raises or registers an invalid class is recorded as failed.
    """
    pm = plugins.get_plugin_manager()
    offered: dict[str, tuple[str, list[tuple[type, type]]]] = {}
    for base, (hook_name, _) in KINDS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():  # registration order
            plugin = impl.plugin_name
            dist = plugins.distributions.get(plugin, "unknown distribution")
            classes = offered.setdefault(plugin, (dist, []))[1]
            if plugins.has_failed(plugin):
                continue
            try:
                classes.extend((base, cls) for cls in hook_classes(impl, base))
            except PluginError as exc:
                plugins.record_failure(plugin, dist, exc.message)
            except Exception as exc:  # one broken plugin must not hide the others
                plugins.record_failure(
                    plugin, dist, f"hook {hook_name} raised {type(exc).__name__}: {exc}")
    return offered


def hook_classes(impl, base: type) -> list[type]:
    """Call one hook implementation and return the classes it registered, each checked.

    Raises:
        PluginError: a registered class breaks the rules (names the plugin and the fix).
    """
    hook_name, kind = KINDS[base]
    found: list[type] = []

    def register(cls: type) -> None:
        check_class(cls, base, kind, hook_name)
        found.append(cls)

    kwargs = {"register": register} if "register" in impl.argnames else {}
    impl.function(**kwargs)
    return found


def _first_clash(tables, plugin: str, classes: list[tuple[type, type]]) -> str | None:
    """Return why ``plugin``'s classes cannot join ``tables`` (a name taken), or None."""
    seen: dict[tuple[type, str], type] = {}
    for base, cls in classes:
        kind = kind_of(base)
        here = f"{cls.__module__}.{cls.__qualname__}"
        if cls.name in tables[base]:
            other = tables[base][cls.name]
            return (f"{kind} name '{cls.name}' ({here}) is already registered by plugin "
                    f"'{other.plugin}' ({other.cls.__module__}.{other.cls.__qualname__}); "
                    "rename one of them")
        if (base, cls.name) in seen:
            return f"{kind} name '{cls.name}' is registered twice by this plugin; rename one"
        seen[(base, cls.name)] = cls
    return None


def check_class(cls: Any, base: type, kind: str, hook: str) -> None:
    """Raise PluginError unless ``cls`` may be registered as a ``kind`` through ``hook``.

    It must subclass ``base``, implement every abstract member, have a lower-kebab
    ``name`` and describe every option.
    """
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise PluginError(
            f"it registered {cls!r} through {hook}, but that is not a subclass of "
            f"loflex.{base.__name__}; register a {base.__name__} subclass"
        )
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise PluginError(
            f"it registered {cls.__qualname__} with name {name!r}; "
            "give the class a lower-kebab-case `name` such as 'my-order'"
        )
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise PluginError(f"it registered {kind} '{name}' ({cls.__qualname__}), which "
                          "leaves abstract members "
                          f"unimplemented: {missing}; implement them")
    undocumented = undocumented_options(cls.Options)
    if undocumented:
        raise PluginError(f"it registered {kind} '{name}' whose options "
                          f"{', '.join(undocumented)} have no description; give every option "
                          "Field(..., description=\"...\")")


def check_plugin(plugin: str) -> None:
    """Build the component tables and raise if ``plugin`` was skipped.

    For tests (``loflex.extension.testing.registered``): a plugin author sees the error itself
    instead of a warning and a missing component.

    Raises:
        PluginError: the plugin's hook raised or registered something invalid.
    """
    _tables()
    for failure in plugins.failures:
        if failure.plugin == plugin:
            raise PluginError(f"plugin '{plugin}' was skipped: {failure.problem}")


def components(base: type[T]) -> dict[str, type[T]]:
    """Return ``{name: class}`` for every registered component of ``base``."""
    return {name: reg.cls for name, reg in registrations(base).items()}


def get(base: type[T], name: str) -> type[T]:
    """Return the class registered as ``name`` for ``base``.

    Raises:
        UnknownComponentError: no plugin registered that name; lists the known ones.
    """
    table = components(base)
    if name in table:
        return table[name]
    kind = kind_of(base)
    known = ", ".join(sorted(table)) or "none"
    hint = ""
    if plugins.failures:
        hint = "; plugins that failed to load: " + ", ".join(
            f"{f.plugin} ({f.distribution}: {f.problem})" for f in plugins.failures)
    raise UnknownComponentError(
        f"unknown {kind} '{name}'; registered: {known}{hint}. "
        "Install the plugin that provides it or pick a registered name"
    )


def validate_options(base: type, name: str, options: dict[str, Any] | pydantic.BaseModel | None):
    """Validate ``options`` against the component's ``Options`` model.

    Raises:
        UnknownComponentError: ``name`` is not registered.
        ConfigError: the options are invalid; one detail line per invalid field.
    """
    cls = get(base, name)
    if isinstance(options, cls.Options):
        return options
    if isinstance(options, pydantic.BaseModel):
        options = options.model_dump()
    try:
        return cls.Options.model_validate(options or {})
    except pydantic.ValidationError as exc:
        raise options_error(f"{kind_of(base)} '{name}'", exc, cls.Options) from None


def options_error(what: str, exc: pydantic.ValidationError,
                  model: type[pydantic.BaseModel] | None = None) -> ConfigError:
    """Turn a pydantic error into a ConfigError naming ``what`` and each bad field.

    With ``model``, an unknown option's line also lists the valid ones.
    """
    lines = [format_error(err) for err in exc.errors()]
    if model is not None:
        lines = [line + f"; the options are {', '.join(model.model_fields) or 'none'}"
                 if err["type"] == "extra_forbidden" else line
                 for line, err in zip(lines, exc.errors())]
    if len(lines) == 1:
        return ConfigError(f"{what} has invalid options: {lines[0]}")
    return ConfigError(f"{what} has invalid options:", details=lines)


def format_error(err: dict) -> str:
    """Render one pydantic error as ``field.path: message``."""
    loc = ".".join(str(part) for part in err["loc"]) or "(root)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown option (remove it or check its spelling)"
    elif err["type"] == "value_error":
        msg = msg.removeprefix("Value error, ")
    return f"{loc}: {msg}"


def build(base: type[T], spec: Any, **deps: Any) -> T:
    """Construct the component named by ``spec`` with validated options.

    Args:
        base: Generator, OrderDynamics or Domain.
        spec: a :class:`loflex.config.ComponentSpec` or a ``{"name", "options"}`` dict.
        **deps: collaborators passed to the constructor (e.g. ``vocab_size``).
    """
    name, options = _name_and_options(spec)
    cls = get(base, name)
    return cls(validate_options(base, name, options), **deps)


def validate_components(run: Any) -> None:
    """Check the components of a validated run and normalise their options in place.

    Every component's name must be registered and its options valid (they are replaced by
    their full form, defaults included); an order that reads an order hint needs a domain
    that provides one.

    Raises:
        UnknownComponentError: a name is not registered (lists the registered ones).
        ConfigError: invalid options, or an order and a domain that do not fit together.
    """
    for base, spec in ((Domain, run.domain), (OrderDynamics, run.order),
                       (Generator, run.generator)):
        spec.options = validate_options(base, spec.name, spec.options).model_dump()
    check_order_hint(get(OrderDynamics, run.order.name), get(Domain, run.domain.name))


def check_order_hint(order_cls: type, domain_cls: type) -> None:
    """Raise ConfigError when the order reads an order hint the domain does not provide."""
    if order_cls.needs_order_hint and not domain_cls.provides_order_hint:
        with_hint = sorted(name for name, cls in components(Domain).items()
                           if cls.provides_order_hint)
        raise ConfigError(
            f"order '{order_cls.name}' reads a per-token order hint, which domain "
            f"'{domain_cls.name}' does not provide; pick a domain that does "
            f"({', '.join(with_hint) or 'none installed'}) or another order"
        )


def owner(base: type, name: str) -> Registration:
    """Return the registration (class, plugin, distribution) of a component."""
    table = registrations(base)
    if name not in table:
        get(base, name)  # raises UnknownComponentError listing the registered names
    return table[name]


def _name_and_options(spec: Any) -> tuple[str, Any]:
    if isinstance(spec, dict):
        return spec["name"], spec.get("options", {})
    return spec.name, spec.options
