"""A job that runs past the soft time limit fails with ``timeout``; the worker lives on and takes the next job."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid

from harness import Api, Stack, job_events

from db.models import Job
from db.session import session_scope
from portrait.errors import CATALOGUE


def test_soft_time_limit_fails_the_job_and_the_worker_goes_on(api: Api, stack: Stack, small_faces: list[bytes],
                                                               solvay_png: bytes) -> None:
    # The stack's worker has the default 240 s limit: swap it for one with a 3 s soft limit (the hard
    # limit stays far off, so only the soft path can end the job), and put it back afterwards.
    # The slow job: the child is stopped (SIGSTOP) mid-job for longer than the limit, so it runs past the
    # limit however fast or busy the machine is (a slow-to-restore photo alone did not: CPU speed decided;
    # a held URL input no longer works: URL inputs are fetched on CPU workers, worker/fetch.py).
    stack.procs["gpu"].stop()
    limited = stack.start_gpu_worker("gpu-soft-limit", {"TASK_SOFT_TIME_LIMIT_S": "3", "TASK_TIME_LIMIT_S": "120"})
    child = None
    try:
        stack.wait_ready("gpu-soft-limit")
        r = api.submit(solvay_png, "solvay.png", options='{"upscale": 1}')
        assert r.status_code == 202, r.text
        api.wait(r.json()["id"], statuses=("running",), timeout=60)
        child = int(subprocess.run(["pgrep", "-P", str(limited.popen.pid)], capture_output=True,
                                   text=True).stdout.split()[0])
        os.kill(child, signal.SIGSTOP)
        time.sleep(4.5)  # past the 3 s soft limit; the lease (6 s, renewed every 1 s) has not expired
        os.kill(child, signal.SIGCONT)
        slow = api.wait(r.json()["id"], timeout=120)
        assert slow["status"] == "failed", slow
        assert slow["error"]["code"] == "timeout" and "timeout" in CATALOGUE, slow["error"]
        assert slow["error"]["message"] == "ran past 3 s"
        assert slow["attempts"] == 1 and slow["output"] is None
        assert [(a, b) for a, b, _ in job_events(slow["id"]) if a != b] == [
            (None, "queued"), ("queued", "running"), ("running", "failed")]

        # the same worker process, same child, restores the next photo (a 112 px face: ~0.15 s idle)
        nxt = api.wait(api.submit(small_faces[0], options='{"upscale": 1}').json()["id"], timeout=60)
        assert nxt["status"] == "succeeded", nxt
        assert len(nxt["faces"]) == 1
        assert limited.alive()
        with session_scope() as s:
            workers = {s.get(Job, uuid.UUID(j["id"])).worker for j in (slow, nxt)}
        assert len(workers) == 1 and workers.pop().startswith("gpu-soft-limit-"), workers
    finally:
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGCONT)
        limited.stop()
        stack.start_gpu_worker("gpu")
        stack.wait_ready("gpu")
