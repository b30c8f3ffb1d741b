"""Signed webhook delivery (Standard Webhooks), on its own queue so slow receivers never block GPUs.

Each terminal job status is POSTed once per *message* (``webhook-id`` = ``msg_<job id hex>``; the
same id on every retry, so receivers can de-duplicate). Headers: ``webhook-id``,
``webhook-timestamp`` (unix seconds) and ``webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`` with the client's ``whsec_`` secret. Every attempt is a
``webhook_deliveries`` row. 2xx: delivered. 410 Gone: stop, the receiver asked us to. Anything else
or a timeout: retry after ``retry_delay(attempt)`` until WEBHOOK_MAX_ATTEMPTS.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from api.schemas import job_object
from db.models import Client, Job, WebhookDelivery, WebhookState
from db.session import session_scope
from portrait import queue
from portrait.settings import Settings, get_settings
from portrait.storage import get_storage
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


def build_payload(job: Job) -> dict[str, Any]:
    return {
        "type": f"job.{job.status.value}",
        "timestamp": datetime.now(UTC).isoformat(),
        "data": job_object(job, get_storage()).model_dump(mode="json"),
    }


def sign(secret: str, message_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, timestamp, body),
        "content-type": "application/json",
        "user-agent": "portrait-webhooks/0.1",
    }


@app.task(name=queue.WEBHOOK_TASK)
def deliver_webhook(job_id: str, message_id: str, attempt: int = 1) -> str:
    settings = get_settings()
    jid = uuid.UUID(job_id)
    with session_scope() as s:
        job = s.get(Job, jid)
        if job is None or not job.webhook_url or job.webhook_state not in (WebhookState.pending,):
            return "skipped"
        secret = s.get(Client, job.client_id).webhook_secret
        url = job.webhook_url
        body = json.dumps(build_payload(job), separators=(",", ":"))
        event_type = f"job.{job.status.value}"

    now = datetime.now(UTC)
    headers = sign(secret, message_id, now, body)
    status_code: int | None = None
    error: str | None = None
    t0 = time.perf_counter()
    try:
        r = httpx.post(url, content=body, headers=headers, timeout=settings.webhook_timeout_s,
                       follow_redirects=False)
        status_code = r.status_code
    except httpx.HTTPError as e:
        error = f"{type(e).__name__}: {e}"[:500]
    ms = (time.perf_counter() - t0) * 1000

    ok = status_code is not None and 200 <= status_code < 300
    gone = status_code == 410
    retry = not ok and not gone and attempt < settings.webhook_max_attempts
    delay = retry_delay(attempt, settings) if retry else None
    with session_scope() as s:
        s.add(WebhookDelivery(
            job_id=jid, message_id=message_id, event_type=event_type, url=url, attempt=attempt,
            status_code=status_code, error=error, duration_ms=round(ms, 1),
            next_retry_at=now + timedelta(seconds=delay) if delay is not None else None,
        ))
        job = s.get(Job, jid)
        if ok:
            job.webhook_state = WebhookState.delivered
        elif gone:
            job.webhook_state = WebhookState.gone
        elif not retry:
            job.webhook_state = WebhookState.failed
    if retry:
        queue.enqueue_webhook(jid, message_id, attempt + 1, countdown=delay)
        log.info("webhook %s attempt %d -> %s; retry in %.1f s", message_id, attempt,
                 status_code or error, delay)
        return "retrying"
    return "delivered" if ok else ("gone" if gone else "failed")
