"""Bad checkpoints give a CheckpointError naming the file and the fix; nothing is ever unpickled."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil

import pytest
import torch
from loflex import load_run
from loflex.errors import CheckpointError
from loflex.extension import plugins
from loflex.sampling.inference import load_model
from loflex.training import checkpoint as ckpt
from loflex.training.train import train

TINY = ["generator.options.layers=1", "generator.options.width=32", "generator.options.heads=2",
        "order.name=uniform", "train.batch_size=4", "train.eval_every=0", "train.steps=2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    data = root / "seqs.txt"
    data.write_text("".join(f"{w}\n" for w in ["ACGT", "GATTACA", "CAT", "TAG"] * 5))
    run = load_run(None, ["domain.name=sequences", f"domain.options.path={data}", *TINY])
    train(run, root / "run", progress=False)
    return root / "run"


@pytest.fixture
def run_dir(trained, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(trained, target)
    return target


def step_dir(run_dir):
    return ckpt.resolve(run_dir)


def expect(pattern: str, path, **kwargs) -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        load_model(path, **kwargs)
    assert type(info.value) is CheckpointError
    assert re.search(pattern, str(info.value)), str(info.value)
    return info.value


def test_intact_checkpoint_loads(run_dir):
    assert load_model(run_dir).checkpoint.step == 2


@pytest.mark.parametrize("name", ["model.safetensors", "ema.safetensors"])
@pytest.mark.parametrize("keep", [0.5, 0.0, 8])
def test_truncated_weights(run_dir, name, keep):
    path = step_dir(run_dir) / name
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)] if keep < 1 else data[:keep])
    expect(rf"{name}' is not a readable safetensors file .* use an earlier checkpoint", run_dir)


@pytest.mark.parametrize("name", ["state.json", "run.json"])
def test_truncated_json(run_dir, name):
    path = step_dir(run_dir) / name
    path.write_bytes(path.read_bytes()[:40])
    expect(rf"{name}' is corrupt or truncated; use an earlier checkpoint", run_dir)


@pytest.mark.parametrize("name", ["state.json", "model.safetensors"])
def test_missing_file(run_dir, name):
    directory = step_dir(run_dir)
    (directory / name).unlink()
    expect(r"missing; the checkpoint is incomplete", directory)
    expect(rf"is missing {name}; the checkpoint is incomplete", run_dir)


def test_wrong_format(run_dir):
    path = step_dir(run_dir) / "state.json"
    state = json.loads(path.read_text())
    state["format"] = "someone-elses-format-7"
    path.write_text(json.dumps(state))
    expect(r"is not a loflex checkpoint \(format 'someone-elses-format-7'\); pass a directory "
           r"written by `loflex train`", run_dir)


def test_weights_in_another_format(run_dir):
    (step_dir(run_dir) / "model.safetensors").write_text("version https://git-lfs.github.com/spec/v1\n")
    expect(r"model\.safetensors' is not a readable safetensors file", run_dir)


def test_not_a_checkpoint_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    expect(r"holds no checkpoint; pass a run directory written by `loflex train`", tmp_path)
    expect(r"does not exist; pass a run directory or a checkpoint", tmp_path / "absent")


def test_checkpoint_of_a_plugin_that_is_not_installed(tmp_path):
    from loflex.extension.testing import ToyPlugin, registered

    base = ["domain.name=toy", "domain.options.size=16", *TINY]
    with registered(ToyPlugin(), name="toy"):
        plugins.distributions["toy"] = "loflex-toy 0.3"
        train(load_run(None, base), tmp_path / "run", progress=False)
    error = expect(r"cannot be rebuilt: unknown domain 'toy'", tmp_path / "run")
    assert "'toy' came from loflex-toy 0.3" in error.message
    assert "install the missing plugin" in error.message


@pytest.mark.parametrize("override, problem", [
    ("generator.options.width=64", r"shape mismatch in \[.*\] \(checkpoint \(64,\), config \(128,\)\)"),
    ("generator.options.layers=2", r"missing \['trunk"),
])
def test_shape_mismatch_against_the_config(run_dir, override, problem):
    expect(rf"generator weights in .* do not fit the configured generator: {problem}", run_dir,
           overrides=[override])


def test_latest_pointing_outside_the_run_is_refused(run_dir, tmp_path):
    outside = tmp_path / "elsewhere"
    shutil.copytree(step_dir(run_dir), outside)
    (run_dir / "checkpoints" / "latest").write_text("../../elsewhere\n")
    expect(r"latest' names '\.\./\.\./elsewhere', not a step-\* checkpoint", run_dir)


# -- nothing is unpickled ------------------------------------------------------------------

class Payload:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("name", ["model.safetensors", "ema.safetensors"])
def test_pickle_in_place_of_weights_is_refused_unexecuted(run_dir, tmp_path, name):
    marker = tmp_path / "pwned"
    (step_dir(run_dir) / name).write_bytes(pickle.dumps({"w": Payload(marker)}))
    expect(r"not a readable safetensors file", run_dir)
    assert not marker.exists(), "a pickle in a checkpoint was executed"


def test_torch_save_file_in_place_of_weights_is_refused(run_dir, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"generator.x": torch.zeros(2), "evil": Payload(marker)},
               step_dir(run_dir) / "model.safetensors")
    expect(r"not a readable safetensors file", run_dir)
    assert not marker.exists()


def test_pickled_optimiser_state_is_refused_on_resume(run_dir, tmp_path):
    marker = tmp_path / "pwned"
    (step_dir(run_dir) / "optim.safetensors").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(CheckpointError, match=r"cannot resume .*optim\.safetensors' is not a "
                                              r"readable safetensors file"):
        train(load_run(run_dir / "config.toml", ["train.steps=3"]), run_dir, resume=True,
              progress=False)
    assert not marker.exists()


def test_pytorch_pickle_checkpoints_are_not_picked_up(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": Payload(marker)}, tmp_path / "pytorch_model.bin")
    torch.save({"state_dict": Payload(marker)}, tmp_path / "model.pt")
    expect(r"holds no checkpoint", tmp_path)
    assert not marker.exists()


def test_checkpoint_holds_only_json_and_safetensors(run_dir):
    names = {p.name for p in step_dir(run_dir).iterdir()}
    assert names == {"run.json", "state.json", "model.safetensors", "ema.safetensors",
                     "optim.safetensors"}


# -- steps are numbers, not text ------------------------------------------------------------

def test_steps_sort_as_numbers_across_the_digit_boundary(tmp_path):
    folder = tmp_path / "run" / "checkpoints"
    for step in (100_000_000, 99_999_999, 7):
        ckpt.save(folder / f"step-{step:08d}", run={}, state={"step": step},
                  model={"w": torch.zeros(1)})
    assert [p.name for p in ckpt.step_dirs(folder)] == [
        "step-00000007", "step-99999999", "step-100000000"]
    assert ckpt.resolve(tmp_path / "run").name == "step-100000000"  # no latest: the newest
    ckpt.keep_last(folder, 1)
    assert sorted(p.name for p in folder.iterdir()) == ["step-100000000"]


def test_resuming_past_step_ten_to_the_eighth_keeps_the_newest(run_dir):
    checkpoints = run_dir / "checkpoints"
    old = checkpoints / "step-00000002"
    state = json.loads((old / "state.json").read_text())
    (old / "state.json").write_text(json.dumps({**state, "step": 99_999_999}))
    old.rename(checkpoints / "step-99999999")
    (checkpoints / "latest").write_text("step-99999999\n")
    run = load_run(run_dir / "config.toml", ["train.steps=100000001", "train.checkpoint_every=1",
                                            "train.keep_checkpoints=1"])
    assert train(run, run_dir, resume=True, progress=False).step == 100_000_001
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest", "step-100000001"]
    assert ckpt.load(run_dir).step == 100_000_001


# -- errors quote at most a short, sanitised excerpt of a file -------------------------------

PASSWD = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"


def test_a_latest_link_is_refused_without_reading_it(run_dir, tmp_path):
    secret = tmp_path / "passwd"
    secret.write_text(PASSWD)
    latest = run_dir / "checkpoints" / "latest"
    latest.unlink()
    latest.symlink_to(secret)
    error = expect(r"latest' is a symbolic link, not the pointer file loflex writes; delete it "
                   r"to fall back to the newest checkpoints/step-\* directory", run_dir)
    assert "/bin/bash" not in error.message and "\n" not in error.message


@pytest.mark.parametrize("content, shown", [
    (PASSWD, r"root:x:0:0:root:/root:/bin/bash\ndaemon:x..."),
    ("\x1b[2J\x1b]0;pwned\x07step-1", r"\x1b[2J\x1b]0;pwned\x07step-1"),
    ("A" * 50_000_000, "A" * 40 + "..."),
])
def test_a_bad_latest_is_quoted_as_a_short_excerpt(run_dir, content, shown):
    (run_dir / "checkpoints" / "latest").write_text(content)
    error = expect(r"latest' names '", run_dir)
    assert f"names '{shown}', not a step-* checkpoint of this run" in error.message
    assert len(error.message) < 300 and "\n" not in error.message and "\x1b" not in error.message


def test_a_latest_that_is_not_a_file_does_not_hang(run_dir):
    latest = run_dir / "checkpoints" / "latest"
    latest.unlink()
    os.mkfifo(latest)
    expect(r"latest' is a FIFO \(named pipe\), not the pointer file loflex writes; delete it",
           run_dir)
    latest.unlink()
    latest.mkdir()
    expect(r"latest' is a folder, not the pointer file loflex writes", run_dir)


def test_a_huge_format_string_is_quoted_as_an_excerpt(run_dir):
    path = step_dir(run_dir) / "state.json"
    state = json.loads(path.read_text())
    path.write_text(json.dumps({**state, "format": "x" * 100_000 + "\n\x1b[31m"}))
    error = expect(r"is not a loflex checkpoint \(format 'x{40}\.\.\.'\)", run_dir)
    assert len(error.message) < 300


@pytest.mark.parametrize("name", ["state.json", "run.json", "model.safetensors"])
def test_checkpoint_files_that_are_devices_or_fifos_do_not_hang(run_dir, name):
    path = step_dir(run_dir) / name
    path.unlink()
    path.symlink_to("/dev/zero")
    expect(rf"{name}' is a character device, not a regular file", run_dir)
    path.unlink()
    os.mkfifo(path)
    expect(rf"{name}' is a FIFO \(named pipe\), not a regular file", run_dir)


# -- damaged resume state ---------------------------------------------------------------------

def resume(run_dir):
    return train(load_run(run_dir / "config.toml", ["train.steps=3"]), run_dir, resume=True,
                 progress=False)


def tamper_state(run_dir, change) -> None:
    path = step_dir(run_dir) / "state.json"
    state = json.loads(path.read_text())
    change(state)
    path.write_text(json.dumps(state))


def test_resume_without_the_optimiser_state(run_dir):
    (step_dir(run_dir) / "optim.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"cannot resume from '.*step-00000002': its "
                                              r"optim\.safetensors .* is missing; resume from an "
                                              r"earlier checkpoint, or start a new run from its "
                                              r"weights with --init"):
        resume(run_dir)


@pytest.mark.parametrize("change", [
    lambda s: s.update(python_random=[3, [1, 2], None]),
    lambda s: s.update(python_random="seed"),
    lambda s: s["optimizer"].update(param_groups=[]),
    lambda s: s["optimizer"]["param_groups"][0].update(betas=["x", 0.9]),
    lambda s: s["optimizer"]["param_groups"][0].update(eps={"a": 1}),
    lambda s: s.update(position={"epoch": "x", "nonsense": 1}),
], ids=["random-short", "random-text", "no-param-groups", "betas-text", "eps-dict", "position"])
def test_resume_with_damaged_state(run_dir, change):
    tamper_state(run_dir, change)
    with pytest.raises(CheckpointError) as info:
        resume(run_dir)
    assert type(info.value) is CheckpointError
    assert re.search(r"cannot resume from '.*step-00000002': its optimiser, random-number or "
                     r"data-position state is damaged \(\w+: .*\); resume from an earlier "
                     r"checkpoint", info.value.message), info.value.message
    assert "\n" not in info.value.message


@pytest.mark.parametrize("content", ["[1, 2, 3]", "[" * 100_000 + "]" * 100_000, '"text"'])
@pytest.mark.parametrize("name", ["run.json", "state.json"])
def test_json_that_is_not_an_object(run_dir, name, content):
    (step_dir(run_dir) / name).write_text(content)
    expect(rf"{name}' (holds a JSON \w+, not an object|is corrupt or truncated); use an earlier "
           r"checkpoint", run_dir)


# -- weights that are not finite or not floating point ------------------------------------------

def rewrite_weights(run_dir, name, change) -> str:
    """Apply ``change`` to the first tensor of a weights file; return that tensor's name."""
    from safetensors.torch import load_file, save_file

    path = step_dir(run_dir) / name
    tensors = load_file(path)
    first = sorted(tensors)[0]
    tensors[first] = change(tensors[first])
    save_file(tensors, path)
    return first


