"""Install an example package from docs/ into the running environment, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def pip_install(folder: Path) -> None:
    """``pip install -e folder`` (no deps, no build isolation: works offline)."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "-e", str(folder)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"pip install -e {folder} failed:\n{result.stderr[-2000:]}")


def loflex(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the installed ``loflex`` script in a subprocess (the real entry-point path)."""
    full_env = {k: v for k, v in os.environ.items() if k != "LOFLEX_LOAD_PLUGINS"}
    full_env.update(env or {})
    return subprocess.run([str(BIN / "loflex"), *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)
