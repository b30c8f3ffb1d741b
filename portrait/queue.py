"""The Celery application and the names of its tasks, shared by the API (which only sends) and the
worker (which also executes, see worker/celery_app.py).

The API enqueues by task *name* through ``send_task``, so it never imports worker code. Reliability
settings follow from "Postgres is the source of truth, Redis only carries messages":
``task_acks_late`` + ``task_reject_on_worker_lost`` give a message back if its worker dies,
``worker_prefetch_multiplier = 1`` keeps one GPU job per child, and the broker's
``visibility_timeout`` is longer than the hard time limit so a long job is not delivered twice while
it is still running. Whatever a lost message would lose, the sweeper rebuilds from Postgres.
"""

from __future__ import annotations

import uuid
from functools import lru_cache

from celery import Celery

from portrait.settings import Settings, get_settings

RESTORE_TASK = "portrait.restore"
WEBHOOK_TASK = "portrait.deliver_webhook"
SWEEP_TASK = "portrait.sweep"


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery("portrait", broker=settings.redis_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_soft_time_limit_s,
        task_time_limit=settings.task_time_limit_s,
        broker_transport_options={"visibility_timeout": settings.task_time_limit_s + 300},
        broker_connection_retry_on_startup=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_routes={
            RESTORE_TASK: {"queue": settings.gpu_queue},
            WEBHOOK_TASK: {"queue": settings.webhook_queue},
            SWEEP_TASK: {"queue": settings.maintenance_queue},
        },
        beat_schedule={
            "sweep": {"task": SWEEP_TASK, "schedule": settings.sweep_interval_s},
        },
    )
    return app


@lru_cache
def producer() -> Celery:
    """The app used to send messages (API, sweeper)."""
    return make_celery()


def enqueue_restore(job_id: uuid.UUID | str, countdown: float | None = None) -> None:
    producer().send_task(RESTORE_TASK, args=[str(job_id)], countdown=countdown)


def enqueue_webhook(job_id: uuid.UUID | str, message_id: str, attempt: int = 1,
                    countdown: float | None = None) -> None:
    producer().send_task(WEBHOOK_TASK, args=[str(job_id), message_id, attempt], countdown=countdown)
