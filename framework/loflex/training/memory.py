"""Fail fast on absurd sizes: a lower bound on what a training run needs, before it allocates.

The generator and the order are built on the ``meta`` device (shapes, no storage). A
component with a ``layers`` option is built with one and two layers and its parameter
count extrapolated linearly, so a million layers cost two small meta builds. Each
parameter costs 20 bytes in training (fp32 weights, gradients, two Adam moments and the
EMA copy). Activations are bounded below by ``ACTIVATION_FLOATS`` floats per token, per
unit of width and per layer of every component with ``width`` and ``layers`` options,
plus the batch tensors; the sequence length is taken as the shortest possible, so the
figure is a lower bound and a run is refused only when even that does not fit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from loflex.config import Run
from loflex.contracts.vocab import SPECIAL_TOKENS
from loflex.errors import ConfigError

BYTES_PER_PARAMETER = 4 * 5  # weights, gradients, Adam's two moments, EMA (fp32)
ACTIVATION_FLOATS = 16  # per token, unit of width and layer kept for the backward
BATCH_TENSORS = 6  # int64/float per token: ids, padding, times, gaps, targets, rates
SHORTEST = 2  # BOS/EOS: the shortest sequence a batch can hold


@dataclass
class Need:
    """A lower bound on a training run's memory, in bytes."""

    parameters: int
    parameter_bytes: int
    activation_bytes: int

    @property
    def total(self) -> int:
        return self.parameter_bytes + self.activation_bytes


def size(num_bytes: float) -> str:
    """``num_bytes`` in binary units (``1.5 GiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(num_bytes) < 1024 or unit == "PiB":
            return f"{num_bytes:.3g} {unit}" if unit == "PiB" or num_bytes >= 1 else "0 B"
        num_bytes /= 1024
    raise AssertionError("unreachable")


def _size_options(run: Run, fallback: bool = True) -> list[str]:
    """The generator's and order's integer options to reduce: those of 10,000 and more (else,
    with ``fallback``, the largest one), as ``section.options.key=value``."""
    found = sorted(((value, f"{section}.options.{key}={value}")
                    for section in ("generator", "order")
                    for key, value in getattr(run, section).options.items()
                    if isinstance(value, int) and not isinstance(value, bool) and value > 1),
                   reverse=True)
    large = [text for value, text in found if value >= 10_000]
    return large or ([text for _, text in found[:1]] if fallback else [])


def _build_on_meta(run: Run, generator_layers: int | None, order_layers: int | None):
    """Build generator and order on the meta device, with the given ``layers`` options."""
    from loflex.contracts import Generator
    from loflex.diffusion.order import OrderDynamics
    from loflex.extension import registry

    def spec(section, layers):
        options = dict(getattr(run, section).options)
        if layers is not None:
            options["layers"] = layers
        return {"name": getattr(run, section).name, "options": options}

    order_spec = spec("order", order_layers)
    order_cls = registry.get(OrderDynamics, order_spec["name"])
    order_options = registry.validate_options(OrderDynamics, order_spec["name"],
                                              order_spec["options"])
    vocab_size, max_length = len(SPECIAL_TOKENS) + 1, run.sample.max_length or SHORTEST
    with torch.device("meta"):
        generator = registry.build(Generator, spec("generator", generator_layers),
                                   vocab_size=vocab_size, max_length=max_length,
                                   learn_unmask=order_cls.learns_unmask(order_options))
        order = order_cls(order_options, generator=generator, vocab_size=vocab_size,
                          max_length=max_length)
    return generator, order


def _count(run: Run, generator_layers: int | None, order_layers: int | None) -> int:
    generator, order = _build_on_meta(run, generator_layers, order_layers)
    unique = {id(p): p for module in (generator, order) for p in module.parameters()}
    return sum(p.numel() for p in unique.values())


def _layers(run: Run, section: str) -> int | None:
    value = getattr(run, section).options.get("layers")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parameter_count(run: Run) -> int | None:
    """A lower bound on the trainable parameters of ``run`` (None when it cannot be told).

    Raises:
        ConfigError: the sizes overflow even a shape computation.
    """
    layers = {section: _layers(run, section) for section in ("generator", "order")}
    try:
        base = _count(run, 1 if layers["generator"] else None, 1 if layers["order"] else None)
        total = base
        if layers["generator"]:
            per_layer = _count(run, 2, 1 if layers["order"] else None) - base
            total += (layers["generator"] - 1) * per_layer
        if layers["order"]:
            per_layer = _count(run, 1 if layers["generator"] else None, 2) - base
            total += (layers["order"] - 1) * per_layer
    except (RuntimeError, TypeError, OverflowError, ValueError) as exc:
        if "overflow" not in str(exc).lower():
            return None  # a component that cannot be built on meta: no estimate
        raise ConfigError(f"the model is too large to allocate at all "
                          f"({', '.join(_size_options(run))}); reduce the sizes") from None
    except Exception:  # noqa: BLE001 - a plugin's meta build failing only skips the estimate
        return None
    return total


def activation_bytes(run: Run) -> int:
    """A lower bound on the activation and batch memory of one training step."""
    tokens = run.train.batch_size * SHORTEST
    floats = tokens * BATCH_TENSORS
    for section in ("generator", "order"):
        options = getattr(run, section).options
        width, layers = options.get("width"), options.get("layers")
        if isinstance(width, int) and isinstance(layers, int):
            if section == "order" and options.get("backbone") == "shared":
                continue
            floats += tokens * width * layers * ACTIVATION_FLOATS
    return 4 * floats


def estimate(run: Run) -> Need | None:
    """The lower bound on what training ``run`` needs (None when it cannot be told)."""
    count = parameter_count(run)
    if count is None:
        return None
    return Need(count, count * BYTES_PER_PARAMETER, activation_bytes(run))


def available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device``: CUDA's free memory, or the system's MemAvailable."""
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def check_training_fits(run: Run, device: torch.device) -> None:
    """Refuse ``run`` before anything is allocated when its lower bound exceeds free memory.

    Raises:
        ConfigError: one line with what the run needs, what is free and what to reduce.
    """
    need = estimate(run)
    free = available_bytes(device)
    if need is None or free is None or need.total <= free:
        return
    batch = f"train.batch_size={run.train.batch_size}"
    if need.parameter_bytes >= need.activation_bytes:
        reduce = ", ".join([*_size_options(run), batch])
    else:
        reduce = ", ".join([batch, *_size_options(run, fallback=False)])
    raise ConfigError(
        f"training needs at least {size(need.total)} of memory on {device.type} "
        f"({need.parameters:.3g} parameters: {size(need.parameter_bytes)} with gradients, Adam "
        f"state and EMA; {size(need.activation_bytes)} of activations) but {size(free)} is free; "
        f"reduce the sizes ({reduce})"
    )
