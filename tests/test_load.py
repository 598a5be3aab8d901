"""Load: sampling streams to disk with bounded memory; data workers that die give a clear error.

The full measurement (10,000 and 50,000 molecules, peak RSS of ``loflex sample``) is
``docs/scripts/load_check.py``; these are its fast versions.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import tracemalloc

import pytest
import torch
from loflex import load_run
from loflex.contracts import Example
from loflex.errors import TrainingError
from loflex.extension.assemble import assemble
from loflex.sampling.inference import generate
from loflex.sampling.samples_io import SampleWriter
from loflex.training.data import BatchStream
from loflex.training.train import train

TINY = ["order.name=uniform", "generator.options.layers=1", "generator.options.width=32",
        "generator.options.heads=2", "train.batch_size=4", "train.eval_every=0"]


@pytest.fixture
def seqs(tmp_path):
    path = tmp_path / "seqs.txt"
    path.write_text("".join(f"{w}\n" for w in ["ACGTAC", "GATTACA", "CAT", "TAGGCT"] * 8))
    return path


def sample_to_disk(model, run, count: int, path) -> int:
    """Draw ``count`` samples in batches of 200 into ``path``; return the peak traced bytes."""
    settings = run.sample.model_copy(update={"num_samples": count, "batch_size": 200,
                                             "steps": 2})
    tracemalloc.start()
    writer = SampleWriter(path)
    for samples, _ in generate(model, settings, seed=0):
        writer.write(model.domain, samples)
    writer.close()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert writer.count == count
    return peak


def test_sampling_memory_does_not_grow_with_the_count(tmp_path, seqs):
    run = load_run(None, ["domain.name=sequences", f"domain.options.path={seqs}", *TINY])
    model = assemble(run)
    torch.manual_seed(0)
    sample_to_disk(model, run, 200, tmp_path / "warm.jsonl")  # first-call allocations
    small = sample_to_disk(model, run, 400, tmp_path / "small.jsonl")
    large = sample_to_disk(model, run, 4000, tmp_path / "large.jsonl")
    # a list of all samples or prompts would add >= 150 bytes per extra sample (540 kB)
    assert large < small + 300_000, f"peak Python memory grew from {small} to {large} bytes"
    lines = (tmp_path / "large.jsonl").read_text().splitlines()
    assert len(lines) == 4000 and all("tokens" in json.loads(line) for line in lines[:10])
    assert not (tmp_path / "large.jsonl.partial").exists()


RSS_SCRIPT = textwrap.dedent("""
    import resource, sys
    from loflex.cli import main
    code = main(sys.argv[1:])
    print("RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    sys.exit(code)
""")


@pytest.mark.slow
def test_cli_sample_peak_rss_does_not_grow_with_the_count(tmp_path, seqs):
    run_dir = tmp_path / "run"
    train(load_run(None, ["domain.name=sequences", f"domain.options.path={seqs}",
                          "train.steps=1", *TINY]), run_dir, progress=False)
    env = {**os.environ, "LOFLEX_LOAD_PLUGINS": "", "OMP_NUM_THREADS": "1"}
    peaks = {}
    for count in (2000, 20000):
        out = tmp_path / f"s{count}.jsonl"
        result = subprocess.run(
            [sys.executable, "-c", RSS_SCRIPT, "sample", str(run_dir), "-n", str(count),
             "--steps", "2", "--batch-size", "1000", "-o", str(out)],
            capture_output=True, text=True, env=env, timeout=600)
        assert result.returncode == 0, result.stderr
        peaks[count] = int(result.stdout.split("RSS_KB")[1].split()[0])
        assert sum(1 for _ in open(out)) == count
    assert peaks[20000] < peaks[2000] + 20_000, peaks  # kB: under 20 MB more for 10x samples


# -- data workers -------------------------------------------------------------------------

class Explosive(list):
    """Examples whose reading kills the worker process that reads item ``fatal``."""

    fatal = 5

    def __getitem__(self, i):
        if torch.utils.data.get_worker_info() is not None and i == self.fatal:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__getitem__(i)


def test_worker_crash_gives_a_clear_error():
    examples = Explosive(Example(target=[4, 5, 6][: 1 + i % 3]) for i in range(16))
    stream = BatchStream(examples, batch_size=4, seed=0, num_workers=2)
    with pytest.raises(TrainingError) as info:
        for _ in zip(range(50), stream):
            pass
    assert type(info.value) is TrainingError
    message = info.value.message
    assert "a data worker process died (DataLoader worker (pid" in message
    assert "train.num_workers=0" in message and "--resume" in message


def test_workers_give_the_same_batches_as_the_main_process():
    examples = [Example(target=[4 + i % 5] * (1 + i % 4)) for i in range(24)]
    plain = BatchStream(examples, batch_size=4, seed=3, num_workers=0)
    workers = BatchStream(examples, batch_size=4, seed=3, num_workers=2)
    for _, (a, b) in zip(range(8), zip(plain, workers)):
        assert torch.equal(a.x_1, b.x_1)


def test_training_with_workers_survives_to_a_clear_error(tmp_path, seqs, monkeypatch):
    import loflex.training.data

    original = loflex.training.data._Rows.__getitem__

    def dying(self, i):
        if torch.utils.data.get_worker_info() is not None and i == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, i)

    monkeypatch.setattr(loflex.training.data._Rows, "__getitem__", dying)
    run = load_run(None, ["domain.name=sequences", f"domain.options.path={seqs}",
                          "train.steps=40", "train.num_workers=2", "train.checkpoint_every=0",
                          *TINY])
    with pytest.raises(TrainingError, match=r"a data worker process died"):
        train(run, tmp_path / "run", progress=False)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0
