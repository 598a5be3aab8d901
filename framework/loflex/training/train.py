"""The training loop: one readable function, plus checkpoint and device helpers.

``loflex train`` and ``torchrun --nproc-per-node N -m loflex.cli train`` both end here.
"""

from __future__ import annotations

import json
import math
import random
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from loflex.config import Run, run_to_toml
from loflex.contracts import Domain, Generator
from loflex.diffusion.batch import Batch, collate
from loflex.diffusion.order import OrderDynamics
from loflex.errors import CheckpointError, ConfigError, TrainingError
from loflex.extension.assemble import Assembly, assemble
from loflex.extension.registry import owner
from loflex.inspection.diagnostics import HINT_EXAMPLES, diagnose
from loflex.sampling.inference import (
    EMA_FILE,
    check_dtypes,
    check_finite,
    generate_all,
    load_weights,
    swapped_weights,
)
from loflex.training import checkpoint as ckpt
from loflex.training import rundir
from loflex.training.data import BatchStream, Position
from loflex.training.memory import check_training_fits
from loflex.training.optim import EMA, state_tensors
from loflex.training.runtime import (  # noqa: F401  (re-exported: loflex.training.train.Objective etc.)
    Objective,
    TrainingStep,
    distributed,
    pick_device,
    seed_everything,
)


@dataclass
class TrainResult:
    """What a finished (or interrupted) training run reached."""

    run_dir: Path
    step: int
    last_loss: float
    stopped_by: str  # "steps" | "time" | "signal"
    wall_seconds: float
    train_seconds: float  # time in optimiser steps (what time_limit_minutes counts)


class StopFlag:
    """Set by SIGINT/SIGTERM: the loop finishes the current step, checkpoints and exits."""

    def __init__(self) -> None:
        self.raised = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame) -> None:
        self.raised = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@contextmanager
def locked_run_dir(run: Run, run_dir: Path, resume: bool, force: bool = False) -> Iterator[None]:
    """Check, create and lock the run directory, and write its config, for the block.

    Raises:
        LoflexError: the folder is a file or another program's folder (without ``force``),
            holds links where loflex writes, or another process is writing into it.
    """
    if resume and not run_dir.is_dir():
        raise CheckpointError(f"cannot resume '{run_dir}': there is no such run directory")
    if not resume:
        rundir.refuse_foreign_folder(run_dir, force)
    run_dir.mkdir(parents=True, exist_ok=True)
    with rundir.run_lock(run_dir):
        prepare_run_dir(run, run_dir, resume)
        yield


