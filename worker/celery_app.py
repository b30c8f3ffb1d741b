"""The workers' Celery app and its configuration, started by ``portrait worker gpu|cpu`` (portrait/cli.py
writes the command line, once).

GPU workers consume ``gpu`` then ``gpu-bulk`` with prefork children (``GPU_WORKER_CHILDREN`` per GPU,
worker/layout.py), each of which loads the pipeline once *after* fork (``worker_process_init``) on its
device, so the parent never touches CUDA. CPU workers for URL
fetches, webhooks, the sweeper, retention and the bulk dispatcher consume ``fetch``, ``webhooks`` and
``maintenance`` and never load the model. Messages are sent through jobs/messages.py, which picks the
queue; this app only consumes (and beat sends the sweep and retention on their schedule).

Reliability settings follow from "Postgres is the source of truth, Redis only carries messages":
``task_acks_late`` + ``task_reject_on_worker_lost`` give a message back if its worker dies,
``worker_prefetch_multiplier = 1`` keeps one GPU job per child, and the broker's ``visibility_timeout``
is longer than the hard time limit so a long job is not delivered twice while it is still running; the
transport survives a broker outage with messages in hand (worker/broker.py). Whatever a lost message
would lose, the sweeper rebuilds from Postgres.

Two restore queues keep bulk work from starving interactive users: with kombu's
``queue_order_strategy="priority"`` each fetch is one BRPOP over the queues *in the order consumed*,
and Redis answers from the first non-empty list, so a waiting single job is always taken before the
next batch item (the default ``round_robin`` would alternate). One child runs one job at a time
(prefetch 1 + acks_late), so a single job waits at most for the batch item already running.
"""

from __future__ import annotations

import logging
import os

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger, worker_process_init

from jobs import messages
from portrait.settings import Settings, get_settings
from worker.broker import RedisTransport


def make_celery(settings: Settings | None = None) -> Celery:
    """The workers' app: consumption, time limits, the broker transport and beat's schedule."""
    settings = settings or get_settings()
    app = Celery("portrait", broker=settings.redis_url)
    app.conf.update(
        broker_transport=RedisTransport,
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # a child loads the pipeline in worker_process_init, before it reports UP to its parent
        worker_proc_alive_timeout=settings.worker_start_timeout_s,
        task_soft_time_limit=settings.task_soft_time_limit_s,
        task_time_limit=settings.task_time_limit_s,
        broker_transport_options={"visibility_timeout": settings.task_time_limit_s + 300,
                                  "queue_order_strategy": "priority"},
        broker_connection_retry_on_startup=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        # beat's messages (messages sent by the workers name their queue: jobs/messages.py)
        task_routes={messages.SWEEP_TASK: {"queue": settings.maintenance_queue},
                     messages.RETENTION_TASK: {"queue": settings.maintenance_queue}},
        beat_schedule={
            "sweep": {"task": messages.SWEEP_TASK, "schedule": settings.sweep_interval_s},
            "retention": {"task": messages.RETENTION_TASK, "schedule": settings.retention_interval_s},
        },
    )
    return app


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
    restorer.place(slot)  # its device and threads in the worker's layout (worker/layout.py)
    if {s.gpu_queue, s.gpu_bulk_queue} & _consumed_queues():
        restorer.get_restorer()  # load the model now, once per child, not on the first job


def _consumed_queues() -> set[str]:
    try:
        consumer = app.amqp.queues  # the -Q selection is applied to this mapping at start-up
        return set(consumer.consume_from.keys()) if consumer.consume_from else set(consumer.keys())
    except Exception:  # noqa: BLE001 - when unsure, load lazily on the first job instead
        return set()
