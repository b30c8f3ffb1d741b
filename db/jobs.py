"""The job state machine. Every transition is one compare-and-set UPDATE in Postgres.

    queued ──claim──▶ running ──succeed──▶ succeeded
      ▲                 │  ├──fail─────▶ failed
      └──give_back──────┘  └──(lease expires: the sweeper gives it back, or fails it)
    queued | running ──cancel──▶ canceled
    succeeded | failed | canceled ──expire (retention)──▶ expired

A transition only happens if the row is still in an expected state (and, for a running job, still
held by the same attempt: ``attempts`` is the fencing token). So a redelivered Celery message, a
worker that wakes up after its lease expired, or a cancel racing a finish can never run a finished
job again or overwrite its outcome. Each successful transition appends a ``job_events`` row in the
same transaction.

A job of a batch that becomes terminal also bumps ``batches.terminal_count`` in that transaction; the
transition that brings it to ``total`` is the one that completes the batch.

Every transition returns a :class:`Transition`: the job as it now stands and **the messages it owes,
decided here, once** (:func:`_owed`), in the transaction that records it: webhooks
(:class:`~db.models.WebhookMessage`; the persisted ``start_webhook_state`` / ``webhook_state`` are the
sweeper's record of what is owed, it re-sends what stays ``pending``) and, when a batch item finishes,
a run of the fair dispatcher for the slot it freed. The caller sends them after the commit with
``jobs.messages.send``, which decides nothing. Running out of attempts is decided here too, in the two
transitions that can meet it (:func:`claim`, :func:`give_back`): ``failed/attempts_exhausted``.
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

from db.models import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    Batch,
    Job,
    JobEvent,
    JobStatus,
    WebhookEvent,
    WebhookMessage,
    WebhookState,
)

EXHAUSTED = "attempts_exhausted"  # the error code of a job that ran out of attempts


@dataclass(frozen=True)
class Transition:
    """A transition made in the caller's transaction: the job as it now stands and what it owes once
    committed (send it with ``jobs.messages.send``)."""

    job: Job
    webhooks: tuple[WebhookMessage, ...] = ()
    frees_bulk_slot: bool = False  # a batch item finished: run the fair dispatcher (worker/dispatch.py)


def _event(s: Session, job_id: uuid.UUID, old: str | None, new: str, reason: str | None = None,
           attempt: int | None = None, worker: str | None = None) -> None:
    s.add(JobEvent(job_id=job_id, from_status=old, to_status=new, reason=reason, attempt=attempt,
                   worker=worker))


def _cas(s: Session, job_id: uuid.UUID, to: JobStatus, condition: ColumnElement[bool],
         values: dict[str, Any], reason: str | None = None, worker: str | None = None
         ) -> tuple[Job, bool] | None:
    """UPDATE … WHERE id = :id AND <condition> RETURNING; logs the event. (The job, whether this
    completed its batch), or None if the CAS lost."""
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
    completed = (row.batch_id is not None and to in FINISHED_STATUSES and old_status.active
                 and _count_terminal(s, row.batch_id))
    return s.get(Job, job_id, populate_existing=True), bool(completed)


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
    exhausted = "exhausted"  # MAX_ATTEMPTS reached: the claim failed it (``attempts_exhausted``)
    missing = "missing"  # deleted


@dataclass(frozen=True)
class Claim:
    """Outcome of a claim. ``transition`` is what the claim did: the job now running for ``attempt``
    (claimed), or failed because it ran out of attempts (exhausted); None otherwise."""

    outcome: ClaimOutcome
    transition: Transition | None = None
    retry_in_s: float = 0.0

    @property
    def job(self) -> Job:
        assert self.transition is not None
        return self.transition.job

    @property
    def attempt(self) -> int:
        return self.job.attempts


def claim(s: Session, job_id: uuid.UUID, *, worker: str, lease_s: float, max_attempts: int) -> Claim:
    """queued → running, or take over a running job whose lease expired (its worker died); a job that
    has used its ``max_attempts`` is failed (``attempts_exhausted``) instead."""
    now = func.now()
    lease = timedelta(seconds=lease_s)
    done = _cas(
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
    if done is not None:
        return Claim(ClaimOutcome.claimed, _owed(done[0], started=True))
    current = s.get(Job, job_id, populate_existing=True)
    if current is None:
        return Claim(ClaimOutcome.missing)
    if current.status.terminal:
        return Claim(ClaimOutcome.terminal)
    if current.attempts >= max_attempts:
        return Claim(ClaimOutcome.exhausted,
                     fail(s, job_id, EXHAUSTED, f"gave up after {current.attempts} attempts", worker=worker))
    remaining = s.scalar(select(func.extract("epoch", Job.lease_expires_at - now)).where(Job.id == job_id))
    return Claim(ClaimOutcome.leased, retry_in_s=max(float(remaining or 0.0), 0.0) + 1.0)


def _held(job_id: uuid.UUID, attempt: int) -> ColumnElement[bool]:
    return and_(Job.status == JobStatus.running, Job.attempts == attempt)


def heartbeat(s: Session, job_id: uuid.UUID, attempt: int, lease_s: float) -> bool:
    """Extend the lease; False means the job is no longer ours (canceled, or taken over)."""
    res = s.execute(
        update(Job).where(Job.id == job_id, _held(job_id, attempt))
        .values(heartbeat_at=func.now(), lease_expires_at=func.now() + timedelta(seconds=lease_s))
    )
    return res.rowcount == 1


def _owed(job: Job, *, started: bool = False, finished: bool = False, batch_completed: bool = False
          ) -> Transition:
    """Record which messages this transition owes and return them with the job: webhooks for a job's
    start (its first claim only), its completion (a terminal transition) and its batch's completion;
    a dispatcher run when a terminal batch item frees its client's bulk slot."""
    webhooks = []
    if started and job.attempts == 1 and job.wants_event(WebhookEvent.start):
        job.start_webhook_state = WebhookState.pending
        webhooks.append(WebhookMessage(job.id, WebhookEvent.start))
    if finished:
        owed = job.wants_event(WebhookEvent.completed)
        job.webhook_state = WebhookState.pending if owed else WebhookState.none
        if owed:
            webhooks.append(WebhookMessage(job.id, WebhookEvent.completed))
        if batch_completed and job.webhook_url and job.batch_id is not None:
            webhooks.append(WebhookMessage.for_batch(job.batch_id))
    return Transition(job, tuple(webhooks), frees_bulk_slot=finished and job.batch_id is not None)