def all_of(value):
    return lambda tensor: torch.full_like(tensor, value)


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_nonfinite_ema_weights_point_to_the_raw_ones(run_dir, value):
    tensor = rewrite_weights(run_dir, "ema.safetensors", all_of(value))
    error = expect(rf"step-00000002' holds NaN or infinite values in '{re.escape(tensor)}' of "
                   r"ema.safetensors; its raw weights are finite: load them with --no-ema "
                   r"\(use_ema=False\), or use an earlier checkpoint$", run_dir)
    assert "\n" not in str(error)
    samples = load_model(run_dir, use_ema=False).generate(2, steps=4)
    assert any(s.tokens for s in samples)


def test_nonfinite_raw_and_ema_weights_are_refused(run_dir):
    tensor = rewrite_weights(run_dir, "ema.safetensors", all_of(float("nan")))
    rewrite_weights(run_dir, "model.safetensors", all_of(float("nan")))
    expect(rf"holds NaN or infinite values in '{re.escape(tensor)}' of ema.safetensors; the "
           r"checkpoint is damaged: use an earlier checkpoint$", run_dir)


def test_nonfinite_raw_weights_are_refused_without_ema(run_dir):
    tensor = rewrite_weights(run_dir, "model.safetensors", all_of(float("-inf")))
    expect(rf"holds NaN or infinite values in '{re.escape(tensor)}' of model.safetensors; the "
           r"checkpoint is damaged: use an earlier checkpoint$", run_dir, use_ema=False)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool],
                         ids=["int64", "int32", "uint8", "bool"])
