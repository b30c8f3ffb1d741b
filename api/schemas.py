"""Request and response shapes of the public API. The job and batch objects themselves are in
jobs/objects.py, shared with the worker's webhooks."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

from db.models import DEFAULT_JOB_EVENTS, WebhookEvent
from jobs.objects import BatchObject, JobObject
from restoration.options import RestoreOptions


class ErrorBody(BaseModel):
    code: str = Field(description="A stable code from the catalogue (docs/errors.md); new codes "
                                  "may be added, none is renamed.", examples=["not_found"])
    message: str = Field(description="What went wrong, for people; not stable.")


class ErrorResponse(BaseModel):
    error: ErrorBody


#: an object key as api/inputs.py accepts it: no control characters or backslashes (and ≤ 1024 characters)
KEY_PATTERN = r"^[^\x00-\x1f\x7f\\]*$"


def _exactly_one_of(*names: str) -> Callable[[dict[str, Any]], None]:
    """JSON-schema hook: exactly one of ``names`` is given (``oneOf`` of their ``required``), and a given
    one is never null — so ``{}``, two of them, or ``{"key": null}`` are schema-invalid, as the API says."""

    def hook(schema: dict[str, Any]) -> None:
        schema["oneOf"] = [{"required": [n]} for n in names]
        for n in names:
            prop = schema["properties"][n]
            kinds = [k for k in prop.pop("anyOf", []) if k.get("type") != "null"]
            if kinds:
                prop.update(kinds[0])
            prop.pop("default", None)

    return hook


class JobInput(BaseModel):
    """Exactly one of ``key`` (an object under the client's prefix) or ``url`` (https)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one_of("key", "url"))

    key: str | None = Field(None, max_length=1024, pattern=KEY_PATTERN,
                            description="Object key in the bucket, under clients/<client_id>/.")
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

    Documents the form for the schema (api/openapi.py); the endpoint parses it itself (api/jobs.py) and
    refuses parts it does not know, as the JSON body does."""

    model_config = ConfigDict(extra="forbid")

    file: bytes = Field(description="The photo: JPEG, PNG, WebP, BMP or TIFF, 1 byte to MAX_UPLOAD_BYTES.",
                        json_schema_extra={"minLength": 1})
    # Parts sent as JSON text (the encoding in api/openapi.py says application/json): the schema is the
    # decoded value, so a generated client sends {"upscale": 2}, never null or free text.
    options: RestoreOptions = Field(None, description='RestoreOptions, a JSON object, e.g. {"upscale": 2}.')
    webhook_url: HttpUrl = Field(None, description="https URL that receives the signed webhooks.")
    webhook_events_filter: list[WebhookEvent] = Field(
        None, max_length=2, description='Events, as one part per event (`start`, `completed`) or one JSON list part '
                          '(`["start", "completed"]`).')


class BatchItem(BaseModel):
    """Exactly one of ``key``, ``url`` or ``upload`` (an id from POST /v1/uploads)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one_of("key", "url", "upload"))

    key: str | None = Field(None, max_length=1024, pattern=KEY_PATTERN,
                            description="Object key in the bucket, under clients/<client_id>/.")
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

    @field_validator("overlap_s", mode="before")
    @classmethod
    def _not_a_boolean(cls, v: object) -> object:
        if isinstance(v, bool):  # JSON true/false is no integer; 600.0 is (JSON Schema says so)
            raise ValueError("an integer number of seconds")
        return v


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
