"""The broker messages a job sends, and the one place each is sent from: the API, the workers and the
sweeper call these and never name a queue.

* :func:`send_job` — a job's next step. **The queue is chosen here, when the message is sent**: a URL
  input not fetched yet goes to the CPU fetch queue (worker/fetch.py stores it and sends the job again,
  ``fetched=True``), everything else to a restore queue: ``gpu`` for single jobs, ``gpu-bulk`` for batch
  items, so a big batch never holds up single photos (GPU workers take ``gpu`` first, see
  worker/celery_app.py). With FETCH_URL_INPUTS_ON_CPU off the GPU task fetches the URL itself.
* :func:`send` — after the commit of transitions (``db.jobs.Transition``): the webhook messages they
  owe and one run of the fair bulk dispatcher however many batch items finished. Decides nothing.
* :func:`send_webhook` / :func:`request_dispatch` — one webhook message (a first try, a retry, the
  sweeper's re-send); a dispatcher run.

Messages go by task *name* through a producer-only Celery app (the workers' app, with its time limits
and broker transport, lives in worker/celery_app.py), so the API never imports worker code. Postgres
is the source of truth: whatever a lost message would lose, the sweeper re-sends from the rows.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from celery import Celery

from db.jobs import Transition
from db.models import InputSource, Job, WebhookMessage
from portrait.settings import get_settings

log = logging.getLogger("portrait.messages")

RESTORE_TASK = "portrait.restore"
FETCH_TASK = "portrait.fetch_input"
WEBHOOK_TASK = "portrait.deliver_webhook"
BATCH_WEBHOOK_TASK = "portrait.deliver_batch_webhook"  # the old name of a batch's delivery
DISPATCH_TASK = "portrait.dispatch_bulk"
SWEEP_TASK = "portrait.sweep"
RETENTION_TASK = "portrait.retention"


@lru_cache
def producer() -> Celery:
    """The app messages are sent with (API, workers, sweeper); it consumes nothing."""
    app = Celery("portrait", broker=get_settings().redis_url)
    app.conf.update(task_serializer="json", accept_content=["json"], result_backend=None,
                    task_ignore_result=True, task_send_sent_event=True, broker_connection_retry_on_startup=True)
    return app


def restore_queue(bulk: bool) -> str:
    """The restore queue of single jobs (False) or batch items (True)."""
    s = get_settings()
    return s.gpu_bulk_queue if bulk else s.gpu_queue


def send_job(job: Job, *, countdown: float | None = None, fetched: bool = False) -> None:
    """Send ``job`` on to its next step: fetch its URL input (CPU), or restore it (GPU, its queue)."""
    settings = get_settings()
    if job.input_source == InputSource.url and settings.fetch_url_inputs_on_cpu and not fetched:
        task, queue = FETCH_TASK, settings.fetch_queue
    else:
        task, queue = RESTORE_TASK, restore_queue(job.batch_id is not None)
    producer().send_task(task, args=[str(job.id)], countdown=countdown, queue=queue)


def send_webhook(message: WebhookMessage, attempt: int = 1, countdown: float | None = None) -> None:
    """One delivery attempt of ``message`` (worker/webhooks.py)."""
    producer().send_task(WEBHOOK_TASK, args=[str(message.subject_id), message.id, attempt, message.wire],
                         countdown=countdown, queue=get_settings().webhook_queue)


def request_dispatch() -> None:
    """Ask a CPU worker to run the fair bulk dispatcher (worker/dispatch.py): the only way it runs.
    Sent when a batch is created, when batch items finish (:func:`send`) and at every sweep.
    Never raises: if the message is lost, the next one or the sweep dispatches."""
    try:
        producer().send_task(DISPATCH_TASK, queue=get_settings().maintenance_queue)
    except Exception:  # noqa: BLE001
        log.exception("could not request a bulk dispatch; the sweeper will dispatch")


def send(*transitions: Transition | None) -> None:
    """After their commit: the webhooks the transitions owe, and one dispatcher run if any freed a bulk
    slot. Never raises: the sweeper re-sends pending webhooks and runs the dispatcher."""
    for transition in filter(None, transitions):
        for message in transition.webhooks:
            try:
                send_webhook(message)
            except Exception:  # noqa: BLE001
                log.exception("could not send webhook %s; the sweeper will", message.id)
    if any(t is not None and t.frees_bulk_slot for t in transitions):
        request_dispatch()

