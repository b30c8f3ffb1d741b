"""Nothing is lost when a worker, a Redis message or a webhook receiver fails."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import redis
from harness import Api, Stack, WebhookReceiver, holds_for, job_events, lose_worker, wait_until
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from db import jobs as jobs_db
from db.models import Job, JobEvent, WebhookDelivery
from db.session import session_scope
from jobs import messages
from portrait.storage import get_storage, input_key


def _queue_len(stack: Stack, name: str) -> int:
    return redis.Redis.from_url(stack.env["REDIS_URL"]).llen(name)


def test_worker_killed_mid_job_still_finishes_once(api: Api, stack: Stack, receiver: WebhookReceiver,
                                                   solvay_png: bytes) -> None:
    hook = f"{receiver.url}/killed"
    job = api.submit(solvay_png, "solvay.png", options='{"upscale": 1}', webhook_url=hook).json()
    api.wait(job["id"], statuses=("running",), timeout=60)
    stack.procs["gpu"].kill()  # SIGKILL the whole worker: parent and child, no goodbye
    stack.procs["gpu"].popen.wait(10)

    stack.start_gpu_worker("gpu")
    stack.wait_ready("gpu")
    done = api.wait(job["id"], timeout=240)
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2
    transitions = [(a, b) for a, b, _ in job_events(job["id"]) if a != b]
    assert transitions == [(None, "queued"), ("queued", "running"), ("running", "queued"),
                           ("queued", "running"), ("running", "succeeded")]
    wait_until(lambda: receiver.for_path("/killed"), 30, what="webhook")
    holds_for(lambda: len(receiver.for_path("/killed")) == 1, 3, "one terminal webhook, not one per attempt")


def test_a_killed_worker_child_is_replaced_once_and_serves(api: Api, stack: Stack, solvay_png: bytes,
                                                          portrait_jpeg: bytes) -> None:
    """Any child death (OOM, hard time limit) makes the parent start a new child, which loads the pipeline
    before it reports UP. Celery's default 4 s wait for that was shorter than the load: each replacement
    was killed in turn, and the worker served nothing for a minute."""
    import subprocess

    gpu = stack.procs["gpu"]
    job = api.submit(solvay_png, "solvay.png", options='{"upscale": 1}').json()
    api.wait(job["id"], statuses=("running",), timeout=60)
    children = subprocess.run(["pgrep", "-P", str(gpu.popen.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) == 1, children
    t0 = time.monotonic()
    os.kill(int(children[0]), signal.SIGKILL)
    done = api.wait(job["id"], timeout=240)
    assert done["status"] == "succeeded" and done["attempts"] == 2, done
    after = api.wait(api.submit(portrait_jpeg, options='{"upscale": 1}').json()["id"], timeout=120)
    assert after["status"] == "succeeded"
    log = gpu.log.read_text(errors="replace")
    assert "Timed out waiting for UP message" not in log
    assert gpu.alive() and time.monotonic() - t0 < 200


def test_lost_message_is_recovered_by_the_sweeper(api: Api, stack: Stack, portrait_jpeg: bytes) -> None:
    """A job committed to Postgres whose message never reached Redis still runs — but only once it is
    QUEUED_STALE_S old: a younger one is a job the API is sending right now (write, then enqueue), and
    a second message from the sweeper would go to the sweeper's queue, not necessarily the API's."""
    jid = uuid.uuid4()
    key = input_key(api.client.id, jid)
    get_storage().put(key, portrait_jpeg)
    with session_scope() as s:
        jobs_db.create(s, client_id=api.client.id, job_id=jid, input_key=key, input_source="upload",
                       options={"upscale": 1})
    done = api.wait(str(jid), timeout=120)
    assert done["status"] == "succeeded"
    with session_scope() as s:
        created = s.scalar(select(Job.created_at).where(Job.id == jid))
        resent = s.scalars(select(JobEvent.created_at).where(JobEvent.job_id == jid,
                                                             JobEvent.reason.contains("sweeper"))).all()
    assert len(resent) == 1, job_events(str(jid))
    waited = (resent[0] - created).total_seconds()
    assert waited >= float(stack.env["QUEUED_STALE_S"]), f"re-sent {waited:.1f} s after the commit"


def test_redelivered_message_never_reruns_a_finished_job(api: Api, stack: Stack, portrait_jpeg: bytes) -> None:
    job = api.wait(api.submit(portrait_jpeg, options='{"upscale": 1}').json()["id"])
    assert job["status"] == "succeeded"
    before = job_events(job["id"])
    with session_scope() as s:
        row = s.get(Job, uuid.UUID(job["id"]))
    for _ in range(3):
        messages.send_job(row)
    wait_until(lambda: _queue_len(stack, stack.env["GPU_QUEUE"]) == 0, 30, what="messages consumed")

    def untouched() -> bool:
        after = api.http.get(f"/v1/jobs/{job['id']}").json()
        same = after["attempts"] == 1 and after["finished_at"] == job["finished_at"]
        return same and job_events(job["id"]) == before

    holds_for(untouched, 2, "the finished job untouched by the redelivered messages")


def test_attempts_are_capped(api: Api, stack: Stack, portrait_jpeg: bytes) -> None:
    """A job whose worker keeps dying (a poison image) ends failed/attempts_exhausted, not in a loop."""
    job = api.submit(portrait_jpeg, options='{"upscale": 1}').json()
    api.wait(job["id"])
    lose_worker(job["id"], attempts=int(stack.env["MAX_ATTEMPTS"]))  # the last allowed attempt's worker died
    done = api.wait(job["id"], statuses=("failed",), timeout=30)
    assert done["error"]["code"] == "attempts_exhausted"


def test_webhook_retries_with_backoff_then_delivers(api: Api, stack: Stack, receiver: WebhookReceiver,
                                                    portrait_jpeg: bytes) -> None:
    receiver.responses["/flaky"] = [500, 503, 200]
    job = api.submit(portrait_jpeg, options='{"upscale": 1}', webhook_url=f"{receiver.url}/flaky").json()
    api.wait(job["id"])
    hits = wait_until(lambda: (h := receiver.for_path("/flaky")) and len(h) >= 3 and h, 60, what="3 attempts")
    assert len({h.headers["webhook-id"] for h in hits}) == 1, "retries reuse the message id"
    for h in hits:
        Webhook(api.webhook_secret).verify(h.body, h.headers)
    assert hits[1].at - hits[0].at >= 0.3 and hits[2].at - hits[1].at >= 0.6, "exponential backoff"

    def recorded() -> tuple[list[tuple], str]:
        with session_scope() as s:
            rows = s.execute(select(WebhookDelivery.attempt, WebhookDelivery.status_code)
                             .where(WebhookDelivery.job_id == uuid.UUID(job["id"]))
                             .order_by(WebhookDelivery.attempt)).all()
            return [tuple(r) for r in rows], s.get(Job, uuid.UUID(job["id"])).webhook_state

    # the worker records an attempt once the receiver has answered it: the last one lands just after
    rows, state = wait_until(lambda: (r := recorded())[1] != "pending" and r, 30, 0.2, "the delivery recorded")
    assert rows == [(1, 500), (2, 503), (3, 200)]
    assert state == "delivered"


def test_webhook_410_stops_retries(api: Api, stack: Stack, receiver: WebhookReceiver,
                                   portrait_jpeg: bytes) -> None:
    receiver.responses["/gone"] = [410]
    job = api.submit(portrait_jpeg, options='{"upscale": 1}', webhook_url=f"{receiver.url}/gone").json()
    api.wait(job["id"])
    wait_until(lambda: receiver.for_path("/gone"), 30, what="webhook")
    holds_for(lambda: len(receiver.for_path("/gone")) == 1, 3, "no retry after 410 Gone")
    with session_scope() as s:
        assert s.get(Job, uuid.UUID(job["id"])).webhook_state == "gone"


def test_lost_start_webhook_is_resent_by_the_sweeper(api: Api, stack: Stack, receiver: WebhookReceiver,
                                                     portrait_jpeg: bytes) -> None:
    """job.started and job.succeeded messages dropped by Redis while no webhook worker ran both arrive."""
    hook = f"{receiver.url}/lost-start"
    stack.procs["cpu"].stop()
    try:
        r = api.http.post("/v1/jobs", files={"file": ("a.jpg", portrait_jpeg)},
                          data={"options": '{"upscale": 1}', "webhook_url": hook,
                                "webhook_events_filter": '["start", "completed"]'})
        assert r.status_code == 202, r.text
        job = api.wait(r.json()["id"], timeout=120)
        assert job["status"] == "succeeded"
        # Both webhook messages wait in Redis for the stopped worker; lose them (and queued sweeps).
        assert _queue_len(stack, stack.env["WEBHOOK_QUEUE"]) == 2
        redis.Redis.from_url(stack.env["REDIS_URL"]).delete(stack.env["WEBHOOK_QUEUE"], stack.env["MAINTENANCE_QUEUE"])
    finally:
        stack.start_cpu_worker("cpu")
        stack.wait_ready("cpu")

    def types() -> set[str]:
        return {json.loads(h.body)["type"] for h in receiver.for_path("/lost-start")}

    wait_until(lambda: types() == {"job.started", "job.succeeded"}, 60, what="both webhooks re-sent")
    holds_for(lambda: len(receiver.for_path("/lost-start")) == 2, 3, "delivered: later sweeps send nothing more")
    hits = receiver.for_path("/lost-start")
    hex_id = job["id"].replace("-", "")
    by_id = {h.headers["webhook-id"]: h for h in hits}
    assert set(by_id) == {f"msg_{hex_id}_start", f"msg_{hex_id}"}
    start_hit = by_id[f"msg_{hex_id}_start"]
    start = Webhook(api.webhook_secret).verify(start_hit.body, start_hit.headers)
    assert start["type"] == "job.started" and start["data"]["id"] == job["id"]
    with session_scope() as s:
        row = s.get(Job, uuid.UUID(job["id"]))
        assert (row.start_webhook_state, row.webhook_state) == ("delivered", "delivered")
        attempts = s.execute(select(WebhookDelivery.event_type, WebhookDelivery.attempt)
                             .where(WebhookDelivery.job_id == row.id)).all()
    assert sorted(tuple(a) for a in attempts) == [("job.started", 1), ("job.succeeded", 1)], \
        "each re-sent once, numbered from its own deliveries"
