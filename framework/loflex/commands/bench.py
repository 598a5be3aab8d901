"""``loflex bench train|sample``: throughput figures (a benchmark, not a test)."""

from __future__ import annotations

import json
from pathlib import Path

from loflex.cli import add_set_option
from loflex.config import load_run


def add_commands(sub) -> None:
    p = sub.add_parser("bench", help="measure training or sampling speed")
    p.add_argument("what", choices=("train", "sample"))
    p.add_argument("run_file", nargs="?", type=Path, help="TOML run file (optional)")
    add_set_option(p)
    p.add_argument("--steps", type=int, default=10, help="timed steps (sampler runs for sample)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_bench)


def cmd_bench(args) -> int:
    import torch

    from loflex.bench import bench_sample, bench_train
    from loflex.train import pick_device

    run = load_run(args.run_file, args.overrides)
    if run.train.threads:
        torch.set_num_threads(run.train.threads)
    torch.manual_seed(run.seed)
    device = pick_device(run.train.device)
    fn = bench_train if args.what == "train" else bench_sample
    result = fn(run, args.steps, args.warmup, device).to_dict()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>22}: {value:.4g}" if isinstance(value, float) else f"{key:>22}: {value}")
    return 0
