"""The worker's Celery app, started by ``portrait worker gpu|cpu`` (portrait/cli.py writes the command line).

GPU workers (``portrait worker gpu``: prefork, one child, GPU_QUEUE then GPU_BULK_QUEUE, interactive
first: the order is the priority, see portrait/queue.py): one child per GPU, which loads the pipeline once
*after* fork (``worker_process_init``), so the parent never touches CUDA. CPU workers for URL fetches,
webhooks, the sweeper and retention (``portrait worker cpu``: threads, FETCH_QUEUE, WEBHOOK_QUEUE,
MAINTENANCE_QUEUE) never load the model.
"""

from __future__ import annotations

import logging
import os

from celery.signals import after_setup_logger, after_setup_task_logger, worker_process_init

from portrait.queue import make_celery
from portrait.settings import get_settings

app = make_celery()
app.conf.include = ["worker.tasks", "worker.fetch", "worker.webhooks", "worker.sweeper", "worker.retention",
                    "worker.dispatch"]
import worker.children  # noqa: E402, F401 - the children's book, made here in the parent before any fork
import worker.metrics  # noqa: E402, F401 - its start-up signals: the exporter (WORKER_METRICS_PORT)

log = logging.getLogger("portrait.worker")


@after_setup_logger.connect
@after_setup_task_logger.connect
def _log_format(logger: logging.Logger, **_: object) -> None:
    """Celery set up its handlers: add the job context to every line; LOG_FORMAT=json makes them JSON."""
    from portrait.logs import install

    install(logger, get_settings().log_format, take_over=False)


@worker_process_init.connect
def _after_fork(**_: object) -> None:
    from db.session import dispose_engine
    from portrait.metrics_files import reserve_sample_files
    from worker import children, restorer

    slot = children.on_child_start()  # counts early deaths, backs off after a run of them
    if not reserve_sample_files():  # a full disk: no metric samples rather than a SIGBUS
        children.BOOK.without_metric_files(slot, os.getpid())
    dispose_engine()  # never share the parent's DB connections
    s = get_settings()
    if {s.gpu_queue, s.gpu_bulk_queue} & _consumed_queues():
        restorer.get_restorer()  # load the model now, once per child, not on the first job


def _consumed_queues() -> set[str]:
    try:
        consumer = app.amqp.queues  # the -Q selection is applied to this mapping at start-up
        return set(consumer.consume_from.keys()) if consumer.consume_from else set(consumer.keys())
    except Exception:  # noqa: BLE001 - when unsure, load lazily on the first job instead
        return set()
