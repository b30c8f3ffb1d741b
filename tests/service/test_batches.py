"""Batches on real services: 200 photos in one request, one batch.completed, single jobs not starved."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from harness import Api, FileServer, Stack, WebhookReceiver, holds_for, wait_until
from PIL import Image
from standardwebhooks.webhooks import Webhook

from portrait.storage import client_prefix, get_storage


@pytest.fixture
def file_server(small_faces: list[bytes]) -> Iterator[str]:
    """A loopback server (allow-listed in the test stack) serving /<n>.jpg from small_faces."""
    srv = FileServer(lambda path: (200, {}, small_faces[int(path.strip("/").split(".")[0]) % len(small_faces)]))
    yield srv.url
    srv.close()


def upload(api: Api, data: bytes) -> dict[str, Any]:
    """POST /v1/uploads, then send the file to the store with the presigned POST."""
    up = api.http.post("/v1/uploads", json={"filename": "face.jpg"})
    assert up.status_code == 201, up.text
    body = up.json()
    r = httpx.post(body["url"], data=body["fields"], files={"file": ("face.jpg", data, "image/jpeg")}, timeout=30)
    assert r.status_code in (200, 201, 204), r.text
    return body


def wait_batch(api: Api, batch_id: str, timeout: float = 300) -> dict[str, Any]:
    return wait_until(lambda: (b := api.http.get(f"/v1/batches/{batch_id}").json())["status"] == "completed" and b,
                      timeout, 0.5, f"batch {batch_id} to complete")


def test_200_photo_batch_completes_once_and_single_jobs_go_first(
    api: Api, stack: Stack, receiver: WebhookReceiver, small_faces: list[bytes], file_server: str,
    portrait_jpeg: bytes,
) -> None:
    storage = get_storage()
    items: list[dict[str, Any]] = []
    for i, data in enumerate(small_faces[:190]):
        key = f"{client_prefix(api.client.id)}inputs/face-{i}.jpg"
        storage.put(key, data, "image/jpeg")
        items.append({"key": key})
    items += [{"upload": upload(api, data)["id"]} for data in small_faces[190:195]]
    items += [{"url": f"{file_server}/{i}.jpg"} for i in range(195, 200)]
    hook = f"{receiver.url}/batch200"

    r = api.http.post("/v1/batches", json={"items": items, "options": {"upscale": 1}, "webhook_url": hook})
    assert r.status_code == 202, r.text
    batch = r.json()
    assert batch["object"] == "batch" and batch["status"] == "processing"
    assert batch["total"] == 200 and len(batch["job_ids"]) == 200
    assert batch["counts"]["queued"] == 200 and batch["progress"] == 0.0

    # Single photos submitted after the whole batch is queued finish long before it, and back to
    # back: the interactive queue has strict priority (round-robin would slip batch items between).
    singles = [api.submit(portrait_jpeg, options='{"upscale": 1}').json()["id"] for _ in range(3)]
    singles = [api.wait(jid, timeout=120) for jid in singles]
    assert all(j["status"] == "succeeded" for j in singles)
    single = max(singles, key=lambda j: j["finished_at"])
    during = api.http.get(f"/v1/batches/{batch['id']}").json()
    assert during["status"] == "processing" and during["counts"]["queued"] > 100, during["counts"]

    done = wait_batch(api, batch["id"])
    assert done["counts"]["succeeded"] == 200, done["counts"]
    assert done["progress"] == 1.0 and done["completed_at"] > single["finished_at"]

    # Its jobs page through in item order, each exactly once.
    seen, all_jobs, cursor = [], [], None
    while True:
        page = api.http.get(f"/v1/batches/{batch['id']}", params={"limit": 64} | ({"cursor": cursor} if cursor else {}))
        jobs = page.json()["jobs"]
        seen += [j["id"] for j in jobs["data"]]
        all_jobs += jobs["data"]
        if not jobs["has_more"]:
            break
        cursor = jobs["next_cursor"]
    assert seen == batch["job_ids"]
    first_single = min(j["started_at"] for j in singles)
    started_between = [j for j in all_jobs if first_single < j["started_at"] < single["started_at"]]
    assert started_between == [], "no batch item ran between the single jobs"
    last = api.http.get(f"/v1/jobs/{seen[-1]}").json()
    assert last["batch_id"] == batch["id"] and last["input"]["source"] == "url"
    with Image.open(io.BytesIO(httpx.get(last["output"]["url"], timeout=30).content)) as im:
        assert im.size == (112, 112)

    # batch.completed arrives exactly once, signed; no per-job webhooks were asked for.
    wait_until(lambda: receiver.for_path("/batch200"), 60, what="batch webhook")
    holds_for(lambda: len(receiver.for_path("/batch200")) == 1, 3, "a sweep or two later: nothing re-sent it")
    (hit,) = receiver.for_path("/batch200")
    payload = Webhook(api.webhook_secret).verify(hit.body, hit.headers)
    assert payload["type"] == "batch.completed"
    assert payload["data"]["id"] == batch["id"] and payload["data"]["counts"]["succeeded"] == 200
    assert hit.headers["webhook-id"] == f"msg_batch_{batch['id'].replace('-', '')}"


def test_webhook_events_filter_and_a_failed_item(api: Api, receiver: WebhookReceiver,
                                                 small_faces: list[bytes]) -> None:
    prefix = client_prefix(api.client.id)
    get_storage().put(f"{prefix}inputs/a.jpg", small_faces[0])
    hook = f"{receiver.url}/filtered"
    r = api.http.post("/v1/batches", json={
        "items": [{"key": f"{prefix}inputs/a.jpg"}, {"key": f"{prefix}inputs/never-uploaded.jpg"}],
        "options": {"upscale": 1}, "webhook_url": hook, "webhook_events_filter": ["start", "completed"],
    })
    assert r.status_code == 202, r.text
    batch = wait_batch(api, r.json()["id"], timeout=120)
    assert batch["counts"]["succeeded"] == 1 and batch["counts"]["failed"] == 1
    ok_id, missing_id = r.json()["job_ids"]
    assert api.http.get(f"/v1/jobs/{missing_id}").json()["error"]["code"] == "input_missing"

    def types() -> list[tuple[str, str]]:
        out = []
        for h in receiver.for_path("/filtered"):
            p = json.loads(h.body)
            out.append((p["type"], p["data"]["id"]))
        return out

    want = {("job.started", ok_id), ("job.succeeded", ok_id), ("job.started", missing_id),
            ("job.failed", missing_id), ("batch.completed", batch["id"])}
    wait_until(lambda: set(types()) >= want, 30, what="five webhook events")
    assert sorted(types()) == sorted(want), "each event once"


def test_prefer_wait_returns_the_finished_job(api: Api, small_faces: list[bytes]) -> None:
    r = api.http.post("/v1/jobs", files={"file": ("a.jpg", small_faces[3])}, data={"options": '{"upscale": 1}'},
                      headers={"Prefer": "wait=60"}, timeout=90)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded" and r.json()["output"]["url"]
    assert r.headers["preference-applied"] == "wait=60"


def test_uploads_are_presigned_posts_the_store_enforces(api: Api, small_faces: list[bytes]) -> None:
    up = upload(api, small_faces[0])
    assert up["key"].startswith(client_prefix(api.client.id) + "uploads/")
    got = api.http.get(f"/v1/uploads/{up['id']}").json()
    assert got["uploaded"] is True and got["size"] == len(small_faces[0])

    fresh = api.http.post("/v1/uploads").json()
    assert api.http.get(f"/v1/uploads/{fresh['id']}").json()["uploaded"] is False
    too_big = b"\xff" * (fresh["max_bytes"] + 1)
    r = httpx.post(fresh["url"], data=fresh["fields"], files={"file": ("x.jpg", too_big)}, timeout=60)
    assert r.status_code == 400 and "EntityTooLarge" in r.text
    elsewhere = dict(fresh["fields"], key=up["key"].replace("uploads/", "results/"))
    r = httpx.post(fresh["url"], data=elsewhere, files={"file": ("x.jpg", small_faces[0])}, timeout=30)
    assert r.status_code == 403, "the policy allows exactly one key"
    assert api.http.get(f"/v1/uploads/{fresh['id']}").json()["uploaded"] is False

    # what docs/api.md says a policy allows: until it expires, replaying it replaces that one object
    for data in (small_faces[1], small_faces[2]):
        r = httpx.post(fresh["url"], data=fresh["fields"], files={"file": ("x.jpg", data)}, timeout=30)
        assert r.status_code in (200, 201, 204), r.text
    assert api.http.get(f"/v1/uploads/{fresh['id']}").json()["size"] == len(small_faces[2])


def test_invalid_batches_create_nothing(api: Api, stack: Stack, small_faces: list[bytes]) -> None:
    prefix = client_prefix(api.client.id)
    ok = {"key": f"{prefix}inputs/a.jpg"}
    cases = [
        ({"items": []}, 422, "validation_error"),
        ({"items": [ok] * 1001}, 422, "validation_error"),
        ({"items": [{"key": f"{prefix}a.jpg", "url": "https://example.com/a.jpg"}]}, 422, "validation_error"),
        ({"items": [ok, {"key": "clients/someone-else/inputs/a.jpg"}]}, 404, "not_found"),
        ({"items": [ok, {"upload": "00000000-0000-0000-0000-000000000000"}]}, 404, "not_found"),
        ({"items": [ok], "options": {"upscale": 3}}, 422, "validation_error"),
        ({"items": [ok], "webhook_events_filter": ["output"]}, 422, "validation_error"),
    ]
    for host in ("10.0.0.1", "169.254.169.254", "[::1]", "100.64.0.1", "[fd00:ec2::254]", "0.0.0.0"):
        cases.append(({"items": [ok, {"url": f"http://{host}/a.jpg"}]}, 422, "url_not_allowed"))
        cases.append(({"items": [ok], "webhook_url": f"http://{host}/hook"}, 422, "url_not_allowed"))
    for body, status, code in cases:
        r = api.http.post("/v1/batches", json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (body if len(str(body)) < 300 else "")
    for host in ("10.0.0.1", "169.254.169.254"):
        r = api.http.post("/v1/jobs", json={"input": {"url": f"http://{host}/latest/meta-data/"}})
        assert (r.status_code, r.json()["error"]["code"]) == (422, "url_not_allowed")
        assert host in r.json()["error"]["message"]
    assert api.http.get("/v1/batches").json()["data"] == []
    assert api.http.get("/v1/jobs").json()["data"] == []


def test_a_batch_whose_messages_were_lost_still_completes(api: Api, small_faces: list[bytes]) -> None:
    """Committed to Postgres, never sent to Redis (the API died right after the commit): the sweeper sends."""
    from db import batches as batches_db
    from db.session import session_scope

    prefix = client_prefix(api.client.id)
    items = []
    for i in range(2):
        get_storage().put(f"{prefix}lost/{i}.jpg", small_faces[30 + i])
        items.append(batches_db.NewItem(uuid.uuid4(), f"{prefix}lost/{i}.jpg", "object"))
    with session_scope() as s:
        batch = batches_db.create(s, client_id=api.client.id, items=items, options={"upscale": 1},
                                  webhook_url=None, webhook_events_filter=[])
    done = wait_batch(api, str(batch.id), timeout=120)
    assert done["counts"]["succeeded"] == 2
