"""Every hook is documented by its exact signature; docs link only to files that exist."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from loflex import hookspecs

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
