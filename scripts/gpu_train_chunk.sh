#!/usr/bin/env bash
# One self-contained training chunk on a GPU session (the device tool's `run`), ≤ 9 minutes:
#   installs carried wheels (.whl/) if any, resumes from the carried checkpoint (.gpu/ckpt) if any,
#   trains until the budget, and leaves the next checkpoint + log + samples in $OUT.
# docs/TRAINING.md "Running a chunk" gives the exact device-tool call and what to carry.
#
# Environment (all optional):
#   CONFIG   training config          (default: the resumed checkpoint's own; small512.yaml for a new run)
#   RESUME   checkpoint to continue    (default .gpu/ckpt when it holds a state.json, else the committed
#            compact checkpoint training/resume, so a new GPU session goes on where the last one stopped)
#   INIT     checkpoint to start from, weights only (stage 2; ignored when RESUME is set)
#   PACK     data pack                 (default data/pack)
#   BUDGET_S seconds for the whole command, setup included (default 560: ends before a 600 s limit)
#   GPUS     processes for torchrun    (default 1)
set -euo pipefail
start=$(date +%s)
cd "$(dirname "$0")/.."
OUT=${OUT:-out/chunk}
CONFIG=${CONFIG:-}
PACK=${PACK:-data/pack}
BUDGET_S=${BUDGET_S:-560}
GPUS=${GPUS:-1}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"

if compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# identity weights travel in an ignored folder (never committed); without them identity terms are off
if [ -f .gpu/weights/identity/mobilefacenet.pt ]; then export WEIGHTS_DIR=${WEIGHTS_DIR:-$PWD/.gpu/weights}; fi
[ -f "$PACK/manifest.csv" ] || { echo "no pack at $PACK: carry data/pack (scripts/make_pack.py)"; exit 2; }

args=(--out "$OUT" --pack "$PACK")
RESUME=${RESUME:-}
if [ -z "$RESUME" ] && [ -f .gpu/ckpt/state.json ]; then RESUME=.gpu/ckpt; fi
if [ -z "$RESUME" ] && [ -z "${INIT:-}" ] && [ -f training/resume/state.json ]; then RESUME=training/resume; fi
if [ -n "$RESUME" ]; then args+=(--resume "$RESUME"); elif [ -n "${INIT:-}" ]; then args+=(--init "$INIT"); fi
if [ -z "$CONFIG" ] && [ -z "$RESUME" ]; then CONFIG=restoration/training/configs/small512.yaml; fi
if [ -n "$CONFIG" ]; then args+=(--config "$CONFIG"); fi

nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi: CPU run"
left=$(( BUDGET_S - ($(date +%s) - start) ))
minutes=$(awk -v s="$left" 'BEGIN { printf "%.2f", s / 60 }')
echo "chunk: ${args[*]} --max-minutes $minutes (gpus $GPUS)"
if [ "$GPUS" -gt 1 ]; then
  torchrun --standalone --nproc_per_node "$GPUS" -m restoration.training.train "${args[@]}" --max-minutes "$minutes"
else
  $PY -m restoration.training.train "${args[@]}" --max-minutes "$minutes"
fi
# $OUT returns at most 8 files: ckpt/ (state.json, shards, log.jsonl), g_ema.safetensors, samples.png
n=$(find "$OUT" -type f | wc -l)
if [ "$n" -gt 8 ]; then rm -f "$OUT/g_ema.safetensors"; echo "g_ema.safetensors left out (8-file limit): --export it"; fi
ls -la "$OUT" "$OUT/ckpt"
echo "chunk done in $(( $(date +%s) - start )) s"
