"""Write docs/reference.md, the reference of ``loflex.contracts``, from its docstrings.

Every public name of the package is listed under the module that defines it, in source
order: a class with its constructor signature and docstring, then each member it defines
itself (methods, properties, class attributes) with its signature and docstring; the
functions and constants follow. Only the standard library's ``inspect`` reads the code.

Usage::

    python docs/scripts/api_reference.py           # rewrite docs/reference.md
    python docs/scripts/api_reference.py --check   # exit 1 when the page is out of date
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import sys
import typing
from pathlib import Path

PACKAGE = "loflex.contracts"
PAGE = Path(__file__).resolve().parents[1] / "reference.md"
COMMAND = "python docs/scripts/api_reference.py"
SHOWN_DUNDERS = ("__call__",)
MODULE_ORDER = ("options", "examples", "domain", "generator", "order")

HEADER = f"""# Contracts reference

The base classes, data classes and protocols of `{PACKAGE}`, the leaf package every
plugin builds on ([concepts.md](concepts.md) explains how they fit together,
[writing-plugins.md](writing-plugins.md) walks through a plugin). Every name here is also
importable from `loflex`.

This page is generated from the docstrings by `docs/scripts/api_reference.py`; do not
edit it by hand: run `{COMMAND}` after changing a docstring
(`tests/test_docs.py` fails when the page is out of date).
"""


def public_names(package) -> list[str]:
    """Return the names the package exports (its ``__all__``)."""
    return list(package.__all__)


def source_line(obj) -> int:
    """Return the line ``obj`` is defined on (0 for objects without source)."""
    try:
        return inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        return 0


def by_module(package) -> dict[str, list[tuple[str, object]]]:
    """Group the exported objects by the submodule that defines them, in source order.

    Constants (objects without a ``__module__`` of their own) go to the submodule that
    binds them.
    """
    groups: dict[str, list[tuple[str, object]]] = {}
    for name in public_names(package):
        obj = getattr(package, name)
        module = getattr(obj, "__module__", None) if callable(obj) else defining_module(package, name)
        groups.setdefault(module, []).append((name, obj))
    for members in groups.values():
        members.sort(key=lambda item: (not callable(item[1]), source_line(item[1]), item[0]))
    return dict(sorted(groups.items(), key=lambda item: module_rank(item[0])))


def module_rank(module_name: str) -> tuple[int, str]:
    """Sort key of a submodule: the reading order of ``MODULE_ORDER``, then by name."""
    short = module_name.rsplit(".", 1)[-1]
    rank = MODULE_ORDER.index(short) if short in MODULE_ORDER else len(MODULE_ORDER)
    return rank, module_name


def defining_module(package, name: str) -> str:
    """Return the submodule of ``package`` whose source assigns the constant ``name``."""
    assignment = re.compile(rf"^{re.escape(name)}\s*[:=]", re.M)
    for module_name in sorted(sys.modules):
        module = sys.modules[module_name]
        if module_name.startswith(f"{package.__name__}.") and assignment.search(
                inspect.getsource(module)):
            return module_name
    return package.__name__


def docstring(obj) -> str:
    """Return the cleaned docstring of ``obj`` as a fenced block (empty when there is none)."""
    text = inspect.getdoc(obj) if obj is not None else None
    if not text:
        return ""
    return f"```text\n{text}\n```\n"


def is_protocol(cls: type) -> bool:
    """Whether ``cls`` is a ``typing.Protocol`` class."""
    return typing.Protocol in cls.__mro__


def class_signature(cls: type) -> str:
    """Return ``(params)`` of the constructor of ``cls`` ('' for protocols)."""
    if is_protocol(cls):
        return ""
    try:
        return plain(inspect.signature(cls), returns=False)
    except (TypeError, ValueError):
        return ""


class Plain:
    """An annotation written as its source text (``str`` rather than ``'str'``)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def plain(signature: inspect.Signature, drop_first: bool = False, returns: bool = True) -> str:
    """Return ``signature`` as text with string annotations unquoted.

    ``drop_first`` leaves out ``self`` or ``cls``; ``returns=False`` the return annotation.
    """
    parameters = list(signature.parameters.values())[1 if drop_first else 0:]
    parameters = [p.replace(annotation=unquoted(p.annotation)) for p in parameters]
    returns = unquoted(signature.return_annotation) if returns else inspect.Signature.empty
    return str(signature.replace(parameters=parameters, return_annotation=returns))


def unquoted(annotation):
    """Return a string annotation as :class:`Plain`, anything else unchanged."""
    return Plain(annotation) if isinstance(annotation, str) else annotation


def bound_signature(function) -> str:
    """Return the signature of a method without its ``self`` or ``cls``."""
    return plain(inspect.signature(function), drop_first=True)


