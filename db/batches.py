"""Batches in Postgres: create one with all its jobs in a single transaction, count them by status.

Completion is not decided here but in each job's terminal transition (db/jobs.py ``_count_terminal``),
so it happens in the same transaction as the last item's status change, exactly once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from db.models import Batch, InputSource, Job, JobEvent, JobStatus, WebhookState


@dataclass(frozen=True)
class NewItem:
    """One resolved batch item: where its input is, and the job id chosen for it."""

    job_id: uuid.UUID
    input_key: str
    input_source: InputSource
    input_url: str | None = None


def create(s: Session, *, client_id: uuid.UUID, items: list[NewItem], options: dict[str, Any],
           webhook_url: str | None, webhook_events_filter: list[str]) -> Batch:
    """Insert the batch, its jobs (status queued, no message yet: ``enqueued_at`` NULL) and their first events.

    The jobs' messages are sent later by the fair dispatcher (db/dispatch.py), a few per client at a
    time, so a big batch does not queue ahead of every other client's work.
    """
    batch = Batch(id=uuid.uuid4(), client_id=client_id, total=len(items), terminal_count=0, options=options,
                  webhook_url=webhook_url, webhook_events_filter=webhook_events_filter,
                  webhook_state=WebhookState.none)
    s.add(batch)
    s.flush()
    now = s.scalar(select(func.now()))  # the transaction's time: one value for every row
    s.execute(insert(Job), [
        dict(id=it.job_id, client_id=client_id, status=JobStatus.queued, options=options,
             input_key=it.input_key, input_source=it.input_source, input_url=it.input_url,
             webhook_url=webhook_url, webhook_events_filter=webhook_events_filter, attempts=0,
             webhook_state=WebhookState.none, batch_id=batch.id, batch_index=i, created_at=now)
        for i, it in enumerate(items)
    ])
    s.execute(insert(JobEvent), [
        dict(job_id=it.job_id, from_status=None, to_status=JobStatus.queued.value, reason="submitted in batch")
        for it in items
    ])
    return batch


def status_counts(s: Session, batch_id: uuid.UUID) -> dict[str, int]:
    """{status: number of jobs} with every status present (zeros included)."""
    rows = s.execute(select(Job.status, func.count()).where(Job.batch_id == batch_id).group_by(Job.status))
    counts = {st.value: 0 for st in JobStatus}
    for st, n in rows:
        counts[JobStatus(st).value] = n
    return counts
