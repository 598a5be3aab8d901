"""Built wheels carry the pretrained models: ``pretrained/**`` is package data.

Each package is copied to a temporary folder (building leaves ``build/`` and
``*.egg-info`` behind) and built with ``pip wheel --no-deps --no-build-isolation``, which
needs no network. The plugins get a model folder packed from the checkpoint fixture; the
example domain is built as it is, with the model it ships.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from loflex.extension.pretrained import pack

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "checkpoint-v1"
MODEL_FILES = ("run.json", "state.json", "model.safetensors", "card.md", "card.json")
LEFT_BEHIND = shutil.ignore_patterns("*.egg-info", "build", "dist", "__pycache__",
                                     ".pytest_cache", "tests")


def build_wheel(source: Path, tmp_path: Path) -> zipfile.ZipFile:
    """Build the wheel of a copy of ``source``; return it opened."""
    copy = tmp_path / source.name
    shutil.copytree(source, copy, ignore=LEFT_BEHIND)
    return build_copy(copy, tmp_path)


def build_copy(copy: Path, tmp_path: Path) -> zipfile.ZipFile:
    out = tmp_path / "wheels"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(copy)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return zipfile.ZipFile(wheels[0])


def add_model(package_dir: Path, name: str) -> Path:
    """Put a packed copy of the fixture with its card into ``package_dir/pretrained``."""
    folder = pack(FIXTURE, package_dir / "pretrained" / name, dtype="fp16")
    (folder / "card.md").write_text(f"# {name}\n")
    (folder / "card.json").write_text('{"metrics": {"exact_match": 0.5}}')
    return folder


@pytest.mark.parametrize("plugin,package", [("loflex-graphs", "loflex_graphs"),
                                            ("loflex-molecules", "loflex_molecules")])
def test_plugin_wheels_carry_their_pretrained_folder(tmp_path, plugin, package):
    copy = tmp_path / plugin
    shutil.copytree(ROOT / "plugins" / plugin, copy, ignore=LEFT_BEHIND)
    name = "wheel-test-model"
    folder = add_model(copy / package, name)
    shipped = [p for p in (copy / package / "pretrained").iterdir() if p.is_dir()]
    wheel = build_copy(copy, tmp_path)
    for model in shipped:  # the added model and every model the package already ships
        for file in MODEL_FILES:
            member = f"{package}/pretrained/{model.name}/{file}"
            assert wheel.read(member) == (model / file).read_bytes(), member
    assert folder in shipped


def test_the_example_domain_wheel_carries_its_model(tmp_path):
    source = ROOT / "docs" / "example-domain"
    folder = source / "loflex_example_protein" / "pretrained" / "protein-peptides-flexmdm"
    wheel = build_wheel(source, tmp_path)
    shipped = sorted(p.name for p in folder.iterdir())
    assert shipped == sorted(MODEL_FILES)
    for file in shipped:
        member = f"loflex_example_protein/pretrained/protein-peptides-flexmdm/{file}"
        assert wheel.read(member) == (folder / file).read_bytes(), member
