"""SQLAlchemy 2 models: Postgres is the source of truth for every job.

Redis only carries messages; anything a lost message would lose can be rebuilt from these rows by the
sweeper (worker/sweeper.py). Status changes happen only through the compare-and-set helpers in
``db/jobs.py``; each one appends a ``JobEvent``.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    pass


class JobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"
    expired = "expired"  # was terminal; retention deleted its input and output

    @property
    def active(self) -> bool:
        """Queued or running: not finished yet."""
        return self in ACTIVE_STATUSES

    @property
    def terminal(self) -> bool:
        """Finished, expired included: it will never change again but for retention."""
        return self in TERMINAL_STATUSES


#: The job status sets, spelled here only.
ACTIVE_STATUSES = (JobStatus.queued, JobStatus.running)
FINISHED_STATUSES = (JobStatus.succeeded, JobStatus.failed, JobStatus.canceled)  # with an outcome to fetch
TERMINAL_STATUSES = (*FINISHED_STATUSES, JobStatus.expired)


class WebhookState(enum.StrEnum):
    """Where a webhook message stands (a job's terminal or start event, a batch's completion); the
    sweeper re-sends ``pending`` ones left too long."""

    none = "none"
    pending = "pending"
    delivered = "delivered"
    failed = "failed"
    gone = "gone"


class InputSource(enum.StrEnum):
    """Where a job's input came from (``jobs.input_source``)."""

    upload = "upload"  # the bytes came with the submit (or through a presigned upload)
    object = "object"  # an object key the client already had in the bucket
    url = "url"  # fetched from an https URL by a CPU worker


class KeyState(enum.StrEnum):
    """Where an Idempotency-Key's first request stands (``idempotency_keys.state``)."""

    in_progress = "in_progress"
    done = "done"


def _str_enum(enum_type: type[enum.StrEnum]) -> Enum:
    """An enum stored as its value in a plain VARCHAR(16) (no Postgres type, no CHECK: the columns were
    created as strings and keep their schema)."""
    return Enum(enum_type, native_enum=False, create_constraint=False, length=16,
                values_callable=lambda e: [m.value for m in e])


class WebhookEvent(enum.StrEnum):
    """Per-job events a client may ask for in ``webhook_events_filter``."""

    start = "start"  # a worker picked the job up
    completed = "completed"  # succeeded, failed or canceled


@dataclass(frozen=True)
class WebhookMessage:
    """A webhook message a committed transition owes: decided by the state machine (db/jobs.py), sent
    after the commit (jobs/messages.py), delivered and retried by worker/webhooks.py, re-sent by the
    sweeper while its state column stays ``pending``. Three exist: a job's ``start`` and ``completed``
    events and a batch's completion. It owns what the three used to spell apart: its id (the
    ``webhook-id`` every retry keeps, receivers de-duplicate on it), its payload ``type`` and the column
    that tracks it.
    """

    subject_id: uuid.UUID  # the job's id, or the batch's
    event: WebhookEvent
    batch: bool = False

    #: the payload type (and ``webhook_deliveries.event_type``) of a job's start event
    STARTED: ClassVar[str] = "job.started"
    #: the payload type of a batch's completion
    BATCH_COMPLETED: ClassVar[str] = "batch.completed"

    @classmethod
    def for_batch(cls, batch_id: uuid.UUID) -> WebhookMessage:
        return cls(batch_id, WebhookEvent.completed, batch=True)

    @classmethod
    def from_wire(cls, subject_id: str | uuid.UUID, wire: str) -> WebhookMessage:
        """The message a delivery task's ``event`` argument names (see :attr:`wire`)."""
        sid = uuid.UUID(str(subject_id))
        return cls.for_batch(sid) if wire == cls.BATCH_COMPLETED else cls(sid, WebhookEvent(wire))

    @property
    def wire(self) -> str:
        """How the delivery task's message names it: ``start``, ``completed`` or ``batch.completed``
        (the spelling messages already in Redis carry)."""
        return self.BATCH_COMPLETED if self.batch else self.event.value

    @property
    def id(self) -> str:
        hexid = self.subject_id.hex
        if self.batch:
            return f"msg_batch_{hexid}"
        return f"msg_{hexid}" if self.event == WebhookEvent.completed else f"msg_{hexid}_{self.event.value}"

    @property
    def state_column(self) -> str:
        """The column on the subject's row tracking this message (each is delivered and swept alone)."""
        return "start_webhook_state" if self.event == WebhookEvent.start else "webhook_state"

    def payload_type(self, status: JobStatus | None = None) -> str:
        """``job.started``, ``job.<terminal status>`` (the job's ``status``) or ``batch.completed``."""
        if self.batch:
            return self.BATCH_COMPLETED
        if self.event == WebhookEvent.start:
            return self.STARTED
        assert status is not None
        return f"job.{status.value}"


