"""Loading trained models and drawing samples from them in bounded-memory chunks.

``loflex.load("name-or-path")`` is :func:`load_model`: a run directory, a checkpoint
directory or the name of a pretrained model (see :mod:`loflex.extension.pretrained`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pydantic
import torch
from torch import nn

from loflex.config import Run, SampleConfig, apply_overrides, validate_run
from loflex.contracts import (
    Example,
    Generated,
    LogitConstrainedDomain,
    StructureCompletingDomain,
    supports,
)
from loflex.errors import CheckpointError, ConfigError, LoflexError
from loflex.extension.assemble import Assembly, assemble
from loflex.extension.pretrained import load_checkpoint
from loflex.extension.registry import options_error
from loflex.sampling import sampler
from loflex.training import checkpoint as ckpt
from loflex.training.runtime import autocast_for

WEIGHT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
ACCEPTED_DTYPES = "fp32, fp16 or bf16"
MODEL_FILE, EMA_FILE = "model.safetensors", "ema.safetensors"
T = TypeVar("T")


@dataclass
class Loaded:
    """A model restored from a checkpoint, with its run config.

    Example::

        model = loflex.load("star-easy-loflexmdm")
        paths = model.sample(16, steps=64)       # decoded samples (None where invalid)
        print(model.evaluate(200))                # the domain's metrics
    """

    model: Assembly
    run: Run
    checkpoint: ckpt.Checkpoint

    @property
    def domain(self):
        """The model's :class:`loflex.Domain` (vocabulary, decoding, metrics)."""
        return self.model.domain

    @property
    def device(self) -> torch.device:
        """Where the networks are."""
        return next(self.model.generator.parameters()).device

    def settings(self, n: int | None = None, **sample_options) -> SampleConfig:
        """Return the run's sampler settings with ``n`` samples and the given options.

        Raises:
            ConfigError: an unknown or invalid option (see :class:`loflex.SampleConfig`).
        """
        update = dict(sample_options, **({"num_samples": n} if n is not None else {}))
        try:
            return SampleConfig.model_validate({**self.run.sample.model_dump(), **update})
        except pydantic.ValidationError as exc:
            raise options_error("the sampler settings", exc) from None

    def generate(self, n: int | None = None, *, seed: int = 0, prompt: str | None = None,
                 **sample_options) -> list[Generated]:
        """Draw ``n`` samples as :class:`loflex.Generated` token ids.

        Args:
            n: how many (default: the run's ``sample.num_samples``).
            seed: the sampling seed.
            prompt: text every sample is conditioned on (the domain parses it).
            **sample_options: :class:`loflex.SampleConfig` fields, e.g. ``steps=64``.
        """
        settings = self.settings(n, **sample_options)
        example = self.domain.parse_prompt(prompt) if prompt is not None else None
        if example is not None:
            check_prompt_fits(self.model, example,
                              settings.max_length or self.model.generator.max_length)
        return generate_all(self.model, settings, seed=seed, device=self.device, prompt=example)

    def sample(self, n: int | None = None, *, seed: int = 0, prompt: str | None = None,
               **sample_options) -> list:
        """Draw ``n`` samples decoded by the domain (e.g. RDKit molecules; None if invalid).

        Arguments as :meth:`generate`; ``domain.to_text(s.tokens)`` of :meth:`generate`'s
        samples gives their text instead.
        """
        samples = self.generate(n, seed=seed, prompt=prompt, **sample_options)
        return [self.domain.decode(s.tokens) for s in samples]

    def evaluate(self, n: int | None = None, *, seed: int = 0, **sample_options) -> dict:
        """Draw ``n`` samples and return ``num_samples`` plus the domain's metrics."""
        samples = self.generate(n, seed=seed, **sample_options)
        return {"num_samples": len(samples), **self.domain.metrics(samples)}


