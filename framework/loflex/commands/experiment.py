"""``loflex experiment``: compare entries (orders, or whole runs) under one budget and seed."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from loflex.commands import add_set_option, show_progress
from loflex.config import load_run
from loflex.contracts import Domain
from loflex.errors import ConfigError
from loflex.extension import registry

DEFAULT_ORDERS = "uniform,kumaraswamy"


def add_commands(sub) -> None:
    p = sub.add_parser("experiment", help="train several orders or runs with one budget and "
                       "compare")
    p.add_argument("run_file", type=Path, nargs="?",
                   help="TOML run file shared by every order (--orders), or the run of "
                   "entries that name none (--entries)")
    add_set_option(p)
    p.add_argument("--orders", default=None,
                   help=f"comma-separated order names, each an entry of RUN_FILE "
                   f"(default without --entry/--entries: {DEFAULT_ORDERS})")
    p.add_argument("--entry", action="append", default=[], metavar="NAME=RUNFILE",
                   help="an entry trained from its own run file (repeatable)")
    p.add_argument("--entries", type=Path, default=None, metavar="ENTRIES.toml",
                   help="entries file: one [NAME] table per entry with run = \"RUN.toml\" "
                   "(relative to the file), set = [\"section.key=value\", ...] and init = "
                   "\"MODEL\" (start from a model's weights)")
    p.add_argument("--budget-minutes", type=float, required=True,
                   help="training minutes per entry (optimiser steps only)")
    p.add_argument("--eval-samples", type=int, default=500, help="test samples per entry")
    p.add_argument("--eval-steps", type=int, default=128, help="sampler steps at evaluation")
    p.add_argument("--curve-metric", default=None,
                   help="sampled metric of the learning-curve plot (default: the domain's "
                   "headline metric)")
    p.add_argument("--seed", type=int, default=0, help="seed every entry trains and samples with")
    p.add_argument("-o", "--output", type=Path, required=True, help="experiment directory")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(handler=cmd_experiment)


def experiment_runs(args) -> tuple[dict[str, dict], dict[str, str]]:
    """Return entry name -> validated run for the command's --orders/--entry/--entries,
    and entry name -> the model it starts from (entries file ``init``)."""
    from loflex.training.experiment import entry_runs, entry_specs, order_runs, read_entries

    if args.orders is not None and (args.entry or args.entries):
        raise ConfigError("--orders cannot be combined with --entry or --entries; list the "
                          "orders as entries instead (set = [\"order.name=NAME\"])")
    if args.entry or args.entries:
        specs = [entry_specs(text) for text in args.entry]
        entries = {name: {"run": Path(run_file), "set": [], "init": None}
                   for name, run_file in specs}
        if args.entries is not None:
            from_file = read_entries(args.entries, args.run_file)
            specs += [(name, "") for name in from_file]
            entries.update(from_file)
        _check_unique([name for name, _ in specs])
        inits = {name: spec["init"] for name, spec in entries.items() if spec["init"]}
        return entry_runs(entries, args.overrides), inits
    if args.run_file is None:
        raise ConfigError("give the run file that every order shares, e.g. "
                          "loflex experiment RUN.toml --orders uniform,kumaraswamy ...")
    orders = [o.strip() for o in (args.orders or DEFAULT_ORDERS).split(",") if o.strip()]
    _check_unique(orders)
    return order_runs(load_run(args.run_file, args.overrides), orders), {}


def curve_metric(asked: str | None, runs: dict[str, dict]) -> str:
    """Return the learning-curve metric: ``asked``, else the first entry's domain's headline.

    A domain without a ``headline_metric`` gets no plot (a note says how to ask for one).
    """
    if asked is not None:
        return asked
    domain = next(iter(runs.values()))["domain"]["name"]
    metric = registry.get(Domain, domain).headline_metric
    if metric is None:
        print(f"note: domain '{domain}' names no headline metric, so no learning curve is "
              "drawn; pass --curve-metric METRIC for one", file=sys.stderr)
        return ""
    return metric


def _check_unique(names: list[str]) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise ConfigError(f"entry '{name}' is named twice; give every entry its own name")
        seen.add(name)


def cmd_experiment(args) -> int:
    from loflex.training.experiment import ExperimentSettings, markdown_table, run_experiment

    runs, inits = experiment_runs(args)  # every run validated before anything is written
    settings = ExperimentSettings(
        entries=list(runs), budget_minutes=args.budget_minutes, eval_samples=args.eval_samples,
        eval_steps=args.eval_steps, curve_metric=curve_metric(args.curve_metric, runs),
        seed=args.seed, runs=runs, inits=inits)
    rows = run_experiment(args.output, settings, progress=show_progress(args))
    print(markdown_table(rows))
    print(f"\ncommand: loflex {' '.join(shlex.quote(a) for a in sys.argv[1:])}")
    return 0
