"""The sweeper (Celery beat, every SWEEP_INTERVAL_S): rebuilds from Postgres what Redis lost.

* queued jobs whose message was sent more than QUEUED_STALE_S ago (or never) → enqueue again;
* running jobs whose lease expired (their worker died or hung) → back to queued and enqueue, or
  ``failed/attempts_exhausted`` once MAX_ATTEMPTS is reached;
* finished jobs whose webhook is still pending long after its last attempt was due → send again.

Re-sending is always safe: the restore task claims with compare-and-set and the webhook task checks
the job's webhook state, so duplicate messages do nothing.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import func, or_, select

from db import jobs as jobs_db
from db.models import Job, WebhookDelivery, WebhookState
from db.session import session_scope
from portrait import queue
from portrait.settings import get_settings
from worker.celery_app import app

log = logging.getLogger("portrait.sweeper")


def sweep_once() -> dict[str, int]:
    settings = get_settings()
    counts = {"requeued_stale": 0, "requeued_expired": 0, "exhausted": 0, "webhooks": 0}

    with session_scope() as s:
        stale = jobs_db.stale_queued(s, settings.queued_stale_s)
        for jid in stale:
            jobs_db.mark_enqueued(s, jid, reason="re-enqueued by sweeper: message presumed lost")
    for jid in stale:
        queue.enqueue_restore(jid)
    counts["requeued_stale"] = len(stale)

    requeued, exhausted = [], []
    with session_scope() as s:
        for job in jobs_db.expired_running(s):
            if job.attempts >= settings.max_attempts:
                if jobs_db.fail(s, job.id, "attempts_exhausted",
                                f"worker lost {job.attempts} times (lease expired)", attempt=job.attempts):
                    exhausted.append(job.id)
            elif jobs_db.requeue(s, job.id, "lease expired: worker presumed dead"):
                requeued.append(job.id)
    for jid in requeued:
        queue.enqueue_restore(jid)
    for jid in exhausted:
        queue.enqueue_webhook(jid, f"msg_{jid.hex}")
    counts["requeued_expired"], counts["exhausted"] = len(requeued), len(exhausted)

    grace = timedelta(seconds=settings.queued_stale_s)
    last_due = (
        select(func.max(WebhookDelivery.next_retry_at))
        .where(WebhookDelivery.job_id == Job.id).scalar_subquery()
    )
    last_attempt = (
        select(func.max(WebhookDelivery.attempt)).where(WebhookDelivery.job_id == Job.id).scalar_subquery()
    )
    with session_scope() as s:
        rows = s.execute(
            select(Job.id, last_attempt).where(
                Job.webhook_state == WebhookState.pending,
                Job.finished_at < func.now() - grace,
                or_(last_due.is_(None), last_due < func.now() - grace),
            ).limit(500)
        ).all()
    for jid, attempt in rows:
        queue.enqueue_webhook(jid, f"msg_{jid.hex}", (attempt or 0) + 1)
    counts["webhooks"] = len(rows)
    if any(counts.values()):
        log.info("sweep: %s", counts)
    return counts


@app.task(name=queue.SWEEP_TASK)
def sweep() -> dict[str, int]:
    return sweep_once()