def _finished(done: tuple[Job, bool] | None) -> Transition | None:
    return _owed(done[0], finished=True, batch_completed=done[1]) if done is not None else None


def succeed(s: Session, job_id: uuid.UUID, attempt: int, *, worker: str, **result: Any) -> Transition | None:
    """running → succeeded, if still held by ``attempt``."""
    return _finished(_cas(s, job_id, JobStatus.succeeded, _held(job_id, attempt),
                          dict(finished_at=func.now(), lease_expires_at=None, error_code=None,
                               error_message=None, **result), worker=worker))


def fail(s: Session, job_id: uuid.UUID, code: str, message: str, *, attempt: int | None = None,
         worker: str | None = None) -> Transition | None:
    """→ failed. With ``attempt``, only if still held by it; without, from any active state."""
    cond = _held(job_id, attempt) if attempt is not None else Job.status.in_(ACTIVE_STATUSES)
    return _finished(_cas(s, job_id, JobStatus.failed, cond,
                          dict(finished_at=func.now(), lease_expires_at=None, error_code=code,
                               error_message=message[:2000]), reason=code, worker=worker))


def give_back(s: Session, job: Job, reason: str, *, max_attempts: int, attempt: int | None = None
              ) -> Transition | None:
    """running → queued to run again: after a transient error of ``attempt``, or (``attempt`` None)
    when the job's lease expired because its worker died. A job that has used its ``max_attempts`` is
    failed instead (``attempts_exhausted``). None if the job was no longer in that state."""
    if job.attempts >= max_attempts:
        return fail(s, job.id, EXHAUSTED, f"gave up after {job.attempts} attempts; last: {reason}",
                    attempt=job.attempts)
    cond = (_held(job.id, attempt) if attempt is not None
            else and_(Job.status == JobStatus.running, Job.lease_expires_at < func.now()))
    done = _cas(s, job.id, JobStatus.queued, cond, dict(lease_expires_at=None, enqueued_at=func.now()),
                reason=reason)
    return Transition(done[0]) if done is not None else None


def cancel(s: Session, job_id: uuid.UUID) -> Transition | None:
    """queued | running → canceled (a running job's result is dropped when its worker finishes)."""
    return _finished(_cas(s, job_id, JobStatus.canceled, Job.status.in_(ACTIVE_STATUSES),
                          dict(finished_at=func.now(), lease_expires_at=None), reason="canceled by client"))


def cancel_batch(s: Session, batch_id: uuid.UUID) -> list[Transition]:
    """queued → canceled for every item of the batch that has not started; their transitions.

    Running and finished items are left alone. The queued rows are locked in id order first (two
    concurrent cancels cannot deadlock) and Postgres re-checks ``status = queued`` after each lock
    wait, so an item a worker claimed meanwhile keeps running. The items are counted terminal in the
    same transaction; if that completes the batch, the last transition owes the batch's webhook,
    exactly as a single transition would.
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
    return [_owed(job, finished=True, batch_completed=completed and job is jobs[-1]) for job in jobs]


def stale_queued(s: Session, older_than_s: float, limit: int = 500, *,
                 bulk: bool | None = None, exclude: Collection[uuid.UUID] = ()) -> list[Job]:
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
    q = select(Job).where(Job.status == JobStatus.queued,
                             or_(Job.enqueued_at < cutoff,
                                 and_(Job.enqueued_at.is_(None), Job.batch_id.is_(None), Job.created_at < cutoff)))
    if bulk is not None:
        q = q.where(Job.batch_id.is_not(None) if bulk else Job.batch_id.is_(None))
    if exclude:
        q = q.where(Job.id.not_in(list(exclude)))
    return list(s.scalars(q.order_by(Job.created_at).limit(limit).with_for_update(skip_locked=True)))


def expire(s: Session, job_id: uuid.UUID) -> Job | None:
    """A finished job → expired: retention deleted its input and output (the output is gone)."""
    done = _cas(s, job_id, JobStatus.expired, Job.status.in_(FINISHED_STATUSES),
                dict(output_key=None, lease_expires_at=None), reason="retention")
    return done[0] if done is not None else None


def expired_running(s: Session, limit: int = 500) -> list[Job]:
    """Running jobs whose worker stopped heart-beating: it died or hung past its lease."""
    return list(s.scalars(
        select(Job).where(Job.status == JobStatus.running, Job.lease_expires_at < func.now())
        .limit(limit).with_for_update(skip_locked=True)
    ))


def active_count(s: Session, client_id: uuid.UUID) -> int:
    """Queued + running jobs of a client (the in-flight cap counts these)."""
    return s.scalar(select(func.count()).select_from(Job)
                    .where(Job.client_id == client_id, Job.status.in_(ACTIVE_STATUSES))) or 0


def lock_client(s: Session, client_id: uuid.UUID) -> None:
    """Serialise this client's submits until commit, so count-then-insert cannot overshoot its cap."""
    s.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(str(client_id), 0))))
