"""Checkpoints written before a rename still load: ``loflex.training.checkpoint.RENAMES`` maps old
parameter-name prefixes and option keys to the new ones when a checkpoint is read.

Nothing has been renamed yet, so the table is empty; these tests rename a key of the
committed fixture ``tests/data/checkpoint-v1`` by hand, add the entry with monkeypatch
and load it through ``loflex.load``, the way every command reads a model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from loflex import load
from loflex.errors import CheckpointError, ConfigError
from loflex.training import checkpoint as ckpt
from safetensors.torch import load_file, save_file

FIXTURE = Path(__file__).resolve().parent / "data" / "checkpoint-v1"
NEW_PREFIX, OLD_PREFIX = "generator.insert_head.", "generator.length_head."


def renamed_copy(tmp_path: Path) -> Path:
    """Copy the fixture with its insertion head stored under ``OLD_PREFIX`` and two option
    keys under former names (``generator.options.width`` and ``train.grad_clip``)."""
    folder = tmp_path / "old-checkpoint"
    shutil.copytree(FIXTURE, folder)
    for name in ("model.safetensors", "ema.safetensors"):
        tensors = load_file(str(folder / name))
        save_file({key.replace(NEW_PREFIX, OLD_PREFIX): value for key, value in tensors.items()},
                  str(folder / name))
    run = json.loads((folder / "run.json").read_text())
    run["generator"]["options"]["breadth"] = run["generator"]["options"].pop("width")
    run["train"]["clip"] = run["train"].pop("grad_clip")
    (folder / "run.json").write_text(json.dumps(run))
    return folder


@pytest.fixture
def renames(monkeypatch):
    """The table entries that map the renamed copy back to today's names."""
    monkeypatch.setitem(ckpt.RENAMES["parameters"], OLD_PREFIX, NEW_PREFIX)
    monkeypatch.setitem(ckpt.RENAMES["options"], "generator.transformer.breadth",
                        "generator.transformer.width")
    monkeypatch.setitem(ckpt.RENAMES["options"], "train.clip", "train.grad_clip")


def test_nothing_is_renamed_yet_and_the_fixture_loads_unchanged(toy):
    assert ckpt.RENAMES == {"parameters": {}, "options": {}}
    saved = ckpt.load(FIXTURE)
    stored = load_file(str(FIXTURE / "model.safetensors"))
    assert saved.model.keys() == stored.keys()
    assert load(FIXTURE).run.generator.options["width"] == 16


def test_a_renamed_checkpoint_does_not_load_without_the_mapping(toy, tmp_path):
    folder = renamed_copy(tmp_path)
    with pytest.raises((CheckpointError, ConfigError)):
        load(folder)


def test_the_mapping_loads_a_checkpoint_written_before_the_renames(toy, tmp_path, renames):
    folder = renamed_copy(tmp_path)
    saved = ckpt.load(folder)
    assert not [key for key in saved.model if key.startswith(OLD_PREFIX)]
    assert not [key for key in saved.ema if key.startswith(OLD_PREFIX)]
    assert saved.run["generator"]["options"]["width"] == 16
    assert "breadth" not in saved.run["generator"]["options"]
    assert saved.run["train"]["grad_clip"] == 1.0
    model = load(folder, use_ema=False)
    expected = load_file(str(FIXTURE / "model.safetensors"))
    for name, value in model.model.generator.state_dict().items():
        torch.testing.assert_close(value, expected[f"generator.{name}"], rtol=0, atol=0)


def test_prefixes_match_whole_dotted_parts_and_the_longest_wins():
    renames = {"generator.head": "generator.insert_head", "generator.head.mlp.": "generator.mlp."}
    assert ckpt.renamed_parameter("generator.head.norm.weight", renames) == \
        "generator.insert_head.norm.weight"
    assert ckpt.renamed_parameter("generator.head.mlp.0.bias", renames) == "generator.mlp.0.bias"
    assert ckpt.renamed_parameter("generator.heads.0.bias", renames) == "generator.heads.0.bias"


def test_two_names_for_one_parameter_are_refused(tmp_path):
    tensors = {"generator.old.w": torch.zeros(1), "generator.new.w": torch.ones(1)}
    with pytest.raises(CheckpointError, match="former name"):
        ckpt.renamed_parameters(tensors, {"generator.old.": "generator.new."}, tmp_path)


def test_an_option_is_renamed_only_for_its_component_and_a_set_new_key_wins():
    run = {"generator": {"name": "gru", "options": {"breadth": 8}},
           "train": {"clip": 2.0, "grad_clip": 1.0}}
    renames = {"generator.transformer.breadth": "generator.transformer.width",
               "train.clip": "train.grad_clip"}
    renamed = ckpt.renamed_options(run, renames)
    assert renamed["generator"]["options"] == {"breadth": 8}
    assert renamed["train"] == {"grad_clip": 1.0}
    assert run["train"] == {"clip": 2.0, "grad_clip": 1.0}, "the checkpoint's dict is not changed"
