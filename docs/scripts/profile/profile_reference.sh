#!/usr/bin/env bash
# FLOPs and a torch.profiler operator table of one training step of the reference
# implementation (star-easy, 4 layers x 256 x 4 heads, batch 64, fp32), as measured by
# ../../shared/tools/refbench (run reference_bench.sh or side_by_side.sh once first: it
# installs the reference into $REFBENCH_DIR and prepares the data). Reference code runs
# unchanged; reference_profile.py is a Lightning callback added with hydra overrides.
#   bash docs/scripts/profile/profile_reference.sh flexmdm|lflexmdm OUT.json [THREADS]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
MODEL=${1:?flexmdm or lflexmdm}
OUT=$(realpath -m "${2:?output JSON file}")
THREADS=${3:-2}
RB=${REFBENCH_DIR:-/tmp/refbench}
[ -x "$RB/venv/bin/xlm" ] || { echo "no reference install in $RB: run refbench/reference_bench.sh first" >&2; exit 1; }
export DATA_DIR=$RB/data LOG_DIR=$RB/logs HF_HOME=$RB/hf_home HF_DATASETS_CACHE=$RB/hf_datasets_cache
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export WANDB_MODE=disabled HYDRA_FULL_ERROR=1 OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
export PROJECT_ROOT=. PYTHONPATH=.:$HERE
if [ "$MODEL" = flexmdm ]; then EXP=star_easy_flexmdm; AUX=""
else EXP="[star_easy_lflexmdm,b_um_1_a1]"; AUX="aux_model.d_model=256 aux_model.num_layers=4 aux_model.nhead=4"; fi
rm -rf "$RB/logs/profile_$MODEL"
cd "$RB/LoFlexMDM"
"$RB/venv/bin/xlm" job_name=profile_$MODEL job_type=train "experiment=$EXP" \
  trainer_strategy=cpu debug=no_dl_workers dataloader_pin_memory=false ++trainer.precision=32-true \
  compile=false trainer.num_sanity_val_steps=0 trainer.max_steps=$((8 + ${PLAIN_STEPS:-3})) \
  model.d_model=256 model.num_layers=4 model.nhead=4 $AUX \
  +callbacks.prof._target_=reference_profile.ProfileCallback +callbacks.prof.out="$OUT" \
  +callbacks.prof.threads="$THREADS" +callbacks.prof.plain_steps=${PLAIN_STEPS:-3} \
  "+callbacks.prof.sample_steps=${SAMPLE_STEPS:-[]}"
