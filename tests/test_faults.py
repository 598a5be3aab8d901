"""Faults: crashes while checkpointing, SIGKILL, SIGINT/SIGTERM and non-finite steps.

The subprocess tests run the real ``loflex train`` (built-in ``sequences`` domain, one
CPU thread so that losses are bit-for-bit reproducible) and kill it for real.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import loflex.diffusion.loss
import pytest
import torch
from loflex import load_run
from loflex.errors import CheckpointError, TrainingError
from loflex.training import checkpoint as ckpt
from loflex.training.train import train

STEPS = 8
TINY = ["order.name=uniform", "generator.options.layers=1", "generator.options.width=32",
        "generator.options.heads=2", "train.batch_size=4", "train.eval_every=0",
        "train.log_every=1", "train.threads=1", "train.warmup_steps=0",
        "train.lr_schedule=constant", "train.checkpoint_every=2", "train.keep_checkpoints=2"]
ENV = {**os.environ, "LOFLEX_LOAD_PLUGINS": "", "OMP_NUM_THREADS": "1"}


def write_data(folder):
    path = folder / "seqs.txt"
    words = ["ACGT", "GATTACA", "CAT", "TAG", "CCGGA", "TTAGC", "AGA", "GCGCGC"]
    path.write_text("".join(f"{w}\n" for w in words * 6))
    return path


def train_args(data, run_dir, steps=STEPS, extra=()) -> list[str]:
    args = ["train", "--set", "domain.name=sequences", "--set", f"domain.options.path={data}",
            "--set", f"train.steps={steps}", "--no-progress", "-o", str(run_dir)]
    for item in [*TINY, *extra]:
        args += ["--set", item]
    return args


def cli(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loflex.cli", *args], env=ENV,
                          capture_output=True, text=True, timeout=240, **kwargs)


def losses(run_dir) -> dict[int, float]:
    """The loss of every step; a step logged twice (before a crash and after resuming) keeps
    its last value."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of STEPS steps."""
    root = tmp_path_factory.mktemp("reference")
    data = write_data(root)
    result = cli(train_args(data, root / "run"))
    assert result.returncode == 0, result.stderr
    return data, losses(root / "run")


# -- crashes inside the checkpoint writer ------------------------------------------------

KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import loflex.training.checkpoint as C
    from loflex.cli import main

    point, target = sys.argv[1], sys.argv[2]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    save_tensors, write_text, replace = C._save_tensors, C.atomic_write_text, os.replace

    def tensors(tensors, path):
        if point == "weights" and path.parent.name.startswith(f".{target}.tmp-") \\
                and path.name == "optim.safetensors":
            save_tensors(tensors, path)
            Path(path).write_bytes(Path(path).read_bytes()[:100])  # half-written file
            die()
        save_tensors(tensors, path)

    def text(path, content):
        if point == "latest" and path.name == "latest" and content.strip() == target:
            die()  # the new step directory is complete, the pointer still names the old one
        write_text(path, content)

    def rename(src, dst, *args, **kwargs):
        replace(src, dst, *args, **kwargs)
        if point == "prune" and str(dst).endswith(".deleting"):
            die()  # an old checkpoint is being deleted

    C._save_tensors, C.atomic_write_text, C.os.replace = tensors, text, rename
    sys.exit(main(sys.argv[3:]))
