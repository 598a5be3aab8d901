#!/usr/bin/env bash
# Quality against sampler steps for shipped (or any) models: `loflex evaluate` at 16, 32,
# 64, 128, 256 and 1024 steps, one JSON per model and step count, then one markdown table.
#
#   docs/scripts/quality_vs_steps.sh OUT_DIR N MODEL [MODEL ...]
#
# N is the number of samples (test graphs, or molecules) per point; seed 0; every other
# sampling setting is the model's own. STEPS="16 64" chooses other step counts.
set -euo pipefail
out=${1:?usage: quality_vs_steps.sh OUT_DIR N MODEL [MODEL ...]}
n=${2:?usage: quality_vs_steps.sh OUT_DIR N MODEL [MODEL ...]}
shift 2
[ $# -gt 0 ] || { echo "name at least one model" >&2; exit 2; }
LOFLEX=${LOFLEX:-$(cd "$(dirname "$0")/../.." && pwd)/.venv/bin/loflex}
mkdir -p "$out"
for model in "$@"; do
  for steps in ${STEPS:-16 32 64 128 256 1024}; do
    name=$(basename "$model")
    start=$(date +%s.%N)
    "$LOFLEX" evaluate "$model" -n "$n" --steps "$steps" --seed 0 --force \
      -o "$out/$name-$steps.json" > /dev/null
    echo "$(date +%s.%N) - $start" | bc > "$out/$name-$steps.seconds"
    echo "$name $steps done" >&2
  done
done
python3 - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
rows = {}
for f in sorted(out.glob("*.json")):
    name, steps = f.stem.rsplit("-", 1)
    metrics = json.loads(f.read_text())
    metrics["seconds"] = float(f.with_suffix(".seconds").read_text())
    rows.setdefault(name, {})[int(steps)] = metrics
PERCENT = ("validity", "uniqueness", "quality", "novelty", "exact", "accuracy", "path")
for name, by_steps in rows.items():
    first = next(iter(by_steps.values()))
    keys = [k for k, v in first.items() if isinstance(v, float) and not k.endswith("_padded")
            and k != "seconds" and "/" not in k]
    print(f"\n{name} (n = {first.get('num_samples')}, seed 0; % where a rate)\n")
    print("| steps | " + " | ".join(keys) + " | wall s |")
    print("|---:|" + "---:|" * (len(keys) + 1))
    for steps in sorted(by_steps):
        d = by_steps[steps]
        cells = [f"{100 * d[k]:.1f}" if any(p in k for p in PERCENT) else f"{d[k]:.3f}"
                 for k in keys]
        print(f"| {steps} | " + " | ".join(cells) + f" | {d['seconds']:.0f} |")
PY
