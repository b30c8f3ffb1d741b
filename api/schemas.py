"""Request and response shapes of the public API. The job and batch objects themselves are in
portrait/objects.py, shared with the worker's webhooks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from db.models import DEFAULT_JOB_EVENTS, WebhookEvent
from portrait.objects import BatchObject, JobObject
from restoration.options import RestoreOptions


class ErrorBody(BaseModel):
    code: str = Field(description="A stable code from the catalogue (the README's error table); new codes "
                                  "may be added, none is renamed.", examples=["not_found"])
    message: str = Field(description="What went wrong, for people; not stable.")


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


class JobCreate(BaseModel):
    """JSON body of ``POST /v1/jobs`` (multipart uploads carry the same fields as form fields)."""

    model_config = ConfigDict(extra="forbid")

    input: JobInput
    options: RestoreOptions = Field(default_factory=RestoreOptions)
    webhook_url: HttpUrl | None = None
    webhook_events_filter: list[WebhookEvent] = Field(
        default_factory=lambda: list(DEFAULT_JOB_EVENTS),
        description='Per-job events POSTed to webhook_url: "start" (picked up by a worker), "completed" '
                    "(succeeded, failed or canceled).",
    )


class JobUpload(BaseModel):
    """Multipart body of ``POST /v1/jobs``: the photo and JobCreate's other fields as form fields.

    Documents the form for the schema (api/openapi.py); the endpoint parses it itself (api/jobs.py)."""

    file: bytes = Field(description="The photo: JPEG, PNG, WebP, BMP or TIFF, at most MAX_UPLOAD_BYTES.")
    options: str | None = Field(None, description='RestoreOptions as a JSON object, e.g. {"upscale": 2}.',
                                examples=['{"upscale": 2, "fidelity": 0.8}'])
    webhook_url: str | None = Field(None, description="https URL that receives the signed webhooks.")
    webhook_events_filter: str | None = Field(None, description='A JSON list of events, e.g. ["start", "completed"].')


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


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobObject]
    has_more: bool
    next_cursor: str | None


class BatchCreated(BatchObject):
    job_ids: list[uuid.UUID] = Field(description="One job per item, in item order.")


class BatchDetail(BatchObject):
    jobs: JobList = Field(description="A page of the batch's jobs in item order; pass next_cursor back.")


class BatchList(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchObject]
    has_more: bool
    next_cursor: str | None


# --- credentials (api/credentials.py): several API keys and webhook secrets, rotated with overlap
class ApiKeyObject(BaseModel):
    id: uuid.UUID
    object: Literal["api_key"] = "api_key"
    prefix: str = Field(description="The key's first 10 characters: how lists and logs name it.")
    created_at: datetime
    last_used_at: datetime | None = Field(description="Last request with this key (updated at most once a minute).")
    revoked_at: datetime | None
    api_key: str | None = Field(None, description="Only in the reply that creates it: the key, shown once.")


class ApiKeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ApiKeyObject]


class WebhookSecretCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_s: int = Field(86_400, ge=0, le=30 * 86_400,
                           description="How long the secrets live now keep signing beside the new one.")


class WebhookSecretObject(BaseModel):
    id: uuid.UUID
    object: Literal["webhook_secret"] = "webhook_secret"
    created_at: datetime
    expires_at: datetime | None = Field(description="It stops signing deliveries at this time (null = never).")
    live: bool = Field(description="Deliveries are signed with it now.")
    prefix: str = Field(description="The secret's first 12 characters, to tell secrets apart.")
    secret: str | None = Field(None, description="Only in the reply that creates it: the whsec_ secret.")


class WebhookSecretList(BaseModel):
    object: Literal["list"] = "list"
    data: list[WebhookSecretObject]


class CredentialEventObject(BaseModel):
    event: str = Field(description="api_key.created, api_key.revoked, webhook_secret.created, "
                                   "webhook_secret.expiring or webhook_secret.retired.")
    ref: str = Field(description="The key's prefix or the secret's id.")
    detail: str | None
    at: datetime


class CredentialEventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CredentialEventObject]
