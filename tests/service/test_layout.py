"""Several children per GPU (GPU_WORKER_CHILDREN, worker/layout.py) keep every job guarantee of one child:
two jobs run at once in one worker, each child renews its own job's lease, a busy worker leaves further
messages in Redis, and one job's failure is its own."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime

import httpx
import redis
from harness import Api, FileServer, Stack, holds_for, wait_until


def _heartbeat(job_id: str) -> datetime:
    from db.models import Job
    from db.session import session_scope

    with session_scope() as s:
        return s.get(Job, uuid.UUID(job_id)).heartbeat_at


def test_two_children_run_two_jobs_at_once_and_a_bad_photo_fails_alone(
    stack: Stack, api: Api, small_faces: list[bytes],
) -> None:
    release = threading.Event()
    bodies = {"/good.jpg": small_faces[3], "/bad.jpg": b"this is not a photo " * 40}
    srv = FileServer(lambda path: (release.wait(60), (200, {"content-type": "image/jpeg"}, bodies[path]))[1])
    headers = {"Authorization": f"Bearer {api.api_key}"}
    try:
        with (stack.private_pair("two", {"GPU_WORKER_CHILDREN": "2"}) as (worker, server),
              httpx.Client(base_url=server.url, headers=headers, timeout=30) as http):
            ids = {}
            for path in bodies:
                r = http.post("/v1/jobs", json={"input": {"url": f"{srv.url}{path}"}, "options": {"upscale": 1}})
                assert r.status_code == 202, r.text
                ids[path] = r.json()["id"]

            def status(path: str) -> dict:
                return http.get(f"/v1/jobs/{ids[path]}").json()

            # both inputs are being fetched, each by its own child: one worker, two jobs running at once
            wait_until(lambda: all(status(p)["status"] == "running" for p in bodies), 60, 0.3,
                       "both jobs running at the same time")
            # each child renews its own job's lease
            beats = {p: _heartbeat(ids[p]) for p in bodies}
            wait_until(lambda: all(_heartbeat(ids[p]) > beats[p] for p in bodies), 15, 0.3,
                       "both leases renewed while both jobs run")
            # with every child busy the worker takes no further message: it stays in Redis for any worker
            r = http.post("/v1/jobs", files={"file": ("third.jpg", small_faces[5])}, data={"options": '{"upscale": 1}'})
            assert r.status_code == 202, r.text
            third = r.json()["id"]
            queue = worker.queue
            holds_for(lambda: redis.Redis.from_url(stack.env["REDIS_URL"]).llen(queue) == 1
                      and http.get(f"/v1/jobs/{third}").json()["status"] == "queued", 2,
                      "the third job's message waits in Redis, not hoarded by the busy worker")
            release.set()
            done = {p: wait_until(lambda p=p: (j := status(p))["status"] in ("succeeded", "failed") and j,
                                  120, 0.3, f"{p} to finish") for p in bodies}
            assert done["/bad.jpg"]["status"] == "failed"
            assert done["/bad.jpg"]["error"]["code"] == "invalid_image", done["/bad.jpg"]
            assert done["/good.jpg"]["status"] == "succeeded", done["/good.jpg"]
            assert wait_until(lambda: (j := http.get(f"/v1/jobs/{third}").json())["status"] in
                              ("succeeded", "failed") and j, 120, 0.3, "the third job")["status"] == "succeeded"
            assert worker.alive()
            log = worker.log.read_text(errors="replace")
            assert log.count("restoration pipeline ready") == 2, "each child loads its own pipeline"
    finally:
        release.set()
        srv.close()
