"""FLOPs and a torch.profiler operator table of one loflex training step or sampler run.

The step is :class:`loflex.training.runtime.TrainingStep`, the one ``loflex train`` and ``loflex
bench train`` call. FLOPs come from ``loflex.training.flops.flop_counter`` (torch's FlopCounterMode with
loflex's CPU kernels added; per operator; insensitive to machine load); the operator table's time shares stay
informative on a loaded machine, its absolute times do not.

    python docs/scripts/profile/profile_loflex.py RUN.toml OUT.json [--set K=V ...]
        [--what train|sample] [--threads N] [--warmup W]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from loflex.config import load_run
from loflex.extension.assemble import assemble
from loflex.sampling import sampler
from loflex.sampling.inference import sampling_prompts
from loflex.training.data import BatchStream
from loflex.training.flops import flop_counter
from loflex.training.runtime import TrainingStep
from matmul_table import matmul_shapes


def _train_step(run):
    model = assemble(run)
    step = TrainingStep(model, run.train, torch.device("cpu"))
    step.prepare(1)
    stream = iter(BatchStream(model.domain.examples("train"), run.train.batch_size, run.seed,
                              run.train.length_buckets, 0, 1))
    rng = torch.Generator().manual_seed(run.seed)
    return lambda: step(next(stream), rng)


def _sampler_run(run):
    model = assemble(run)
    prompts = sampling_prompts(model, run.sample, run.sample.batch_size)
    rng = torch.Generator().manual_seed(run.seed)
    return lambda: sampler.sample(model.generator, model.order, prompts, run.sample, rng=rng)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_file", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--what", choices=("train", "sample"), default="train")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--plain", type=int, default=3, help="steps timed afterwards, "
                        "without counter or profiler (wall and CPU seconds)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = load_run(args.run_file, args.overrides)
    torch.manual_seed(run.seed)
    go = _train_step(run) if args.what == "train" else _sampler_run(run)
    for _ in range(args.warmup):
        go()
    counter = flop_counter()
    with counter:
        go()
    by_op = counter.get_flop_counts().get("Global", {})
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                record_shapes=True) as prof:
        start, cpu_start = time.perf_counter(), time.process_time()
        go()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    plain = []
    for _ in range(args.plain):
        start, cpu_start = time.perf_counter(), time.process_time()
        go()
        plain.append({"wall_s": time.perf_counter() - start,
                      "cpu_s": time.process_time() - cpu_start})
    result = {
        "what": args.what, "overrides": args.overrides, "threads": torch.get_num_threads(),
        "flops": {"total_gflop": counter.get_total_flops() / 1e9,
                  "by_op_gflop": {str(k): v / 1e9 for k, v in by_op.items()}},
        "profile": {"wall_s": wall, "cpu_s": cpu, "table": prof.key_averages().table(
            sort_by="self_cpu_time_total", row_limit=args.rows), "matmuls": matmul_shapes(prof)},
        "plain_steps": plain,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result["flops"]), json.dumps(plain))


if __name__ == "__main__":
    main()

