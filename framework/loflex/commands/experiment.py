"""``loflex experiment``: compare orders under one model, seed and CPU budget."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from loflex.cli import add_set_option
from loflex.config import load_run


def add_commands(sub) -> None:
    p = sub.add_parser("experiment", help="train several orders with one budget and compare")
    p.add_argument("run_file", type=Path, help="TOML run file shared by every order")
    add_set_option(p)
    p.add_argument("--orders", default="uniform,kumaraswamy",
                   help="comma-separated order names (default: uniform,kumaraswamy)")
    p.add_argument("--budget-minutes", type=float, required=True,
                   help="training minutes per order (optimiser steps only)")
    p.add_argument("--eval-samples", type=int, default=500, help="test samples per order")
    p.add_argument("--eval-steps", type=int, default=128, help="sampler steps at evaluation")
    p.add_argument("--curve-metric", default="exact_match", help="metric of the learning curve")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", type=Path, required=True, help="experiment directory")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=cmd_experiment)


def cmd_experiment(args) -> int:
    from loflex.experiment import ExperimentSettings, markdown_table, run_experiment

    base = load_run(args.run_file, args.overrides)
    settings = ExperimentSettings(
        orders=[o.strip() for o in args.orders.split(",") if o.strip()],
        budget_minutes=args.budget_minutes, eval_samples=args.eval_samples,
        eval_steps=args.eval_steps, curve_metric=args.curve_metric, seed=args.seed,
        run=base.model_dump(mode="json"))
    for order in settings.orders:  # fail fast on a misspelled order
        load_run(args.run_file, [*args.overrides, f"order.name={order}"])
    rows = run_experiment(args.output, base, settings, progress=not args.no_progress)
    print(markdown_table(rows))
    print(f"\ncommand: loflex {' '.join(shlex.quote(a) for a in sys.argv[1:])}")
    return 0