def load_model(path: str | Path, *, use_ema: bool = True, device: str | torch.device = "cpu",
               overrides: list[str] | None = None) -> Loaded:
    """Restore the model of a run directory, checkpoint directory or pretrained model.

    Weights stored as fp16, bf16 or fp32 are loaded as fp32; other dtypes and weights
    holding NaN or infinite values are refused.

    Args:
        path: a run directory (its latest checkpoint), a checkpoint directory, or the
            name of a pretrained model (used only when no path of that name exists).
        use_ema: load the EMA weights when the checkpoint has them.
        device: where to put the networks.
        overrides: ``--set`` overrides applied to the stored run (e.g. sampler settings).

    Raises:
        CheckpointError: unreadable files, a missing plugin, weights that do not fit, are
            not floating point or are not finite.
        ConfigError: an invalid override (e.g. ``sample.top_k=-1``).
    """
    saved = load_checkpoint(path)
    saved.model = as_fp32(saved.model, saved.path)
    saved.ema = as_fp32(saved.ema, saved.path, EMA_FILE) if saved.ema is not None else None
    if use_ema and saved.ema is not None:
        check_ema_finite(saved)
    run = overridden_run(rebuildable(saved, lambda: validate_run(_copy(saved.run))), overrides)
    model = rebuildable(saved, lambda: assemble(run, domain_state=saved.state.get("domain")))
    modules = model.modules()
    load_weights(modules, saved.model, saved.path)
    if use_ema and saved.ema is not None:
        _assign(modules, saved.ema)
    for module in modules.values():
        module.to(device).eval()
    return Loaded(model, run, saved)


load = load_model


def as_fp32(tensors: dict[str, torch.Tensor], source: Path,
            file: str = MODEL_FILE) -> dict[str, torch.Tensor]:
    """Return the weights as fp32.

    Raises:
        CheckpointError: a tensor is stored in a dtype other than fp32, fp16 or bf16.
    """
    check_dtypes(tensors, source, file)
    return {name: tensor.float() for name, tensor in tensors.items()}


def check_dtypes(tensors: dict[str, torch.Tensor], source: Path, file: str = MODEL_FILE) -> None:
    """Refuse a weight tensor that is not fp32, fp16 or bf16 (an int64 or bool one, say).

    Raises:
        CheckpointError: naming the checkpoint, the file, the tensor and the accepted dtypes.
    """
    for name, tensor in tensors.items():
        if tensor.dtype not in WEIGHT_DTYPES:
            raise CheckpointError(
                f"'{source}' stores '{name}' in {file} as "
                f"{str(tensor.dtype).removeprefix('torch.')}; loflex loads weights stored as "
                f"{ACCEPTED_DTYPES} only: save the weights in one of those"
            )


def nonfinite_tensor(tensors: dict[str, torch.Tensor]) -> str | None:
    """Return the name of the first tensor holding a NaN or an infinity, else None."""
    return next((name for name, tensor in tensors.items()
                 if tensor.is_floating_point() and not torch.isfinite(tensor).all()), None)


def check_finite(tensors: dict[str, torch.Tensor], source: Path, file: str = MODEL_FILE) -> None:
    """Refuse weights holding NaN or infinite values (they would sample nothing).

    Raises:
        CheckpointError: naming the checkpoint, the file and the tensor.
    """
    name = nonfinite_tensor(tensors)
    if name is not None:
        raise CheckpointError(
            f"'{source}' holds NaN or infinite values in '{name}' of {file}; the checkpoint is "
            "damaged: use an earlier checkpoint"
        )


def check_ema_finite(saved: ckpt.Checkpoint) -> None:
    """Refuse non-finite EMA weights, pointing to the raw weights when those are finite.

    Raises:
        CheckpointError: naming the checkpoint and the tensor, and ``--no-ema`` when the raw
            weights would load.
    """
    name = nonfinite_tensor(saved.ema or {})
    if name is None:
        return
    if nonfinite_tensor(saved.model) is not None:
        check_finite(saved.ema, saved.path, EMA_FILE)
    raise CheckpointError(
        f"'{saved.path}' holds NaN or infinite values in '{name}' of {EMA_FILE}; its raw "
        "weights are finite: load them with --no-ema (use_ema=False), or use an earlier "
        "checkpoint"
    )


