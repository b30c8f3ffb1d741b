"""End to end on real services: HTTP submit → Redis → Celery worker → S3 + Postgres → signed webhook."""

from __future__ import annotations

import io
import json

import httpx
from harness import Api, Stack, WebhookReceiver, job_events, url_port, wait_until
from PIL import Image
from standardwebhooks.webhooks import Webhook

from restoration.classical import CLASSICAL_VERSION
from restoration.generator import read_generator_metadata
from restoration.pipeline import shipped_model


def test_portrait_is_restored_and_webhook_is_signed(
    api: Api, stack: Stack, receiver: WebhookReceiver, portrait_jpeg: bytes
) -> None:
    hook = f"{receiver.url}/e2e"
    r = api.submit(portrait_jpeg, options=json.dumps({"upscale": 2, "fidelity": 0.7}), webhook_url=hook)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "queued" and job["object"] == "job"
    assert job["options"]["upscale"] == 2

    job = api.wait(job["id"])
    assert job["status"] == "succeeded", job
    assert job["error"] is None
    assert job["attempts"] == 1
    assert job["model_version"] == CLASSICAL_VERSION, "the job records which model ran (MODEL_PATH here)"
    assert len(job["faces"]) >= 1, "a studio portrait has a face"
    assert all(f["fidelity"] == 0.7 for f in job["faces"]), "each face reports the blend it got"
    assert {"detect", "total"} <= set(job["timings_ms"]), job["timings_ms"]

    # The result downloads through the presigned URL (SeaweedFS checks the signature) at 2x size.
    out = job["output"]
    assert out["width"] == 960 and out["height"] == 960
    got = httpx.get(out["url"], timeout=30)
    assert got.status_code == 200
    with Image.open(io.BytesIO(got.content)) as im:
        assert im.size == (960, 960)
        im.load()
    # Tampering with the signature is refused by the store.
    assert httpx.get(out["url"].replace("X-Amz-Signature=", "X-Amz-Signature=0"), timeout=30).status_code == 403

    transitions = [(a, b) for a, b, _ in job_events(job["id"]) if a != b]
    assert transitions == [(None, "queued"), ("queued", "running"), ("running", "succeeded")]

    # The webhook arrives once, signed per Standard Webhooks with this client's secret.
    wait_until(lambda: receiver.for_path("/e2e"), 30, what="webhook")
    (hit,) = receiver.for_path("/e2e")
    payload = Webhook(api.webhook_secret).verify(hit.body, hit.headers)
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["id"] == job["id"]
    assert hit.headers["webhook-id"] == f"msg_{job['id'].replace('-', '')}"
    assert hit.headers["webhook-signature"].startswith("v1,")
    # A forged body fails verification.
    forged = hit.body.replace(b"succeeded", b"failed")
    try:
        Webhook(api.webhook_secret).verify(forged, hit.headers)
        raise AssertionError("forged payload verified")
    except Exception as e:  # noqa: BLE001
        assert "signature" in str(e).lower()


def test_list_filter_and_pagination(api: Api, stack: Stack, portrait_jpeg: bytes) -> None:
    ids = [api.submit(portrait_jpeg, options='{"upscale": 1}').json()["id"] for _ in range(3)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.http.get("/v1/jobs", params=params).json()
        seen += [j["id"] for j in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert seen == list(reversed(ids)), "newest first, every job exactly once"
    for i in ids:
        api.wait(i)
    done = api.http.get("/v1/jobs", params={"status": "succeeded", "limit": 100}).json()["data"]
    assert {j["id"] for j in done} == set(ids)
    assert api.http.get("/v1/jobs", params={"status": "queued"}).json()["data"] == []


def test_json_submit_of_an_object_in_the_bucket(api: Api, stack: Stack, portrait_jpeg: bytes) -> None:
    from portrait.storage import client_prefix, get_storage

    key = f"{client_prefix(api.client.id)}uploads/portrait.jpg"
    get_storage().put(key, portrait_jpeg, "image/jpeg")
    r = api.http.post("/v1/jobs", json={"input": {"key": key}, "options": {"upscale": 1}})
    assert r.status_code == 202, r.text
    job = api.wait(r.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["input"] == {"source": "object", "key": key}
    assert job["output"]["width"] == 480


def test_json_submit_of_a_url(api: Api, stack: Stack, portrait_jpeg: bytes) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class Serve(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("content-length", str(len(portrait_jpeg)))
            self.end_headers()
            self.wfile.write(portrait_jpeg)

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", url_port()), Serve)
    Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/face.jpg"
        r = api.http.post("/v1/jobs", json={"input": {"url": url}, "options": {"upscale": 1}})
        assert r.status_code == 202, r.text
        job = api.wait(r.json()["id"])
        assert job["status"] == "succeeded", job
        assert job["input"]["url"] == url
    finally:
        srv.shutdown()


def test_a_worker_with_default_settings_serves_the_shipped_model(stack: Stack, api: Api,
                                                                 portrait_jpeg: bytes) -> None:
    """What a deployment gets without MODEL_PATH: the learned restorer, named in the job."""
    headers = {"Authorization": f"Bearer {api.api_key}"}
    with (stack.private_pair("default", {"MODEL_PATH": ""}) as (_worker, server),  # empty = unset
          httpx.Client(base_url=server.url, headers=headers, timeout=30) as http):
        r = http.post("/v1/jobs", files={"file": ("p.jpg", portrait_jpeg)}, data={"options": '{"upscale": 1}'})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        job = wait_until(lambda: (j := http.get(f"/v1/jobs/{job_id}").json())["status"] in
                         ("succeeded", "failed") and j, 240, 0.5, "the job to finish")
    assert job["status"] == "succeeded", job
    assert job["model_version"] == read_generator_metadata(shipped_model())["model_version"]
    assert len(job["faces"]) == 1 and job["timings_ms"]["generate"] > 0
