"""The job state machine. Every transition is one compare-and-set UPDATE in Postgres.

    queued ──claim──▶ running ──succeed──▶ succeeded
      ▲                 │  ├──fail─────▶ failed
      └──requeue────────┘  └──(lease expires: sweeper requeues or fails)
    queued | running ──cancel──▶ canceled
    succeeded | failed | canceled ──expire (retention)──▶ expired

A transition only happens if the row is still in an expected state (and, for a running job, still
held by the same attempt: ``attempts`` is the fencing token). So a redelivered Celery message, a
worker that wakes up after its lease expired, or a cancel racing a finish can never run a finished
job again or overwrite its outcome. Each successful transition appends a ``job_events`` row in the
same transaction.

A job of a batch that becomes terminal also bumps ``batches.terminal_count`` in that transaction; the
transition that brings it to ``total`` is the one that completes the batch (``job.batch_completed``).

**Which messages a transition owes is decided here, once** (:func:`_owe_notices`), in the transaction
that records it: webhooks (the persisted ``start_webhook_state`` / ``webhook_state`` are the sweeper's
record of what is owed; it re-sends what stays ``pending``) and, when a batch item finishes, a run of
the fair dispatcher for the slot it freed. ``job.notices`` lists them; the caller sends them after the
commit with ``portrait.queue.send_notices``, which decides nothing.
``cancel_batch`` is the same compare-and-set applied to all of a batch's queued items at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session

from db.models import ACTIVE_STATUSES, Batch, Job, JobEvent, JobStatus, Notice, WebhookEvent, WebhookState

ACTIVE = ACTIVE_STATUSES
FINISHED = (JobStatus.succeeded, JobStatus.failed, JobStatus.canceled)


def _event(s: Session, job_id: uuid.UUID, old: str | None, new: str, reason: str | None = None,
           attempt: int | None = None, worker: str | None = None) -> None:
    s.add(JobEvent(job_id=job_id, from_status=old, to_status=new, reason=reason, attempt=attempt,
                   worker=worker))


def _cas(s: Session, job_id: uuid.UUID, to: JobStatus, condition: ColumnElement[bool],
         values: dict[str, Any], reason: str | None = None, worker: str | None = None) -> Job | None:
    """UPDATE … WHERE id = :id AND <condition> RETURNING; logs the event; None if the CAS lost."""
    old = select(Job.id, Job.status.label("old_status")).where(Job.id == job_id).with_for_update()
    old = old.subquery()
    stmt = (
        update(Job)
        .where(Job.id == old.c.id, condition)
        .values(status=to, **values)
        .returning(old.c.old_status, Job.attempts, Job.batch_id)
    )
    row = s.execute(stmt).first()
    if row is None:
        return None
    old_status = JobStatus(row.old_status)
    _event(s, job_id, old_status.value, to.value, reason, row.attempts, worker)
    s.flush()
    completed = (row.batch_id is not None and to in FINISHED and old_status in ACTIVE
                 and _count_terminal(s, row.batch_id))
    job = s.get(Job, job_id, populate_existing=True)
    job.batch_completed = bool(completed)
    return job


def _count_terminal(s: Session, batch_id: uuid.UUID, n: int = 1) -> bool:
    """Count ``n`` more finished items; True for the one call that finishes the batch.

    The UPDATE row-locks the batch until commit, so concurrent finishes serialise and exactly one
    of them sees ``terminal_count == total`` with ``completed_at`` still NULL.
    """
    row = s.execute(
        update(Batch).where(Batch.id == batch_id).values(terminal_count=Batch.terminal_count + n)
        .returning(Batch.terminal_count, Batch.total, Batch.webhook_url)
    ).first()
    if row is None or row.terminal_count < row.total:
        return False
    done = s.execute(
        update(Batch).where(Batch.id == batch_id, Batch.completed_at.is_(None))
        .values(completed_at=func.now(),
                webhook_state=WebhookState.pending if row.webhook_url else WebhookState.none)
        .returning(Batch.id)
    ).first()
    return done is not None


def create(s: Session, *, client_id: uuid.UUID, input_key: str, input_source: str,
           options: dict[str, Any], input_url: str | None = None, webhook_url: str | None = None,
           job_id: uuid.UUID | None = None, webhook_events_filter: list[str] | None = None) -> Job:
    job = Job(id=job_id or uuid.uuid4(), client_id=client_id, status=JobStatus.queued, options=options,
              input_key=input_key, input_source=input_source, input_url=input_url,
              webhook_url=webhook_url, webhook_events_filter=webhook_events_filter, attempts=0,
              webhook_state=WebhookState.none)
    s.add(job)
    s.flush()
    _event(s, job.id, None, JobStatus.queued.value, "submitted")
    return job


def mark_enqueued(s: Session, job_id: uuid.UUID, reason: str | None = None) -> None:
    """Record that a message for this job was handed to the broker (the sweeper reads this)."""
    s.execute(update(Job).where(Job.id == job_id).values(enqueued_at=func.now()))
    if reason:
        _event(s, job_id, JobStatus.queued.value, JobStatus.queued.value, reason)


class ClaimOutcome(StrEnum):
    claimed = "claimed"  # this worker now owns the job for ``attempt``
    terminal = "terminal"  # already finished: a redelivered message
    leased = "leased"  # another live worker holds it
    exhausted = "exhausted"  # MAX_ATTEMPTS reached
    missing = "missing"  # deleted


@dataclass(frozen=True)
class Claim:
    """Outcome of a claim: ``job`` is set when this worker now owns the job for ``attempt``."""

    job: Job | None
    outcome: ClaimOutcome
    retry_in_s: float = 0.0

    @property
    def attempt(self) -> int:
        assert self.job is not None
        return self.job.attempts


def claim(s: Session, job_id: uuid.UUID, *, worker: str, lease_s: float, max_attempts: int) -> Claim:
    """queued → running, or take over a running job whose lease expired (its worker died)."""
    now = func.now()
    lease = timedelta(seconds=lease_s)
    job = _cas(
        s, job_id, JobStatus.running,
        and_(
            Job.attempts < max_attempts,
            or_(Job.status == JobStatus.queued,
                and_(Job.status == JobStatus.running, Job.lease_expires_at < now)),
        ),
        dict(attempts=Job.attempts + 1, worker=worker, started_at=func.coalesce(Job.started_at, now),
             heartbeat_at=now, lease_expires_at=now + lease),
        worker=worker,
    )
    if job is not None:
        return Claim(_owe_notices(job, started=True), ClaimOutcome.claimed)
    current = s.get(Job, job_id, populate_existing=True)
    if current is None:
        return Claim(None, ClaimOutcome.missing)
    if current.status in (*FINISHED, JobStatus.expired):
        return Claim(current, ClaimOutcome.terminal)
    if current.attempts >= max_attempts:
        return Claim(current, ClaimOutcome.exhausted)
    remaining = s.scalar(select(func.extract("epoch", Job.lease_expires_at - now)).where(Job.id == job_id))
    return Claim(current, ClaimOutcome.leased, max(float(remaining or 0.0), 0.0) + 1.0)


def _held(job_id: uuid.UUID, attempt: int) -> ColumnElement[bool]:
    return and_(Job.status == JobStatus.running, Job.attempts == attempt)


def heartbeat(s: Session, job_id: uuid.UUID, attempt: int, lease_s: float) -> bool:
    """Extend the lease; False means the job is no longer ours (canceled, or taken over)."""
    res = s.execute(
        update(Job).where(Job.id == job_id, _held(job_id, attempt))
        .values(heartbeat_at=func.now(), lease_expires_at=func.now() + timedelta(seconds=lease_s))
    )
    return res.rowcount == 1


def _owe_notices(job: Job, *, started: bool = False, finished: bool = False) -> Job:
    """Record which messages this transition owes and list them in ``job.notices``: webhooks for a job's
    start (its first claim only), its completion (a terminal transition) and its batch's completion;
    a dispatcher run when a terminal batch item frees its client's bulk slot."""
    notices = []
    if started and job.attempts == 1 and job.wants_event(WebhookEvent.start):
        job.start_webhook_state = WebhookState.pending
        notices.append(Notice.job_start)
    if finished:
        owed = job.wants_event(WebhookEvent.completed)
        job.webhook_state = WebhookState.pending if owed else WebhookState.none
        if owed:
            notices.append(Notice.job_completed)
        if job.batch_completed and job.webhook_url:
            notices.append(Notice.batch_completed)
        if job.batch_id is not None:
            notices.append(Notice.bulk_slot_freed)
    job.notices = tuple(notices)
    return job


