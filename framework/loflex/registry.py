"""Component tables built from the plugin hooks, and construction from config.

Tables are rebuilt on every lookup (as in ``llm``), so a plugin registered
inside a test is seen at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic

from loflex import plugins
from loflex.errors import ConfigError, PluginError, UnknownComponentError

T = TypeVar("T")
NAME_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Registration:
    """One registered class and the plugin that registered it."""

    cls: type
    plugin: str
    distribution: str


def _kinds() -> dict[type, tuple[str, str]]:
    from loflex.domain import Domain
    from loflex.generator import Generator
    from loflex.order import OrderDynamics

    return {
        Generator: ("register_generators", "generator"),
        OrderDynamics: ("register_order_dynamics", "order dynamics"),
        Domain: ("register_domains", "domain"),
    }


def kind_of(base: type) -> str:
    """Return the human name of a component base class ("generator", ...)."""
    return _kinds()[base][1]


def registrations(base: type) -> dict[str, Registration]:
    """Collect every class registered for ``base`` through its hook.

    Raises:
        PluginError: a registered class is not a subclass of ``base``, has no valid
            ``name``, or its name is already taken by another plugin.
    """
    hook_name, kind = _kinds()[base]
    pm = plugins.get_plugin_manager()
    table: dict[str, Registration] = {}
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        plugin = impl.plugin_name
        dist = plugins.distributions.get(plugin, "unknown distribution")

        def register(cls: type, _plugin: str = plugin, _dist: str = dist) -> None:
            _check_class(cls, base, kind, hook_name, _plugin)
            if cls.name in table:
                other = table[cls.name]
                raise PluginError(
                    f"{kind} name '{cls.name}' is registered twice: by plugin '{other.plugin}' "
                    f"({other.cls.__module__}.{other.cls.__qualname__}) and by plugin "
                    f"'{_plugin}' ({cls.__module__}.{cls.__qualname__}); rename one of them"
                )
            table[cls.name] = Registration(cls, _plugin, _dist)

        kwargs = {"register": register} if "register" in impl.argnames else {}
        try:
            impl.function(**kwargs)
        except PluginError:
            raise
        except Exception as exc:  # one broken plugin must not hide the others
            plugins.record_failure(plugin, dist, f"hook {hook_name} raised {type(exc).__name__}: {exc}")
    return table


def _check_class(cls: Any, base: type, kind: str, hook: str, plugin: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise PluginError(
            f"plugin '{plugin}' registered {cls!r} through {hook}, but it is not a subclass of "
            f"loflex.{base.__name__}; register a {base.__name__} subclass"
        )
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise PluginError(
            f"plugin '{plugin}' registered {cls.__qualname__} with name {name!r}; "
            "give the class a lower-kebab-case `name` such as 'my-order'"
        )


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
        raise options_error(f"{kind_of(base)} '{name}'", exc) from None


def options_error(what: str, exc: pydantic.ValidationError) -> ConfigError:
    """Turn a pydantic error into a ConfigError naming ``what`` and each bad field."""
    lines = [format_error(err) for err in exc.errors()]
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
