"""Batch API throughput on real services (the dev stack of devstack/: Postgres, Redis, SeaweedFS, uvicorn,
Celery on CPU). Prints:

1. single-job submits/s (JSON, input by object key, one request per job) — the baseline;
2. items/s accepted by one ``POST /v1/batches`` of 1,000 items (same inputs), median of 3;
3. seconds from ``POST /v1/batches`` (200 small portraits, 112 px, upscale 1) to the
   ``batch.completed`` webhook, and the resulting photos/s on this machine's CPU worker;
4. fairness: client A submits ``--items`` photos, client B then 10; seconds until B's batch
   completes and how many of A's items finished before it (FIFO would be all of them). A's batch is
   then canceled.

Phases 1–2 run with the GPU worker stopped so restoration does not compete for CPU; their jobs
are then dropped. Usage: ``.venv/bin/python benchmarks/api_batches.py [--singles 200] [--photos 200]``.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis
from PIL import Image
from sqlalchemy import update

from db.models import Job, JobStatus
from db.session import session_scope
from devstack import Api, WebhookReceiver, running_stack, wait_until
from portrait.storage import client_prefix, get_storage
from restoration.paths import default_faces_dir

FACES = default_faces_dir() / "hq" / "london_neutral"


def small_faces(n: int) -> list[bytes]:
    paths = sorted(FACES.glob("*.jpg"))
    out = []
    for i in range(n):
        with Image.open(paths[i % len(paths)]) as im:
            buf = io.BytesIO()
            im.convert("RGB").resize((112, 112), Image.LANCZOS).save(buf, "JPEG", quality=88 + i // len(paths))
            out.append(buf.getvalue())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--singles", type=int, default=200)
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--photos", type=int, default=200)
    args = ap.parse_args()
    limits = dict(rate_limit_per_s=100000, rate_limit_burst=100000, max_jobs_in_flight=1000000)

    with tempfile.TemporaryDirectory() as tmp, running_stack(Path(tmp)) as stack:
        api = Api(stack, **limits)
        storage = get_storage()
        faces = small_faces(max(args.photos, 1))
        key = f"{client_prefix(api.client.id)}inputs/bench.jpg"
        storage.put(key, faces[0], "image/jpeg")
        stack.procs["gpu"].stop()

        body = {"input": {"key": key}, "options": {"upscale": 1}}
        for _ in range(10):  # warm up connections and caches
            api.http.post("/v1/jobs", json=body).raise_for_status()
        t0 = time.perf_counter()
        for _ in range(args.singles):
            api.http.post("/v1/jobs", json=body).raise_for_status()
        singles_s = time.perf_counter() - t0

        rates = []
        for _ in range(3):
            items = [{"key": key}] * args.items
            t0 = time.perf_counter()
            r = api.http.post("/v1/batches", json={"items": items, "options": {"upscale": 1}}, timeout=120)
            rates.append(args.items / (time.perf_counter() - t0))
            assert r.status_code == 202, r.text

        # Drop the accept-phase work before timing restoration.
        time.sleep(2)  # let the background sends finish
        r = redis.Redis.from_url(stack.env["REDIS_URL"])
        r.delete(stack.env["GPU_QUEUE"], stack.env["GPU_BULK_QUEUE"])
        with session_scope() as s:
            s.execute(update(Job).where(Job.client_id == api.client.id, Job.status == JobStatus.queued)
                      .values(status=JobStatus.canceled))

        stack.start_gpu_worker("gpu")
        stack.wait_ready("gpu")
        receiver = WebhookReceiver()
        prefix = client_prefix(api.client.id)
        items = []
        for i, data in enumerate(faces[:args.photos]):
            storage.put(f"{prefix}photos/{i}.jpg", data, "image/jpeg")
            items.append({"key": f"{prefix}photos/{i}.jpg"})
        t0 = time.time()  # wall clock: the receiver stamps arrivals with time.time()
        r = api.http.post("/v1/batches", json={"items": items, "options": {"upscale": 1},
                                               "webhook_url": f"{receiver.url}/done"})
        assert r.status_code == 202, r.text
        hit = wait_until(lambda: receiver.for_path("/done"), 1800, 0.1, "batch.completed")[0]
        completed_s = hit.at - t0
        payload = json.loads(hit.body)
        receiver.close()

        other = Api(stack, **limits)
        big = api.http.post("/v1/batches", json={"items": [items[i % len(items)] for i in range(args.items)],
                                                 "options": {"upscale": 1}}).json()
        wait_until(lambda: api.http.get(f"/v1/jobs/{big['job_ids'][0]}").json()["status"] == "succeeded", 60)
        small_items = [{"key": f"{client_prefix(other.client.id)}photos/{i}.jpg"} for i in range(10)]
        for i, it in enumerate(small_items):
            storage.put(it["key"], faces[i], "image/jpeg")
        t0 = time.perf_counter()
        small = other.http.post("/v1/batches", json={"items": small_items, "options": {"upscale": 1}}).json()
        wait_until(lambda: other.http.get(f"/v1/batches/{small['id']}").json()["status"] == "completed",
                   600, 0.1, "the small batch")
        small_s = time.perf_counter() - t0
        big_done = api.http.post(f"/v1/batches/{big['id']}/cancel").json()["counts"]["succeeded"]

    print(f"single-job submits (JSON, by key), {args.singles} sequential: "
          f"{args.singles / singles_s:.1f} submits/s ({1000 * singles_s / args.singles:.1f} ms each)")
    print(f"batch of {args.items} items accepted: median {statistics.median(rates):.0f} items/s "
          f"(runs: {', '.join(f'{x:.0f}' for x in rates)}); "
          f"{statistics.median(rates) / (args.singles / singles_s):.0f}x the single-submit rate")
    print(f"{args.photos} photos (112 px, upscale 1), one CPU worker: POST /v1/batches -> batch.completed webhook "
          f"in {completed_s:.1f} s ({args.photos / completed_s:.2f} photos/s); "
          f"counts {payload['data']['counts']['succeeded']} succeeded, {payload['data']['counts']['failed']} failed")
    print(f"fairness: 10-photo batch of client B submitted after client A's {args.items}-photo batch completed in "
          f"{small_s:.1f} s; {big_done} of A's items had finished by then (FIFO: all {args.items})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
