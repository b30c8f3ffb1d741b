"""The public job and batch objects: what the API returns and what webhooks POST, so a client sees the
same object whether it polls or is called back. Shared by api/ and worker/ (which never import each
other); rendered from the database rows, with a presigned URL for a finished job's output.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from db.models import ACTIVE_STATUSES, Batch, Job, JobStatus
from portrait.storage import Storage


class JobOutput(BaseModel):
    url: str = Field(description="Presigned GET URL of the restored photo.")
    expires_at: datetime
    key: str
    content_type: str | None
    width: int | None
    height: int | None


class JobError(BaseModel):
    code: str
    message: str


class JobObject(BaseModel):
    id: uuid.UUID
    object: Literal["job"] = "job"
    status: JobStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    options: dict[str, Any]
    input: dict[str, Any]
    output: JobOutput | None
    error: JobError | None
    attempts: int
    model_version: str | None
    timings_ms: dict[str, Any] | None
    faces: list[dict[str, Any]] | None
    webhook_url: str | None
    webhook_events_filter: list[str]
    batch_id: uuid.UUID | None = None


class BatchObject(BaseModel):
    id: uuid.UUID
    object: Literal["batch"] = "batch"
    status: Literal["processing", "completed"]
    created_at: datetime
    completed_at: datetime | None
    total: int
    counts: dict[str, int] = Field(description="Jobs per status (every status present).")
    progress: float = Field(description="Finished jobs / total, 0..1.")
    options: dict[str, Any]
    webhook_url: str | None
    webhook_events_filter: list[str]


def batch_object(batch: Batch, counts: dict[str, int]) -> BatchObject:
    finished = sum(n for st, n in counts.items() if st not in ACTIVE_STATUSES)
    return BatchObject(
        id=batch.id, status="completed" if batch.completed_at else "processing", created_at=batch.created_at,
        completed_at=batch.completed_at, total=batch.total, counts=counts,
        progress=round(finished / batch.total, 4) if batch.total else 1.0, options=batch.options or {},
        webhook_url=batch.webhook_url, webhook_events_filter=batch.webhook_events_filter or [],
    )


def job_object(job: Job, storage: Storage | None) -> JobObject:
    output = None
    if job.status == JobStatus.succeeded and job.output_key and storage is not None:
        url, expires = storage.presign_get(job.output_key)
        output = JobOutput(url=url, expires_at=expires, key=job.output_key,
                           content_type=job.output_content_type, width=job.output_width,
                           height=job.output_height)
    error = JobError(code=job.error_code, message=job.error_message or "") if job.error_code else None
    inp: dict[str, Any] = {"source": job.input_source, "key": job.input_key}
    if job.input_url:
        inp["url"] = job.input_url
    return JobObject(
        id=job.id, status=job.status, created_at=job.created_at, started_at=job.started_at,
        finished_at=job.finished_at, options=job.options or {}, input=inp, output=output, error=error,
        attempts=job.attempts, model_version=job.model_version, timings_ms=job.timings, faces=job.faces,
        webhook_url=job.webhook_url,
        webhook_events_filter=job.webhook_events,
        batch_id=job.batch_id,
    )