""")


@pytest.mark.parametrize("point, target, complete", [
    ("weights", "step-00000004", 2),  # killed while writing step 4's files
    ("latest", "step-00000004", 2),  # killed after step 4's rename, before `latest` names it
    ("prune", "step-00000006", 6),  # killed while deleting step 2 after step 6 was saved
])
def test_sigkill_mid_checkpoint_then_resume_matches_uninterrupted(tmp_path, reference, point,
                                                                  target, complete):
    data, expected = reference
    run_dir = tmp_path / "run"
    killed = subprocess.run([sys.executable, "-c", KILLER, point, target,
                             *train_args(data, run_dir)],
                            env=ENV, capture_output=True, text=True, timeout=240)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (run_dir / "checkpoints" / target).exists() or point != "weights"
    assert ckpt.load(run_dir).step == complete  # the last complete checkpoint is the one used

    resumed = cli(["train", "--resume", str(run_dir), "--no-progress"])
    assert resumed.returncode == 0, resumed.stderr
    assert f"trained {STEPS} steps (steps)" in resumed.stdout
    got = losses(run_dir)
    assert got == expected, "resumed losses differ from the uninterrupted run"
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["latest", "step-00000006", "step-00000008"], names


@pytest.mark.slow
def test_sigkill_at_random_moments_always_resumes(tmp_path, reference):
    data, expected = reference
    outcomes = []
    for trial, delay in enumerate((0.05, 0.4, 0.9)):
        run_dir = tmp_path / f"run{trial}"
        args = train_args(data, run_dir, extra=["train.checkpoint_every=1"])
        proc = subprocess.Popen([sys.executable, "-m", "loflex.cli", *args], env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        latest = run_dir / "checkpoints" / "latest"
        deadline = time.time() + 120
        while not latest.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        resumed = cli(["train", "--resume", str(run_dir), "--no-progress"])
        assert resumed.returncode == 0, resumed.stderr
        outcomes.append(losses(run_dir) == expected)
    assert all(outcomes), outcomes


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_finishes_step_checkpoints_and_exits_cleanly(tmp_path, reference, sig):
    data, _ = reference
    run_dir = tmp_path / "run"
    args = train_args(data, run_dir, steps=100_000, extra=["train.checkpoint_every=0"])
    proc = subprocess.Popen([sys.executable, "-m", "loflex.cli", *args], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 120
    while (not metrics.exists() or len(metrics.read_text().splitlines()) < 3) \
            and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    last = max(losses(run_dir))
    assert f"trained {last} steps (signal)" in out
    saved = ckpt.load(run_dir)
    assert saved.step == last, "the checkpoint holds the last finished step"
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == f"step-{last:08d}"


# -- in-process faults ----------------------------------------------------------------------

def test_a_crash_while_saving_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    weights = {"w": torch.arange(4.0)}
    ckpt.save(folder / "step-00000001", run={}, state={"step": 1}, model=weights)
    real = ckpt._save_tensors

    def crash(tensors, path):
        real(tensors, path)
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "_save_tensors", crash)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save(folder / "step-00000002", run={}, state={"step": 2}, model=weights)
    with pytest.raises(OSError, match="disk full"):  # overwriting an existing one
        ckpt.save(folder / "step-00000001", run={}, state={"step": 9}, model=weights)
    assert sorted(p.name for p in folder.iterdir()) == ["step-00000001"]
    assert ckpt.load(folder / "step-00000001").step == 1


def test_non_finite_weights_are_never_written(tmp_path):
    folder = tmp_path / "checkpoints"
    bad = {"generator.w": torch.tensor([1.0, float("nan")])}
    with pytest.raises(CheckpointError, match=r"refusing to save non-finite values in "
                                              r"'generator\.w'"):
        ckpt.save(folder / "step-00000003", run={}, state={"step": 3}, model=bad)
    assert list(folder.iterdir()) == []


def test_keep_last_k_and_stale_temp_folders(tmp_path, toy):
    stale = tmp_path / "checkpoints" / ".step-00000001.tmp-abc"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half")
    run = load_run(None, ["domain.name=toy", "domain.options.size=16", "train.steps=5",
                          *TINY, "train.checkpoint_every=1", "train.keep_checkpoints=3"])
    train(run, tmp_path, progress=False)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["latest", "step-00000003", "step-00000004", "step-00000005"]
    for path in [tmp_path / "config.toml", tmp_path / "checkpoints" / "latest"]:
        assert path.stat().st_mode & 0o044 == 0o044 & ~os.umask(os.umask(0)), \
            "run files keep the usual permissions"


class InfiniteGradient(torch.autograd.Function):
    """Identity forward, infinite gradient backward."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


def poison(monkeypatch, bad_calls: set[int], kind: str = "nan") -> list[torch.Tensor]:
    """Make training steps ``bad_calls`` (1-based) non-finite; return a weight snapshot per call."""
    real = loflex.diffusion.loss.training_loss
    snapshots, calls = [], [0]

    def wrapped(batch, generator, order, **kwargs):
        calls[0] += 1
        snapshots.append(torch.cat([p.detach().flatten() for p in generator.parameters()]))
        terms = real(batch, generator, order, **kwargs)
        if calls[0] in bad_calls:
            loss = terms.loss * float("nan") if kind == "nan" else InfiniteGradient.apply(terms.loss)
            terms = dataclasses.replace(terms, loss=loss)
        return terms

    monkeypatch.setattr(loflex.diffusion.loss, "training_loss", wrapped)
    return snapshots


