"""``loflex train``, ``loflex sample`` and ``loflex evaluate``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from loflex.commands import add_set_option, show_progress
from loflex.config import SampleConfig, load_run
from loflex.errors import ConfigError

MODEL_HELP = "run directory, checkpoint directory or pretrained model name"
SAMPLER_FLAGS = {"steps": "steps", "top_p": "top_p", "top_k": "top_k",
                 "temperature": "temperature", "confidence": "confidence",
                 "batch_size": "batch_size", "max_length": "max_length",
                 "completion_rounds": "completion_rounds",
                 "structure_rounds": "structure_rounds"}


def add_commands(sub) -> None:
    p = sub.add_parser("train", help="train a model into a run directory")
    p.add_argument("run_file", nargs="?", type=Path, help="TOML run file (optional)")
    add_set_option(p)
    p.add_argument("-o", "--output", type=output_path, help="run directory to write")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its last complete checkpoint")
    p.add_argument("--init", metavar="MODEL",
                   help="start from the weights of a pretrained model, run or checkpoint "
                   "directory (fine-tuning; the architecture comes from it)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--force", action="store_true",
                   help="train into a non-empty folder that is not a loflex run")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("sample", help="draw samples from a trained model")
    p.add_argument("model", type=Path, help=MODEL_HELP)
    p.add_argument("-n", "--num-samples", type=int, default=None,
                   help="how many samples to draw (default: the run's sample.num_samples)")
    _sampler_flags(p)
    p.add_argument("--prompt", help="condition every sample on this prompt text")
    p.add_argument("-o", "--output", type=output_path, required=True,
                   help="samples file: .jsonl (token ids and text, re-scorable with `loflex "
                   "evaluate --samples`) or .csv (the domain's columns)")
    p.add_argument("--export", type=Path, help="also write domain files (CSV, SDF, images) here")
    p.add_argument("--trajectory", type=Path, help="record generation trajectories in this folder")
    p.set_defaults(handler=cmd_sample)

    p = sub.add_parser("evaluate", help="score samples of a model with the domain's metrics")
    p.add_argument("model", type=Path, help=MODEL_HELP)
    p.add_argument("--samples", type=Path, help="score this samples file instead of sampling")
    p.add_argument("-n", "--num-samples", type=int, default=None,
                   help="how many samples to draw (default: the run's sample.num_samples)")
    _sampler_flags(p)
    p.add_argument("-o", "--output", type=output_path, help="write the metrics as JSON here")
    p.set_defaults(handler=cmd_evaluate)


def refuse_component_switch(run_dir: Path, run) -> None:
    """Refuse ``--set`` overrides that swap the domain, generator or order of a resumed run.

    Raises:
        ConfigError: naming the component, its name in the run and the one asked for.
    """
    saved = load_run(run_dir / "config.toml")
    for section in ("domain", "generator", "order"):
        before, after = getattr(saved, section).name, getattr(run, section).name
        if before != after:
            raise ConfigError(f"--resume continues '{run_dir}' with its {section} '{before}'; "
                              f"--set {section}.name={after} would switch it mid-run, so start "
                              f"a new run instead (-o, with --init {run_dir} to keep its weights)")


def regular_run_file(path: Path | None) -> Path | None:
    """Return ``path``; refuse a folder, FIFO or device given as the run file.

    Raises:
        ConfigError: ``path`` exists but is not a regular file.
    """
    from loflex.training.rundir import kind_of

    if path is not None and path.exists() and not path.is_file():
        raise ConfigError(f"run file '{path}' is {kind_of(path)}, not a regular file; pass a "
                          "TOML run file")
    return path


def output_path(text: str) -> Path:
    """An ``-o`` argument: any path but the empty one (which would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the output path is empty; name a file or folder")
    return Path(text)


def _sampler_flags(p) -> None:
    add_set_option(p)
    p.add_argument("--steps", type=int, help="tau-leaping steps")
    p.add_argument("--top-p", type=float,
                   help="nucleus sampling: keep the most likely tokens up to this probability "
                   "(1 = off)")
    p.add_argument("--top-k", type=int, help="keep the k most likely tokens (0 = off, 1 = greedy)")
    p.add_argument("--temperature", type=float, help="softmax temperature of the token choice")
    p.add_argument("--confidence", choices=("none", "top_prob", "prob_diff", "entropy"),
                   help="which masked positions to reveal (the count comes from tau-leaping)")
    p.add_argument("--completion-rounds", type=int,
                   help="after the last step, insert and fill what the generator still finds "
                   "missing, up to this many times (0 = off)")
    p.add_argument("--structure-rounds", type=int,
                   help="at the end, insert what the domain finds structurally missing and "
                   "let the generator fill it, up to this many times (0 = off)")
    p.add_argument("--batch-size", type=int, help="samples per sampler batch")
    p.add_argument("--max-length", type=int,
                   help="longest sequence (default: the domain's maximum)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler (default 0)")
    p.add_argument("--device", default="cpu", help="where to run: cpu, cuda, cuda:N or mps (default cpu)")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights, not the EMA")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")