#: What a single job reports when its submit names no events.
DEFAULT_JOB_EVENTS = (WebhookEvent.completed,)


def _now_default() -> Any:
    return func.now()


class Client(Base):
    """A product service that calls the API. Its credentials (several API keys, several webhook secrets
    during a rotation) live in ``api_keys`` and ``webhook_secrets`` (db/admin.py)."""

    __tablename__ = "clients"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    # Per-client overrides of the settings of the same name; NULL = the deployment default.
    rate_limit_per_s: Mapped[float | None] = mapped_column(Float)
    rate_limit_burst: Mapped[int | None] = mapped_column(Integer)
    max_jobs_in_flight: Mapped[int | None] = mapped_column(Integer)
    retention_s: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now_default())


class ApiKey(Base):
    """One of a client's API keys, stored only as a SHA-256 hash; several may be active at once (rotation
    with overlap). ``prefix`` (``prt_`` + 6 characters) names it in lists and logs; ``last_used_at`` is
    updated at most once a minute."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now_default())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookSecret(Base):
    """One of a client's webhook signing secrets. Every delivery is signed with each secret not yet
    expired (several ``v1,`` signatures in one header): a new secret and the old one overlap until the
    old one's ``expires_at``."""

    __tablename__ = "webhook_secrets"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"), index=True)
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now_default())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CredentialEvent(Base):
    """A rotation, recorded: a key created or revoked, a secret created or retired (when, which one)."""

    __tablename__ = "credential_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"), index=True)
    event: Mapped[str] = mapped_column(String(40))  # api_key.created, api_key.revoked, webhook_secret.…
    ref: Mapped[str] = mapped_column(String(64))  # the key's prefix or the secret's id
    detail: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now_default())


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"), index=True)
    status: Mapped[JobStatus] = mapped_column(
        Enum(JobStatus, name="job_status", values_callable=lambda e: [m.value for m in e]),
        default=JobStatus.queued,
    )
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    input_key: Mapped[str] = mapped_column(Text)
    input_source: Mapped[InputSource] = mapped_column(_str_enum(InputSource))
    input_url: Mapped[str | None] = mapped_column(Text)
    output_key: Mapped[str | None] = mapped_column(Text)
    output_content_type: Mapped[str | None] = mapped_column(String(64))
    output_width: Mapped[int | None] = mapped_column(Integer)
    output_height: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    worker: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the last message was handed to the broker; NULL = none yet (for a batch item: waiting for
    # its client's turn in db/dispatch.py).
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    model_version: Mapped[str | None] = mapped_column(String(200))
    timings: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    faces: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    # Which per-job events are POSTed to webhook_url (WebhookEvent). NULL = DEFAULT_JOB_EVENTS.
    webhook_events_filter: Mapped[list[str] | None] = mapped_column(JSONType)
    webhook_state: Mapped[WebhookState] = mapped_column(
        Enum(WebhookState, name="webhook_state", values_callable=lambda e: [m.value for m in e]),
        default=WebhookState.none,
        server_default="none",
    )
    # The "start" event (job.started): pending from the first claim if the filter asks for it.
    start_webhook_state: Mapped[WebhookState] = mapped_column(
        Enum(WebhookState, name="webhook_state", values_callable=lambda e: [m.value for m in e],
             create_type=False),
        default=WebhookState.none,
        server_default="none",
    )
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("batches.id"))
    batch_index: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now_default())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    events: Mapped[list[JobEvent]] = relationship(
        back_populates="job", order_by="JobEvent.id", cascade="all, delete-orphan"
    )

    __table_args__ = (
        # cursor pagination: newest first within a client
        Index("ix_jobs_client_created", "client_id", "created_at", "id"),
        # the sweeper's two scans
        Index("ix_jobs_status_lease", "status", "lease_expires_at"),
        Index("ix_jobs_status_enqueued", "status", "enqueued_at"),
        # a batch's jobs in item order (GET /v1/batches/{id} pages through them)
        Index("ix_jobs_batch", "batch_id", "batch_index"),
        # retention scans finished jobs by age
        Index("ix_jobs_status_finished", "status", "finished_at"),
        # the per-client in-flight cap counts active jobs
        Index("ix_jobs_client_active", "client_id",
              postgresql_where=text("status IN ('queued', 'running')")),
        # the fair bulk dispatcher (db/dispatch.py): a client's batch items without a message, oldest first
        Index("ix_jobs_bulk_undispatched", "client_id", "created_at", "batch_index",
              postgresql_where=text("status = 'queued' AND batch_id IS NOT NULL AND enqueued_at IS NULL")),
        # the sweeper's scan for lost job.started webhooks
        Index("ix_jobs_start_webhook_pending", "started_at",
              postgresql_where=text("start_webhook_state = 'pending'")),
    )

    @property
    def webhook_events(self) -> list[str]:
        """The per-job events this job reports: its filter, or DEFAULT_JOB_EVENTS when it named none."""
        if self.webhook_events_filter is not None:
            return list(self.webhook_events_filter)
        return [str(e) for e in DEFAULT_JOB_EVENTS]

    @property
    def waits_for_url(self) -> bool:
        """Queued with an https URL as input: worker/fetch.py fetches it before a GPU may run it."""
        return self.status == JobStatus.queued and self.input_source == InputSource.url

    def wants_event(self, event: str) -> bool:
        """Whether the client asked for this per-job webhook event ("start" or "completed")."""
        return bool(self.webhook_url) and event in self.webhook_events


