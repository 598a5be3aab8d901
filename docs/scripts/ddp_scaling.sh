#!/usr/bin/env bash
# DDP scaling of `loflex bench train` on CPU (gloo): 1 process vs N processes, one
# thread each, 64 sequences per process (weak scaling). Efficiency =
# seqs/s(N) / (N x seqs/s(1)); each JSON is rank 0's report, throughput summed over ranks.
# Usage: docs/scripts/ddp_scaling.sh [N] [REPEATS] [OUTDIR]
#
# Multi-node (same command on every node, one process per GPU):
#   torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d \
#     --rdzv-endpoint HOST0:29400 --rdzv-id bench1 \
#     -m loflex.cli bench train RUN.toml --set train.device=cuda --json
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-2}
REPEATS=${2:-2}
OUT=${3:-docs/scripts/results}
mkdir -p "$OUT"
ARGS=(bench train docs/runs/star-easy.toml --set generator.options.width=256
      --set order.options.layers=4 --set order.options.width=256 --set train.threads=1
      --set train.device=cpu --steps 4 --warmup 2 --no-bare --json)
for r in $(seq 1 "$REPEATS"); do
  OMP_NUM_THREADS=1 .venv/bin/python -m loflex.cli "${ARGS[@]}" > "$OUT/ddp-1proc-r$r.json"
  OMP_NUM_THREADS=1 .venv/bin/torchrun --standalone --nproc-per-node "$N" \
    -m loflex.cli "${ARGS[@]}" > "$OUT/ddp-${N}proc-r$r.json"
done
