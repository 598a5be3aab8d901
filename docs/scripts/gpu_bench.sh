#!/usr/bin/env bash
# One prepared GPU run (not yet run: the machine that measured docs/performance.md has no
# GPU). Paper-size LoFlexMDM (12 x 768 x 12-head generator and auxiliary network), star-easy,
# batch 64, bf16 autocast, torch.compile on the transformer blocks; then the same in fp32
# eager, and the 4 x 256 reference size. MFU = achieved FLOP/s / the chip's datasheet
# dense bf16 peak (H100/H200 SXM: 989,000 GFLOP/s; override with PEAK_GFLOPS).
# Usage: docs/scripts/gpu_bench.sh [OUTDIR]   (about 5 minutes on an H100-class GPU)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-docs/scripts/results-gpu}
PEAK=${PEAK_GFLOPS:-989000}
mkdir -p "$OUT"
LOFLEX=${LOFLEX:-.venv/bin/loflex}
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.txt" || true
PAPER=(--set generator.options.layers=12 --set generator.options.width=768
       --set generator.options.heads=12 --set order.name=kumaraswamy
       --set order.options.layers=12 --set order.options.width=768 --set order.options.heads=12
       --set train.batch_size=64 --set sample.batch_size=64 --set train.device=cuda)
run() {  # name, then bench arguments
  local name=$1; shift
  timeout 600 $LOFLEX bench "$@" --nominal-peak-gflops "$PEAK" --json > "$OUT/$name.json" \
    2> "$OUT/$name.err" || echo "$name failed (see $OUT/$name.err)"
}
run paper-train-bf16-compiled train docs/runs/star-easy.toml "${PAPER[@]}" \
  --set train.precision=bf16 --set train.compile=true --steps 20 --warmup 5
run paper-train-bf16 train docs/runs/star-easy.toml "${PAPER[@]}" \
  --set train.precision=bf16 --steps 20 --warmup 3
run paper-train-fp32 train docs/runs/star-easy.toml "${PAPER[@]}" --steps 10 --warmup 3
run paper-sample-256-bf16 sample docs/runs/star-easy.toml "${PAPER[@]}" \
  --set train.precision=bf16 --set sample.steps=256 --set sample.top_k=1 --steps 3 --warmup 1
run small-train-fp32 train docs/runs/star-easy.toml --set generator.options.width=256 \
  --set order.options.layers=4 --set order.options.width=256 --set train.device=cuda \
  --steps 20 --warmup 3
.venv/bin/python docs/scripts/summarise.py "$OUT"
