#!/usr/bin/env bash
# A/B/A comparison of one `loflex bench` command: the code at git revision REV (A, default
# HEAD) against the working tree (B), run as A, B, A in one go so a change of machine load
# shows up as a spread between the two A runs. Prints ratios only (B / A for each A run):
# seconds per step, CPU seconds per step (this process, all threads; the figure that
# holds best on a shared machine) and GFLOP per step.
#   docs/scripts/ab_bench.sh [-r REV] [-o OUTDIR] -- train|sample RUN.toml [bench options]
# e.g. docs/scripts/ab_bench.sh -- train ../shared/tools/refbench/star-easy-small.toml \
#        --set train.threads=1 --steps 6 --warmup 2 --no-bare
# A is an export of REV (git archive) put first on PYTHONPATH; plugins come from the
# installed working tree in both runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
REV=HEAD
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    -r) REV=$2; shift 2 ;;
    -o) OUT=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "usage: $0 [-r REV] [-o OUTDIR] -- train|sample RUN.toml [bench options]" >&2; exit 2 ;;
  esac
done
[ $# -ge 1 ] || { echo "give the bench arguments after --" >&2; exit 2; }
PY=${PYTHON:-.venv/bin/python}
A=$(mktemp -d)
trap 'rm -rf "$A"' EXIT
git archive "$REV" framework | tar -x -C "$A"
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
PYTHONPATH="$A/framework${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m loflex.cli bench "$@" --json > "$OUT/a1.json"
"$PY" -m loflex.cli bench "$@" --json > "$OUT/b.json"
PYTHONPATH="$A/framework${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m loflex.cli bench "$@" --json > "$OUT/a2.json"
"$PY" - "$OUT" "$REV" <<'PY'
import json, sys
out, rev = sys.argv[1], sys.argv[2]
a1, b, a2 = (json.load(open(f"{out}/{n}.json")) for n in ("a1", "b", "a2"))
print(f"A = {rev}, B = working tree; JSON in {out}")
for key in ("median_step_s", "cpu_step_s", "gflop_per_step"):
    print(f"{key:>15}: B/A = {b[key] / a1[key]:.3f}, {b[key] / a2[key]:.3f}")
PY