@pytest.mark.parametrize("name", ["model.safetensors", "ema.safetensors"])
def test_weights_that_are_not_floating_point_are_refused(run_dir, name, dtype):
    tensor = rewrite_weights(run_dir, name, lambda t: t.to(dtype))
    shown = str(dtype).removeprefix("torch.")
    expect(rf"stores '{re.escape(tensor)}' in {name} as {shown}; loflex loads weights stored as "
           r"fp32, fp16 or bf16 only: save the weights in one of those$", run_dir)


@pytest.mark.parametrize("file", ["model.safetensors", "ema.safetensors"])
@pytest.mark.parametrize("change, problem", [
    (lambda t: t.to(torch.int64), r"as int64; loflex loads weights stored as fp32, fp16 or bf16"),
    (all_of(float("nan")), r"holds NaN or infinite values in '.*' of {file}"),
], ids=["int64", "nan"])
def test_resume_refuses_weights_that_are_not_finite_floats(run_dir, change, problem, file):
    rewrite_weights(run_dir, file, change)
    problem = problem.replace("{file}", re.escape(file))
    with pytest.raises(CheckpointError) as info:
        resume(run_dir)
    assert re.search(problem, info.value.message), info.value.message
    assert not (run_dir / "checkpoints" / "step-00000003").exists()
