"""Where training runs and what one optimiser step is: device, processes, seeds, the step.

``loflex train`` and ``loflex bench train`` both build a :class:`TrainingStep` and call it
once per batch, so the benchmark times exactly what training runs: the objective
(under DDP and bf16 autocast when configured), backward, gradient clipping, the
non-finite check, AdamW and the EMA update.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from loflex.config import SampleConfig, TrainConfig
from loflex.diffusion import loss as losses
from loflex.diffusion.batch import Batch
from loflex.errors import ConfigError
from loflex.extension.assemble import Assembly
from loflex.training.optim import EMA, lr_factor, make_optimizer, named_parameters


def pick_device(name: str) -> torch.device:
    """Resolve ``auto`` to cuda when available, else cpu.

    Raises:
        ConfigError: a CUDA device is asked for and none is available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device is '{name}' but no CUDA device is available; use cpu")
    return torch.device(name)


def distributed() -> tuple[int, int]:
    """Initialise torch.distributed under torchrun; return (rank, world size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return dist.get_rank(), world


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's global generators."""
    random.seed(seed)
    torch.manual_seed(seed)


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AMX tiles or AVX512-BF16)."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def uses_bf16(cfg: TrainConfig | SampleConfig, device: torch.device) -> bool:
    """Whether ``precision = "bf16"`` (of ``train`` or ``sample``) autocasts on ``device``.

    On a GPU, and on a CPU with native bf16 matrix units; elsewhere bf16 matmuls would be
    emulated (slower than fp32), so the step stays fp32.
    """
    if cfg.precision != "bf16":
        return False
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())


def autocast_for(cfg: TrainConfig | SampleConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast when :func:`uses_bf16`, else a no-op."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_bf16(cfg, device))


def compile_networks(*modules: nn.Module) -> int:
    """``torch.compile`` the transformer blocks of ``modules`` in place; return how many.

    Blocks are compiled with dynamic shapes (trimmed widths change every batch) and in
    place (``Module.compile``), so parameter names and checkpoints are unchanged. A module
    without transformer blocks (a plugin generator) is compiled whole.
    """
    from loflex.default_plugins.transformer import Block

    seen: dict[int, nn.Module] = {}
    for module in modules:
        blocks = [m for m in module.modules() if isinstance(m, Block)]
        trunk = getattr(module, "backbone", None)
        if isinstance(trunk, nn.Module):
            blocks += [m for m in trunk.modules() if isinstance(m, Block)]
        for block in blocks or [module]:
            seen.setdefault(id(block), block)
    for block in seen.values():
        block.compile(dynamic=True)
    return len(seen)


class Objective(nn.Module):
    """Generator + order as one module, so DDP sees one forward per step."""

    def __init__(self, model: Assembly, length_scale: float, normalisation: str,
                 time_sampling: str = "uniform", time_weighting: str = "elbo"):
        super().__init__()
        self.generator, self.order = model.generator, model.order
        self.length_scale, self.normalisation = length_scale, normalisation
        self.time_sampling, self.time_weighting = time_sampling, time_weighting

    def forward(self, batch: Batch, rng: torch.Generator | None = None) -> losses.LossTerms:
        return losses.training_loss(batch, self.generator, self.order,
                                    length_scale=self.length_scale,
                                    normalisation=self.normalisation, rng=rng,
                                    time_sampling=self.time_sampling,
                                    time_weighting=self.time_weighting)


def clip_gradients(optimizer: torch.optim.Optimizer, max_norm: float) -> torch.Tensor:
    """Clip gradients to ``max_norm`` (0 = off); return the total norm as a 0-d tensor."""
    params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    if not params:
        return torch.zeros(())
    if max_norm > 0:
        return torch.nn.utils.clip_grad_norm_(params, max_norm).float()
    return torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])).float()


@dataclass
class StepOutcome:
    """What one optimiser step did.

    Attributes:
        terms: the loss terms (tensors; ``terms.scalars()`` reads them on the host).
        loss: the loss as a float.
        grad_norm: the total gradient norm before clipping.
        applied: False when the loss or the gradient norm was not finite: the gradients
            were dropped and neither the weights nor the EMA changed.
    """

    terms: losses.LossTerms
    loss: float
    grad_norm: float
    applied: bool


class TrainingStep:
    """The optimiser step of ``loflex train``, shared with ``loflex bench train``.

    Owns the :class:`Objective`, the AdamW optimiser and the EMA of the weights. Call
    :meth:`prepare` once, after any weights have been loaded, then the object once per
    batch.

    Args:
        model: the assembled model (its networks already on ``device``).
        cfg: the run's training settings.
        device: where the step runs.
    """

    def __init__(self, model: Assembly, cfg: TrainConfig, device: torch.device):
        self.model, self.cfg, self.device = model, cfg, device
        self.modules = model.modules()
        self.objective = Objective(model, float(model.domain.max_length), cfg.loss_normalisation,
                                   cfg.time_sampling, cfg.time_weighting)
        self.optimizer = make_optimizer(list(self.modules.values()), cfg)
        self.ema = EMA(named_parameters(self.modules), cfg.ema) if cfg.ema > 0 else None
        self.forward: nn.Module = self.objective
        self._autocast = autocast_for(cfg, device)
        self._named = named_parameters(self.modules)

    def prepare(self, world: int) -> None:
        """Compile the networks (``train.compile``) and wrap DDP when ``world`` > 1."""
        if self.cfg.compile:
            compile_networks(self.model.generator, self.model.order)
        if world > 1:
            self.forward = nn.parallel.DistributedDataParallel(self.objective)

    def set_lr(self, step: int) -> None:
        """Set the learning rate of optimiser step ``step`` (warm-up, then the schedule)."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.lr * lr_factor(step, self.cfg)

    def __call__(self, batch: Batch, rng: torch.Generator | None = None) -> StepOutcome:
        """Run one step on ``batch`` (already on the device) with noise from ``rng``."""
        with self._autocast:
            terms = self.forward(batch, rng)
        self.optimizer.zero_grad(set_to_none=True)
        terms.loss.backward()
        norm = clip_gradients(self.optimizer, self.cfg.grad_clip)
        loss_value, grad_norm = torch.stack(
            [terms.loss.detach().float(), norm.to(terms.loss.device)]).tolist()
        applied = math.isfinite(loss_value) and math.isfinite(grad_norm)
        if applied:
            self.optimizer.step()
            if self.ema is not None:
                self.ema.update(self._named)
        else:
            self.optimizer.zero_grad(set_to_none=True)
        return StepOutcome(terms, loss_value, grad_norm, applied)
