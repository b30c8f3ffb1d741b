"""Signed webhook delivery (Standard Webhooks), on its own queue so slow receivers never block GPUs.

Events (the client picks per-job ones with ``webhook_events_filter``, like Replicate):

* ``completed`` → ``job.succeeded`` / ``job.failed`` / ``job.canceled``, once per job
  (``webhook-id`` = ``msg_<job id hex>``); the default filter is ``["completed"]``;
* ``start`` → ``job.started`` when a worker first picks the job up (``msg_<hex>_start``), tracked
  in ``jobs.start_webhook_state`` as the terminal one is in ``jobs.webhook_state``;
* ``batch.completed`` once per batch when its last item finishes (``msg_batch_<hex>``), always sent
  when the batch has a webhook_url.

Which messages are owed is decided in db/jobs.py; one task, :func:`deliver_webhook`, delivers all
three kinds (a batch's with the batch as subject).

Each message keeps its id on every retry, so receivers can de-duplicate. Headers: ``webhook-id``,
``webhook-timestamp`` (unix seconds) and ``webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`` with each of the client's live ``whsec_`` secrets (one during normal times, old
and new side by side during a rotation, space-separated: db/admin.py). Every attempt is a
``webhook_deliveries`` row. 2xx: delivered. 410 Gone: stop, the receiver asked us to. Anything else
or a timeout: retry after ``retry_delay(attempt)`` until WEBHOOK_MAX_ATTEMPTS. The POST goes through
portrait/urlguard.py (public addresses only, pinned IP, no redirects): a refused URL is not retried.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from db.admin import signing_secrets
from db.batches import status_counts
from db.models import Batch, Job, WebhookDelivery, WebhookState
from db.session import session_scope
from portrait import queue, urlguard
from portrait.logs import bind, log_context
from portrait.objects import batch_object, job_object
from portrait.settings import Settings, get_settings
from portrait.storage import get_storage
from worker import metrics
from worker.celery_app import app

log = logging.getLogger("portrait.webhooks")

STARTED = "job.started"  # payload type of the "start" event, and event_type of its delivery rows


def retry_delay(attempt: int, settings: Settings, rng: random.Random | None = None) -> float:
    """Delay before attempt ``attempt + 1``: base·2^(attempt-1), capped, times 1 ± jitter.

    With the defaults (base 5 s, cap 1 h, ±20 %): 5, 10, 20, 40, 80, 160, 320 s between the 8
    attempts, about 10.5 minutes in all.
    """
    base = min(settings.webhook_backoff_base_s * 2 ** (attempt - 1), settings.webhook_backoff_max_s)
    j = settings.webhook_jitter
    return base * (rng or random).uniform(1 - j, 1 + j)


def build_payload(job: Job, event: str = "completed") -> dict[str, Any]:
    return {
        "type": STARTED if event == "start" else f"job.{job.status.value}",
        "timestamp": datetime.now(UTC).isoformat(),
        "data": job_object(job, get_storage()).model_dump(mode="json"),
    }


def sign(secrets: list[str], message_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    """Standard Webhooks headers, signed with every live secret of the client (newest first): during a
    rotation the header carries one ``v1,<sig>`` per secret, space-separated, and a receiver that checks
    either secret verifies."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": " ".join(Webhook(secret).sign(message_id, timestamp, body) for secret in secrets),
        "content-type": "application/json",
        "user-agent": "portrait-webhooks/0.1",
    }


@dataclass
class _Attempt:
    status_code: int | None
    error: str | None
    ms: float
    refused: bool = False

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _post(url: str, secrets: list[str], message_id: str, body: str, settings: Settings
          ) -> tuple[_Attempt, datetime]:
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    try:
        code = urlguard.post(url, body, sign(secrets, message_id, now, body), settings, settings.webhook_timeout_s)
        result = _Attempt(code, None, 0.0)
    except urlguard.UrlRefused as e:
        result = _Attempt(None, f"url_not_allowed: {e}"[:500], 0.0, refused=True)
    except httpx.HTTPError as e:
        result = _Attempt(None, f"{type(e).__name__}: {e}"[:500], 0.0)
    result.ms = round((time.perf_counter() - t0) * 1000, 1)
    return result, now


