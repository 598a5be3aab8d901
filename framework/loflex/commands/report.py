"""``loflex report``: an HTML page about a training run."""

from __future__ import annotations

from pathlib import Path


def add_commands(sub) -> None:
    p = sub.add_parser("report", help="write an HTML report (curves, samples, learned order)")
    p.add_argument("run_dir", type=Path, help="a run directory written by `loflex train`, "
                   "a checkpoint directory or a pretrained model name")
    p.add_argument("-o", "--output", type=Path, help="report directory (default RUN_DIR/report; "
                   "required for a pretrained model)")
    p.add_argument("-n", "--num-samples", type=int, default=16, help="samples to draw")
    p.add_argument("--steps", type=int, help="sampler steps (default: the run's)")
    p.add_argument("--examples", type=int, default=3,
                   help="test sequences shown with their insertion times")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler (default 0)")
    p.add_argument("--device", default="cpu", help="where to run: cpu, cuda, cuda:N or mps (default cpu)")
    p.add_argument("--force", action="store_true", help="overwrite an existing report")
    p.set_defaults(handler=cmd_report)


def cmd_report(args) -> int:
    from loflex.commands.model import check_device, check_seed
    from loflex.errors import ConfigError
    from loflex.inspection.report import write_report

    if args.num_samples < 1:
        raise ConfigError("-n/--num-samples must be at least 1")
    if args.steps is not None and args.steps < 1:
        raise ConfigError(f"--steps must be at least 1, not {args.steps} (leave it out to use "
                          "the run's sample.steps)")
    if args.examples < 0:
        raise ConfigError(f"--examples must be 0 or more, not {args.examples}")
    check_device(args.device)
    check_seed(args.seed)
    run_dir = report_source(args.run_dir, args.output)
    index = write_report(run_dir, args.output, force=args.force,
                         num_samples=args.num_samples, steps=args.steps,
                         examples=args.examples, device=args.device, seed=args.seed)
    print(f"wrote {index}")
    return 0


def report_source(reference: Path, output: Path | None) -> Path:
    """Return the folder to report on; a pretrained model needs an output folder outside it.

    Raises:
        ConfigError: a pretrained model without ``-o``, or with ``-o`` inside its package
            folder; CheckpointError: an unknown name (see :func:`loflex.extension.pretrained.locate`).
    """
    from loflex.errors import ConfigError
    from loflex.extension.pretrained import locate, shipped

    model = shipped(reference)
    folder = locate(reference)
    if model is None:
        return folder
    if output is None:
        raise ConfigError(f"'{model.name}' is a pretrained model inside {model.origin}, where "
                          "nothing is written; choose the report folder with -o DIR")
    if output.resolve().is_relative_to(folder.resolve()):
        raise ConfigError(f"-o '{output}' lies inside the installed model '{model.name}'; "
                          "choose a report folder outside the package")
    return folder
