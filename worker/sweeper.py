"""The sweeper (Celery beat, every SWEEP_INTERVAL_S): rebuilds from Postgres what Redis lost.

* queued jobs whose message was sent more than QUEUED_STALE_S ago (or never, for single jobs committed
  that long ago: the API sends right after its commit) → send again, if their message is in none of
  their restore list, the fetch list and kombu's unacked set (``broker.job_messages``): a long backlog
  is waiting, not lost, and re-sending it every sweep would multiply it, nor is a URL input whose
  fetch is still running; but one client's lost messages must not wait until every other client's
  work has drained (they still count against its fair-dispatch cap, so nothing else of that client
  would be sent). A list too long to read (``broker.SCAN_MAX``) is a backlog: nothing is re-sent from
  it until it drains. Batch items not sent yet are waiting for their client's turn, not lost: the sweep runs the
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

from sqlalchemy import and_, func, or_, select, true

from db import jobs as jobs_db
from db.models import Batch, Job, JobStatus, WebhookDelivery, WebhookEvent, WebhookMessage, WebhookState
from db.session import session_scope
from jobs import messages
from portrait.settings import get_settings
from worker import broker, metrics
from worker.celery_app import app

log = logging.getLogger("portrait.sweeper")


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
        with session_scope() as s:
            stale = jobs_db.stale_queued(s, settings.queued_stale_s, bulk=bulk, limit=1)
            if stale:
                # Re-send only those whose message is gone from Redis. (One caught between a list and
                # the unacked set is re-sent needlessly: the claim drops the copy.)
                present = broker.job_messages(bulk)
                stale = [] if present is None else jobs_db.stale_queued(
                    s, settings.queued_stale_s, bulk=bulk, exclude=[uuid.UUID(j) for j in present])
            for job in stale:
                jobs_db.mark_enqueued(s, job.id, reason="re-enqueued by sweeper: message presumed lost")
        for job in stale:
            messages.send_job(job)
        counts["requeued_stale"] += len(stale)

    with session_scope() as s:
        given_back = [jobs_db.give_back(s, job, "lease expired: worker presumed dead",
                                        max_attempts=settings.max_attempts)
                      for job in jobs_db.expired_running(s)]
    requeued = [t for t in given_back if t is not None and t.job.status != JobStatus.failed]
    exhausted = [t for t in given_back if t is not None and t.job.status == JobStatus.failed]
    for back in requeued:
        messages.send_job(back.job)
        metrics.job_finished("requeued", "lease_expired")
    for _ in exhausted:
        metrics.job_finished("failed", jobs_db.EXHAUSTED)
    messages.send(*exhausted)
    counts["requeued_expired"], counts["exhausted"] = len(requeued), len(exhausted)
    messages.request_dispatch()  # a dispatch request lost to a crash

    counts["webhooks"] = _resend_webhooks(timedelta(seconds=settings.queued_stale_s))
    if any(counts.values()):
        log.info("sweep: %s", counts)
    return counts


def _resend_webhooks(grace: timedelta) -> int:
    """Re-send the webhook messages still pending long after their last attempt was due."""
    started = WebhookDelivery.event_type == WebhookMessage.STARTED
    owed = [(WebhookMessage(jid, WebhookEvent.completed), attempt) for jid, attempt in _pending_webhooks(
        Job, WebhookDelivery.job_id, Job.webhook_state, Job.finished_at, grace, ~started)]
    owed += [(WebhookMessage(jid, WebhookEvent.start), attempt) for jid, attempt in _pending_webhooks(
        Job, WebhookDelivery.job_id, Job.start_webhook_state, Job.started_at, grace, started)]
    owed += [(WebhookMessage.for_batch(bid), attempt) for bid, attempt in _pending_webhooks(
        Batch, WebhookDelivery.batch_id, Batch.webhook_state, Batch.completed_at, grace)]
    for message, attempt in owed:
        messages.send_webhook(message, (attempt or 0) + 1)
    return len(owed)


@app.task(name=messages.SWEEP_TASK)
def sweep() -> dict[str, int]:
    return sweep_once()
