"""Service spine figures on this machine, against the real stack (SeaweedFS, Postgres, Redis, Celery).

    .venv/bin/python benchmarks/api_submit.py [--jobs 200] [--concurrency 8]

Prints: accepted submits/s (multipart upload → S3 → Postgres → Redis) with its ratio to bare
``GET /healthz`` requests/s in the same run (the framework's floor), and submit→running latency
(``started_at - created_at``) for jobs submitted to an idle worker, and end-to-end time per job.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
from PIL import Image

from devstack import Api, running_stack


def _rate(n: int, concurrency: int, fn) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as ex:
        list(ex.map(lambda _: fn(), range(n)))
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--latency-samples", type=int, default=10)
    args = ap.parse_args()

    buf = io.BytesIO()
    Image.new("RGB", (256, 256), (128, 100, 90)).save(buf, "JPEG", quality=90)
    small = buf.getvalue()

    with tempfile.TemporaryDirectory() as tmp, running_stack(Path(tmp)) as stack:
        api = Api(stack, rate_limit_per_s=1e6, rate_limit_burst=1_000_000)  # measure the service, not the limiter
        http = httpx.Client(base_url=stack.api_url, timeout=30, headers=api.http.headers,
                            limits=httpx.Limits(max_connections=args.concurrency * 2))

        def submit() -> None:
            r = http.post("/v1/jobs", files={"file": ("x.jpg", small)}, data={"options": '{"upscale": 1}'})
            assert r.status_code == 202, r.text

        health = _rate(args.jobs * 2, args.concurrency, lambda: http.get("/healthz").raise_for_status())
        stack.procs["gpu"].stop()  # measure acceptance alone, without a worker competing for 2 cores
        accept = _rate(args.jobs, args.concurrency, submit)
        accept_seq = _rate(max(args.jobs // 4, 10), 1, submit)

        # Latency on an idle worker: fresh client, empty queue, one job at a time.
        import redis
        from sqlalchemy import update

        from db.models import Job
        from db.session import session_scope

        with session_scope() as s:  # drop the acceptance backlog so the probe finds an idle worker
            s.execute(update(Job).where(Job.status == "queued").values(status="canceled"))
        redis.Redis.from_url(stack.env["REDIS_URL"]).delete(stack.env["GPU_QUEUE"])
        stack.start_gpu_worker("gpu")
        stack.wait_ready("gpu")
        lat, e2e = [], []
        probe = Api(stack)
        for _ in range(args.latency_samples):
            job = probe.submit(small, options='{"upscale": 1}').json()
            done = probe.wait(job["id"], timeout=120)
            start = datetime.fromisoformat(done["started_at"])
            created = datetime.fromisoformat(done["created_at"])
            lat.append((start - created).total_seconds() * 1000)
            e2e.append((datetime.fromisoformat(done["finished_at"]) - created).total_seconds() * 1000)

    print(f"{'metric':44s} {'value':>10s}")
    print(f"{'GET /healthz (baseline), req/s':44s} {health:10.1f}")
    print(f"{'POST /v1/jobs accepted, jobs/s (c=' + str(args.concurrency) + ')':44s} {accept:10.1f}")
    print(f"{'POST /v1/jobs accepted, jobs/s (sequential)':44s} {accept_seq:10.1f}")
    print(f"{'ratio submit / healthz':44s} {accept / health:10.2f}")
    print(f"{'submit -> running, ms (median of ' + str(len(lat)) + ')':44s} {statistics.median(lat):10.1f}")
    print(f"{'submit -> running, ms (max)':44s} {max(lat):10.1f}")
    print(f"{'submit -> succeeded, ms (median, 256px no face)':44s} {statistics.median(e2e):10.1f}")


if __name__ == "__main__":
    main()