def succeed(s: Session, job_id: uuid.UUID, attempt: int, *, worker: str, **result: Any) -> Job | None:
    job = _cas(s, job_id, JobStatus.succeeded, _held(job_id, attempt),
               dict(finished_at=func.now(), lease_expires_at=None, error_code=None, error_message=None,
                    **result), worker=worker)
    return _owe_notices(job, finished=True) if job is not None else None


def fail(s: Session, job_id: uuid.UUID, code: str, message: str, *, attempt: int | None = None,
         worker: str | None = None) -> Job | None:
    """→ failed. With ``attempt``, only if still held by it; without, from any active state."""
    cond = _held(job_id, attempt) if attempt is not None else Job.status.in_(ACTIVE)
    job = _cas(s, job_id, JobStatus.failed, cond,
               dict(finished_at=func.now(), lease_expires_at=None, error_code=code,
                    error_message=message[:2000]), reason=code, worker=worker)
    return _owe_notices(job, finished=True) if job is not None else None


def requeue(s: Session, job_id: uuid.UUID, reason: str, *, attempt: int | None = None) -> Job | None:
    """running → queued: a transient failure (attempt given) or an expired lease (attempt None)."""
    cond = (_held(job_id, attempt) if attempt is not None
            else and_(Job.status == JobStatus.running, Job.lease_expires_at < func.now()))
    return _cas(s, job_id, JobStatus.queued, cond,
                dict(lease_expires_at=None, enqueued_at=func.now()), reason=reason)


