"""Operators watch queues in Flower: it runs on the same broker and sees the workers and their tasks."""

from __future__ import annotations

import httpx
from harness import Api, Stack, wait_until


def test_flower_refuses_to_run_without_authentication(stack: Stack) -> None:
    """An open Flower lets anyone who reaches its port stop the workers (/api/worker/shutdown)."""
    for env in ({"FLOWER_BASIC_AUTH": ""}, {"FLOWER_BASIC_AUTH": "a:b", "FLOWER_UNAUTHENTICATED_API": "true"}):
        flower = stack.start_flower("flower-open", extra_env=env)
        assert flower.popen.wait(60) != 0
        assert "refusing to start Flower" in flower.tail()


def test_flower_sees_the_workers(stack: Stack, api: Api, portrait_jpeg: bytes) -> None:
    flower = stack.start_flower(extra_env={"FLOWER_BASIC_AUTH": "ops:s3cret"})
    auth = ("ops", "s3cret")
    try:
        base = flower.url
        wait_until(lambda: httpx.get(f"{base}/api/workers", timeout=10).status_code == 401, 60, 1.0,
                   "Flower up, refusing requests without credentials")
        # /metrics names every task and worker host: credentials, as Prometheus sends them
        assert httpx.get(f"{base}/metrics", timeout=10).status_code == 401
        assert httpx.get(f"{base}/metrics", auth=("ops", "wrong"), timeout=10).status_code == 401
        scraped = httpx.get(f"{base}/metrics", auth=auth, timeout=10)
        assert scraped.status_code == 200 and "flower_" in scraped.text
        # the liveness probe says "OK" and nothing else, to anyone
        probe = httpx.get(f"{base}/healthcheck", timeout=10)
        assert (probe.status_code, probe.text) == (200, "OK")
        def both_kinds_inspected() -> dict | None:
            # a worker busy past Flower's inspect timeout is listed without its queues: ask again
            ws = httpx.get(f"{base}/api/workers", params={"refresh": "true"}, auth=auth, timeout=10).json()
            kinds = {k.split("-")[0] for k, v in ws.items() if "active_queues" in v}
            return ws if {"gpu", "cpu"} <= kinds else None

        workers = wait_until(both_kinds_inspected, 60, 1.0, "Flower /api/workers with the gpu and cpu workers")
        gpu = next(v for k, v in workers.items() if k.startswith("gpu-") and "active_queues" in v)
        assert stack.env["GPU_QUEUE"] in {q["name"] for q in gpu["active_queues"]}
        # Task events reach Flower: a restore task shows up in its task list.
        job = api.wait(api.submit(portrait_jpeg, options='{"upscale": 1}').json()["id"])
        tasks = wait_until(lambda: [t for t in httpx.get(f"{base}/api/tasks", auth=auth, timeout=10).json().values()
                                    if t.get("name") == "portrait.restore" and job["id"] in str(t.get("args"))],
                           30, 1.0, "the restore task in Flower")
        assert tasks[0]["state"] == "SUCCESS"
    finally:
        flower.stop()
