"""Request and response shapes of the public API, and the one function that renders a job.

``job_object`` is also what webhooks POST (worker/webhooks.py), so a client sees the same object
whether it polls or is called back.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, HttpUrl, model_validator

from db.models import Job, JobStatus
from portrait.storage import Storage
from restoration.options import RestoreOptions


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class JobInput(BaseModel):
    """Exactly one of ``key`` (an object under the client's prefix) or ``url`` (https)."""

    key: str | None = Field(None, description="Object key in the bucket, under clients/<client_id>/.")
    url: HttpUrl | None = Field(None, description="An https URL the worker downloads.")

    @model_validator(mode="after")
    def _exactly_one(self) -> JobInput:
        if (self.key is None) == (self.url is None):
            raise ValueError("give exactly one of input.key or input.url")
        return self


class JobCreate(BaseModel):
    """JSON body of ``POST /v1/jobs`` (multipart uploads carry the same fields as form fields)."""

    input: JobInput
    options: RestoreOptions = Field(default_factory=RestoreOptions)
    webhook_url: HttpUrl | None = None


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


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobObject]
    has_more: bool
    next_cursor: str | None


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
    )
