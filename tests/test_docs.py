"""Every hook is documented by its exact signature; docs link only to files that exist."""

from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path

import loflex.contracts
from loflex.extension import hookspecs

DOCS = Path(__file__).resolve().parents[1] / "docs"


def hook_functions():
    return {name: fn for name, fn in vars(hookspecs).items()
            if name.startswith("register_") and callable(fn)}


def test_every_hook_has_a_section_headed_by_its_signature():
    text = (DOCS / "plugin-hooks.md").read_text()
    headings = set(re.findall(r"^## (.+)$", text, flags=re.M))
    for name, fn in hook_functions().items():
        params = ", ".join(inspect.signature(fn).parameters)
        assert f"{name}({params})" in headings, f"docs/plugin-hooks.md lacks '## {name}({params})'"


def test_no_documented_hook_is_missing_from_the_code():
    text = (DOCS / "plugin-hooks.md").read_text()
    documented = set(re.findall(r"^## (register_\w+)\(", text, flags=re.M))
    assert documented == set(hook_functions())


def test_relative_links_in_docs_resolve():
    for page in list(DOCS.glob("*.md")) + [DOCS.parent / "README.md"]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_tutorial_code_is_the_example_plugins_code():
    text = (DOCS / "writing-plugins.md").read_text()
    source = (DOCS / "example-plugin" / "loflex_reverse_order" / "__init__.py").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    component = [b for b in blocks if "class RightToLeft" in b]
    assert component and component[0] in source, "writing-plugins.md drifted from example-plugin"


def test_the_module_map_of_concepts_names_every_module():
    """Every module and package at its path now, and every former path kept for one release."""
    text = (DOCS / "concepts.md").read_text()
    root = DOCS.parent / "framework"
    modules = []
    for path in (root / "loflex").rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules.append(".".join(parts))
    missing = sorted(m for m in modules if m != "loflex" and not re.search(rf"`{re.escape(m)}\b", text))
    assert not missing, f"docs/concepts.md's module map lacks {missing}"


def bad_method_citations(text: str, in_code: bool) -> list[str]:
    """Citations of method.md that do not point at docs/method.md (with a section)."""
    good = r"docs/method\.md §\d" if in_code else r"(docs/)?method\.md( §\d|\]|\)|#)"
    return [m for m in re.findall(r"[\w/]*method\.md[^\n]{0,3}", text) if not re.match(good, m)]


def test_docs_cite_the_method_page_in_the_repository():
    """Docstrings and pages cite docs/method.md §N, never a method.md outside the repo."""
    root = DOCS.parent
    code = list((root / "framework").rglob("*.py")) + list((root / "plugins").rglob("*.py"))
    bad = [f"{path.name}: {m}" for path in code for m in bad_method_citations(path.read_text(), True)]
    bad += [f"{path.name}: {m}" for path in DOCS.glob("*.md")
            for m in bad_method_citations(path.read_text(), False)]
    assert not bad, bad
    assert bad_method_citations("(method.md 2.1)", True) == ["method.md 2."]
    assert bad_method_citations("see (method.md 2.1)", False) == ["method.md 2."]


def api_reference_script():
    """Import docs/scripts/api_reference.py (not a package) by its path."""
    path = DOCS / "scripts" / "api_reference.py"
    spec = importlib.util.spec_from_file_location("api_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_contracts_reference_is_generated_from_the_docstrings():
    script = api_reference_script()
    expected = script.render()
    current = (DOCS / "reference.md").read_text(encoding="utf-8")
    assert current == expected, ("docs/reference.md differs from the contracts' docstrings; run "
                                 f"`{script.COMMAND}` and commit docs/reference.md")


def test_the_contracts_reference_covers_every_public_name_and_is_linked():
    text = (DOCS / "reference.md").read_text(encoding="utf-8")
    missing = [name for name in loflex.contracts.__all__ if f"`{name}" not in text]
    assert not missing, f"docs/reference.md lacks {missing}"
    for page in ("concepts.md", "writing-plugins.md"):
        assert "(reference.md)" in (DOCS / page).read_text(), f"docs/{page} does not link it"