@pytest.mark.parametrize("kind", ["nan", "inf-grad"])
def test_non_finite_steps_are_skipped_and_counted(tmp_path, toy, monkeypatch, kind):
    snapshots = poison(monkeypatch, {3, 4}, kind)
    run = load_run(None, ["domain.name=toy", "domain.options.size=16", "train.steps=6", *TINY,
                          "train.max_nonfinite_steps=3"])
    result = train(run, tmp_path, progress=False)
    assert result.step == 6
    rows = {r["step"]: r for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text()
                                      .splitlines())}
    assert [rows[s]["skipped_nonfinite"] for s in range(1, 7)] == [0, 0, 1, 2, 0, 0]
    assert not torch.equal(snapshots[1], snapshots[2]), "a finite step changes the weights"
    assert torch.equal(snapshots[2], snapshots[3]), "a skipped step leaves the weights"
    assert torch.equal(snapshots[3], snapshots[4]), "a skipped step leaves the weights"
    for tensors in (ckpt.load(tmp_path, with_optim=True).model, ckpt.load(tmp_path).ema):
        assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


def test_too_many_non_finite_steps_in_a_row_stop_with_a_clear_error(tmp_path, toy, monkeypatch):
    poison(monkeypatch, set(range(5, 100)))
    run = load_run(None, ["domain.name=toy", "domain.options.size=16", "train.steps=50", *TINY,
                          "train.max_nonfinite_steps=3"])
    with pytest.raises(TrainingError) as info:
        train(run, tmp_path, progress=False)
    assert type(info.value) is TrainingError
    assert ("3 consecutive steps had a non-finite loss or gradient (last at step 6); lower "
            "train.lr or raise train.grad_clip, then resume") in info.value.message
    saved = ckpt.load(tmp_path, with_optim=True)
    assert saved.step == 6  # step-6 holds the finite weights of step 4
    for tensors in (saved.model, saved.ema, saved.optim):
        assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


# -- one writer per run directory -----------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sys
    from loflex.training.rundir import run_lock

    with run_lock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.read()