def rebuildable(saved: ckpt.Checkpoint, rebuild: Callable[[], T]) -> T:
    """Return ``rebuild()``; a failure to rebuild the stored run names the checkpoint.

    Raises:
        CheckpointError: the stored run cannot be validated or assembled (a plugin missing,
            say), with the plugins the checkpoint came from.
    """
    try:
        return rebuild()
    except LoflexError as exc:
        raise CheckpointError(
            f"checkpoint '{saved.path}' cannot be rebuilt: {exc.message}{_owner_hint(saved)}"
        ) from None


def overridden_run(run: Run, overrides: list[str] | None) -> Run:
    """Return the stored ``run`` with ``--set`` overrides applied and validated.

    Raises:
        ConfigError: an override is malformed or gives an invalid value (as in training).
    """
    if not overrides:
        return run
    return validate_run(apply_overrides(run.model_dump(mode="json"), overrides))


def _copy(data: dict) -> dict:
    return json.loads(json.dumps(data))


def starting_weights(saved: ckpt.Checkpoint) -> dict[str, torch.Tensor]:
    """Return the weights a fine-tuning run starts from: the EMA over the raw ones, fp32."""
    return {**as_fp32(saved.model, saved.path), **as_fp32(saved.ema or {}, saved.path, EMA_FILE)}


def _owner_hint(saved: ckpt.Checkpoint) -> str:
    owners = saved.state.get("owners", {})
    if not owners:
        return ""
    parts = [f"'{name}' came from {info['distribution']}" for name, info in owners.items()]
    return " (" + "; ".join(parts) + "; install the missing plugin)"


def load_weights(modules: dict[str, nn.Module], tensors: dict[str, torch.Tensor],
                 source: Path) -> None:
    """Load ``prefix.name`` tensors into the modules, with a clear error on mismatch.

    Raises:
        CheckpointError: a tensor is missing, unexpected, of another shape, not stored as
            fp32, fp16 or bf16, or holds NaN or infinite values.
    """
    check_dtypes(tensors, source)
    check_finite(tensors, source)
    for prefix, module in modules.items():
        own = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        expected = module.state_dict()
        missing = sorted(set(expected) - set(own))
        unexpected = sorted(set(own) - set(expected))
        wrong = sorted(k for k in set(own) & set(expected) if own[k].shape != expected[k].shape)
        if missing or unexpected or wrong:
            problem = (f"missing {missing[:3]}" if missing else
                       f"unexpected {unexpected[:3]}" if unexpected else
                       f"shape mismatch in {wrong[:3]} (checkpoint {tuple(own[wrong[0]].shape)}, "
                       f"config {tuple(expected[wrong[0]].shape)})")
            raise CheckpointError(
                f"the {prefix} weights in '{source}' do not fit the configured {prefix}: "
                f"{problem}; use the run config saved with the checkpoint"
            )
        module.load_state_dict(own, strict=True)


def _assign(modules: dict[str, nn.Module], tensors: dict[str, torch.Tensor]) -> None:
    params = {f"{p}.{n}": t for p, m in modules.items() for n, t in m.named_parameters()}
    with torch.no_grad():
        for name, value in tensors.items():
            if name in params:
                params[name].copy_(value.to(params[name].dtype))


@contextlib.contextmanager
def swapped_weights(model: Assembly, weights: dict[str, torch.Tensor] | None) -> Iterator[None]:
    """Temporarily use ``weights`` (e.g. EMA) in the model's parameters."""
    if weights is None:
        yield
        return
    modules = model.modules()
    saved = {f"{p}.{n}": t.detach().clone() for p, m in modules.items()
             for n, t in m.named_parameters()}
    _assign(modules, weights)
    try:
        yield
    finally:
        _assign(modules, saved)


