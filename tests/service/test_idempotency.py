"""Idempotency-Key with Stripe's semantics: a retried POST replays, never repeats."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from harness import Api, FileServer, Stack, wait_until
from sqlalchemy import func, update

from db.models import IdempotencyKey
from db.session import session_scope
from portrait.storage import client_prefix, get_storage


def count(api: Api, what: str) -> int:
    return len(api.http.get(f"/v1/{what}", params={"limit": 100}).json()["data"])


def test_replayed_batch_creates_nothing(api: Api, small_faces: list[bytes]) -> None:
    key = f"{client_prefix(api.client.id)}inputs/a.jpg"
    get_storage().put(key, small_faces[0])
    body = {"items": [{"key": key}, {"key": key}], "options": {"upscale": 1}}
    headers = {"Idempotency-Key": "batch-1"}
    first = api.http.post("/v1/batches", json=body, headers=headers)
    assert first.status_code == 202
    # Same request, keys reordered and re-spaced: the same JSON, so a replay.
    again = api.http.post("/v1/batches", content=b'{"options": {"upscale": 1},  "items": [{"key": "%s"}, '
                          b'{"key": "%s"}]}' % (key.encode(), key.encode()),
                          headers={**headers, "content-type": "application/json"})
    assert again.status_code == 202 and again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert count(api, "batches") == 1 and count(api, "jobs") == 2

    other = api.http.post("/v1/batches", json={**body, "options": {"upscale": 2}}, headers=headers)
    assert (other.status_code, other.json()["error"]["code"]) == (409, "idempotency_key_reused")
    path = api.http.post("/v1/uploads", json={}, headers=headers)
    assert path.json()["error"]["code"] == "idempotency_key_reused", "a key belongs to one endpoint"
    assert count(api, "batches") == 1 and count(api, "jobs") == 2


def test_multipart_replay_hashes_the_file_not_the_boundary(api: Api, small_faces: list[bytes]) -> None:
    headers = {"Idempotency-Key": "upload-1"}
    first = api.http.post("/v1/jobs", files={"file": ("a.jpg", small_faces[1])}, data={"options": '{"upscale": 1}'},
                          headers=headers)
    assert first.status_code == 202
    # A new multipart body (new boundary, another file name), same bytes and fields: a replay.
    again = api.http.post("/v1/jobs", files={"file": ("renamed.jpg", small_faces[1])},
                          data={"options": '{"upscale": 1}'}, headers=headers)
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    changed = api.http.post("/v1/jobs", files={"file": ("a.jpg", small_faces[2])},
                            data={"options": '{"upscale": 1}'}, headers=headers)
    assert (changed.status_code, changed.json()["error"]["code"]) == (409, "idempotency_key_reused")
    assert count(api, "jobs") == 1


def test_keys_are_per_client(stack: Stack, api: Api, small_faces: list[bytes]) -> None:
    other = Api(stack)
    for a in (api, other):
        r = a.http.post("/v1/jobs", files={"file": ("a.jpg", small_faces[1])}, headers={"Idempotency-Key": "same"})
        assert r.status_code == 202 and "idempotent-replayed" not in r.headers
    assert count(api, "jobs") == 1 and count(other, "jobs") == 1


@pytest.fixture
def slow_image(small_faces: list[bytes]) -> Iterator[tuple[str, threading.Event]]:
    """An allow-listed URL whose server holds the GET until released (a job that keeps running)."""
    release, asked = threading.Event(), threading.Event()

    def handler(path: str) -> tuple[int, dict[str, str], bytes]:
        asked.set()
        release.wait(30)
        return 200, {}, small_faces[4]

    srv = FileServer(handler)
    yield srv.url + "/slow.jpg", release, asked  # type: ignore[misc]
    release.set()
    srv.close()


def test_a_duplicate_while_the_first_runs_gets_the_same_job(api: Api, slow_image: tuple) -> None:
    """Once the first request committed its job, a duplicate replays the reply recorded with it (the same
    job, 202), rather than 409: the reply is recorded in the job's transaction (crash safety)."""
    url, release, asked = slow_image
    body = {"input": {"url": url}, "options": {"upscale": 1}}
    headers = {"Idempotency-Key": "held", "Prefer": "wait=30"}
    first: dict[str, httpx.Response] = {}
    t = threading.Thread(target=lambda: first.setdefault("r", api.http.post("/v1/jobs", json=body, headers=headers,
                                                                             timeout=60)))
    t.start()
    assert asked.wait(30), "the worker started fetching"
    dup = api.http.post("/v1/jobs", json=body, headers=headers)
    assert dup.status_code == 202 and dup.headers.get("idempotent-replayed") == "true", dup.text
    release.set()
    t.join(60)
    assert first["r"].status_code == 200 and first["r"].json()["status"] == "succeeded"
    assert dup.json()["id"] == first["r"].json()["id"]
    replay = api.http.post("/v1/jobs", json=body, headers=headers)
    assert replay.content == first["r"].content and replay.status_code == 200
    assert count(api, "jobs") == 1


