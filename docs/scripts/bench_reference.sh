#!/usr/bin/env bash
# Reference-size benchmarks of docs/performance.md: star-easy, batch 64, fp32,
# generator and auxiliary network 4 layers x width 256 x 4 heads.
# Usage: docs/scripts/bench_reference.sh [THREADS] [REPEATS] [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=${1:-2}
REPEATS=${2:-3}
OUT=${3:-docs/scripts/results}
mkdir -p "$OUT"
LOFLEX=${LOFLEX:-.venv/bin/loflex}
SIZE=(--set generator.options.layers=4 --set generator.options.width=256
      --set generator.options.heads=4 --set train.batch_size=64 --set sample.batch_size=64
      --set "train.threads=$THREADS" --set train.device=cpu)
LEARNED=(--set order.name=kumaraswamy --set order.options.layers=4
         --set order.options.width=256 --set order.options.heads=4)
FLEX=(--set order.name=uniform --set "order.options={}" --set train.loss_normalisation=flexmdm)
for r in $(seq 1 "$REPEATS"); do
  $LOFLEX bench train docs/runs/star-easy.toml "${SIZE[@]}" "${FLEX[@]}" \
    --steps 5 --warmup 2 --json > "$OUT/train-flexmdm-t$THREADS-r$r.json"
  $LOFLEX bench train docs/runs/star-easy.toml "${SIZE[@]}" "${LEARNED[@]}" \
    --steps 4 --warmup 2 --json > "$OUT/train-loflexmdm-t$THREADS-r$r.json"
  for steps in 64 256; do
    $LOFLEX bench sample docs/runs/star-easy.toml "${SIZE[@]}" "${LEARNED[@]}" \
      --set sample.steps=$steps --set sample.top_k=1 \
      --steps 1 --warmup 1 --json > "$OUT/sample-$steps-t$THREADS-r$r.json"
  done
done