def sampling_prompts(model: Assembly, settings: SampleConfig, count: int,
                     prompt: Example | None = None) -> list[Example]:
    """Return one prompt per sample: the given one, the domain's test prompts, or empty."""
    if prompt is not None:
        return [prompt] * count
    if model.domain.conditional:
        return model.domain.prompts(settings.split, count)
    return [Example(target=[]) for _ in range(count)]


def prompt_chunks(model: Assembly, settings: SampleConfig,
                  prompt: Example | None = None) -> Iterator[list[Example]]:
    """Yield the prompts of :func:`generate` one sampler batch at a time.

    Unprompted and fixed-prompt sampling builds each batch's prompts on demand, so memory
    does not grow with ``settings.num_samples``; a conditional domain's prompts are listed
    once (references to its examples).
    """
    total, size = settings.num_samples, settings.batch_size
    listed = None
    if prompt is None and model.domain.conditional:
        listed = sampling_prompts(model, settings, total)
    for start in range(0, total, size):
        count = min(size, total - start)
        if listed is not None:
            yield listed[start:start + count]
        else:
            yield sampling_prompts(model, settings, count, prompt)


def generate(model: Assembly, settings: SampleConfig, *, seed: int = 0,
             device: str | torch.device = "cpu", prompt: Example | None = None,
             trajectory: bool = False) -> Iterator[tuple[list[Generated], object]]:
    """Yield samples batch by batch (memory stays bounded however many are asked for).

    Yields:
        ``(samples, output)`` per sampler batch: the :class:`Generated` samples and the
        raw :class:`loflex.sampling.sampler.SampleOutput` (with its trajectory when asked).
    """
    rng = torch.Generator(device=device).manual_seed(seed)
    was_training = (model.generator.training, model.order.training)
    model.generator.eval()
    model.order.eval()
    try:
        for chunk in prompt_chunks(model, settings, prompt):
            with torch.no_grad(), autocast_for(settings, torch.device(device)):
                out = sampler.sample(model.generator, model.order, chunk,
                                     _with_room(model, settings, chunk),
                                     constrain_logits=_constraint(model),
                                     missing_structure=_structure(model), rng=rng,
                                     record_trajectory=trajectory, device=device)
            samples = out.generated()
            for sample, example in zip(samples, chunk):
                sample.reference = example if example.target else None
            yield samples, out
    finally:
        model.generator.train(was_training[0])
        model.order.train(was_training[1])


def _with_room(model: Assembly, settings: SampleConfig, prompts: list[Example]) -> SampleConfig:
    """Widen the sampler so each prompt leaves room for a full target.

    An unconditional model grown from a prompt (e.g. a molecule fragment) needs the
    prompt's length on top of its usual target length; an explicit
    ``sample.max_length`` is kept as given.
    """
    if settings.max_length is not None:
        return settings
    longest = max(len(p.prompt) + int(bool(p.prompt) and p.bos) + 1 for p in prompts)
    width = max(model.generator.max_length, longest + model.domain.max_target_length)
    return settings.model_copy(update={"max_length": width})


def _constraint(model: Assembly):
    if not supports(model.domain, LogitConstrainedDomain):
        return None
    return model.domain.constrain_logits


def _structure(model: Assembly):
    if not supports(model.domain, StructureCompletingDomain):
        return None
    return model.domain.missing_structure


def generate_all(model: Assembly, settings: SampleConfig, **kwargs) -> list[Generated]:
    """Return all samples of :func:`generate` as one list."""
    return [s for samples, _ in generate(model, settings, **kwargs) for s in samples]


def check_prompt_fits(model: Assembly, prompt: Example, max_length: int) -> None:
    """Raise a clear error when a prompt leaves no room to generate."""
    needed = len(prompt.prompt) + (1 if prompt.prompt and prompt.bos else 0) + 2
    if needed > max_length:
        raise ConfigError(
            f"the prompt has {len(prompt.prompt)} tokens but the model's maximum length is "
            f"{max_length}; shorten the prompt or raise sample.max_length"
        )