def test_errors_worth_retrying_are_not_stored_and_old_keys_are_purged(stack: Stack, small_faces: list[bytes]) -> None:
    api = Api(stack, max_jobs_in_flight=1)
    prefix = client_prefix(api.client.id)
    body = {"items": [{"key": f"{prefix}a.jpg"}, {"key": f"{prefix}b.jpg"}]}
    r = api.http.post("/v1/batches", json=body, headers={"Idempotency-Key": "retry-me"})
    assert (r.status_code, r.json()["error"]["code"]) == (429, "too_many_jobs_in_flight")
    with session_scope() as s:
        s.execute(update(type(api.client)).where(type(api.client).id == api.client.id).values(max_jobs_in_flight=10))
    r = api.http.post("/v1/batches", json=body, headers={"Idempotency-Key": "retry-me"})
    assert r.status_code == 202 and "idempotent-replayed" not in r.headers, "the 429 was not replayed"
    first_id = r.json()["id"]

    # Past IDEMPOTENCY_TTL_S the retention task purges the key; the same key is then new work.
    with session_scope() as s:
        s.execute(update(IdempotencyKey).where(IdempotencyKey.client_id == api.client.id)
                  .values(created_at=func.now() - timedelta(days=3)))
    wait_until(lambda: _keys(api.client.id) == 0, 30, what="idempotency keys purged")
    again = api.http.post("/v1/batches", json=body, headers={"Idempotency-Key": "retry-me"})
    assert again.status_code == 202 and again.json()["id"] != first_id


def _keys(client_id: uuid.UUID) -> int:
    with session_scope() as s:
        return s.query(IdempotencyKey).filter(IdempotencyKey.client_id == client_id).count()


def test_a_key_survives_an_api_killed_between_commit_and_reply(api: Api, stack: Stack,
                                                                 small_faces: list[bytes]) -> None:
    """The job is committed; the API dies before its reply is stored (here: while ``Prefer: wait``
    holds it). Before, the key stayed "in progress" (409 for IDEMPOTENCY_LOCK_S) and then the retry
    created a second job; the reply is now recorded in the job's own transaction, so the retry replays it."""
    import contextlib
    import signal

    gpu = stack.procs["gpu"]
    gpu.kill(signal.SIGSTOP)  # nothing consumes: the job stays queued and the wait holds the reply
    headers = {"Idempotency-Key": f"crash-{uuid.uuid4()}", "Prefer": "wait=30"}
    before = count(api, "jobs")
    done = threading.Event()

    def submit() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the API dies under it
            api.http.post("/v1/jobs", files={"file": ("a.jpg", small_faces[3])}, data={"options": '{"upscale": 1}'},
                          headers=headers, timeout=60)
        done.set()

    try:
        threading.Thread(target=submit, daemon=True).start()
        wait_until(lambda: count(api, "jobs") == before + 1, 30, what="the job committed")
        stack.procs["api"].kill()  # SIGKILL: no reply, no cleanup
        assert done.wait(30)
        stack.start_api()
        retry = api.http.post("/v1/jobs", files={"file": ("a.jpg", small_faces[3])},
                              data={"options": '{"upscale": 1}'}, headers={**headers, "Prefer": "wait=0"})
        assert retry.status_code == 202, retry.text
        assert retry.headers.get("idempotent-replayed") == "true"
        assert count(api, "jobs") == before + 1, "the retry created a second job"
        newest = api.http.get("/v1/jobs", params={"limit": 1}).json()["data"][0]
        assert retry.json()["id"] == newest["id"]
    finally:
        gpu.kill(signal.SIGCONT)
    assert api.wait(retry.json()["id"])["status"] == "succeeded"
