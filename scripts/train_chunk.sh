#!/usr/bin/env bash
# One CPU training chunk (`make train MINUTES=N`): niced, resumes where the last chunk stopped, ends by itself.
#   1. builds the commercial pack (data/pack) if it is missing;
#   2. resumes from $OUT/ckpt (a chunk of this session cut off earlier), else from the committed compact
#      checkpoint training/resume/, else starts $CONFIG (default configs/cpu512.yaml); a CONFIG given
#      explicitly with a checkpoint to resume switches the run to that configuration (a new stage: new
#      loss terms, same iteration count);
#   3. trains for MINUTES (the trainer saves atomically every train.ckpt_minutes and on SIGTERM);
#   4. writes the compact checkpoint (G-EMA + D, fp16) to training/resume/ with its log and a validation
#      grid, and appends the chunk's row to training/LOG.md (scripts/log_chunk.py).
# Step 4 also runs when step 3 is cut off (Ctrl-C, SIGTERM): whatever was saved last is kept.
# Commit training/resume/ and training/LOG.md afterwards: a chunk not committed is lost with the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-140}
OUT=${OUT:-out/train}
SWITCH_CONFIG=${CONFIG:-}   # set by the caller: also applies when resuming
CONFIG=${CONFIG:-restoration/training/configs/cpu512.yaml}
PACK=${PACK:-data/pack}
RESUME_DIR=${RESUME_DIR:-training/resume}
PY=${PYTHON:-.venv/bin/python}
NICE=${NICE:-10}
LOG_MD=${LOG_MD:-training/LOG.md}
ITERS=${ITERS:-}   # optional: stop at this (absolute) iteration too
export PYTHONUNBUFFERED=1
start=$(date +%s)

if [ ! -f "$PACK/manifest.csv" ]; then
  nice -n "$NICE" $PY scripts/make_pack.py --out "$PACK" --size 512 --pack commercial
fi
args=(--out "$OUT" --pack "$PACK")
if [ -n "$ITERS" ]; then args+=(--max-iters "$ITERS"); fi
if [ -f "$OUT/ckpt/state.json" ]; then from=$OUT/ckpt
elif [ -f "$RESUME_DIR/state.json" ]; then from=$RESUME_DIR
else from=""; fi
if [ -n "$from" ]; then args+=(--resume "$from"); fi
if [ -z "$from" ] || [ -n "$SWITCH_CONFIG" ]; then args+=(--config "$CONFIG"); fi
first_iter=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['iteration'] if sys.argv[1] else 0)" \
  "${from:+$from/state.json}")

finish() {
  trap - EXIT INT TERM
  if [ -f "$OUT/ckpt/state.json" ]; then
    cpu_min=$(awk -v s="$(( $(date +%s) - start ))" 'BEGIN { printf "%.1f", s / 60 }')
    $PY -m restoration.training.train --compact "$OUT/ckpt" --out "$RESUME_DIR"
    $PY scripts/log_chunk.py --ckpt "$RESUME_DIR" --run "$OUT" --from-iter "$first_iter" --cpu-min "$cpu_min" --log "$LOG_MD"
    du -sh "$RESUME_DIR"
  fi
}
trap finish EXIT INT TERM
echo "chunk: ${args[*]} --max-minutes $MINUTES (from iteration $first_iter)"
nice -n "$NICE" $PY -m restoration.training.train "${args[@]}" --max-minutes "$MINUTES"
