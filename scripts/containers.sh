#!/usr/bin/env bash
# The project's containers on a host without Docker or a registry (podman; scripts/container-host.sh
# prepares the host): build every image, bring the stack up in stages, take it down.
#   scripts/containers.sh build   # api, worker, postgres, redis, s3, prometheus -> localhost/portrait-*:dev;
#                                 # sizes and build seconds to out/containers/images.json
#   scripts/containers.sh up      # docker-compose.yml + infra/compose.local.yml, started in stages
#   scripts/containers.sh down    # stop and remove the stack and its volumes
# Environment: PROJECT (compose project, default portrait), COMPOSE_FILES (extra -f files, space-separated),
# BASE (default localhost/debian:bookworm), TORCH_PIP_ARGS (default: this workplace's local wheel index when
# /opt/pypi-more exists), FLOWER_USER / FLOWER_PASSWORD (required by the compose file).
# Why stages: podman-compose 1.6 on podman 4.3 ignores depends_on conditions and runs healthchecks only
# when asked (no systemd), and once an init container has exited a one-shot `up` of everything fails on
# podman's dependency graph; so this starts each stage with --no-deps after the previous one is ready.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
BASE=${BASE:-localhost/debian:bookworm}
PROJECT=${PROJECT:-portrait}
OUTDIR=${OUTDIR:-out/containers}
CA=${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}
if [ -z "${TORCH_PIP_ARGS+set}" ] && [ -d /opt/pypi-more/simple ]; then
  TORCH_PIP_ARGS="--index-url file:///opt/pypi-more/simple --extra-index-url file:///opt/pypi/simple --extra-index-url https://pypi.org/simple"
fi
compose() {
  # the compose file requires Grafana's password; Grafana is not run here (no build of it without a registry)
  export GRAFANA_ADMIN_PASSWORD=${GRAFANA_ADMIN_PASSWORD:-unused-grafana-is-not-run-here}
  local files=(-f docker-compose.yml -f infra/compose.local.yml)
  for f in ${COMPOSE_FILES:-}; do files+=(-f "$f"); done
  "$PY" -m podman_compose --no-ansi -p "$PROJECT" "${files[@]}" "$@"
}
container() { echo "${PROJECT}_$1_1"; }   # podman-compose's container names

build_one() {  # name dockerfile [extra podman build args...]
  local name=$1 file=$2; shift 2
  local t0=$SECONDS args=(--network=host -f "$file" --build-arg "BASE=$BASE" -t "localhost/portrait-$name:dev")
  if [ -f "$CA" ]; then args+=(--build-arg PIP_CERT=/etc/ssl/host-ca.crt -v "$CA:/etc/ssl/host-ca.crt:ro"); fi
  echo "== build $name ($file)"
  podman build "${args[@]}" "$@" . >"$OUTDIR/build-$name.log" 2>&1 || { tail -30 "$OUTDIR/build-$name.log"; exit 1; }
  local size; size=$(podman image inspect --format '{{.Size}}' "localhost/portrait-$name:dev")
  echo "   $name: $((size / 1000000)) MB in $((SECONDS - t0)) s"
  printf '{"image": "localhost/portrait-%s:dev", "bytes": %s, "build_s": %s}\n' "$name" "$size" "$((SECONDS - t0))" \
    >>"$OUTDIR/images.jsonl"
}

build() {
  mkdir -p "$OUTDIR" && : >"$OUTDIR/images.jsonl"
  build_one api infra/Dockerfile.api
  local worker_args=()
  if [ -n "${TORCH_PIP_ARGS:-}" ]; then
    worker_args+=(--build-arg "TORCH_PIP_ARGS=$TORCH_PIP_ARGS")
    for d in /opt/pypi-more /opt/pypi; do [ -d "$d" ] && worker_args+=(-v "$d:$d:ro"); done
  fi
  build_one worker infra/Dockerfile.worker "${worker_args[@]}"
  for s in postgres redis s3 prometheus; do build_one "$s" "infra/local/Dockerfile.$s"; done
  "$PY" -c "import json,sys; rows=[json.loads(l) for l in open(sys.argv[1])]; json.dump(rows, open(sys.argv[2], 'w'), indent=1)" \
    "$OUTDIR/images.jsonl" "$OUTDIR/images.json"
}

healthy() {  # container: its compose healthcheck passes (podman runs it only when asked)
  podman healthcheck run "$(container "$1")" >/dev/null 2>&1
}
wait_for() {  # description seconds command...
  local what=$1 limit=$2; shift 2
  local t0=$SECONDS
  until "$@"; do
    if (( SECONDS - t0 > limit )); then echo "timed out after ${limit}s waiting for $what" >&2; return 1; fi
    sleep 1
  done
  echo "   $what: ready in $((SECONDS - t0)) s"
}
exited_ok() {  # container: it ran to completion with status 0
  [ "$(podman inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$(container "$1")" 2>/dev/null)" = "exited 0" ]
}

up() {
  : "${FLOWER_USER:?set FLOWER_USER}" "${FLOWER_PASSWORD:?set FLOWER_PASSWORD}"
  local t0=$SECONDS
  mkdir -p "$OUTDIR" && : >"$OUTDIR/up.log"   # podman's own noise (no systemd for healthcheck timers) goes there
  echo "== stage 1: postgres, redis, s3"
  compose up -d --no-deps postgres redis minio >>"$OUTDIR/up.log" 2>&1
  for s in postgres redis minio; do wait_for "$s" 120 healthy "$s"; done
  echo "== stage 2: bucket and migrations"
  compose up -d --no-deps minio-init migrate >>"$OUTDIR/up.log" 2>&1
  for s in minio-init migrate; do wait_for "$s" 180 exited_ok "$s"; done
  echo "== stage 3: api, workers, beat, flower, prometheus"
  compose up -d --no-deps api worker worker-cpu beat flower prometheus >>"$OUTDIR/up.log" 2>&1
  wait_for api 120 healthy api
  wait_for worker 300 healthy worker
  echo "stack up in $((SECONDS - t0)) s"
}

down() {
  compose down -v -t 5 >/dev/null 2>&1 || true
  podman pod rm -f "pod_$PROJECT" >/dev/null 2>&1 || true
}

case "${1:-}" in
  build) build ;;
  up) up ;;
  down) down ;;
  compose) shift; compose "$@" ;;
  *) echo "usage: $0 build|up|down|compose ARGS..." >&2; exit 2 ;;
esac