def cmd_train(args) -> int:
    from loflex.training.fine_tuning import fine_tuning
    from loflex.training.rundir import refuse_links_in_run
    from loflex.training.train import train

    init = None
    if args.resume is not None:
        if args.init is not None:
            raise ConfigError("--init starts a new run and --resume continues one; pass one")
        if args.run_file is not None:
            raise ConfigError("--resume reads the run's own config.toml; drop the run file")
        refuse_links_in_run(args.resume)
        run = load_run(regular_run_file(args.resume / "config.toml"), args.overrides)
        refuse_component_switch(args.resume, run)
        run_dir = args.resume
    else:
        if args.output is None:
            raise ConfigError("say where to write the run with -o RUN_DIR")
        if args.init is not None:
            init, run = fine_tuning(args.init, args.run_file, args.overrides)
        else:
            run = load_run(regular_run_file(args.run_file), args.overrides)
        run_dir = args.output
    result = train(run, run_dir, resume=args.resume is not None, progress=show_progress(args),
                   force=args.force, init=init)
    print(f"trained {result.step} steps ({result.stopped_by}) in {result.wall_seconds:.0f}s; "
          f"last loss {result.last_loss:.4f}; run directory {result.run_dir}")
    return 0


def sampler_settings(args, run_sample: SampleConfig) -> SampleConfig:
    """Return the run's sampler settings updated by the command-line flags."""
    update = {key: getattr(args, attr) for attr, key in SAMPLER_FLAGS.items()
              if getattr(args, attr, None) is not None}
    if getattr(args, "num_samples", None) is not None:
        update["num_samples"] = args.num_samples
    try:
        return SampleConfig.model_validate({**run_sample.model_dump(), **update})
    except Exception as exc:  # pydantic.ValidationError
        from loflex.extension.registry import options_error

        raise options_error("the sampler settings", exc) from None


def check_device(name: str) -> None:
    """Refuse a ``--device`` torch does not know, or CUDA on a machine without it.

    Raises:
        ConfigError: naming the device and what to use instead.
    """
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device '{name}' is not a device; use cpu, or cuda (cuda:N for one "
                          "of several GPUs)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device '{name}' asks for CUDA, but no CUDA device is available; "
                          "use --device cpu")


def check_seed(seed: int) -> None:
    """Refuse a ``--seed`` outside 0..2^32-1 (what the random-number generators take)."""
    if not 0 <= seed < 2 ** 32:
        raise ConfigError(f"--seed must be between 0 and {2 ** 32 - 1}, not {seed}")


def _load(args):
    from loflex.sampling.inference import load_model

    check_device(args.device)
    check_seed(args.seed)
    return load_model(args.model, use_ema=not args.no_ema, device=args.device,
                      overrides=args.overrides)


def cmd_sample(args) -> int:
    from loflex.inspection.trajectory import output_records
    from loflex.sampling.inference import check_prompt_fits, generate
    from loflex.sampling.sample_files import check_format, sample_writer
    from loflex.sampling.samples_io import refuse_filled_folder, refuse_overwrite

    check_format(args.output)
    loaded = _load(args)
    model, settings = loaded.model, sampler_settings(args, loaded.run.sample)
    prompt = model.domain.parse_prompt(args.prompt) if args.prompt is not None else None
    if prompt is not None:
        check_prompt_fits(model, prompt, settings.max_length or model.generator.max_length)
    if args.trajectory is not None:
        refuse_overwrite(args.trajectory / "trajectories.jsonl", args.force)
    if args.export is not None:
        refuse_filled_folder(args.export, args.force)
    writer = sample_writer(args.output, force=args.force)
    all_samples, trajectories = [], []
    try:
        for samples, out in generate(model, settings, seed=args.seed, device=args.device,
                                     prompt=prompt, trajectory=args.trajectory is not None):
            writer.write(model.domain, samples)
            if args.export is not None:
                all_samples.extend(samples)
            if args.trajectory is not None:
                trajectories.extend(output_records(out))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    if args.trajectory is not None:
        from loflex.inspection.trajectory import write_trajectories

        write_trajectories(args.trajectory / "trajectories.jsonl", trajectories, model.domain)
    if args.export is not None:
        args.export.mkdir(parents=True, exist_ok=True)
        for path in model.domain.export(all_samples, args.export):
            print(f"wrote {path}", file=sys.stderr)
    print(f"wrote {writer.count} samples to {args.output}")
    return 0


def cmd_evaluate(args) -> int:
    from loflex.sampling.inference import generate_all
    from loflex.sampling.samples_io import read_samples, refuse_overwrite

    if args.output is not None:
        refuse_overwrite(args.output, args.force)
    loaded = _load(args)
    model = loaded.model
    if args.samples is not None:
        samples = read_samples(args.samples, vocab_size=len(model.domain.vocab))
    else:
        settings = sampler_settings(args, loaded.run.sample)
        samples = generate_all(model, settings, seed=args.seed, device=args.device)
    metrics = {"num_samples": len(samples), **model.domain.metrics(samples)}
    print(format_table(metrics))
    if args.output is not None:
        from loflex.training.checkpoint import atomic_write_text

        atomic_write_text(args.output, json.dumps(metrics, indent=2) + "\n")
    return 0


def format_table(metrics: dict) -> str:
    """Render metrics as a two-column Markdown table."""
    lines = ["| metric | value |", "|---|---|"]
    for key, value in metrics.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"| {key} | {shown} |")
    return "\n".join(lines)