def cancel(s: Session, job_id: uuid.UUID) -> Job | None:
    job = _cas(s, job_id, JobStatus.canceled, Job.status.in_(ACTIVE),
               dict(finished_at=func.now(), lease_expires_at=None), reason="canceled by client")
    return _owe_notices(job, finished=True) if job is not None else None


def cancel_batch(s: Session, batch_id: uuid.UUID) -> list[Job]:
    """queued → canceled for every item of the batch that has not started; returns those jobs.

    Running and finished items are left alone. The queued rows are locked in id order first (two
    concurrent cancels cannot deadlock) and Postgres re-checks ``status = queued`` after each lock
    wait, so an item a worker claimed meanwhile keeps running. The items are counted terminal in the
    same transaction; if that completes the batch, the returned job that did it has
    ``batch_completed`` set, exactly as a single transition would.
    """
    ids = list(s.scalars(select(Job.id).where(Job.batch_id == batch_id, Job.status == JobStatus.queued)
                         .order_by(Job.id).with_for_update()))
    if not ids:
        return []
    rows = s.execute(
        update(Job).where(Job.id.in_(ids), Job.status == JobStatus.queued)
        .values(status=JobStatus.canceled, finished_at=func.now(), lease_expires_at=None)
        .returning(Job.id, Job.attempts)
    ).all()
    for jid, attempt in rows:
        _event(s, jid, JobStatus.queued.value, JobStatus.canceled.value, "batch canceled by client", attempt)
    s.flush()
    done = [jid for jid, _ in rows]
    completed = bool(done) and _count_terminal(s, batch_id, len(done))
    jobs = list(s.scalars(select(Job).where(Job.id.in_(done)).order_by(Job.batch_index)
                          .execution_options(populate_existing=True)))
    if completed:
        jobs[-1].batch_completed = True
    return [_owe_notices(job, finished=True) for job in jobs]


def stale_queued(s: Session, older_than_s: float, limit: int = 500, *,
                 bulk: bool | None = None, exclude: Collection[uuid.UUID] = ()) -> list[uuid.UUID]:
    """Queued jobs whose message was sent long ago (or, for single jobs committed as long ago, never):
    presumed lost.

    A single job is committed before the API sends its message (write before enqueue): for a moment it
    has no ``enqueued_at`` and is not lost, so it counts only once ``created_at`` is as old as the cutoff
    (else the sweeper would send a second message, on its own queue, for a job being sent). A batch
    item without a message is not lost but waiting for its client's turn (db/dispatch.py), which sends
    it. ``bulk`` restricts the scan to batch items (True) or single jobs (False); ``exclude`` leaves out
    jobs known to have a message still in Redis.
    """
    cutoff = func.now() - timedelta(seconds=older_than_s)
    q = select(Job.id).where(Job.status == JobStatus.queued,
                             or_(Job.enqueued_at < cutoff,
                                 and_(Job.enqueued_at.is_(None), Job.batch_id.is_(None), Job.created_at < cutoff)))
    if bulk is not None:
        q = q.where(Job.batch_id.is_not(None) if bulk else Job.batch_id.is_(None))
    if exclude:
        q = q.where(Job.id.not_in(list(exclude)))
    return list(s.scalars(q.order_by(Job.created_at).limit(limit).with_for_update(skip_locked=True)))


def expire(s: Session, job_id: uuid.UUID) -> Job | None:
    """A finished job → expired: retention deleted its input and output (the output is gone)."""
    return _cas(s, job_id, JobStatus.expired, Job.status.in_(FINISHED),
                dict(output_key=None, lease_expires_at=None), reason="retention")


def expired_running(s: Session, limit: int = 500) -> list[Job]:
    """Running jobs whose worker stopped heart-beating: it died or hung past its lease."""
    return list(s.scalars(
        select(Job).where(Job.status == JobStatus.running, Job.lease_expires_at < func.now())
        .limit(limit).with_for_update(skip_locked=True)
    ))


def active_count(s: Session, client_id: uuid.UUID) -> int:
    """Queued + running jobs of a client (the in-flight cap counts these)."""
    return s.scalar(select(func.count()).select_from(Job)
                    .where(Job.client_id == client_id, Job.status.in_(ACTIVE))) or 0


def lock_client(s: Session, client_id: uuid.UUID) -> None:
    """Serialise this client's submits until commit, so count-then-insert cannot overshoot its cap."""
    s.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(str(client_id), 0))))
