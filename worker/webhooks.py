"""Signed webhook delivery (Standard Webhooks), on its own queue so slow receivers never block GPUs.

Events (the client picks per-job ones with ``webhook_events_filter``, like Replicate):

* ``completed`` → ``job.succeeded`` / ``job.failed`` / ``job.canceled``, once per job
  (``webhook-id`` = ``msg_<job id hex>``); the default filter is ``["completed"]``;
* ``start`` → ``job.started`` when a worker first picks the job up (``msg_<hex>_start``), tracked
  in ``jobs.start_webhook_state`` as the terminal one is in ``jobs.webhook_state``;
* ``batch.completed`` once per batch when its last item finishes (``msg_batch_<hex>``), always sent
  when the batch has a webhook_url.

Which messages are owed is decided in db/jobs.py, each a ``db.models.WebhookMessage`` that owns its
id, payload type and state column; one task, :func:`deliver_webhook`, delivers all three (a batch's
with the batch as subject).

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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from db.admin import signing_secrets
from db.batches import status_counts
from db.models import Batch, Job, WebhookDelivery, WebhookMessage, WebhookState
from db.session import session_scope
from jobs import messages
from jobs.objects import batch_object, job_object
from portrait import urlguard
from portrait.logs import bind, log_context
from portrait.settings import Settings, get_settings
from portrait.storage import get_storage
from worker import metrics
from worker.celery_app import app

log = logging.getLogger("portrait.webhooks")

def retry_delay(attempt: int, settings: Settings, rng: random.Random | None = None) -> float:
    """Delay before attempt ``attempt + 1``: base·2^(attempt-1), capped, times 1 ± jitter.

    With the defaults (base 5 s, cap 1 h, ±20 %): 5, 10, 20, 40, 80, 160, 320 s between the 8
    attempts, about 10.5 minutes in all.
    """
    base = min(settings.webhook_backoff_base_s * 2 ** (attempt - 1), settings.webhook_backoff_max_s)
    j = settings.webhook_jitter
    return base * (rng or random).uniform(1 - j, 1 + j)


def build_payload(message: WebhookMessage, row: Job | Batch, counts: dict[str, int] | None = None
                  ) -> dict[str, Any]:
    """The body of ``message`` about ``row`` (a batch's takes its items' status ``counts``)."""
    data = (batch_object(row, counts or {}) if isinstance(row, Batch) else job_object(row, get_storage()))
    return {
        "type": message.payload_type(getattr(row, "status", None)),
        "timestamp": datetime.now(UTC).isoformat(),
        "data": data.model_dump(mode="json"),
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


def _subject(s: Session, message: WebhookMessage) -> Job | Batch | None:
    """The job or batch ``message`` is about, if it is still owed (its state ``pending``), else None."""
    row: Job | Batch | None = s.get(Batch if message.batch else Job, message.subject_id)
    if row is None or not row.webhook_url or getattr(row, message.state_column) != WebhookState.pending:
        return None  # gone, delivered, given up, or never asked for
    return row


@app.task(name=messages.WEBHOOK_TASK)
def deliver_webhook(subject_id: str, message_id: str, attempt: int = 1, event: str = "completed") -> str:
    """Deliver one message: a job's ``start`` or ``completed`` event, or a batch's ``batch.completed``
    (``subject_id`` is then the batch's id; ``message_id`` is the message's own, carried for the log);
    record the attempt; retry, or settle the state."""
    message = WebhookMessage.from_wire(subject_id, event)
    with log_context(**{"batch_id" if message.batch else "job_id": subject_id}):
        result = _deliver(message, attempt)
    metrics.webhook_attempt(result)
    return result


def _deliver(message: WebhookMessage, attempt: int) -> str:
    settings = get_settings()
    with session_scope() as s:
        row = _subject(s, message)
        if row is None:
            return "skipped"
        bind(client_id=row.client_id)
        secrets = signing_secrets(s, row.client_id)
        url = row.webhook_url
        counts = status_counts(s, message.subject_id) if message.batch else None
        payload = build_payload(message, row, counts)
        body = json.dumps(payload, separators=(",", ":"))

    a, now = _post(url, secrets, message.id, body, settings)
    state, delay = _outcome(a, attempt, settings)
    sid = message.subject_id
    with session_scope() as s:
        s.add(WebhookDelivery(
            job_id=None if message.batch else sid, batch_id=sid if message.batch else None,
            message_id=message.id, event_type=payload["type"], url=url, attempt=attempt,
            status_code=a.status_code, error=a.error, duration_ms=a.ms,
            next_retry_at=now + timedelta(seconds=delay) if delay is not None else None,
        ))
        if state is not None:
            setattr(s.get(Batch if message.batch else Job, sid), message.state_column, state)
    if delay is not None:
        messages.send_webhook(message, attempt + 1, countdown=delay)
        log.info("webhook %s attempt %d -> %s; retry in %.1f s", message.id, attempt,
                 a.status_code or a.error, delay)
        return "retrying"
    return state.value if state else "failed"


@app.task(name=messages.BATCH_WEBHOOK_TASK)
def deliver_batch_webhook(batch_id: str, message_id: str, attempt: int = 1) -> str:
    """The old name of a batch's delivery: messages queued before this version still arrive here."""
    return deliver_webhook(batch_id, message_id, attempt, WebhookMessage.BATCH_COMPLETED)
