"""Hostile clients against the running stack: what they try, and the documented refusal they get."""

from __future__ import annotations

import time
import uuid

import httpx
from harness import Api, DribbleServer, Stack, job_events, wait_until
from sqlalchemy import select

from db.models import WebhookDelivery
from db.session import session_scope


def test_an_allow_listed_address_is_reachable_only_on_its_allowed_ports(api: Api, stack: Stack,
                                                                        portrait_jpeg: bytes) -> None:
    """The stack allow-lists 127.0.0.1 for the test servers' port range only (as a deployment should
    scope its entries): the API's own port, Redis and Postgres on loopback stay out of reach."""
    api_port = httpx.URL(stack.api_url).port
    for url in (f"http://127.0.0.1:{api_port}/healthz", "http://127.0.0.1:6379/", "http://127.0.0.1:5432/"):
        r = api.http.post("/v1/jobs", json={"input": {"url": url}})
        assert r.status_code == 422 and r.json()["error"]["code"] == "url_not_allowed", r.text
        r = api.submit(portrait_jpeg, webhook_url=url)
        assert r.status_code == 422 and r.json()["error"]["code"] == "url_not_allowed", r.text


def test_a_header_dribbling_origin_fails_at_the_fetch_deadline_and_never_holds_the_gpu(
        api: Api, stack: Stack, portrait_jpeg: bytes) -> None:
    """The origin sends its headers a byte every 0.5 s forever. The fetch runs on a CPU worker and ends at
    URL_FETCH_TIMEOUT_S in all (before: only each socket read was bounded, and the GPU worker fetched, so it
    sat idle until the task's time limit); an upload submitted meanwhile is restored at once."""
    srv = DribbleServer(interval=0.5)
    try:
        t0 = time.monotonic()
        r = api.http.post("/v1/jobs", json={"input": {"url": f"{srv.url}/slow.jpg"}, "options": {"upscale": 1}})
        assert r.status_code == 202, r.text
        slow = r.json()
        wait_until(lambda: srv.served >= 1, 30, what="the fetch reaching the slow origin")
        quick = api.wait(api.submit(portrait_jpeg, options='{"upscale": 1}').json()["id"], timeout=120)
        assert quick["status"] == "succeeded"
        done = api.wait(slow["id"], timeout=120)
        assert done["status"] == "failed" and done["error"]["code"] == "input_fetch_failed", done
        assert "longer than 15 s" in done["error"]["message"]
        assert time.monotonic() - t0 < 15 + 25
        assert quick["finished_at"] < done["finished_at"], "the upload waited for the slow fetch"
        transitions = [(a, b) for a, b, _ in job_events(slow["id"]) if a != b]
        assert ("queued", "running") not in transitions, "a GPU worker claimed the job to fetch it"
    finally:
        srv.close()


def test_a_header_dribbling_webhook_receiver_is_cut_off_at_the_webhook_timeout(
        api: Api, stack: Stack, portrait_jpeg: bytes) -> None:
    srv = DribbleServer(interval=0.5)
    try:
        job = api.wait(api.submit(portrait_jpeg, options='{"upscale": 1}', webhook_url=f"{srv.url}/hook").json()["id"])
        jid = uuid.UUID(job["id"])

        def first_attempt() -> WebhookDelivery | None:
            with session_scope() as s:
                return s.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == jid)).first()

        row = wait_until(first_attempt, 60, what="the first delivery attempt")
        assert row.status_code is None and "Timeout" in (row.error or ""), row.error
        assert row.duration_ms < (10 + 2) * 1000, row.duration_ms  # WEBHOOK_TIMEOUT_S is 10 s
    finally:
        srv.close()
