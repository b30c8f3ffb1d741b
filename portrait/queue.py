"""The Celery application and the names of its tasks, shared by the API (which only sends) and the
worker (which also executes, see worker/celery_app.py).

The API enqueues by task *name* through ``send_task``, so it never imports worker code. Reliability
settings follow from "Postgres is the source of truth, Redis only carries messages":
``task_acks_late`` + ``task_reject_on_worker_lost`` give a message back if its worker dies,
``worker_prefetch_multiplier = 1`` keeps one GPU job per child, and the broker's
``visibility_timeout`` is longer than the hard time limit so a long job is not delivered twice while
it is still running. Whatever a lost message would lose, the sweeper rebuilds from Postgres.
That is also why the broker transport is kombu's Redis transport with one change
(``RedisTransport``): when the connection drops while a worker holds unacknowledged messages, kombu
pushes them back, and later acks the tasks that finish meanwhile, through the channel it has already
closed; the AttributeError killed the whole worker ("Unrecoverable error", found by tests/faults).
Now those are logged and the worker reconnects; the messages are still in Redis' unacked set if
Redis survived (redelivered after ``visibility_timeout``, a no-op for a finished job), or gone with
it (the sweeper re-sends what is not finished).

Two restore queues keep bulk work from starving interactive users: single jobs go to GPU_QUEUE,
batch items to GPU_BULK_QUEUE. GPU workers consume both (``-Q gpu,gpu-bulk``) with kombu's
``queue_order_strategy="priority"``: each fetch is one BRPOP over the queues *in -Q order*, and Redis
answers from the first non-empty list, so a waiting single job is always taken before the next batch
item (the default ``round_robin`` would alternate). One child runs one job at a time
(prefetch 1 + acks_late), so a single job waits at most for the batch item already running.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from functools import lru_cache
from typing import Any

import redis
from celery import Celery
from kombu.transport import redis as kombu_redis

from portrait.settings import Settings, get_settings

log = logging.getLogger("portrait.queue")

RESTORE_TASK = "portrait.restore"
WEBHOOK_TASK = "portrait.deliver_webhook"
BATCH_WEBHOOK_TASK = "portrait.deliver_batch_webhook"
SWEEP_TASK = "portrait.sweep"
RETENTION_TASK = "portrait.retention"
FETCH_TASK = "portrait.fetch_input"
DISPATCH_TASK = "portrait.dispatch_bulk"


class _QoS(kombu_redis.QoS):
    """Acks and give-backs on a channel whose connection is gone are logged, not fatal."""

    def restore_unacked(self, client: Any = None) -> None:
        try:
            super().restore_unacked(client)
        except (AttributeError, redis.RedisError) as e:  # the connection is already gone
            log.warning("could not give %d unacknowledged message(s) back to Redis (%s: %s); Redis keeps "
                        "them for redelivery, or they died with it and the sweeper re-sends them",
                        len(self._delivered), type(e).__name__, e)
            self._delivered.clear()

    def ack(self, delivery_tag: Any) -> None:
        try:
            super().ack(delivery_tag)
        except (AttributeError, redis.RedisError) as e:
            # a task that outlived its connection: Postgres has its outcome; a redelivery is a no-op
            log.warning("could not ack a message of a closed connection (%s)", type(e).__name__)

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        try:
            super().reject(delivery_tag, requeue=requeue)
        except (AttributeError, redis.RedisError) as e:
            log.warning("could not reject a message of a closed connection (%s)", type(e).__name__)


class _Channel(kombu_redis.Channel):
    QoS = _QoS


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport whose workers survive a broker outage with messages in hand."""

    Channel = _Channel


def make_celery(settings: Settings | None = None) -> Celery:
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
        task_routes={
            RESTORE_TASK: {"queue": settings.gpu_queue},
            WEBHOOK_TASK: {"queue": settings.webhook_queue},
            BATCH_WEBHOOK_TASK: {"queue": settings.webhook_queue},
            SWEEP_TASK: {"queue": settings.maintenance_queue},
            RETENTION_TASK: {"queue": settings.maintenance_queue},
            FETCH_TASK: {"queue": settings.fetch_queue},
            DISPATCH_TASK: {"queue": settings.maintenance_queue},
        },
        beat_schedule={
            "sweep": {"task": SWEEP_TASK, "schedule": settings.sweep_interval_s},
            "retention": {"task": RETENTION_TASK, "schedule": settings.retention_interval_s},
        },
    )
    return app


@lru_cache
def producer() -> Celery:
    """The app used to send messages (API, sweeper)."""
    return make_celery()


def restore_queue(bulk: bool) -> str:
    s = get_settings()
    return s.gpu_bulk_queue if bulk else s.gpu_queue


def enqueue_restore(job_id: uuid.UUID | str, countdown: float | None = None, *, bulk: bool = False) -> None:
    producer().send_task(RESTORE_TASK, args=[str(job_id)], countdown=countdown, queue=restore_queue(bulk))


