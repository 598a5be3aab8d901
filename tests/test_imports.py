"""The import graph of loflex has no circle, and every module imports on its own.

The graph is read from the source with :mod:`ast`: an edge A -> B for every ``import``
of B in A, at module level or inside a function (a function-level import that dodges a
circle is still a circle). ``from loflex import x`` is an edge to the module
``loflex.x`` when it is one, else to the package ``loflex`` itself.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

FRAMEWORK = Path(__file__).resolve().parents[1] / "framework"
CONTRACTS_MAY_IMPORT = {"loflex.contracts", "loflex.errors"}


def module_files() -> dict[str, Path]:
    """Return module name -> file for every module of the loflex package."""
    modules = {}
    for path in sorted((FRAMEWORK / "loflex").rglob("*.py")):
        parts = list(path.relative_to(FRAMEWORK).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_modules(tree: ast.AST, package: str, modules: dict[str, Path]) -> set[str]:
    """Return the loflex modules a parsed module imports anywhere in its body."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                     for alias in node.names]
        else:
            continue
        found.update(_owning_module(name, modules) for name in names)
    found.discard(None)
    return found


def _owning_module(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """Return module -> the loflex modules it imports (itself excluded)."""
    modules = module_files()
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[name] = imported_modules(tree, package, modules) - {name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for child in sorted(graph.get(node, ())):
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in on_stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            component = []
            while True:
                child = stack.pop()
                on_stack.discard(child)
                component.append(child)
                if child == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


LAZY_BY_DESIGN = {
    "loflex.commands": "the CLI imports every command module when it starts; a command imports "
                       "what it runs (training, sampling, plotting) only when it runs",
}
NOT_YET_AT_MODULE_LEVEL = {"loflex.training.bench", "loflex.training.memory",
                           "loflex.inspection.report", "loflex.training.runtime",
                           "loflex.training.train"}


def function_level_imports(tree: ast.AST, package: str, modules: dict[str, Path]) -> set[str]:
    """Return the loflex modules imported inside a function body of a parsed module."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = ast.Module(body=node.body, type_ignores=[])
            found |= imported_modules(body, package, modules)
    return found


def test_function_level_imports_only_where_documented():
    """With no circle, an import inside a function is only ever a choice of when to load."""
    modules = module_files()
    offenders = {}
    for name, path in modules.items():
        if any(name == lazy or name.startswith(lazy + ".") for lazy in LAZY_BY_DESIGN):
            continue
        if name in NOT_YET_AT_MODULE_LEVEL:
            continue
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        inner = function_level_imports(ast.parse(path.read_text(encoding="utf-8")), package,
                                       modules) - {name}
        if inner:
            offenders[name] = sorted(inner)
    assert not offenders, f"move these imports to the top of the module: {offenders}"


def test_function_level_imports_are_found():
    modules = {"loflex": Path(), "loflex.a": Path(), "loflex.b": Path()}
    tree = ast.parse("from loflex import a\n\ndef f():\n    import loflex.b\n")
    assert function_level_imports(tree, "loflex", modules) == {"loflex.b"}


def test_the_circle_finder_finds_a_planted_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_graph_reads_function_level_and_relative_imports():
    modules = {"loflex": Path(), "loflex.a": Path(), "loflex.b": Path(), "loflex.c": Path()}
    tree = ast.parse("def f():\n    from loflex import b\n    from . import c\n"
                     "from loflex import __version__\n")
    assert imported_modules(tree, "loflex", modules) == {"loflex.b", "loflex.c", "loflex"}


def test_loflex_has_no_import_circle():
    found = circles(import_graph())
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_contracts_depend_on_nothing_but_leaves():
    graph = import_graph()
    for name, imports in graph.items():
        if name.startswith("loflex.contracts"):
            outside = {m for m in imports if not any(
                m == allowed or m.startswith(allowed + ".") for allowed in CONTRACTS_MAY_IMPORT)}
            assert not outside, f"{name} imports {sorted(outside)}; contracts must stay a leaf"


ISOLATED_IMPORTS = """
import json, os, sys, traceback
# third-party only: no loflex module is loaded in the parent
import matplotlib.figure, numpy, pluggy, pydantic, safetensors.torch, torch, tqdm
failed = {}
for module in sys.argv[1:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            __import__(module)
            os._exit(0)
        except BaseException:
            os.write(write, traceback.format_exc()[-1500:].encode())
            os._exit(1)
    os.close(write)
    with os.fdopen(read, "rb") as handle:
        message = handle.read().decode()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        failed[module] = message or f"exit status {status}"
print(json.dumps(failed))
"""


def test_every_module_imports_on_its_own():
    """Each module is imported in a fresh child process in which no loflex module is loaded."""
    modules = sorted(module_files())
    result = subprocess.run([sys.executable, "-c", ISOLATED_IMPORTS, *modules],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    failed = json.loads(result.stdout.strip().splitlines()[-1])
    assert not failed, "\n\n".join(f"import {name}:\n{text}" for name, text in failed.items())


def test_the_isolated_import_check_reports_a_failing_module(tmp_path):
    (tmp_path / "broken_module_for_test.py").write_text("import loflex.no_such_module\n")
    result = subprocess.run([sys.executable, "-c", ISOLATED_IMPORTS, "loflex.version",
                             "broken_module_for_test"], capture_output=True, text=True,
                            timeout=600, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    failed = json.loads(result.stdout.strip().splitlines()[-1])
    assert list(failed) == ["broken_module_for_test"]
    assert "loflex.no_such_module" in failed["broken_module_for_test"]
