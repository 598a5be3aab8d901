#!/usr/bin/env bash
# FLOPs per training step and per 64-step sampler run, torch.profiler operator tables and
# per-step wall/CPU seconds of loflex and of the reference implementation, for the
# configuration of ../shared/tools/refbench/star-easy-small.toml (FlexMDM = loflex
# `uniform`, LoFlexMDM = `kumaraswamy`). FLOPs do not depend on machine load; seconds and
# time shares do (the JSON files record both, with the threads used).
#   docs/scripts/profile/profile_both.sh OUTDIR [THREADS]
# Needs the reference installed by refbench (reference_bench.sh or side_by_side.sh).
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=${1:?output folder}
THREADS=${2:-1}
RUN=${RUN:-../shared/tools/refbench/star-easy-small.toml}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
export OMP_NUM_THREADS=$THREADS
PROFILE=docs/scripts/profile/profile_loflex.py
for model in flexmdm lflexmdm; do
  PLAIN_STEPS=4 SAMPLE_STEPS="[64]" bash docs/scripts/profile/profile_reference.sh "$model" \
    "$OUT/reference-$model.json" "$THREADS" > "$OUT/reference-$model.log" 2>&1
done
"$PY" "$PROFILE" "$RUN" "$OUT/loflex-uniform.json" --set order.name=uniform \
  --threads "$THREADS" --plain 4
"$PY" "$PROFILE" "$RUN" "$OUT/loflex-kumaraswamy.json" --threads "$THREADS" --plain 4
"$PY" "$PROFILE" "$RUN" "$OUT/loflex-sample-64.json" --what sample --set sample.steps=64 \
  --set sample.batch_size=64 --threads "$THREADS" --warmup 1 --plain 1
"$PY" - "$OUT" <<'PY'
import json, statistics, sys
out = sys.argv[1]
def load(name):
    return json.load(open(f"{out}/{name}.json"))
def step_s(d, key):
    return statistics.median(x[key] for x in d["plain_steps"])
rows = [("FlexMDM train step", load("reference-flexmdm"), load("loflex-uniform")),
        ("LoFlexMDM train step", load("reference-lflexmdm"), load("loflex-kumaraswamy"))]
print("| measure | reference GFLOP | loflex GFLOP | loflex / reference | reference CPU s | loflex CPU s |")
print("|---|---|---|---|---|---|")
for label, ref, ours in rows:
    r, o = ref["flops"]["total_gflop"], ours["flops"]["total_gflop"]
    print(f"| {label} | {r:.1f} | {o:.1f} | {o / r:.2f} | {step_s(ref, 'cpu_s'):.2f} | "
          f"{step_s(ours, 'cpu_s'):.2f} |")
ref, ours = load("reference-lflexmdm")["sampling"][0], load("loflex-sample-64")
r, o = ref["gflop"], ours["flops"]["total_gflop"]
print(f"| sampling, 64 steps, batch 64 | {r:.1f} | {o:.1f} | {o / r:.2f} | {ref['cpu_s']:.2f} | "
      f"{step_s(ours, 'cpu_s'):.2f} |")
PY
rm -f "$OUT"/reference-*.log
