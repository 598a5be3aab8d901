"""Optimiser, learning-rate schedule and EMA of the weights."""

from __future__ import annotations

import math

import torch
from torch import nn

from loflex.config import TrainConfig


def make_optimizer(modules: list[nn.Module], cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only (not biases, norms or scalars)."""
    params = {id(p): p for m in modules for p in m.parameters() if p.requires_grad}
    decay = [p for p in params.values() if p.ndim >= 2]
    no_decay = [p for p in params.values() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999),
                             **_kernel(list(params.values())))


_FUSED_DEVICES = ("cpu", "cuda", "mps", "xpu")  # where torch has a fused AdamW kernel


def _kernel(params: list[torch.Tensor]) -> dict[str, bool]:
    """The fused AdamW kernel where torch has one for every parameter's device, else foreach.

    Fused and foreach compute the same update (to float rounding); fused reads and writes
    each parameter's state once per step, which on a CPU is about a third of foreach's time.
    """
    devices = {p.device.type for p in params}
    fusable = devices <= set(_FUSED_DEVICES) and all(p.dtype.is_floating_point for p in params)
    return {"fused": True} if fusable and params else {"foreach": True}


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Return lr(step) / cfg.lr: linear warm-up, then constant or cosine to ``min_lr``."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return 1.0
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    floor = cfg.min_lr / cfg.lr
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class EMA:
    """Exponential moving average of parameters: ``ema <- d ema + (1 - d) p``.

    The decay ramps up as ``min(d, (1 + n) / (10 + n))`` over the first updates so that
    short runs still get a useful average.
    """

    def __init__(self, named: dict[str, torch.Tensor], decay: float):
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone().float() for k, v in named.items()}

    @torch.no_grad()
    def update(self, named: dict[str, torch.Tensor]) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        keys = list(self.shadow)
        shadow = [self.shadow[k] for k in keys]
        current = [named[k].detach().float() for k in keys]
        torch._foreach_lerp_(shadow, current, 1 - d)


def named_parameters(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """Return ``prefix.name -> parameter`` for trainable parameters, shared ones once."""
    seen: set[int] = set()
    out: dict[str, torch.Tensor] = {}
    for prefix, module in modules.items():
        for name, p in module.named_parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                out[f"{prefix}.{name}"] = p
    return out


def state_tensors(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """Return every parameter and buffer as ``prefix.name`` (shared tensors once)."""
    seen: set[int] = set()
    out: dict[str, torch.Tensor] = {}
    for prefix, module in modules.items():
        for name, tensor in module.state_dict().items():
            if id(tensor) in seen or tensor.data_ptr() in seen:
                continue
            seen.add(tensor.data_ptr())
            out[f"{prefix}.{name}"] = tensor
    return out
