"""``loflex bench train|sample``: throughput figures (a benchmark, not a test)."""

from __future__ import annotations

import json
from pathlib import Path

from loflex.commands import add_set_option
from loflex.config import load_run


def add_commands(sub) -> None:
    p = sub.add_parser("bench", help="measure training or sampling speed",
                       description="Measure training-step or sampler speed, FLOP/s against the "
                       "matrix-multiply peak probed in the same process, and peak memory. Runs "
                       "under torchrun too (training: DDP, one shard per process).")
    p.add_argument("what", choices=("train", "sample"),
                   help="what to time: training steps or the sampler")
    p.add_argument("run_file", nargs="?", type=Path, help="TOML run file (optional)")
    add_set_option(p)
    p.add_argument("--steps", type=int, default=10, help="timed steps (sampler runs for sample)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (at least one "
                   "runs: it counts the FLOPs)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--no-bare", dest="bare", action="store_false",
                   help="skip timing the networks alone (saves time at large sizes)")
    p.add_argument("--nominal-peak-gflops", type=float, default=0.0,
                   help="the chip's datasheet peak, to report MFU as nominal_fraction")
    p.set_defaults(handler=cmd_bench)


def cmd_bench(args) -> int:
    import torch

    from loflex.commands.model import regular_run_file
    from loflex.errors import ConfigError
    from loflex.training.bench import bench_sample, bench_train
    from loflex.training.runtime import distributed, pick_device

    if args.steps < 1 or args.warmup < 0:
        raise ConfigError("bench needs --steps >= 1 and --warmup >= 0")
    if not args.nominal_peak_gflops >= 0:  # also refuses nan
        raise ConfigError(f"--nominal-peak-gflops must be positive (or 0 when unknown), not "
                          f"{args.nominal_peak_gflops}")
    run = load_run(regular_run_file(args.run_file), args.overrides)
    if run.train.threads:
        torch.set_num_threads(run.train.threads)
    torch.manual_seed(run.seed)
    device = pick_device(run.train.device)
    if args.what == "sample" and distributed()[1] > 1:
        raise ConfigError("bench sample runs in one process; run it without torchrun")
    fn = bench_train if args.what == "train" else bench_sample
    result = fn(run, args.steps, args.warmup, device, bare=args.bare,
                nominal_peak_gflops=args.nominal_peak_gflops).to_dict()
    if distributed()[0] != 0:
        return 0
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>22}: {value:.4g}" if isinstance(value, float) else f"{key:>22}: {value}")
    return 0
