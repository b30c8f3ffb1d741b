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
    sat idle until the task's time limit); an upload submitted meanwhile is restored at once. The sender
    picks the fetch queue: an API with FETCH_URL_INPUTS_ON_CPU on (the stack's own has it off)."""
    srv = DribbleServer(interval=0.5)
    server = stack.start_api(name="api-cpu-fetch", extra_env={"FETCH_URL_INPUTS_ON_CPU": "true"})
    try:
        t0 = time.monotonic()
        with httpx.Client(base_url=server.url, headers=api.http.headers, timeout=30) as http:
            r = http.post("/v1/jobs", json={"input": {"url": f"{srv.url}/slow.jpg"}, "options": {"upscale": 1}})
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
        server.stop()


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


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_malformed_input_gets_a_catalogued_json_4xx_never_a_500(api: Api, stack: Stack,
                                                                 portrait_jpeg: bytes) -> None:
    """Each of these answered a plain-text 500 before; a client mistake must get a documented 4xx."""
    import base64
    import json

    from portrait.errors import CATALOGUE

    prefix = f"clients/{api.client.id}/"
    bad_cursor = base64.urlsafe_b64encode(json.dumps(["2026-01-01T00:00:00\x00", "x"]).encode()).decode()
    cases = {
        "NUL in an input key": lambda: api.http.post("/v1/jobs", json={"input": {"key": prefix + "in\x00put"}}),
        "backslash-dotdot key": lambda: api.http.post("/v1/jobs", json={"input": {"key": prefix + "..\\..\\x"}}),
        "NUL in a batch item key": lambda: api.http.post("/v1/batches", json={"items": [{"key": prefix + "a\x00"}]}),
        "NUL in an upload filename": lambda: api.http.post("/v1/uploads", json={"filename": "a\x00b.jpg"}),
        "deeply nested multipart options": lambda: api.submit(portrait_jpeg, options=_nested(100_000)),
        "deeply nested JSON options": lambda: api.http.post(
            "/v1/jobs", content='{"input": {"key": "k"}, "options": ' + _nested(100_000) + "}",
            headers={"content-type": "application/json"}),
        "malformed batch cursor": lambda: api.http.get("/v1/batches", params={"cursor": bad_cursor}),
        "malformed job cursor": lambda: api.http.get("/v1/jobs", params={"cursor": bad_cursor}),
        "unknown top-level field": lambda: api.http.post("/v1/jobs", json={"input": {"key": prefix + "k"},
                                                                          "optoins": {"upscale": 4}}),
        "upscale: true": lambda: api.http.post("/v1/jobs", json={"input": {"key": prefix + "k"},
                                                                "options": {"upscale": True}}),
        "min_face_size out of range": lambda: api.http.post("/v1/jobs", json={"input": {"key": prefix + "k"},
                                                                             "options": {"min_face_size": 10**9}}),
    }
    wrong = []
    for what, call in cases.items():
        r = call()
        try:
            err = r.json()["error"]
            ok = (400 <= r.status_code < 500 and err["code"] in CATALOGUE
                  and CATALOGUE[err["code"]].http_status == r.status_code and "0x" not in err["message"])
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            wrong.append((what, r.status_code, r.text[:120]))
    assert not wrong, wrong


def test_bodies_and_headers_are_capped_before_they_are_read(api: Api, stack: Stack) -> None:
    """200 MiB JSON to /v1/batches, a chunked JSON /v1/jobs and a multipart upload without Content-Length
    were read whole (one wrote 1 GiB to disk before its 413); a 16 MiB header was read too."""
    sent = {"n": 0}

    def stream(total: int, head: bytes = b"", chunk: int = 1 << 20):
        def gen():
            yield head
            while sent["n"] < total:
                sent["n"] += chunk
                yield b" " * chunk
        return gen()

    # declared too large: refused before a byte of the body is read (raw socket: httpx won't lie)
    import socket

    url = httpx.URL(stack.api_url)
    with socket.create_connection((url.host, url.port), timeout=10) as sock:
        sock.sendall(f"POST /v1/batches HTTP/1.1\r\nhost: {url.host}\r\n"
                     f"authorization: {api.http.headers['authorization']}\r\ncontent-type: application/json\r\n"
                     f"content-length: {200 << 20}\r\n\r\n{{".encode())
        raw = b""
        while chunk := sock.recv(65536):  # the reply says connection: close; headers and body may
            raw += chunk  # come in separate segments
        head = raw.decode(errors="replace")
    assert head.startswith("HTTP/1.1 413") and "payload_too_large" in head, head[:300]
    # chunked (no Content-Length): refused once past the cap, long before the 200 MiB were sent
    part = b'--x\r\ncontent-disposition: form-data; name="file"; filename="a.jpg"\r\ncontent-type: image/jpeg\r\n\r\n'
    for path, ctype, head in (("/v1/jobs", "application/json", b'{"input": '),
                              ("/v1/batches", "application/json", b'{"items": ['),
                              ("/v1/jobs", "multipart/form-data; boundary=x", part)):
        sent["n"] = 0
        try:
            r = api.http.post(path, content=stream(200 << 20, head), headers={"content-type": ctype})
            assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large", (path, r.text)
        except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
            pass  # the server answered 413 and closed while we were still sending: also a refusal
        assert sent["n"] < 40 << 20, (path, sent["n"])
    # a 16 MiB header: the HTTP server refuses it; the API is fine afterwards
    try:
        r = httpx.get(f"{stack.api_url}/v1/jobs", headers={"authorization": "Bearer " + "a" * (16 << 20)},
                      timeout=30)
        assert r.status_code in (400, 431)
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
        pass
    assert api.http.get("/healthz").status_code == 200


def test_a_malformed_prefer_wait_is_ignored_not_misread(api: Api, stack: Stack, portrait_jpeg: bytes) -> None:
    """RFC 7240: a preference the server cannot parse is ignored. ``wait=1e9`` was read as ``wait=1``."""
    for prefer in ("wait=1e9", "wait=-5", "wait=abc"):
        r = api.http.post("/v1/jobs", files={"file": ("p.jpg", portrait_jpeg)}, data={"options": '{"upscale": 1}'},
                          headers={"prefer": prefer})
        assert r.status_code == 202 and "preference-applied" not in r.headers, (prefer, r.headers)
    r = api.http.post("/v1/jobs", files={"file": ("p.jpg", portrait_jpeg)}, data={"options": '{"upscale": 1}'},
                      headers={"prefer": "respond-async, wait=0.5"})
    assert r.headers.get("preference-applied") == "wait=0.5"
