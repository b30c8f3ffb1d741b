"""The workers' Prometheus exporter and what the tasks record (metric definitions: portrait/metrics.py).

A GPU worker restores in prefork children, so samples must reach the parent's exporter: at start-up
(``celeryd_init``, before portrait.metrics creates any metric) the worker points PROMETHEUS_MULTIPROC_DIR
at an empty private directory (unless set); every process then writes its samples there,
and the exporter the parent starts on WORKER_METRICS_PORT (``worker_init``) merges them per scrape. A
child that exits has its live gauges dropped (``worker_process_shutdown``). With WORKER_METRICS_PORT 0
nothing is exported and the samples stay in memory.

A full disk under that directory must not kill a child: each child first reserves its sample files
(portrait/metrics_files.py) and, without room, runs without samples — its jobs go on and
``portrait_worker_children_without_metrics`` says so (worker/children.py) — instead of dying of SIGBUS.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from celery.signals import celeryd_init, worker_init, worker_process_shutdown

from portrait.metrics_files import samples_on
from portrait.settings import get_settings

log = logging.getLogger("portrait.worker")
ENV = "PROMETHEUS_MULTIPROC_DIR"


@celeryd_init.connect
def _multiprocess_dir(**_: Any) -> None:
    if not get_settings().worker_metrics_port:
        return
    if not os.environ.get(ENV):
        os.environ[ENV] = tempfile.mkdtemp(prefix="portrait-metrics-")
    directory = Path(os.environ[ENV])
    for stale in directory.glob("*.db"):  # a previous run's samples would be merged into ours
        stale.unlink()
    # prometheus_client picks in-memory or file-backed values when first imported, and the celery CLI
    # imported it already (the flower plugin): pick again, before portrait.metrics creates its metrics.
    from prometheus_client import values

    values.ValueClass = values.get_value_class()
    if "portrait.metrics" in sys.modules:
        log.warning("portrait.metrics was imported before %s was set: prefork children's metrics are lost", ENV)


@worker_init.connect
def _start_exporter(**_: Any) -> None:
    s = get_settings()
    if not s.worker_metrics_port:
        return
    from prometheus_client import start_http_server

    from portrait.metrics import exposition_registry
    from worker.children import BookCollector

    registry = exposition_registry()
    registry.register(BookCollector())
    start_http_server(s.worker_metrics_port, addr=s.worker_metrics_host, registry=registry)
    log.info("metrics on http://%s:%d/metrics (%s)", s.worker_metrics_host, s.worker_metrics_port,
             os.environ.get(ENV, "single process"))


@worker_process_shutdown.connect
def _child_exited(pid: int | None = None, **_: Any) -> None:
    if os.environ.get(ENV) and pid:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def job_started() -> None:
    """A job is being restored in this process (``portrait_jobs_in_flight``)."""
    if not samples_on():
        return
    from portrait.metrics import IN_FLIGHT

    IN_FLIGHT.inc()


def job_left() -> None:
    if not samples_on():
        return
    from portrait.metrics import IN_FLIGHT

    IN_FLIGHT.dec()


def job_finished(outcome: str, error_code: str = "", *, seconds: float | None = None,
                 result: Any = None) -> None:
    """Record a job that left a worker: ``succeeded`` (with the pipeline ``result``), ``failed``
    (with its code), ``requeued`` (a transient error, or ``lease_expired`` from the sweeper) or
    ``discarded`` (canceled while it ran)."""
    if not samples_on():
        return
    from portrait import metrics as m

    m.JOBS.labels(outcome, error_code).inc()
    if seconds is not None:
        m.JOB_SECONDS.observe(seconds)
    if result is not None:
        m.observe_stages(result.timings)
        m.FACES.inc(len(result.faces))
        m.MODEL.labels(result.model_version).set(1)


def webhook_attempt(result: str) -> None:
    """One delivery attempt's result: delivered, retrying, failed (gave up), gone (410) or skipped."""
    if not samples_on():
        return
    from portrait.metrics import WEBHOOKS

    WEBHOOKS.labels(result).inc()


def model_loaded(model_version: str) -> None:
    """The pipeline of this process serves ``model_version`` (``portrait_model_info``)."""
    if not samples_on():
        return
    from portrait.metrics import MODEL

    MODEL.labels(model_version).set(1)