def _outcome(a: _Attempt, attempt: int, settings: Settings) -> tuple[WebhookState | None, float | None]:
    """(new webhook state or None while retrying, delay before the next attempt or None)."""
    if a.ok:
        return WebhookState.delivered, None
    if a.status_code == 410:
        return WebhookState.gone, None
    if a.refused or attempt >= settings.webhook_max_attempts:
        return WebhookState.failed, None
    return None, retry_delay(attempt, settings)


BATCH_COMPLETED = "batch.completed"  # the event (and payload type) of a batch's webhook


def build_batch_payload(batch: Batch, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "type": BATCH_COMPLETED,
        "timestamp": datetime.now(UTC).isoformat(),
        "data": batch_object(batch, counts).model_dump(mode="json"),
    }


def _subject(s: Session, subject_id: uuid.UUID, event: str) -> Job | Batch | None:
    """The job or batch whose ``event`` message is still owed (its state ``pending``), else None."""
    if event == BATCH_COMPLETED:
        row: Job | Batch | None = s.get(Batch, subject_id)
    else:
        row = s.get(Job, subject_id)
    if row is None or not row.webhook_url or getattr(row, _state_field(event)) != WebhookState.pending:
        return None  # gone, delivered, given up, or never asked for
    return row


def _state_field(event: str) -> str:
    """The column tracking this event's webhook (each event is delivered, retried and swept alone)."""
    return "start_webhook_state" if event == "start" else "webhook_state"


@app.task(name=queue.WEBHOOK_TASK)
def deliver_webhook(subject_id: str, message_id: str, attempt: int = 1, event: str = "completed") -> str:
    """Deliver one message: a job's ``start`` or ``completed`` event, or a batch's ``batch.completed``
    (``subject_id`` is then the batch's id); record the attempt; retry, or settle the state."""
    subject = {"batch_id": subject_id} if event == BATCH_COMPLETED else {"job_id": subject_id}
    with log_context(**subject):
        result = _deliver(subject_id, message_id, attempt, event)
    metrics.webhook_attempt(result)
    return result


def _deliver(subject_id: str, message_id: str, attempt: int, event: str) -> str:
    settings = get_settings()
    sid = uuid.UUID(subject_id)
    with session_scope() as s:
        row = _subject(s, sid, event)
        if row is None:
            return "skipped"
        bind(client_id=row.client_id)
        secrets = signing_secrets(s, row.client_id)
        url = row.webhook_url
        payload = (build_batch_payload(row, status_counts(s, sid)) if isinstance(row, Batch)
                   else build_payload(row, event))
        body = json.dumps(payload, separators=(",", ":"))

    a, now = _post(url, secrets, message_id, body, settings)
    state, delay = _outcome(a, attempt, settings)
    is_batch = event == BATCH_COMPLETED
    with session_scope() as s:
        s.add(WebhookDelivery(
            job_id=None if is_batch else sid, batch_id=sid if is_batch else None, message_id=message_id,
            event_type=payload["type"], url=url, attempt=attempt, status_code=a.status_code, error=a.error,
            duration_ms=a.ms, next_retry_at=now + timedelta(seconds=delay) if delay is not None else None,
        ))
        if state is not None:
            setattr(s.get(Batch if is_batch else Job, sid), _state_field(event), state)
    if delay is not None:
        queue.enqueue_webhook(sid, message_id, attempt + 1, countdown=delay, event=event)
        log.info("webhook %s attempt %d -> %s; retry in %.1f s", message_id, attempt,
                 a.status_code or a.error, delay)
        return "retrying"
    return state.value if state else "failed"


@app.task(name=queue.BATCH_WEBHOOK_TASK)
def deliver_batch_webhook(batch_id: str, message_id: str, attempt: int = 1) -> str:
    """The old name of a batch's delivery: messages queued before this version still arrive here."""
    return deliver_webhook(batch_id, message_id, attempt, BATCH_COMPLETED)
