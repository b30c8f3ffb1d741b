# One entry point for developers and CI. `make test` works on a fresh machine: it builds the venv,
# installs the project, starts Redis/Postgres if they are down, and runs pytest; the tests themselves
# start SeaweedFS, uvicorn and Celery workers as subprocesses (devstack/, through tests/service/harness.py).
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= $(abspath ../shared)
export WEIGHTS_DIR ?= $(SHARED)/weights
export FACES_DIR ?= $(SHARED)/faces
STAMP := $(VENV)/.installed

.PHONY: install services test test-faults test-containers check lint demo dev api worker worker-cpu flower beat migrate bench clean pack train

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[ml,eval,dev]'
	touch $(STAMP)

install: $(STAMP)

services:
	@scripts/ensure-services.sh

lint: install
	$(BIN)/ruff check .

test: install services
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The fast inner loop: lint + every test that needs no running stack (no services started).
check: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not services" $(PYTEST_ARGS)

# Only the fault and abuse suite (make test runs it too): Redis restart, Postgres outage, full temp
# disk, a 2,000-job burst; figures in out/faults.json and docs/operations.md's fault table.
test-faults: install services
	$(BIN)/python -m pytest tests/faults $(PYTEST_ARGS)

# The images built and the stack run in containers, end to end, with podman (issue 22; minutes, root):
# the host prepared (scripts/container-host.sh), every image built (scripts/containers.sh build, sizes and
# times in out/containers/images.json), then tests/containers/ brings the stack up, runs a job and a batch,
# checks metrics and Flower, kills the worker mid-job, and takes it all down.
test-containers: install
	scripts/container-host.sh
	scripts/containers.sh build
	CONTAINER_TESTS=1 $(BIN)/python -m pytest tests/containers $(PYTEST_ARGS)

# The README's main job: restore a degraded copy of scikit-image's astronaut on CPU, no services.
demo: install
	$(BIN)/portrait demo -o out/demo

migrate: install services
	$(BIN)/portrait migrate

api: install
	$(BIN)/portrait api

# GPU worker: interactive queue first (strict priority over batch items), GPU_WORKER_CHILDREN per GPU.
# Its Prometheus exporter: WORKER_METRICS_PORT (e.g. 9808; 0 = none).
worker: install
	$(BIN)/portrait worker gpu

# CPU worker: URL-input fetches, webhooks, sweeper and retention; never loads the model.
worker-cpu: install
	$(BIN)/portrait worker cpu

beat: install
	$(BIN)/portrait beat

# Needs FLOWER_BASIC_AUTH=user:password: flowerconfig.py refuses to start an open Flower.
flower: install
	$(BIN)/portrait flower

# api + worker + beat + flower against the local services (and a local SeaweedFS as S3).
dev: install services
	$(BIN)/python -m devstack

# The commercial training pack (CC-BY-4.0 London/Canada + public-domain US Congress, ~650 faces of ~540
# people) in data/pack and the evaluation-only out-of-distribution pack in data/ood (both ignored:
# third-party faces); each has report.md, rejects.tsv and contact sheets. ~8 min on 2 cores.
pack: install
	$(BIN)/python scripts/make_pack.py --out data/pack --size 512 --pack commercial
	$(BIN)/python scripts/make_pack.py --out data/ood --size 512 --pack ood

# One CPU training chunk: niced, resumes from training/resume/, ends by itself after MINUTES, writes the
# compact checkpoint + LOG.md row back (scripts/train_chunk.sh). Commit training/ afterwards.
MINUTES ?= 140
train: install
	MINUTES=$(MINUTES) PYTHON=$(BIN)/python scripts/train_chunk.sh

bench: install
	$(BIN)/python benchmarks/pipeline.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .run out
