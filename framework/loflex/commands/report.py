"""``loflex report``: an HTML page about a training run."""

from __future__ import annotations

from pathlib import Path


def add_commands(sub) -> None:
    p = sub.add_parser("report", help="write an HTML report (curves, samples, learned order)")
    p.add_argument("run_dir", type=Path, help="a run directory written by `loflex train`")
    p.add_argument("-o", "--output", type=Path, help="report directory (default RUN_DIR/report)")
    p.add_argument("-n", "--num-samples", type=int, default=16, help="samples to draw")
    p.add_argument("--steps", type=int, help="sampler steps (default: the run's)")
    p.add_argument("--examples", type=int, default=3,
                   help="test sequences shown with their insertion times")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--force", action="store_true", help="overwrite an existing report")
    p.set_defaults(handler=cmd_report)


def cmd_report(args) -> int:
    from loflex.errors import ConfigError
    from loflex.report import write_report

    if args.num_samples < 1:
        raise ConfigError("-n/--num-samples must be at least 1")
    index = write_report(args.run_dir, args.output, force=args.force,
                         num_samples=args.num_samples, steps=args.steps,
                         examples=args.examples, device=args.device, seed=args.seed)
    print(f"wrote {index}")
    return 0
