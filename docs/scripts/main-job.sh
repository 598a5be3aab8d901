#!/usr/bin/env bash
# The main job (`make run`): shipped molecule and star-graph models at work, the learned
# order drawn, then a short training run whose exact match rises.
#   docs/scripts/main-job.sh OUT_DIR [LOFLEX]
# Everything is written under OUT_DIR; nothing is downloaded.
set -euo pipefail
OUT=${1:?usage: main-job.sh OUT_DIR [LOFLEX]}
LOFLEX=${2:-loflex}
PY=$(dirname "$(command -v "$LOFLEX")")/python
[ -x "$PY" ] || PY=python3
SAMPLES=${MAIN_JOB_SAMPLES:-200}
STAR_STEPS=${MAIN_JOB_STAR_STEPS:-256}  # the steps the star-medium cards are measured at
MOLECULES=${MAIN_JOB_MOLECULE_MODELS:-molecules-loflexmdm molecules-flexmdm}  # the first is exported
MOLECULE_STEPS=${MAIN_JOB_MOLECULE_STEPS:-256}  # the steps the molecule cards are measured at
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT")" ]; then
  echo "Error: $OUT is not empty; choose a new folder (make run RUN_DIR=...) so nothing in it is overwritten" >&2
  exit 1
fi
mkdir -p "$OUT"

echo "== Shipped models"
"$LOFLEX" models

echo
echo "== Molecules: $SAMPLES de novo samples per model, $MOLECULE_STEPS sampler steps, each model's default sampler"
export_to="$OUT/molecules"
for model in $MOLECULES; do
  "$LOFLEX" sample "$model" -n "$SAMPLES" --steps "$MOLECULE_STEPS" --seed 0 \
    -o "$OUT/$model.jsonl" ${export_to:+--export "$export_to"} --force > /dev/null
  "$LOFLEX" evaluate "$model" --samples "$OUT/$model.jsonl" -o "$OUT/$model.json" --force > /dev/null
  export_to=""
done
"$PY" - "$OUT" $MOLECULES <<'PY'
import json, sys
out, models = sys.argv[1], sys.argv[2:]
scores = []
for model in models:
    m = json.load(open(f"{out}/{model}.json"))
    scores.append(m.get("metrics", m))
rows = [("strict validity", "validity_strict", "%"), ("validity (GenMol)", "validity", "%"),
        ("uniqueness", "uniqueness", "%"), ("quality", "quality", "%"),
        ("diversity", "diversity", ""), ("FCD", "fcd", "")]
print(f"{'':<20}" + "".join(f"{model:>22}" for model in models))
for label, key, unit in rows:
    cells = []
    for m in scores:
        value = m.get(key)
        cells.append("–" if value is None else f"{100 * value:.1f}%" if unit else f"{value:.3f}")
    print(f"{label:<20}" + "".join(f"{cell:>22}" for cell in cells))
PY
echo "files: $OUT/molecules/ (grid PNG/SVG, CSV, SDF of the first model's samples)"

echo
echo "== Star graphs (medium): $SAMPLES test graphs, $STAR_STEPS sampler steps, greedy tokens,"
echo "   confidence top_prob, 4 completion rounds (the models' defaults)"
for model in star-medium-loflexmdm star-medium-flexmdm; do
  "$LOFLEX" evaluate "$model" -n "$SAMPLES" --steps "$STAR_STEPS" --seed 0 -o "$OUT/$model.json" > /dev/null
done
"$PY" - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
print(f"{'model':<22} {'exact match':>12} {'valid path':>11} {'token acc.':>11} {'order corr.':>12}")
for model in ("star-medium-loflexmdm", "star-medium-flexmdm"):
    m = json.load(open(f"{out}/{model}.json"))
    m = m.get("metrics", m)
    print(f"{model:<22} {100 * m['exact_match']:>11.1f}% {100 * m['valid_path']:>10.1f}% "
          f"{100 * m['token_accuracy']:>10.1f}% {m['order_correlation']:>12.2f}")
PY

echo
echo "== The learned order of star-easy-loflexmdm on one easy star graph, next to uniform and the oracle"
echo "   (median insertion time of each path token; far edges first is the oracle's order)"
"$LOFLEX" order star-easy-loflexmdm --example 0 --split test --compare uniform,star-oracle \
  --picture "$OUT/star-order.png" | tail -n 9
"$LOFLEX" report star-easy-loflexmdm -o "$OUT/report" -n 64 --steps 64 > /dev/null
echo "picture: $OUT/star-order.png   report: $OUT/report/index.html"

echo
echo "== Training: the shipped star-medium-flexmdm learns easy star graphs (docs/runs/demo-star-easy.toml)"
echo "Easy graphs put the source at the junction of three arms of five nodes: three edge lookups"
echo "in a row. Exact match on 64 test graphs at 128 sampler steps, before and while training"
echo "for 1 CPU-minute:"
"$LOFLEX" evaluate star-medium-flexmdm --set domain.options.difficulty=easy --set sample.max_length=44 \
  -n 64 --steps 128 --seed 0 -o "$OUT/train-before.json" --force > /dev/null
"$LOFLEX" train --init star-medium-flexmdm docs/runs/demo-star-easy.toml -o "$OUT/train" --no-progress \
  > /dev/null
"$PY" - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
before = json.load(open(f"{out}/train-before.json"))
before = before.get("metrics", before)
rows = [json.loads(line) for line in open(f"{out}/train/metrics.jsonl")]
print(f"{'step':>6} {'CPU-s':>6} {'exact match':>12} {'token acc.':>11}")
print(f"{0:>6} {0:>6} {100 * before['exact_match']:>11.1f}% {100 * before['token_accuracy']:>10.1f}%")
for r in rows:
    if "sample/exact_match" in r:
        print(f"{r['step']:>6} {r['train_seconds']:>6.0f} {100 * r['sample/exact_match']:>11.1f}% "
              f"{100 * r['sample/token_accuracy']:>10.1f}%")
PY
