#!/usr/bin/env bash
# The side-by-side speed comparison of docs/performance.md in one command: runs
# ../shared/tools/refbench/side_by_side.sh (reference, loflex, reference again, same
# configuration, same hour) and keeps its printed table and its JSON files in
# docs/scripts/results/side-by-side-<UTC date and time>/fp32/ (the logs, which name local
# folders, stay in the temporary folder printed at the end).
#
# loflex runs through docs/scripts/loflex-as-reference, so the FlexMDM row times the
# reference-faithful `flexmdm` baseline (the shared script selects the uniform order).
#
# The reference multiplies its "fp32" matrices in bf16 wherever the CPU has bf16 units
# (its training command sets torch.set_float32_matmul_precision("medium")). On such a CPU
# a second pass runs the same script with loflex at train.precision = bf16 and
# sample.precision = bf16, kept in .../bf16/. PRECISIONS="fp32" runs the first only.
#
#   REF_REPO=<snapshot of github:dhruvdcoder/LoFlexMDM> docs/scripts/side_by_side.sh
#
# REF_REPO may be a checkout or a bare git directory. The first run installs the reference
# into $REFBENCH_DIR (default /tmp/refbench, about 5 minutes). Only an idle machine gives
# figures worth keeping: the script refuses to start while the 1-minute load average is
# above MAX_LOAD (default 0.5); FORCE=1 runs anyway and marks the result folder "-loaded".
set -euo pipefail
cd "$(dirname "$0")/../.."
REFBENCH=${REFBENCH:-../shared/tools/refbench}
MAX_LOAD=${MAX_LOAD:-0.5}
REF_REPO=${REF_REPO:?set REF_REPO to a snapshot of github:dhruvdcoder/LoFlexMDM}
LOFLEX=${LOFLEX:-$(pwd)/.venv/bin/loflex}
[ -f "$REFBENCH/side_by_side.sh" ] || { echo "no $REFBENCH/side_by_side.sh; set REFBENCH" >&2; exit 1; }
[ -x "$LOFLEX" ] || { echo "no loflex executable at $LOFLEX; set LOFLEX" >&2; exit 1; }
load_before=$(cut -d' ' -f1 /proc/loadavg)
suffix=""
if awk -v l="$load_before" -v m="$MAX_LOAD" 'BEGIN { exit !(l > m) }'; then
  if [ "${FORCE:-0}" != 1 ]; then
    echo "load average is $load_before (> $MAX_LOAD): the machine is not idle; figures taken" \
         "now are not comparable. Wait, or set FORCE=1 to run anyway (marked -loaded)." >&2
    exit 1
  fi
  suffix="-loaded"
fi
stamp=$(date -u +%Y%m%d-%H%M%S)
DEST=docs/scripts/results/side-by-side-$stamp$suffix
WORK=$(mktemp -d)
mkdir -p "$DEST"
run_pass() {  # PRECISION
  mkdir -p "$DEST/$1" "$WORK/$1"
  echo "== $1"
  PRECISION="$1" LOFLEX_BASE="$LOFLEX" LOFLEX="$(pwd)/docs/scripts/loflex-as-reference" \
    REF_REPO="$REF_REPO" \
    bash "$REFBENCH/side_by_side.sh" "$WORK/$1" | tee "$DEST/$1/table.md"
  cp "$WORK/$1"/*.json "$DEST/$1/"
}
bf16_units=$("$(dirname "$LOFLEX")/python" -c "from loflex.training.runtime import cpu_has_bf16; print(int(cpu_has_bf16()))")
for precision in ${PRECISIONS:-fp32 bf16}; do
  case "$precision" in
    fp32) run_pass fp32 ;;
    bf16) if [ "$bf16_units" = 1 ]; then run_pass bf16
          else echo "== bf16 skipped: this CPU has no bf16 matrix units"; fi ;;
    *) echo "unknown precision '$precision' in PRECISIONS; use fp32 and/or bf16" >&2; exit 2 ;;
  esac
done
load_after=$(cut -d' ' -f1 /proc/loadavg)
python3 - "$DEST/meta.json" "$load_before" "$load_after" "$(git rev-parse HEAD)" <<'PY'
import json, os, platform, sys
path, before, after, commit = sys.argv[1:]
json.dump({"loflex_commit": commit, "load_average_before": float(before),
           "load_average_after": float(after), "cpus": os.cpu_count(),
           "machine": platform.processor() or platform.machine(),
           "cpu_model": next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                              if line.startswith("model name")), "")}, open(path, "w"), indent=1)
PY
echo "table and JSON in $DEST; logs in $WORK"
