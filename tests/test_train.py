from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from loflex import load_run
from loflex.training.train import train

TINY = ["generator.options.layers=1", "generator.options.width=32", "generator.options.heads=2",
        "train.batch_size=8", "train.eval_every=0", "train.log_every=1", "train.warmup_steps=0",
        "train.lr_schedule=constant"]
AUX = ["order.options.layers=1", "order.options.width=32", "order.options.heads=2"]


def losses(run_dir, key="loss"):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r[key] for r in rows if key in r}


@pytest.mark.parametrize("order", ["uniform", "kumaraswamy"])
def test_tiny_model_overfits_tiny_dataset(tmp_path, toy, order):
    extra = AUX if order == "kumaraswamy" else []
    run = load_run(None, ["domain.name=toy", "domain.options.size=8", f"order.name={order}",
                          "train.steps=200", "train.lr=3e-3", *TINY, *extra])
    train(run, tmp_path, progress=False)
    # The generator's loss: a learned order's total also holds the REINFORCE surrogate and
    # the regulariser, which need not fall.
    # Each step's loss has its own random times t, so the end is averaged over 50 steps; the
    # learned order's generator loss levels off near half its start on this toy task.
    curve = losses(tmp_path, "loss_theta")
    first = sum(curve[s] for s in range(1, 11)) / 10
    last = sum(curve[s] for s in range(151, 201)) / 50
    assert last < 0.6 * first, f"loss fell only from {first:.3f} to {last:.3f}"


@pytest.mark.parametrize("order", ["uniform", "kumaraswamy"])
def test_resume_continues_exactly(tmp_path, toy, order):
    extra = AUX if order == "kumaraswamy" else []
    base = ["domain.name=toy", f"order.name={order}", *TINY, *extra, "train.checkpoint_every=0"]
    full = tmp_path / "full"
    train(load_run(None, [*base, "train.steps=6"]), full, progress=False)
    part = tmp_path / "part"
    train(load_run(None, [*base, "train.steps=3"]), part, progress=False)
    train(load_run(part / "config.toml", ["train.steps=6"]), part, resume=True, progress=False)
    a, b = losses(full), losses(part)
    assert [a[s] for s in (4, 5, 6)] == [b[s] for s in (4, 5, 6)]


def test_checkpoint_round_trip(tmp_path, toy):
    from loflex.sampling.inference import load_model

    run = load_run(None, ["domain.name=toy", "train.steps=2", *TINY])
    train(run, tmp_path, progress=False)
    loaded = load_model(tmp_path, use_ema=False)
    state = loaded.checkpoint.model
    for name, tensor in loaded.model.generator.state_dict().items():
        assert torch.equal(tensor, state[f"generator.{name}"])
    assert loaded.model.domain.vocab.to_json() == loaded.checkpoint.state["domain"]["vocab"]
    assert loaded.run == run


DDP_SCRIPT = textwrap.dedent("""
    import hashlib, os, sys, torch
    from loflex import load_run
    from loflex.extension.testing import ToyPlugin, registered
    from loflex.training.train import train
    import loflex.training.train as T
    captured = {}
    original = T.assemble
    def capture(*a, **k):
        model = original(*a, **k)
        captured["model"] = model
        return model
    T.assemble = capture
    with registered(ToyPlugin(), name="toy"):
        run = load_run(None, ["domain.name=toy", "train.steps=3", "order.name=kumaraswamy",
                              "generator.options.layers=1", "generator.options.width=32",
                              "generator.options.heads=2", "order.options.layers=1",
                              "order.options.width=32", "order.options.heads=2",
                              "train.batch_size=4", "train.eval_every=0"])
        train(run, sys.argv[1], progress=False)
    model = captured["model"]
    digest = hashlib.sha256()
    for module in (model.generator, model.order):
        for p in module.parameters():
            digest.update(p.detach().numpy().tobytes())
    rank = os.environ["RANK"]
    open(os.path.join(sys.argv[1], f"weights-{rank}.sha"), "w").write(digest.hexdigest())
""")


def free_port() -> int:
    """A TCP port no process listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_keeps_ranks_identical(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env_cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               "--master-port", str(free_port()), str(script), str(tmp_path / "run")]
    result = subprocess.run(env_cmd, capture_output=True, text=True, timeout=300,
                            env={**__import__("os").environ, "LOFLEX_LOAD_PLUGINS": "",
                                 "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    h0 = (tmp_path / "run" / "weights-0.sha").read_text()
    h1 = (tmp_path / "run" / "weights-1.sha").read_text()
    assert h0 == h1