def enqueue_fetch(job_id: uuid.UUID | str) -> None:
    """Fetch a job's URL input on the CPU queue (worker/fetch.py), which then sends its restore message."""
    producer().send_task(FETCH_TASK, args=[str(job_id)])


def request_dispatch() -> None:
    """Ask a CPU worker to run the fair bulk dispatcher (worker/dispatch.py): the only way it runs.
    Sent when a batch is created, when a batch item finishes (``send_notices``) and at every sweep.
    Never raises: if the message is lost, the next one or the sweep dispatches."""
    try:
        producer().send_task(DISPATCH_TASK)
    except Exception:  # noqa: BLE001
        log.exception("could not request a bulk dispatch; the sweeper will dispatch")


#: Longest restore queue whose messages ``restore_messages`` reads (the bulk queue is bounded by the
#: dispatcher at BULK_IN_FLIGHT_PER_CLIENT per busy client; a longer list is a backlog, not a loss).
SCAN_MAX = 2000
UNACKED_KEY = "unacked"  # kombu's Redis transport: delivered, not yet acknowledged messages


def _restore_job_id(raw: bytes | str) -> str | None:
    """The job id a raw kombu message (or unacked entry ``[message, exchange, routing_key]``) restores."""
    try:
        msg = json.loads(raw)
        if isinstance(msg, list):
            msg = msg[0]
        if msg.get("headers", {}).get("task") != RESTORE_TASK:
            return None
        body = msg["body"]
        if msg.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        decoded = json.loads(body)
        args = decoded[0] if isinstance(decoded, list) else decoded.get("args")  # protocol 2 | 1
        return str(uuid.UUID(str(args[0])))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None


def restore_messages(bulk: bool) -> set[str] | None:
    """Job ids that still have a restore message in Redis: waiting in this queue's list, or delivered
    to a worker and not acknowledged yet (reserved, running, or held for a retry's countdown; with
    ``task_acks_late`` a message stays there until its task ends, and kombu puts it back in the list
    if that worker dies). A queued job found in neither has lost its message.

    None when it cannot tell: Redis unreachable, or the list longer than SCAN_MAX. (A message moving
    from the list to the unacked set is in neither for an instant; the caller's re-send is then a
    duplicate, which the claim's compare-and-set drops.)
    """
    name = restore_queue(bulk)
    try:
        r = redis.Redis.from_url(get_settings().redis_url, socket_timeout=5)
        if r.llen(name) > SCAN_MAX:
            return None
        found = {_restore_job_id(raw) for raw in r.lrange(name, 0, SCAN_MAX)}
        found.update(_restore_job_id(raw) for _, raw in r.hscan_iter(UNACKED_KEY, count=500))
    except redis.RedisError:
        log.warning("could not read the %s queue from Redis", name, exc_info=True)
        return None
    found.discard(None)
    return found  # type: ignore[return-value]


def enqueue_webhook(job_id: uuid.UUID | str, message_id: str, attempt: int = 1,
                    countdown: float | None = None, event: str = "completed") -> None:
    """One webhook message: a job's "completed" (terminal status) or "start" (first claim) event, or
    "batch.completed" with a batch's id (worker/webhooks.py delivers all three)."""
    producer().send_task(WEBHOOK_TASK, args=[str(job_id), message_id, attempt, event], countdown=countdown)


def enqueue_batch_webhook(batch_id: uuid.UUID | str, attempt: int = 1, countdown: float | None = None) -> None:
    """A batch's ``batch.completed`` webhook: the same task as a job's, with the batch as subject."""
    enqueue_webhook(batch_id, batch_message_id(batch_id), attempt, countdown, event="batch.completed")


def job_message_id(job_id: uuid.UUID | str, event: str = "completed") -> str:
    """Stable webhook-id per job and event, the same on every retry (receivers de-duplicate on it)."""
    hexid = uuid.UUID(str(job_id)).hex
    return f"msg_{hexid}" if event == "completed" else f"msg_{hexid}_{event}"


def batch_message_id(batch_id: uuid.UUID | str) -> str:
    return f"msg_batch_{uuid.UUID(str(batch_id)).hex}"


def send_notices(*jobs: Any) -> None:
    """After the commit of transitions: send the messages they owe (``job.notices``, decided by
    db/jobs.py; this decides nothing): webhooks, and one dispatcher run however many batch items
    finished. Never raises: the sweeper re-sends pending webhooks and runs the dispatcher."""
    dispatch = False
    for job in jobs:
        for notice in getattr(job, "notices", ()):
            try:
                if notice == "job.start":
                    enqueue_webhook(job.id, job_message_id(job.id, "start"), event="start")
                elif notice == "job.completed":
                    enqueue_webhook(job.id, job_message_id(job.id))
                elif notice == "batch.completed":
                    enqueue_batch_webhook(job.batch_id)
                elif notice == "bulk.slot_freed":
                    dispatch = True
            except Exception:  # noqa: BLE001
                log.exception("could not send %s for job %s; the sweeper will", notice, job.id)
    if dispatch:
        request_dispatch()