class Batch(Base):
    """Many jobs sharing options and a webhook (AWS Batch array job).

    ``terminal_count`` is bumped in the same transaction as each item's terminal transition
    (db/jobs.py), so the one transition that makes it equal ``total`` is the only one that sets
    ``completed_at`` and queues the ``batch.completed`` webhook: exactly once, decided in Postgres.
    """

    __tablename__ = "batches"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"))
    total: Mapped[int] = mapped_column(Integer)
    terminal_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    webhook_events_filter: Mapped[list[str] | None] = mapped_column(JSONType)
    webhook_state: Mapped[WebhookState] = mapped_column(
        Enum(WebhookState, name="webhook_state", values_callable=lambda e: [m.value for m in e],
             create_type=False),
        default=WebhookState.none,
        server_default="none",
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now_default())
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_batches_client_created", "client_id", "created_at", "id"),)


class Upload(Base):
    """A presigned POST handed to a client; the object lands at ``key`` under the client's prefix."""

    __tablename__ = "uploads"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"), index=True)
    key: Mapped[str] = mapped_column(Text)
    filename: Mapped[str | None] = mapped_column(String(255))
    max_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now_default())
    url_expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class IdempotencyKey(Base):
    """A POST made with an ``Idempotency-Key`` and, once it finished, the response to replay."""

    __tablename__ = "idempotency_keys"

    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[KeyState] = mapped_column(_str_enum(KeyState))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSONType)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now_default())
    locked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now_default())

    __table_args__ = (Index("ix_idempotency_keys_created", "created_at"),)


class JobEvent(Base):
    """One row per status transition (and a few notable non-transitions, e.g. re-enqueues)."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int | None] = mapped_column(Integer)
    worker: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now_default())

    job: Mapped[Job] = relationship(back_populates="events")


class WebhookDelivery(Base):
    """One row per delivery *attempt*; attempts of one message share ``message_id`` (webhook-id)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[str] = mapped_column(String(64), index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float | None]
    next_retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now_default())
