#!/usr/bin/env bash
# `make dev`: api + GPU worker + CPU worker + beat + Flower against the local Redis and Postgres, with a
# local SeaweedFS as S3 unless S3_ENDPOINT_URL is already set. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
RUN=.run/dev
mkdir -p "$RUN"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if [ -z "${S3_ENDPOINT_URL:-}" ]; then
  export S3_ENDPOINT_URL=http://127.0.0.1:8333 S3_ACCESS_KEY_ID=dev S3_SECRET_ACCESS_KEY=dev-secret
  cat > "$RUN/s3.json" <<JSON
{"identities":[{"name":"dev","credentials":[{"accessKey":"dev","secretKey":"dev-secret"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
  mkdir -p "$RUN/weed"
  $BIN/weed server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$RUN/weed" -s3 -s3.port=8333 \
    -s3.config="$RUN/s3.json" -master.volumeSizeLimitMB=256 -s3.port.iceberg=0 -s3.port.lance=0 >"$RUN/seaweedfs.log" 2>&1 &
  pids+=($!)
  echo "SeaweedFS S3 on :8333 (log $RUN/seaweedfs.log)"
fi
export DATABASE_URL=${DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/portrait}
psql -h 127.0.0.1 -U postgres -tc "select 1 from pg_database where datname='portrait'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -c "create database portrait" >/dev/null
$BIN/portrait migrate

$BIN/uvicorn api.app:app --host 127.0.0.1 --port 8000 --http h11 --h11-max-incomplete-event-size 65536 \
  >"$RUN/api.log" 2>&1 & pids+=($!)
WORKER_METRICS_PORT=9808 $BIN/celery -A worker.celery_app worker -P prefork -c 1 -Q gpu,gpu-bulk -n gpu@%h -E -l info \
  >"$RUN/gpu.log" 2>&1 & pids+=($!)
WORKER_METRICS_PORT=9809 $BIN/celery -A worker.celery_app worker -P threads -c 4 -Q fetch,webhooks,maintenance \
  -n cpu@%h -E -l info >"$RUN/cpu.log" 2>&1 & pids+=($!)
$BIN/celery -A worker.celery_app beat -l info -s "$RUN/beat-schedule" >"$RUN/beat.log" 2>&1 & pids+=($!)
# Flower never runs without authentication (flowerconfig.py refuses): a random password unless one is set
export FLOWER_BASIC_AUTH=${FLOWER_BASIC_AUTH:-dev:$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')}
$BIN/celery -A worker.celery_app flower --port=5555 --address=127.0.0.1 >"$RUN/flower.log" 2>&1 & pids+=($!)
echo "API http://127.0.0.1:8000/docs   Flower http://127.0.0.1:5555 ($FLOWER_BASIC_AUTH)   logs in $RUN/"
echo "Metrics: http://127.0.0.1:8000/metrics, GPU worker :9808/metrics, CPU worker :9809/metrics"
echo "Create a client: $BIN/portrait create-client dev"
wait -n
