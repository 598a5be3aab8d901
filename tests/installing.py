"""Install an example package from docs/ as a user would, into a throwaway folder.

The package is copied and installed with ``pip install --target`` into a temporary
folder that is removed when the test session ends; the running environment is never
touched, so no test depends on another having installed something. :func:`loflex` runs
the real ``loflex`` script with that folder on ``PYTHONPATH``, so the package's entry
points are found the way an installed plugin's are.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
INSTALLED: dict[Path, Path] = {}
BUILD_LEFTOVERS = shutil.ignore_patterns("*.egg-info", "build", "__pycache__", ".pytest_cache")


def pip_install(folder: Path) -> Path:
    """Install a copy of ``folder`` into a throwaway target folder (once per session).

    No dependencies and no build isolation, so it works offline. Returns the target.
    """
    folder = Path(folder).resolve()
    if folder in INSTALLED:
        return INSTALLED[folder]
    root = Path(tempfile.mkdtemp(prefix="loflex-install-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    source, target = root / "source", root / "site"
    shutil.copytree(folder, source, ignore=BUILD_LEFTOVERS)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"pip install --target of {folder} failed:\n{result.stderr[-2000:]}")
    INSTALLED[folder] = target
    return target


def environment(env: dict | None = None) -> dict[str, str]:
    """The environment of a subprocess that sees the installed packages, and nothing else.

    ``LOFLEX_LOAD_PLUGINS`` is dropped unless ``env`` sets it.
    """
    full_env = {k: v for k, v in os.environ.items() if k != "LOFLEX_LOAD_PLUGINS"}
    paths = [str(target) for target in INSTALLED.values()]
    if full_env.get("PYTHONPATH"):
        paths.append(full_env["PYTHONPATH"])
    full_env["PYTHONPATH"] = os.pathsep.join(paths)
    full_env.update(env or {})
    return full_env


def loflex(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real ``loflex`` script in a subprocess that sees the installed packages."""
    return subprocess.run([str(BIN / "loflex"), *args], capture_output=True, text=True,
                          env=environment(env), timeout=timeout)


def run_tests(folder: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a package's own tests (``folder``/tests) against its installed copy."""
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(Path(folder) / "tests")], capture_output=True, text=True,
                          env=environment(env), cwd=folder, timeout=900)


MARKED_BLOCK = re.compile(r"<!-- file: (\S+) -->\n```[a-z]*\n(.*?)```", re.S)


def assert_tutorial_shows_package(tutorial: Path, package: Path, expected: set[str]) -> None:
    """Every code block of ``tutorial`` marked ``<!-- file: PATH -->`` equals ``package/PATH``,
    and the marked blocks include every path of ``expected``."""
    blocks = MARKED_BLOCK.findall(tutorial.read_text(encoding="utf-8"))
    shown = {name for name, _ in blocks}
    assert expected <= shown, f"{tutorial.name} does not show {sorted(expected - shown)}"
    for name, code in blocks:
        assert code == (package / name).read_text(encoding="utf-8"), (
            f"docs/{tutorial.name} shows an outdated copy of {name}; paste the file again"
        )
