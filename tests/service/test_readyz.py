"""/readyz answers quickly, and 503, when a dependency hangs instead of refusing."""

from __future__ import annotations

import socket
import time

import httpx
from harness import BIN, Stack, free_port, wait_until


def test_readyz_is_503_within_its_timeout_when_s3_hangs(stack: Stack) -> None:
    # A black hole: the kernel completes the TCP handshake (backlog) but nothing ever reads or answers,
    # so only a read timeout can end an S3 request to it.
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    port = free_port()
    api = stack.spawn("api-s3-hangs", [str(BIN / "uvicorn"), "api.app:app", "--host", "127.0.0.1",
                                        "--port", str(port)],
                      extra_env={"S3_ENDPOINT_URL": f"http://127.0.0.1:{hole.getsockname()[1]}",
                                 "READYZ_TIMEOUT_S": "1"})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, 30, 0.2, "second API")
        for _ in range(2):  # the second probe finds the first one's S3 check still hanging
            t0 = time.monotonic()
            r = httpx.get(f"{url}/readyz", timeout=30)
            elapsed = time.monotonic() - t0
            assert r.status_code == 503, r.text
            checks = r.json()["checks"]
            assert checks["database"] == "ok" and checks["redis"] == "ok", checks
            assert checks["s3"].startswith("error: timeout"), checks
            assert elapsed < 10, f"/readyz took {elapsed:.1f} s"
    finally:
        api.stop()
        hole.close()
