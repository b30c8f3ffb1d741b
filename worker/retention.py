"""Retention (Celery beat, every RETENTION_INTERVAL_S): photos are kept only as long as promised.

A finished job (succeeded, failed, canceled) older than the retention period — RETENTION_S if set,
else RETENTION_DAYS, or the client's own ``retention_s`` — has its input and output objects deleted
and becomes ``expired`` (its ``output`` is null from then on; the row and its history stay).
An input object still named by another live job is kept until that one expires too. Uploads never
used by any job are deleted after the same period, and idempotency keys after IDEMPOTENCY_TTL_S.

Objects are deleted before the status changes, in the job's transaction: if the commit fails the
next pass deletes again (a no-op) and expires the job, so nothing is left half-done.
"""

from __future__ import annotations

import logging

from sqlalchemy import ColumnElement, delete, func, select

from db import jobs as jobs_db
from db.idempotency import purge as purge_idempotency_keys
from db.models import FINISHED_STATUSES, Client, Job, JobStatus, Upload
from db.session import session_scope
from jobs import messages
from portrait.settings import get_settings
from portrait.storage import get_storage
from worker.celery_app import app

log = logging.getLogger("portrait.retention")

BATCH = 500


def _cutoff(created: ColumnElement) -> ColumnElement[bool]:
    ttl = func.coalesce(Client.retention_s, get_settings().retention_ttl_s)
    return created < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, ttl)


def _expire_jobs() -> int:
    storage = get_storage()
    with session_scope() as s:
        rows = s.execute(
            select(Job.id, Job.input_key, Job.output_key).join(Client, Client.id == Job.client_id)
            .where(Job.status.in_(FINISHED_STATUSES), _cutoff(Job.finished_at))
            .order_by(Job.finished_at).limit(BATCH).with_for_update(of=Job, skip_locked=True)
        ).all()
        if not rows:
            return 0
        ids = [r.id for r in rows]
        inputs = {r.input_key for r in rows}
        still_used = set(s.scalars(select(Job.input_key).where(
            Job.input_key.in_(inputs), Job.id.not_in(ids), Job.status != JobStatus.expired)))
        keys = [r.output_key for r in rows if r.output_key] + sorted(inputs - still_used)
        storage.delete_many(keys)
        for jid in ids:
            jobs_db.expire(s, jid)
    return len(ids)


def _purge_uploads() -> int:
    storage = get_storage()
    with session_scope() as s:
        rows = s.execute(
            select(Upload.id, Upload.key).join(Client, Client.id == Upload.client_id)
            .where(_cutoff(Upload.created_at)).limit(BATCH).with_for_update(of=Upload, skip_locked=True)
        ).all()
        if not rows:
            return 0
        used = set(s.scalars(select(Job.input_key).where(
            Job.input_key.in_([r.key for r in rows]), Job.status != JobStatus.expired)))
        storage.delete_many([r.key for r in rows if r.key not in used])
        s.execute(delete(Upload).where(Upload.id.in_([r.id for r in rows])))
    return len(rows)


def retain_once() -> dict[str, int]:
    counts = {"expired": _expire_jobs(), "uploads": _purge_uploads()}
    with session_scope() as s:
        counts["idempotency_keys"] = purge_idempotency_keys(s, get_settings().idempotency_ttl_s)
    if any(counts.values()):
        log.info("retention: %s", counts)
    return counts


@app.task(name=messages.RETENTION_TASK)
def retention() -> dict[str, int]:
    return retain_once()