def prepare_run_dir(run: Run, run_dir: Path, resume: bool) -> None:
    """Write the run's config, refusing to overwrite an existing run unless resuming.

    Raises:
        LoflexError: a managed entry of the run directory is a symbolic link.
        ConfigError: the folder holds checkpoints and ``resume`` is not set.
    """
    rundir.refuse_links_in_run(run_dir)
    has_checkpoints = bool(ckpt.step_dirs(run_dir / "checkpoints"))
    if has_checkpoints and not resume:
        raise ConfigError(
            f"run directory '{run_dir}' already holds checkpoints; pass --resume to continue it "
            "or choose another -o"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume or not (run_dir / "config.toml").exists():
        ckpt.atomic_write_text(run_dir / "config.toml", run_to_toml(run))


def log_line(path: Path, record: dict) -> None:
    """Append one JSON line to ``metrics.jsonl`` (flushed; never rewrites earlier lines).

    The file is opened without following a symbolic link and must be a regular file.
    """
    rundir.append_text(path, json.dumps(record) + "\n")


def starting_modules(modules: dict[str, nn.Module],
                     weights: dict[str, torch.Tensor]) -> dict[str, nn.Module]:
    """Return the modules a fine-tuning run loads from ``weights``.

    Every module with weights under its prefix is loaded; a module the checkpoint has no
    weights for (a learned order started from a fixed-order model) keeps its fresh
    initialisation.
    """
    return {prefix: module for prefix, module in modules.items()
            if any(key.startswith(prefix + ".") for key in weights)}


def train(run: Run, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
          cache_dir: Path | None = None, force: bool = False,
          init: ckpt.Checkpoint | None = None) -> TrainResult:
    """Train ``run`` into ``run_dir`` (resumable, DDP-aware) and return where it stopped.

    ``init`` starts a new run from a checkpoint's weights and vocabulary (fine-tuning; its
    ``model`` tensors are loaded, the optimiser starts fresh).

    The process holds the run directory's writer lock throughout (rank 0 under DDP);
    ``force`` trains into a non-empty folder that is not a loflex run.
    """
    run_dir = Path(run_dir)
    rank, _ = distributed()
    device = pick_device(run.train.device)  # an unusable device fails before anything is written
    check_training_fits(run, device)  # and so do sizes that cannot fit in memory
    with locked_run_dir(run, run_dir, resume, force) if rank == 0 else nullcontext():
        return _train(run, run_dir, resume=resume, progress=progress, cache_dir=cache_dir,
                      init=init)


def _train(run: Run, run_dir: Path, *, resume: bool, progress: bool,
           cache_dir: Path | None, init: ckpt.Checkpoint | None = None) -> TrainResult:
    cfg = run.train
    rank, world = distributed()
    device = pick_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(run.seed + rank)

    restored = _latest_checkpoint(run_dir) if resume else None
    start = restored or init
    model = assemble(run, domain_state=start.state["domain"] if start else None,
                     cache_dir=cache_dir)
    model.generator.to(device)
    model.order.to(device)
    modules = model.modules()
    if init is not None and restored is None:
        load_weights(starting_modules(modules, init.model), init.model, init.path)
    training_step = TrainingStep(model, cfg, device)
    optimizer, ema = training_step.optimizer, training_step.ema
    stream = BatchStream(model.domain.examples("train"), cfg.batch_size, run.seed,
                         cfg.length_buckets, rank, world, cfg.num_workers)
    noise_rng = torch.Generator(device=device).manual_seed(run.seed * 7919 + rank)
    step, nonfinite, skipped_total, train_seconds = 0, 0, 0, 0.0
    if restored is not None:
        step = _restore(restored, modules, optimizer, ema, stream, noise_rng)
        train_seconds = float(restored.state.get("train_seconds", 0.0))
        skipped_total = int(restored.state.get("skipped_total", 0))
    training_step.prepare(world)  # compile (train.compile), DDP; after restoring weights
    metrics_path = run_dir / "metrics.jsonl"
    valid = _validation_batches(model, cfg.batch_size, cfg.eval_batches) if cfg.eval_every else []
    start, last_loss, stopped_by = time.time(), math.nan, "steps"
    bar = _progress(progress and rank == 0, cfg.steps, step)
    batches = iter(stream)
    with StopFlag() as stop:
        while step < cfg.steps:
            training_step.set_lr(step)
            batch = next(batches).to(device)
            t0, c0 = time.perf_counter(), time.process_time()
            outcome = training_step(batch, noise_rng)
            terms, grad_norm = outcome.terms, outcome.grad_norm
            if not outcome.applied:
                nonfinite += 1
                skipped_total += 1
                if nonfinite >= cfg.max_nonfinite_steps:
                    raise TrainingError(
                        f"{nonfinite} consecutive steps had a non-finite loss or gradient "
                        f"(last at step {step}); lower train.lr or raise train.grad_clip, then "
                        "resume from the last checkpoint with --resume"
                    )
            else:
                nonfinite = 0
            step += 1
            last_loss = outcome.loss
            train_seconds += (time.perf_counter() - t0 if cfg.budget_clock == "wall"
                              else time.process_time() - c0)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{last_loss:.3f}")
            if rank == 0 and (step % cfg.log_every == 0 or step == cfg.steps):
                record = {"step": step, "lr": optimizer.param_groups[0]["lr"],
                          "grad_norm": grad_norm, "step_seconds": time.perf_counter() - t0,
                          "train_seconds": train_seconds, "elapsed": time.time() - start,
                          "skipped_nonfinite": nonfinite, "skipped_total": skipped_total,
                          **terms.scalars()}
                log_line(metrics_path, record)
            if rank == 0 and cfg.eval_every and step % cfg.eval_every == 0:
                valid_loss = _validate(training_step.objective, valid, device, run.seed)
                log_line(metrics_path, {"step": step, "valid_loss": valid_loss,
                                        **_diagnostics(model, valid, device, run.seed,
                                                       cfg.loss_normalisation)})
            if rank == 0 and cfg.sample_every and step % cfg.sample_every == 0:
                log_line(metrics_path, {"step": step, "train_seconds": train_seconds,
                                        **_sample_metrics(model, run, ema, device)})
            timed_out = cfg.time_limit_minutes and train_seconds > 60 * cfg.time_limit_minutes
            if stop.raised or timed_out:
                stopped_by = "signal" if stop.raised else "time"
                break
            if rank == 0 and cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                _save(run, run_dir, step, model, optimizer, ema, stream.position, noise_rng,
                      train_seconds, skipped_total)
    if bar is not None:
        bar.close()
    saved_already = cfg.checkpoint_every and step % cfg.checkpoint_every == 0 \
        and stopped_by == "steps"
    if rank == 0 and not saved_already:
        _save(run, run_dir, step, model, optimizer, ema, stream.position, noise_rng,
              train_seconds, skipped_total)
    if world > 1:
        dist.barrier()
    return TrainResult(run_dir, step, last_loss, stopped_by, time.time() - start, train_seconds)


def _progress(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="train", dynamic_ncols=True, leave=False)


def _validation_batches(model: Assembly, batch_size: int, count: int) -> list[Batch]:
    examples = list(model.domain.examples("valid"))
    if not examples:
        return []
    chunks = [examples[i:i + batch_size] for i in range(0, len(examples), batch_size)]
    return [collate(chunk) for chunk in chunks[:count]]


@torch.no_grad()
def _validate(objective: Objective, batches: list[Batch], device: torch.device, seed: int) -> float:
    """Mean loss over fixed validation batches with a fixed noise seed (comparable over time)."""
    if not batches:
        return math.nan
    was_training = objective.training
    objective.eval()
    rng = torch.Generator(device=device).manual_seed(seed + 12345)
    total = sum(float(objective(b.to(device), rng).loss) for b in batches) / len(batches)
    objective.train(was_training)
    return total


def _diagnostics(model: Assembly, batches: list[Batch], device: torch.device, seed: int,
                 normalisation: str) -> dict:
    """Return the ``diag/`` figures of :mod:`loflex.inspection.diagnostics` on the validation batches.

    One extra generator forward per batch, with its own fixed noise seed; the b_in spread
    and the order-hint correlation only for learned orders (a fixed order does not change).
    """
    if not batches:
        return {}
    learned = bool(model.order.learned)
    examples = model.domain.examples("valid") if learned else []
    hints = [examples[i] for i in range(min(HINT_EXAMPLES, len(examples)))]
    rng = torch.Generator(device=device).manual_seed(seed + 54321)
    found = diagnose(model.generator, model.order, [b.to(device) for b in batches], rng=rng,
                     normalisation=normalisation, length_scale=float(model.domain.max_length),
                     spread=learned, hint_examples=hints)
    return found.log_fields()


def _sample_metrics(model: Assembly, run: Run, ema: EMA | None, device: torch.device) -> dict:
    settings = run.sample.model_copy(update={"num_samples": run.train.sample_count})
    with swapped_weights(model, ema.shadow if ema is not None else None):
        samples = generate_all(model, settings, seed=run.seed, device=device)
    return {f"sample/{k}": v for k, v in model.domain.metrics(samples).items()}


def _latest_checkpoint(run_dir: Path) -> ckpt.Checkpoint:
    try:
        return ckpt.load(run_dir, with_optim=True)
    except CheckpointError as exc:
        raise CheckpointError(f"cannot resume '{run_dir}': {exc.message}") from None


def _save(run: Run, run_dir: Path, step: int, model: Assembly, optimizer, ema: EMA | None,
          position: Position, noise_rng: torch.Generator, train_seconds: float,
          skipped_total: int = 0) -> None:
    optim_tensors, optim_meta = ckpt.flatten_optimizer(optimizer.state_dict())
    optim_tensors["rng.torch"] = torch.get_rng_state()
    optim_tensors["rng.noise"] = noise_rng.get_state()
    owners = {}
    for base, spec in ((Domain, run.domain), (Generator, run.generator), (OrderDynamics, run.order)):
        reg = owner(base, spec.name)
        owners[spec.name] = {"plugin": reg.plugin, "distribution": reg.distribution}
    state = {"step": step, "domain": model.domain.state_dict(), "optimizer": optim_meta,
             "position": asdict(position), "ema_updates": ema.updates if ema else 0,
             "python_random": _encode_random_state(), "owners": owners,
             "train_seconds": train_seconds, "skipped_total": skipped_total}
    directory = run_dir / "checkpoints" / f"step-{step:08d}"
    ckpt.save(directory, run=run.model_dump(mode="json"), state=state,
              model=state_tensors(model.modules()),
              ema=dict(ema.shadow) if ema is not None else None, optim=optim_tensors)
    ckpt.atomic_write_text(run_dir / "checkpoints" / ckpt.LATEST, directory.name + "\n")
    ckpt.keep_last(run_dir / "checkpoints", run.train.keep_checkpoints)


def _restore(restored: ckpt.Checkpoint, modules: dict[str, nn.Module], optimizer, ema,
             stream: BatchStream, noise_rng: torch.Generator) -> int:
    """Restore weights, optimiser, EMA, RNGs and data position; return the step.

    Raises:
        CheckpointError: the checkpoint lacks the optimiser state, or a part of its state
            is damaged (names the checkpoint and the fix).
    """
    if restored.optim is None:
        raise CheckpointError(
            f"cannot resume from '{restored.path}': its optim.safetensors (optimiser and "
            "random-number state) is missing; resume from an earlier checkpoint, or start a new "
            f"run from its weights with --init {restored.path}")
    try:
        step = _restore_exactly(restored, modules, optimizer, ema, stream, noise_rng)
        _check_param_groups(optimizer)
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as exc:
        raise CheckpointError(
            f"cannot resume from '{restored.path}': its optimiser, random-number or data-position "
            f"state is damaged ({type(exc).__name__}: {rundir.excerpt(str(exc), 80)}); resume "
            "from an earlier checkpoint") from None
    return step


def _check_param_groups(optimizer) -> None:
    """Raise TypeError when a restored optimiser setting is not a number, flag or pair."""
    for group in optimizer.param_groups:
        for key, value in group.items():
            values = value if isinstance(value, (list, tuple)) else [value]
            if key != "params" and not all(v is None or isinstance(v, (bool, int, float))
                                           for v in values):
                raise TypeError(f"optimiser setting {key!r} is {type(value).__name__}")


def _restore_exactly(restored: ckpt.Checkpoint, modules: dict[str, nn.Module], optimizer, ema,
                     stream: BatchStream, noise_rng: torch.Generator) -> int:
    load_weights(modules, restored.model, restored.path)
    tensors = dict(restored.optim or {})
    torch.set_rng_state(tensors.pop("rng.torch"))
    noise_rng.set_state(tensors.pop("rng.noise"))
    optimizer.load_state_dict(ckpt.unflatten_optimizer(tensors, restored.state["optimizer"]))
    if ema is not None and restored.ema is not None:
        check_dtypes(restored.ema, restored.path, EMA_FILE)
        check_finite(restored.ema, restored.path, EMA_FILE)
        ema.shadow = {k: v.clone() for k, v in restored.ema.items()}
        ema.updates = restored.state.get("ema_updates", 0)
    stream.position = Position(**restored.state["position"])
    random.setstate(_decode_random_state(restored.state["python_random"]))
    return restored.step


def _encode_random_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _decode_random_state(data: list) -> tuple:
    version, internal, gauss = data
    return (version, tuple(internal), gauss)
