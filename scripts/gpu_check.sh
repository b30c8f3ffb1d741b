#!/usr/bin/env bash
# The GPU check of "Feed the GPU": ONE command of at most 9 minutes on a lent H200 (the device tool's
# `run`), every figure in one JSON, $OUT/gpu_check.json, and the whole log in $OUT/gpu_check.log.
# Prepare here first with scripts/gpu_prepare.sh (packages, weights and photos into the ignored .gpu/);
# docs/operations.md ("GPU check") gives the device call. Steps, each under its own time limit, each
# going on when an earlier one failed (its figures are then missing from the JSON, its error in the log):
#   1. the torch pixel stages against the numpy ones on CUDA (tests/restoration/test_device_stages.py);
#   2. per-stage ms a face at batch 1, 8 and 32 in fp32 and bf16 (benchmarks/stages.py);
#   3. one-face 1080p photos/s and Solvay photos/s through the worker's code path with 1, 2, 4 and 8
#      children on the GPU, with the GPU's busy share and memory per child (benchmarks/layout.py);
#   4. the per-stage table against facexlib's loop on CUDA (benchmarks/pipeline.py);
#   5. a training step's img/s, fp32 and bf16 (benchmarks/train_step.py);
# then scripts/gpu_figures.py merges them with the machine's description. Back here:
#   .venv/bin/python scripts/gpu_figures.py --readme <files_at>/gpu_check.json
# writes the figures into README.md ("GPU figures") with the date.
#
# Dry run on a CPU (small counts, no CUDA tests): GPU_CHECK_DEVICE=cpu OUT=out/gpu_check scripts/gpu_check.sh
set -uo pipefail
start=$(date +%s)
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu_check}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
BUDGET_S=${BUDGET_S:-530}   # the whole command, under the device tool's 600 s limit with room to spare
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} DEVICE
parts=$OUT/parts   # each step's figures, kept (they come back even if the merge fails)
mkdir -p "$parts"
log=$OUT/gpu_check.log
exec > >(tee "$log") 2>&1
tee_pid=$!

if [ "$DEVICE" = cuda ] && [ -f .gpu/site.zip ]; then  # cp312 packages for the machine's python3 only
  rm -rf .gpu/site && $PY -m zipfile -e .gpu/site.zip .gpu/site && export PYTHONPATH=$PYTHONPATH:$PWD/.gpu/site
fi
[ -d .gpu/weights ] && export WEIGHTS_DIR=${WEIGHTS_DIR:-$PWD/.gpu/weights}
[ -d .gpu/faces ] && export FACES_DIR=${FACES_DIR:-$PWD/.gpu/faces}

if [ "$DEVICE" = cuda ]; then
  batches=1,8,32 precisions=fp32,bf16 children=1,2,4,8 one_count=40 solvay_count=8 repeat=3 tbatch=16 steps=10
else
  batches=1,2 precisions=fp32 children=1,2 one_count=1 solvay_count=1 repeat=1 tbatch=2 steps=1
fi

step() {  # step NAME SECONDS COMMAND...: run it under its time limit (never past the budget), log the outcome
  local name=$1 limit=$2
  shift 2
  local left=$(( BUDGET_S - ($(date +%s) - start) - 15 ))
  (( limit > left )) && limit=$left
  if (( limit < 20 )); then echo "== $name: skipped, ${left}s left of the budget"; echo "$name skipped" >>"$parts/steps"; return; fi
  echo "== $name (limit ${limit}s): $*"
  local t0=$(date +%s)
  timeout --signal=TERM --kill-after=10 "$limit" "$@"
  local rc=$?
  echo "== $name: exit $rc after $(( $(date +%s) - t0 ))s"
  echo "$name $rc $(( $(date +%s) - t0 ))" >>"$parts/steps"
}

timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_mode --format=csv,noheader \
  2>/dev/null || echo "no nvidia-smi"
# every module the steps import, at once: a missing package shows here in seconds, named
step imports 60 $PY -c "import worker.restorer, worker.metrics, restoration.pipeline, restoration.training.loop, \
facexlib.detection, ai_edge_litert.interpreter, pydantic_settings, celery.signals; print('imports ok')"
if [ "$DEVICE" = cuda ]; then
  step tests 100 $PY -m pytest -q -p no:cacheprovider tests/restoration/test_device_stages.py -k cuda \
    --junitxml "$parts/tests.xml"
fi
step stages 110 $PY benchmarks/stages.py --device "$DEVICE" --batches $batches --precisions $precisions \
  --seconds 1 --json "$parts/stages.json"
step layout 200 $PY benchmarks/layout.py --device "$DEVICE" --children $children --photos one1080,solvay \
  --count $one_count --solvay-count $solvay_count --json "$parts/layout.json"
step pipeline 70 $PY benchmarks/pipeline.py --device "$DEVICE" --repeat $repeat --json "$parts/pipeline.json"
step train_step 80 $PY benchmarks/train_step.py --device "$DEVICE" --sizes 512 --precisions $precisions \
  --batch $tbatch --steps $steps --warmup 2 --json "$parts/train_step.json"
timeout 60 $PY scripts/gpu_figures.py --merge "$parts" --out "$OUT/gpu_check.json" \
  --seconds $(( $(date +%s) - start )) || echo '{"merge_failed": true}' >"$OUT/gpu_check.json"
exec >&- 2>&-
wait "$tee_pid"   # the log's last lines are written before the command returns
