"""Every Prometheus metric the service exports, defined once (prometheus-client), and how to expose them.

The API serves ``/metrics`` (api/metrics.py); each Celery worker runs an exporter on WORKER_METRICS_PORT
(worker/metrics.py). GPU workers are prefork: jobs run in child processes, so the worker uses
prometheus-client's **multiprocess mode** — every process writes its samples to files under
``PROMETHEUS_MULTIPROC_DIR`` and the exporter in the parent merges them at scrape time. The variable
must be set before prometheus_client is first imported in the process (worker/metrics.py does it for
workers); without it (the API, one process) the default in-process registry is used.

Names follow Prometheus conventions: ``portrait_`` prefix, ``_total`` counters, ``_seconds`` histograms.
Labels never carry a client, job or URL: their number stays small whatever the traffic.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from portrait.metrics_files import reserve_sample_files

if not reserve_sample_files():  # a full disk under PROMETHEUS_MULTIPROC_DIR: in-memory values, no SIGBUS
    values.ValueClass = values.MutexValue

# --- API (api/metrics.py)
HTTP_REQUESTS = Counter("portrait_http_requests_total", "HTTP requests answered, by route template and status.",
                        ["method", "route", "status"])
HTTP_LATENCY = Histogram("portrait_http_request_duration_seconds", "Time to answer an HTTP request.",
                         ["method", "route"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))

# --- workers (worker/tasks.py, worker/webhooks.py)
JOBS = Counter("portrait_jobs_total", "Jobs finished by a worker, by outcome and error code ('' on success).",
               ["outcome", "error_code"])
STAGE_SECONDS = Histogram("portrait_stage_seconds", "Time of each pipeline stage of a restored photo.", ["stage"],
                          buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
JOB_SECONDS = Histogram("portrait_job_seconds", "A job's time on the worker, input read to result written.",
                        buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
FACES = Counter("portrait_faces_restored_total", "Faces restored in succeeded jobs.")
IN_FLIGHT = Gauge("portrait_jobs_in_flight", "Jobs a worker process is restoring right now.",
                  multiprocess_mode="livesum")
MODEL = Gauge("portrait_model_info", "1 for the model version a worker process serves.", ["model_version"],
              multiprocess_mode="livemax")
WEBHOOKS = Counter("portrait_webhook_deliveries_total",
                   "Webhook delivery attempts by result (delivered, retrying, failed, skipped).", ["result"])

#: The pipeline stages that get a histogram (restoration/pipeline.py's timings, in ms).
STAGES = ("decode", "detect", "align", "parse", "generate", "paste", "background", "encode", "total")


def observe_stages(timings_ms: dict[str, float]) -> None:
    """One observation per known stage of a restored photo's ``timings`` (milliseconds)."""
    for stage in STAGES:
        if stage in timings_ms:
            STAGE_SECONDS.labels(stage).observe(timings_ms[stage] / 1000)


class QueueDepth(Collector):
    """``portrait_queue_depth{queue}``: messages waiting in each Redis list, read at scrape time."""

    def __init__(self, redis_url: str, queues: dict[str, str]) -> None:
        self.redis_url, self.queues = redis_url, queues

    def collect(self):  # noqa: ANN201 - prometheus_client's Collector protocol
        import redis

        g = GaugeMetricFamily("portrait_queue_depth", "Messages waiting in a queue (Redis list length).",
                              labels=["queue"])
        try:
            r = redis.Redis.from_url(self.redis_url, socket_timeout=1, socket_connect_timeout=1)
            with r.pipeline() as p:
                for name in self.queues.values():
                    p.llen(name)
                depths = p.execute()
        except redis.RedisError:
            return  # no sample rather than a wrong one; portrait_up-style alerts catch the outage
        for kind, depth in zip(self.queues, depths, strict=True):
            g.add_metric([kind], depth)
        yield g


def exposition_registry() -> CollectorRegistry:
    """The registry to serve: the merged multiprocess files when PROMETHEUS_MULTIPROC_DIR is set, else
    this process's own."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY
