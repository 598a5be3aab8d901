"""Lightning callback that counts and profiles one training step of the reference implementation.

Injected into the reference ``xlm`` training run with hydra overrides (see
``profile_reference.sh``); it changes nothing in the reference code. At step ``flop_step``
it counts FLOPs (per operator, with the counter loflex's own figures use:
``framework/loflex/training/flops.py``, loaded from its file), at step
``profile_step`` it records a ``torch.profiler`` operator table; both cover
``on_train_batch_start`` -> ``on_train_batch_end``: forward, backward, gradient clipping,
the optimiser step and the callbacks that run before this one (the EMA update). The
``plain_steps`` steps after those are timed without either (wall and CPU seconds); then,
for each of ``sample_steps``, the reference predictor's FLOPs and seconds on the first
validation prediction batch. It writes one JSON file and ends the process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback
from matmul_table import matmul_shapes
from torch.utils.flop_counter import FlopCounterMode

FLOPS_MODULE = Path(__file__).resolve().parents[3] / "framework" / "loflex" / "training" / "flops.py"


def flop_counter():
    """loflex's FLOP counter (torch's, plus the CPU attention and oneDNN linear kernels),
    loaded from its file: the reference's environment does not have loflex installed."""
    spec = importlib.util.spec_from_file_location("loflex_flops", FLOPS_MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.flop_counter()


class ProfileCallback(Callback):
    def __init__(self, out: str, flop_step: int = 3, profile_step: int = 4, plain_steps: int = 3,
                 threads: int = 2, rows: int = 40, sample_steps: list[int] | None = None):
        self.out, self.flop_step, self.profile_step = out, flop_step, profile_step
        self.plain_steps, self.sample_steps = plain_steps, list(sample_steps or [])
        self.threads, self.rows = threads, rows
        self.context = None
        self.result: dict = {}

    def on_train_start(self, trainer, pl_module):
        torch.set_num_threads(self.threads)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            ids = batch["input_ids"]
            self.result["batch_shape"] = list(ids.shape)
            self.result["nonpad_tokens"] = int((ids != 0).sum())
        self.context = None
        if batch_idx == self.flop_step:
            self.context = flop_counter()
        elif batch_idx == self.profile_step:
            self.context = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                                  record_shapes=True)
        self._t0, self._c0 = time.perf_counter(), time.process_time()
        if self.context is not None:
            self.context.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        wall = time.perf_counter() - self._t0
        cpu = time.process_time() - self._c0
        if self.context is None:
            if batch_idx > self.profile_step:
                self.result.setdefault("plain_steps", []).append({"wall_s": wall, "cpu_s": cpu})
            if batch_idx >= self.profile_step + self.plain_steps:
                for steps in self.sample_steps:
                    self._count_sampling(trainer, pl_module, steps)
                self._write()
                os._exit(0)
            return
        self.context.__exit__(None, None, None)
        if isinstance(self.context, FlopCounterMode):
            counts = self.context.get_flop_counts().get("Global", {})
            self.result["flops"] = {
                "total_gflop": self.context.get_total_flops() / 1e9,
                "by_op_gflop": {str(k): v / 1e9 for k, v in counts.items()},
                "batch_shape": list(batch["input_ids"].shape),
            }
        else:
            table = self.context.key_averages().table(sort_by="self_cpu_time_total",
                                                       row_limit=self.rows)
            self.result["profile"] = {"wall_s": wall, "cpu_s": cpu, "table": table,
                                      "matmuls": matmul_shapes(self.context),
                                      "batch_shape": list(batch["input_ids"].shape)}
        self.result["torch_threads"] = torch.get_num_threads()
        self._write()

    def _count_sampling(self, trainer, pl_module, steps: int) -> None:
        """FLOPs, wall and CPU seconds of the reference predictor on the first validation
        prediction batch with ``steps`` steps (set as the refbench callback sets them)."""
        pl_module.eval()
        predictor = pl_module.predictor
        predictor.max_steps = int(steps)
        predictor.dt = (1 - 1e-5) / (int(steps) + 1)
        dm = trainer.datamodule
        loaders = dm.val_dataloader()
        index = next(i for i, name in dm.dataloader_names["val"].items() if "prediction" in name)
        batch = next(iter(loaders[index]))
        counter = flop_counter()
        with torch.inference_mode():
            with counter:
                predictor.predict(batch, 0, 0, "prediction")
            start, cpu = time.perf_counter(), time.process_time()
            out = predictor.predict(batch, 0, 0, "prediction")
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        self.result.setdefault("sampling", []).append({
            "steps": int(steps), "batch_shape": list(batch["input_ids"].shape),
            "out_shape": list(out["ids"].shape), "gflop": counter.get_total_flops() / 1e9,
            "wall_s": wall, "cpu_s": cpu})
        pl_module.train()

    def _write(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.out)), exist_ok=True)
        with open(self.out, "w") as f:
            json.dump(self.result, f, indent=1)
