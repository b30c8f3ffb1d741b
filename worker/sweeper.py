"""The sweeper (Celery beat, every SWEEP_INTERVAL_S): rebuilds from Postgres what Redis lost.

* queued jobs whose message was sent more than QUEUED_STALE_S ago (or never, for single jobs committed
  that long ago: the API sends right after its commit) → enqueue again, if their restore queue is empty
  in Redis or their message is in neither that queue's list nor kombu's unacked set
  (``queue.restore_messages``): a long backlog is waiting, not lost, and re-sending it every sweep
  would multiply it; but one client's lost messages must not wait until every other client's work has
  drained (they still count against its fair-dispatch cap, so nothing else of that client would be
  sent). A queue too long to read (``queue.SCAN_MAX``) is a backlog: then only the empty-queue rule
  applies. Batch items not sent yet are waiting for their client's turn, not lost: the sweep runs the
  fair dispatcher (db/dispatch.py) for them;
* running jobs whose lease expired (their worker died or hung) → back to queued and enqueue, or
  ``failed/attempts_exhausted`` once MAX_ATTEMPTS is reached (both counted in ``portrait_jobs_total`` on
  this worker's exporter, as ``requeued/lease_expired`` and ``failed/attempts_exhausted``: the worker that
  lost the job never finished it, so nothing else counts it);
* finished jobs (and completed batches) whose webhook is still pending long after its last attempt
  was due → send again; likewise started jobs whose ``job.started`` webhook is still pending (the
  claim marked it, so a message lost at enqueue, in Redis or on a retry's countdown is re-sent).
  That one may then arrive after the job's terminal event; receivers order by the ``data`` they get.

Re-sending is always safe: the restore task claims with compare-and-set and the webhook task checks
the job's webhook state, so duplicate messages do nothing.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

import redis
from sqlalchemy import and_, func, or_, select, true

from db import jobs as jobs_db
from db.models import Batch, Job, WebhookDelivery, WebhookState
from db.session import session_scope
from portrait import queue
from portrait.settings import get_settings
from worker import metrics
from worker.celery_app import app
from worker.webhooks import STARTED

log = logging.getLogger("portrait.sweeper")


def _queue_empty(name: str) -> bool:
    """True when Redis holds no waiting message for this queue (so a stale queued job's was lost)."""
    try:
        return redis.Redis.from_url(get_settings().redis_url, socket_timeout=5).llen(name) == 0
    except redis.RedisError:
        return False  # cannot tell; the next sweep will


def _pending_webhooks(model: type[Job] | type[Batch], fk: Any, state: Any, since: Any, grace: timedelta,
                      event_type: Any = true()) -> list[tuple[Any, int | None]]:
    """(id, last attempt) of rows whose webhook (``state``) is pending long after its last attempt was due.

    ``event_type`` picks this event's delivery rows: a job's start and terminal webhooks are
    separate messages with their own attempt numbers.
    """
    mine = and_(fk == model.id, event_type)
    deliveries = select(func.max(WebhookDelivery.next_retry_at)).where(mine).scalar_subquery()
    last_attempt = select(func.max(WebhookDelivery.attempt)).where(mine).scalar_subquery()
    with session_scope() as s:
        return [tuple(r) for r in s.execute(
            select(model.id, last_attempt).where(
                state == WebhookState.pending,
                since < func.now() - grace,
                or_(deliveries.is_(None), deliveries < func.now() - grace),
            ).limit(500)
        ).all()]


def sweep_once() -> dict[str, int]:
    settings = get_settings()
    counts = {"requeued_stale": 0, "requeued_expired": 0, "exhausted": 0, "dispatched": 0, "webhooks": 0}

    for bulk in (False, True):
        empty = _queue_empty(queue.restore_queue(bulk))
        with session_scope() as s:
            stale = jobs_db.stale_queued(s, settings.queued_stale_s, bulk=bulk, limit=500 if empty else 1)
            if stale and not empty:
                # Others' messages keep the queue busy (with fair dispatch, as long as any other client
                # has a backlog): re-send only those whose message is gone from Redis. (One caught
                # between the list and the unacked set is re-sent needlessly: the claim drops the copy.)
                present = queue.restore_messages(bulk)
                stale = [] if present is None else jobs_db.stale_queued(
                    s, settings.queued_stale_s, bulk=bulk, exclude=[uuid.UUID(j) for j in present])
            for jid in stale:
                jobs_db.mark_enqueued(s, jid, reason="re-enqueued by sweeper: message presumed lost")
        for jid in stale:
            queue.enqueue_restore(jid, bulk=bulk)
        counts["requeued_stale"] += len(stale)

    requeued, exhausted = [], []
    with session_scope() as s:
        for job in jobs_db.expired_running(s):
            if job.attempts >= settings.max_attempts:
                failed = jobs_db.fail(s, job.id, "attempts_exhausted",
                                      f"worker lost {job.attempts} times (lease expired)", attempt=job.attempts)
                if failed is not None:
                    exhausted.append(failed)
            elif (back := jobs_db.requeue(s, job.id, "lease expired: worker presumed dead")) is not None:
                requeued.append(back)
    for job in requeued:
        queue.enqueue_restore(job.id, bulk=job.batch_id is not None)
        metrics.job_finished("requeued", "lease_expired")
    for _ in exhausted:
        metrics.job_finished("failed", "attempts_exhausted")
    queue.send_notices(*exhausted)
    counts["requeued_expired"], counts["exhausted"] = len(requeued), len(exhausted)
    queue.request_dispatch()  # a dispatch request lost to a crash

    grace = timedelta(seconds=settings.queued_stale_s)
    started = WebhookDelivery.event_type == STARTED
    jobs = _pending_webhooks(Job, WebhookDelivery.job_id, Job.webhook_state, Job.finished_at, grace, ~started)
    for jid, attempt in jobs:
        queue.enqueue_webhook(jid, queue.job_message_id(jid), (attempt or 0) + 1)
    starts = _pending_webhooks(Job, WebhookDelivery.job_id, Job.start_webhook_state, Job.started_at, grace, started)
    for jid, attempt in starts:
        queue.enqueue_webhook(jid, queue.job_message_id(jid, "start"), (attempt or 0) + 1, event="start")
    batches = _pending_webhooks(Batch, WebhookDelivery.batch_id, Batch.webhook_state, Batch.completed_at, grace)
    for bid, attempt in batches:
        queue.enqueue_batch_webhook(bid, (attempt or 0) + 1)
    counts["webhooks"] = len(jobs) + len(starts) + len(batches)
    if any(counts.values()):
        log.info("sweep: %s", counts)
    return counts


@app.task(name=queue.SWEEP_TASK)
def sweep() -> dict[str, int]:
    return sweep_once()
