"""POST /v1/batches/{id}/cancel on real services: queued items are canceled, started ones finish,
the batch completes once."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

from harness import Api, FileServer, Stack, WebhookReceiver, holds_for, job_events, wait_until
from test_batches import wait_batch

from portrait.storage import client_prefix, get_storage


def test_cancel_leaves_started_items_and_completes_the_batch_once(
    api: Api, stack: Stack, receiver: WebhookReceiver, small_faces: list[bytes],
) -> None:
    release = threading.Event()
    # Item 1 is a URL whose server answers only when released: it stays running during the cancel.
    srv = FileServer(lambda _path: (release.wait(60), (200, {}, small_faces[9]))[1])
    try:
        prefix = client_prefix(api.client.id)
        keys = [f"{prefix}cancel/{i}.jpg" for i in range(9)]
        for i, key in enumerate(keys):
            get_storage().put(key, small_faces[40 + i], "image/jpeg")
        items = [{"key": keys[0]}, {"url": f"{srv.url}/slow.jpg"}] + [{"key": k} for k in keys[1:]]
        hook = f"{receiver.url}/cancel-batch"
        r = api.http.post("/v1/batches", json={"items": items, "options": {"upscale": 1}, "webhook_url": hook,
                                               "webhook_events_filter": ["completed"]})
        assert r.status_code == 202, r.text
        batch_id, (first, slow, *rest) = r.json()["id"], r.json()["job_ids"]
        done_first = api.wait(first, timeout=60)
        assert done_first["status"] == "succeeded"
        api.wait(slow, statuses=("running",), timeout=60)

        other = Api(stack)
        try:
            r = other.http.post(f"/v1/batches/{batch_id}/cancel")
            assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
        finally:
            other.http.close()
        counts = api.http.get(f"/v1/batches/{batch_id}").json()["counts"]
        assert counts["queued"] == 8, "another client canceled nothing"

        r = api.http.post(f"/v1/batches/{batch_id}/cancel")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["object"] == "batch" and body["status"] == "processing", body
        assert {k: v for k, v in body["counts"].items() if v} == {"succeeded": 1, "running": 1, "canceled": 8}
        assert body["progress"] == 0.9
        again = api.http.post(f"/v1/batches/{batch_id}/cancel")
        assert again.status_code == 200 and again.json()["counts"] == body["counts"], "idempotent"

        release.set()
        done = wait_batch(api, batch_id, timeout=60)
        assert {k: v for k, v in done["counts"].items() if v} == {"succeeded": 2, "canceled": 8}

        # The running item finished normally; the first one is untouched; canceled ones never ran,
        # although the messages already sent for some of them were delivered to the worker later.
        assert api.http.get(f"/v1/jobs/{slow}").json()["status"] == "succeeded"
        assert api.http.get(f"/v1/jobs/{first}").json()["finished_at"] == done_first["finished_at"]
        for jid in rest:
            job = api.http.get(f"/v1/jobs/{jid}").json()
            assert (job["status"], job["attempts"], job["started_at"]) == ("canceled", 0, None), job
            assert [(a, b) for a, b, _ in job_events(jid)] == [(None, "queued"), ("queued", "canceled")]

        # One batch.completed, after the last running item; one terminal webhook per job.
        def hits() -> Counter[tuple[str, str]]:
            return Counter((p["type"], p["data"]["id"]) for p in
                           (json.loads(h.body) for h in receiver.for_path("/cancel-batch")))

        want = Counter({("batch.completed", batch_id): 1, ("job.succeeded", first): 1, ("job.succeeded", slow): 1})
        want.update({("job.canceled", jid): 1 for jid in rest})
        wait_until(lambda: sum(hits().values()) >= 11, 30, what="11 webhooks")
        holds_for(lambda: hits() == want, 3, "one webhook each; a sweep or two later, nothing re-sent")
        completed = next(json.loads(h.body) for h in receiver.for_path("/cancel-batch")
                         if json.loads(h.body)["type"] == "batch.completed")
        assert completed["data"]["counts"]["canceled"] == 8 and completed["data"]["status"] == "completed"
    finally:
        release.set()
        srv.close()


def test_cancel_with_nothing_running_completes_the_batch_in_the_call(
    api: Api, receiver: WebhookReceiver, small_faces: list[bytes],
) -> None:
    release = threading.Event()
    srv = FileServer(lambda _path: (release.wait(60), (200, {}, small_faces[9]))[1])
    try:
        # A single job holds the only worker, so none of the batch's items can start.
        single = api.http.post("/v1/jobs", json={"input": {"url": f"{srv.url}/hold.jpg"},
                                                 "options": {"upscale": 1}}).json()
        api.wait(single["id"], statuses=("running",), timeout=60)
        prefix = client_prefix(api.client.id)
        get_storage().put(f"{prefix}idle/0.jpg", small_faces[60], "image/jpeg")
        r = api.http.post("/v1/batches", json={"items": [{"key": f"{prefix}idle/0.jpg"}] * 3,
                                               "webhook_url": f"{receiver.url}/cancel-idle"})
        assert r.status_code == 202, r.text
        r = api.http.post(f"/v1/batches/{r.json()['id']}/cancel")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "completed" and r.json()["counts"]["canceled"] == 3, r.json()
        release.set()
        assert api.wait(single["id"], timeout=60)["status"] == "succeeded"
    finally:
        release.set()
        srv.close()
    wait_until(lambda: receiver.for_path("/cancel-idle"), 30, what="batch.completed")
    holds_for(lambda: len(receiver.for_path("/cancel-idle")) == 1, 3, "batch.completed sent once")
    (hit,) = receiver.for_path("/cancel-idle")
    assert json.loads(hit.body)["type"] == "batch.completed"


def test_cancel_frees_the_clients_dispatch_slots_at_once(api: Api, stack: Stack, small_faces: list[bytes]) -> None:
    """Canceled items that had been sent free their client's fair-dispatch slots: the client's next
    batch is sent right away, not at the next sweep (beat is stopped here, so no sweep comes)."""
    from harness import wait_until
    from sqlalchemy import func, select

    from db.models import Job
    from db.session import session_scope
    from portrait.settings import get_settings

    cap = get_settings().bulk_in_flight_per_client
    release = threading.Event()
    srv = FileServer(lambda _path: (release.wait(60), (200, {}, small_faces[9]))[1])

    def sent(batch_id: str) -> int:
        with session_scope() as s:
            return s.scalar(select(func.count()).where(Job.batch_id == batch_id, Job.enqueued_at.is_not(None)))

    try:
        single = api.http.post("/v1/jobs", json={"input": {"url": f"{srv.url}/hold.jpg"},
                                                 "options": {"upscale": 1}}).json()
        api.wait(single["id"], statuses=("running",), timeout=60)  # holds the only worker
        prefix = client_prefix(api.client.id)
        get_storage().put(f"{prefix}slots/0.jpg", small_faces[61], "image/jpeg")
        item = {"key": f"{prefix}slots/0.jpg"}
        first = api.http.post("/v1/batches", json={"items": [item] * cap, "options": {"upscale": 1}}).json()
        wait_until(lambda: sent(first["id"]) == cap, 10, what="the first batch dispatched")
        second = api.http.post("/v1/batches", json={"items": [item] * 2, "options": {"upscale": 1}}).json()
        holds_for(lambda: sent(second["id"]) == 0, 1, "the client's slots are full")
        stack.procs["beat"].stop()
        time.sleep(3)  # a sweep already scheduled has run by now
        r = api.http.post(f"/v1/batches/{first['id']}/cancel")
        assert r.status_code == 200 and r.json()["counts"]["canceled"] == cap, r.text
        wait_until(lambda: sent(second["id"]) == 2, 10, what="the second batch dispatched after the cancel")
        one = second["job_ids"][0]
        assert api.http.post(f"/v1/jobs/{one}/cancel").status_code == 200
        release.set()
        assert wait_batch(api, second["id"], 60)["counts"]["succeeded"] == 1
    finally:
        release.set()
        srv.close()
        if not stack.procs["beat"].alive():
            stack.start_beat()