def member_entries(cls: type) -> list[tuple[str, str, object]]:
    """Return ``(kind, rendered signature, documented object)`` of the members ``cls`` defines."""
    entries = []
    abstract = getattr(cls, "__abstractmethods__", frozenset())
    for name, value in vars(cls).items():
        if name.startswith("_") and name not in SHOWN_DUNDERS:
            continue
        entry = member_entry(name, value)
        if entry is not None:
            kind, rendered, documented = entry
            kind = f"abstract {kind}" if name in abstract else kind
            entries.append((kind, rendered, documented))
    return entries


def member_entry(name: str, value) -> tuple[str, str, object] | None:
    """Return ``(kind, signature, object)`` for one class member, None for data."""
    if isinstance(value, property):
        returns = inspect.signature(value.fget).return_annotation
        shown = "" if returns is inspect.Signature.empty else f" -> {returns}"
        return "property", f"{name}{shown}", value
    if isinstance(value, classmethod):
        return "classmethod", f"{name}{bound_signature(value.__func__)}", value.__func__
    if isinstance(value, staticmethod):
        return "staticmethod", f"{name}{plain(inspect.signature(value.__func__))}", value.__func__
    if inspect.isfunction(value):
        return "method", f"{name}{bound_signature(value)}", value
    return None


def attribute_lines(cls: type) -> list[str]:
    """Return one Markdown list line per annotated attribute ``cls`` declares itself."""
    fields = getattr(cls, "model_fields", {})
    lines = []
    for name, annotation in vars(cls).get("__annotations__", {}).items():
        if name.startswith("_"):
            continue
        described = getattr(fields.get(name), "description", None)
        default = vars(cls).get(name, inspect.Parameter.empty)
        shown = f" = {short_value(default)}" if is_plain_default(default) else ""
        lines.append(f"- `{name}: {annotation}{shown}`" + (f": {described}" if described else ""))
    return lines


def is_plain_default(value) -> bool:
    """Whether a class attribute's value is worth showing (a number, string, bool or None)."""
    return value is None or isinstance(value, (bool, int, float, str))


def short_value(value) -> str:
    """Return ``repr(value)`` with classes written by name."""
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, dict):
        items = ", ".join(f"{short_value(k)}: {short_value(v)}" for k, v in value.items())
        return "{" + items + "}"
    if isinstance(value, tuple):
        return "(" + ", ".join(short_value(v) for v in value) + ")"
    return repr(value)


def render_class(name: str, cls: type) -> str:
    """Return the Markdown section of one class."""
    kind = "protocol" if is_protocol(cls) else "class"
    bases = ", ".join(base.__name__ for base in cls.__bases__ if base is not object)
    parts = [f"### {kind} `{name}{class_signature(cls)}`\n", f"Bases: `{bases}`\n" if bases else ""]
    parts.append(docstring(cls))
    attributes = attribute_lines(cls)
    if attributes:
        parts.append("Declared attributes:\n\n" + "\n".join(attributes) + "\n")
    for kind_of_member, rendered, documented in member_entries(cls):
        parts.append(f"#### {kind_of_member} `{name}.{rendered}`\n")
        parts.append(docstring(documented))
    return "\n".join(part for part in parts if part)


def render_function(name: str, function) -> str:
    """Return the Markdown section of one module-level function."""
    return f"### function `{name}{plain(inspect.signature(function))}`\n\n{docstring(function)}"


def render_constant(name: str, value) -> str:
    """Return the Markdown section of one module-level constant."""
    return f"### constant `{name}`\n\n`{name} = {short_value(value)}`\n"


def render_object(name: str, obj) -> str:
    """Return the Markdown section of one exported object."""
    if inspect.isclass(obj):
        return render_class(name, obj)
    if inspect.isfunction(obj):
        return render_function(name, obj)
    return render_constant(name, obj)


def render_module(module_name: str, members: list[tuple[str, object]]) -> str:
    """Return the Markdown section of one submodule: its docstring, then its names."""
    module = importlib.import_module(module_name)
    parts = [f"## `{module_name}`\n", docstring(module)]
    parts += [render_object(name, obj) for name, obj in members]
    return "\n".join(part for part in parts if part)


def render() -> str:
    """Return the whole reference page."""
    package = importlib.import_module(PACKAGE)
    sections = [render_module(name, members) for name, members in by_module(package).items()]
    return HEADER + "\n" + "\n".join(sections)


def main(argv: list[str] | None = None) -> int:
    """Write the page, or with ``--check`` report whether it is up to date (exit 1 if not)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Compare instead of writing.")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if current != text:
            print(f"{PAGE} is out of date; run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
