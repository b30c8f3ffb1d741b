"""Request and response shapes of the public API, and the one function that renders a job.

``job_object`` is also what webhooks POST (worker/webhooks.py), so a client sees the same object
whether it polls or is called back.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from db.models import Batch, Job, JobStatus
from portrait.storage import Storage
from restoration.options import RestoreOptions


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class JobInput(BaseModel):
    """Exactly one of ``key`` (an object under the client's prefix) or ``url`` (https)."""

    model_config = ConfigDict(extra="forbid")

    key: str | None = Field(None, description="Object key in the bucket, under clients/<client_id>/.")
    url: HttpUrl | None = Field(None, description="An https URL the worker downloads.")

    @model_validator(mode="after")
    def _exactly_one(self) -> JobInput:
        if (self.key is None) == (self.url is None):
            raise ValueError("give exactly one of input.key or input.url")
        return self


WebhookEvent = Literal["start", "completed"]


class JobCreate(BaseModel):
    """JSON body of ``POST /v1/jobs`` (multipart uploads carry the same fields as form fields)."""

    model_config = ConfigDict(extra="forbid")

    input: JobInput
    options: RestoreOptions = Field(default_factory=RestoreOptions)
    webhook_url: HttpUrl | None = None
    webhook_events_filter: list[WebhookEvent] = Field(
        default_factory=lambda: ["completed"],
        description='Per-job events POSTed to webhook_url: "start" (picked up by a worker), "completed" '
                    "(succeeded, failed or canceled).",
    )


class BatchItem(BaseModel):
    """Exactly one of ``key``, ``url`` or ``upload`` (an id from POST /v1/uploads)."""

    model_config = ConfigDict(extra="forbid")

    key: str | None = Field(None, description="Object key in the bucket, under clients/<client_id>/.")
    url: HttpUrl | None = Field(None, description="An https URL the worker downloads.")
    upload: uuid.UUID | None = Field(None, description="The id of an upload made through POST /v1/uploads.")

    @model_validator(mode="after")
    def _exactly_one(self) -> BatchItem:
        if sum(v is not None for v in (self.key, self.url, self.upload)) != 1:
            raise ValueError("give exactly one of key, url or upload")
        return self


class BatchCreate(BaseModel):
    """JSON body of ``POST /v1/batches``: up to BATCH_MAX_ITEMS inputs sharing options and a webhook."""

    model_config = ConfigDict(extra="forbid")

    items: list[BatchItem] = Field(min_length=1)
    options: RestoreOptions = Field(default_factory=RestoreOptions)
    webhook_url: HttpUrl | None = Field(
        None, description="Receives batch.completed once, plus the per-job events in webhook_events_filter."
    )
    webhook_events_filter: list[WebhookEvent] = Field(
        default_factory=list, description="Per-job events to send as well; [] = only batch.completed."
    )


class UploadCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str | None = Field(None, max_length=255, pattern=r"^[^\x00-\x1f\x7f]*$",
                                 description="Kept for your reference only (no control characters).")


class UploadObject(BaseModel):
    id: uuid.UUID
    object: Literal["upload"] = "upload"
    key: str = Field(description="Where the file lands; usable as a batch item's or a job's input key.")
    filename: str | None
    max_bytes: int
    created_at: datetime
    url: str | None = Field(None, description="POST the file here as multipart/form-data (field 'file' last).")
    fields: dict[str, str] | None = Field(None, description="Form fields to send before the file, verbatim.")
    expires_at: datetime | None = Field(None, description="The presigned POST stops working at this time.")
    uploaded: bool | None = Field(None, description="GET only: whether the object exists yet.")
    size: int | None = None


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


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobObject]
    has_more: bool
    next_cursor: str | None


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


class BatchCreated(BatchObject):
    job_ids: list[uuid.UUID] = Field(description="One job per item, in item order.")


class BatchDetail(BatchObject):
    jobs: JobList = Field(description="A page of the batch's jobs in item order; pass next_cursor back.")


class BatchList(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchObject]
    has_more: bool
    next_cursor: str | None


def batch_object(batch: Batch, counts: dict[str, int]) -> BatchObject:
    finished = sum(n for st, n in counts.items() if st not in ("queued", "running"))
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
        webhook_events_filter=job.webhook_events_filter if job.webhook_events_filter is not None else ["completed"],
        batch_id=job.batch_id,
    )
