"""What drives a running stack from outside: an API client bound to a fresh client row, and a loopback
receiver that records the webhooks the stack sends. Shared by the integration tests and the service
benchmarks, so both measure the service through the same client code.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from devstack.stack import Stack, url_port, wait_until


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class WebhookReceiver:
    """A local HTTP server that records POSTs; ``responses`` maps a path to a list of status codes
    answered in turn (the last one repeats), 200 by default. ``host`` is the address it binds: loopback,
    or ``0.0.0.0`` for senders in containers (``url`` stays the loopback one)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.received: list[Received] = []
        self.responses: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                      body, time.time()))
                    codes = receiver.responses.get(self.path, [200])
                    code = codes.pop(0) if len(codes) > 1 else codes[0]
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, url_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def for_path(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def close(self) -> None:
        self.server.shutdown()



class Api:
    """An API client bound to one freshly created client (API key + webhook secret, ``webhook_secret``).

    ``limits`` are the client's own overrides (rate_limit_per_s, rate_limit_burst,
    max_jobs_in_flight, retention_s), so one stack serves tests that need tiny limits.
    """

    def __init__(self, stack: Stack, **limits: Any) -> None:
        from db.admin import create_client, webhook_secrets

        self.client, self.api_key = create_client(f"test-{uuid.uuid4().hex[:6]}", **limits)
        self.webhook_secret = webhook_secrets(self.client.id)[0].secret
        self.http = httpx.Client(base_url=stack.api_url, timeout=30,
                                 headers={"Authorization": f"Bearer {self.api_key}"})

    def submit(self, data: bytes, filename: str = "photo.jpg", options: str | None = None,
               webhook_url: str | None = None) -> httpx.Response:
        form: dict[str, Any] = {}
        if options is not None:
            form["options"] = options
        if webhook_url is not None:
            form["webhook_url"] = webhook_url
        return self.http.post("/v1/jobs", files={"file": (filename, data)}, data=form)

    def wait(self, job_id: str, statuses: tuple[str, ...] = ("succeeded", "failed", "canceled"),
             timeout: float = 180) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            job = self.http.get(f"/v1/jobs/{job_id}").json()
            return job if job["status"] in statuses else None

        return wait_until(done, timeout, 0.3, f"job {job_id} to reach {statuses}")

