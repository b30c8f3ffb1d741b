"""Bad input gets a clear error code, nothing leaks across clients, and the worker keeps running."""

from __future__ import annotations

import base64
import io
import uuid

import httpx
from harness import Api, Stack
from PIL import Image


def test_missing_or_bad_key_is_401(stack: Stack, api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {api.api_key}"}):
        r = httpx.get(f"{stack.api_url}/v1/jobs", headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"


def test_unknown_job_is_404(api: Api) -> None:
    r = api.http.get(f"/v1/jobs/{uuid.uuid4()}")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert api.http.get("/v1/jobs/not-a-uuid").json()["error"]["code"] == "validation_error"


def test_another_clients_job_is_404(stack: Stack, api: Api, portrait_jpeg: bytes) -> None:
    job = api.submit(portrait_jpeg, options='{"upscale": 1}').json()
    other = Api(stack)
    for r in (other.http.get(f"/v1/jobs/{job['id']}"), other.http.post(f"/v1/jobs/{job['id']}/cancel")):
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"
    assert other.http.get("/v1/jobs").json()["data"] == []
    # Nor can it name the first client's objects as input.
    r = other.http.post("/v1/jobs", json={"input": {"key": job["input"]["key"]}})
    assert r.status_code == 404
    api.wait(job["id"])


def test_rejected_at_submit_with_a_code(api: Api) -> None:
    cases = {
        b"": (400, "empty_input"),
        b"this is not an image at all": (422, "invalid_image"),
        b"\x89PNG\r\n\x1a\n" + b"\0" * 40: (422, "invalid_image"),
    }
    for data, (status, code) in cases.items():
        r = api.submit(data)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), data[:20]
    tiny = io.BytesIO()
    Image.new("RGB", (1, 1)).save(tiny, "PNG")
    r = api.submit(tiny.getvalue(), "tiny.png")
    assert (r.status_code, r.json()["error"]["code"]) == (422, "image_too_small")
    r = api.submit(b"x" * (9 * 1024 * 1024))
    assert (r.status_code, r.json()["error"]["code"]) == (413, "payload_too_large")
    r = api.http.post("/v1/jobs", content=b"raw", headers={"content-type": "image/jpeg"})
    assert (r.status_code, r.json()["error"]["code"]) == (415, "unsupported_media_type")
    r = api.submit(b"\xff\xd8", options='{"fidelity": 3}')
    assert (r.status_code, r.json()["error"]["code"]) == (422, "validation_error")
    assert "fidelity" in r.json()["error"]["message"]
    for bad in ('"most"', "true", '"0.5"', "-0.1"):  # a number in [0, 1] or "auto", nothing else
        r = api.submit(b"\xff\xd8", options=f'{{"fidelity": {bad}}}')
        assert (r.status_code, r.json()["error"]["code"]) == (422, "validation_error"), bad
        assert '"auto" or a number from 0 to 1' in r.json()["error"]["message"], r.json()
    r = api.http.post("/v1/jobs", json={"input": {"url": "ftp://example.com/a.jpg"}})
    assert r.status_code == 422
    assert api.http.get("/v1/jobs").json()["data"] == [], "nothing was created for rejected submits"


def test_truncated_jpeg_fails_the_job_and_the_worker_lives_on(api: Api, stack: Stack,
                                                              portrait_jpeg: bytes) -> None:
    r = api.submit(portrait_jpeg[: len(portrait_jpeg) // 2], "half.jpg")
    assert r.status_code == 202, "the header is fine, so the API accepts it"
    job = api.wait(r.json()["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "truncated_image", job["error"]
    assert job["output"] is None
    assert stack.procs["gpu"].alive()
    # The same worker restores the next photo.
    ok = api.wait(api.submit(portrait_jpeg, options='{"upscale": 1}').json()["id"])
    assert ok["status"] == "succeeded"


def test_cancel_a_queued_job(api: Api, stack: Stack, portrait_jpeg: bytes, solvay_png: bytes) -> None:
    # Keep the single GPU child busy so the next job is still queued when we cancel it.
    busy = api.submit(solvay_png, "solvay.png", options='{"upscale": 1}').json()
    job = api.submit(portrait_jpeg, options='{"upscale": 1}').json()
    r = api.http.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "canceled"
    again = api.http.post(f"/v1/jobs/{job['id']}/cancel")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "job_not_cancelable")
    assert api.wait(busy["id"])["status"] == "succeeded"
    final = api.http.get(f"/v1/jobs/{job['id']}").json()
    assert final["status"] == "canceled" and final["output"] is None and final["attempts"] == 0


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


#: forged cursors that used to reach Postgres (int(after), then a DataError: 500) or json.loads' recursion
FORGED = ["%%%", "", _b64('["abc"]'), _b64("[null]"), _b64("[1e30]"), _b64("[1e999]"), _b64("[2147483648]"),
          _b64("[-1]"), _b64("[true]"), _b64("[[1]]"), _b64("[" * 5000 + "]" * 5000), _b64('"x"'),
          _b64('["not-a-date", "not-a-uuid"]'), _b64('["2026-01-01T00:00:00", "8d3f1c52-6a59-4c55-9c0e-4b5e0f6a0b11"]'),
          _b64("[1, 2]"), "é", "A" * 600, base64.urlsafe_b64encode(b"\xff\xfe[1]").decode()]


def test_malformed_cursor_is_400_on_every_list(api: Api) -> None:
    from portrait.storage import client_prefix

    # its one item fails (input_missing): the batch exists, which is all the cursor needs
    batch = api.http.post("/v1/batches", json={"items": [{"key": f"{client_prefix(api.client.id)}inputs/none.jpg"}]})
    assert batch.status_code == 202, batch.text
    paths = ("/v1/jobs", "/v1/batches", f"/v1/batches/{batch.json()['id']}")
    for cursor in FORGED:
        for path in paths:
            r = api.http.get(path, params={"cursor": cursor})
            if cursor == "":  # an empty cursor is no cursor: the first page
                assert r.status_code == 200, (path, r.text)
                continue
            assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_cursor"), (path, cursor[:40], r.text)
    # the cursors the API issues still page
    first = api.http.get(paths[0], params={"limit": 1}).json()
    if first["next_cursor"]:
        assert api.http.get(paths[0], params={"cursor": first["next_cursor"]}).status_code == 200