""")


@pytest.fixture
def trained_run(tmp_path):
    """A run directory of 2 steps, trained in this process."""
    data = write_data(tmp_path)
    run_dir = tmp_path / "run"
    run = load_run(None, ["domain.name=sequences", f"domain.options.path={data}",
                          "train.steps=2", *TINY])
    train(run, run_dir, progress=False)
    return run_dir


def files_of(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".loflex.lock"}


def test_a_second_writer_is_refused_with_the_holders_pid(trained_run, tmp_path, capsys):
    from loflex.cli import main

    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(trained_run)], env=ENV,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        before = files_of(trained_run)
        writers = [["train", "--resume", str(trained_run), "--set", "train.steps=4",
                    "--no-progress"],
                   ["train", str(trained_run / "config.toml"), "-o", str(trained_run),
                    "--no-progress"],
                   ["report", str(trained_run), "-n", "1", "--steps", "2", "--examples", "0"]]
        for args in writers:
            assert main(args) == 1
            err = capsys.readouterr().err
            assert err == (f"Error: run directory '{trained_run}' is in use by another loflex "
                           f"process (pid {holder.pid}); wait until it finishes or stop it, "
                           "then retry\n")
        assert files_of(trained_run) == before
        out = tmp_path / "elsewhere"  # readers with their outputs elsewhere go ahead
        assert main(["sample", str(trained_run), "-n", "2", "--steps", "2",
                     "-o", str(out / "s.jsonl")]) == 0
        assert main(["evaluate", str(trained_run), "-n", "2", "--steps", "2",
                     "-o", str(out / "m.json")]) == 0
        assert main(["report", str(trained_run), "-n", "1", "--steps", "2", "--examples", "0",
                     "-o", str(out / "report")]) == 0
        assert files_of(trained_run) == before
    finally:
        holder.communicate("", timeout=60)
    assert main(["train", "--resume", str(trained_run), "--set", "train.steps=4",
                 "--no-progress"]) == 0, "the lock goes with its holder"
    assert ckpt.load(trained_run).step == 4


def test_a_killed_writer_leaves_no_lock_behind(trained_run):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(trained_run)], env=ENV,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "locked\n"
    holder.kill()
    holder.wait(timeout=60)
    result = cli(["train", "--resume", str(trained_run), "--set", "train.steps=3",
                  "--no-progress"])
    assert result.returncode == 0, result.stderr


def test_reading_a_run_while_it_trains(tmp_path):
    """A real trainer checkpoints every step and keeps one; sampling meanwhile reads only
    complete checkpoints, and a second trainer is refused."""
    from loflex.cli import main

    data = write_data(tmp_path)
    run_dir = tmp_path / "run"
    args = train_args(data, run_dir, steps=100_000,
                      extra=["train.checkpoint_every=1", "train.keep_checkpoints=1"])
    proc = subprocess.Popen([sys.executable, "-m", "loflex.cli", *args], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        latest = run_dir / "checkpoints" / "latest"
        deadline = time.time() + 120
        while not latest.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        for trial in range(4):
            out = tmp_path / f"s{trial}.jsonl"
            assert main(["sample", str(run_dir), "-n", "1", "--steps", "2", "-o", str(out)]) == 0
            assert len(out.read_text().splitlines()) == 1
        second = cli(["train", "--resume", str(run_dir), "--no-progress"])
        assert second.returncode == 1
        assert f"is in use by another loflex process (pid {proc.pid})" in second.stderr
        assert second.stderr.count("\n") == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    assert proc.returncode == 0
    steps = sorted(losses(run_dir))
    assert steps == list(range(1, steps[-1] + 1)), "one writer: every step logged once, in order"


def test_a_reader_takes_the_newer_checkpoint_when_its_one_is_pruned(trained_run, monkeypatch):
    """Between resolving step 2 and reading it, a trainer saves step 3 and prunes step 2."""
    import shutil

    real = ckpt._read_json
    checkpoints = trained_run / "checkpoints"

    def trainer_moves_on(path):
        if path.parent.name == "step-00000002" and not (checkpoints / "step-00000003").exists():
            shutil.copytree(checkpoints / "step-00000002", checkpoints / "step-00000003")
            state = json.loads((checkpoints / "step-00000003" / "state.json").read_text())
            (checkpoints / "step-00000003" / "state.json").write_text(
                json.dumps({**state, "step": 3}))
            ckpt.atomic_write_text(checkpoints / "latest", "step-00000003\n")
            ckpt.keep_last(checkpoints, 1)
        return real(path)

    monkeypatch.setattr(ckpt, "_read_json", trainer_moves_on)
    assert ckpt.resolve(trained_run).name == "step-00000002"
    assert ckpt.load(trained_run).step == 3


# -- a full disk ------------------------------------------------------------------------------

DISK_FULL = ("Error: No space left on device; free disk space or write elsewhere, then rerun (a "
             "training run continues from its last complete checkpoint with --resume RUN_DIR)\n")


def disk_full(monkeypatch, where: str = "") -> None:
    """Make every fsync of a file whose path contains ``where`` fail with ENOSPC (as a full
    disk with delayed allocation does)."""
    import errno

    real = os.fsync

    def fsync(fd):
        if where in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def hidden(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*")
                  if p.name != ".loflex.lock")


def test_disk_full_when_a_run_starts(tmp_path, monkeypatch, capsys):
    from loflex.cli import main

    data = write_data(tmp_path)
    disk_full(monkeypatch)
    run_dir = tmp_path / "run"
    assert main(train_args(data, run_dir)) == 1
    assert capsys.readouterr().err == DISK_FULL
    assert hidden(run_dir) == [] and not (run_dir / "config.toml").exists()


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(trained_run, monkeypatch,
                                                                    capsys):
    from loflex.cli import main

    checkpoints = trained_run / "checkpoints"
    before = files_of(checkpoints)
    disk_full(monkeypatch, where="/checkpoints/.step-")
    assert main(["train", "--resume", str(trained_run), "--set", "train.steps=4",
                 "--no-progress"]) == 1
    assert capsys.readouterr().err == DISK_FULL
    assert files_of(checkpoints) == before and hidden(checkpoints) == []
    assert ckpt.load(trained_run).step == 2
    monkeypatch.undo()  # space freed: the run continues
    assert main(["train", "--resume", str(trained_run), "--set", "train.steps=4",
                 "--no-progress"]) == 0
    assert ckpt.load(trained_run).step == 4


@pytest.mark.parametrize("command, name", [
    (["evaluate", "{run}", "-n", "2", "--steps", "2", "-o", "{out}"], "m.json"),
    (["sample", "{run}", "-n", "2", "--steps", "2", "-o", "{out}"], "s.jsonl"),
    (["data", "sequences", "--set", "domain.options.path={data}", "-o", "{out}"], "d.txt"),
])
def test_disk_full_leaves_no_partial_output(trained_run, tmp_path, monkeypatch, capsys, command,
                                            name):
    from loflex.cli import main

    out = tmp_path / "out" / name
    out.parent.mkdir()
    args = [a.format(run=trained_run, out=out, data=tmp_path / "seqs.txt") for a in command]
    disk_full(monkeypatch)
    assert main(args) == 1
    assert capsys.readouterr().err == DISK_FULL
    assert list(out.parent.iterdir()) == []
