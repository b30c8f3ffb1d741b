"""What one photo costs the shared services: Postgres writes, Redis commands and messages, S3 bytes.

    .venv/bin/python benchmarks/capacity.py [--jobs 20] [--side 1080]

Against the real stack (devstack: SeaweedFS, Postgres, Redis, Celery workers, uvicorn; the sweeper and
retention held off so that only the photos' own traffic counts), it restores ``--jobs`` single jobs (a
one-face JPEG of ``--side`` px, ×2, a signed webhook each) and then a batch of as many items, and prints
per photo, from counters read before and after each run (the run waits for the webhooks, not by polling,
so no status request counts as a photo's cost; heartbeats at the production HEARTBEAT_S):

* Postgres: committed transactions, rows inserted / updated / deleted (``pg_stat_database`` of the
  stack's database) and WAL bytes (``pg_current_wal_lsn``; the whole server, idle otherwise);
* Redis: commands by name (``INFO commandstats``; the whole server), among them the messages sent
  (``LPUSH``) and Celery's event ``PUBLISH``es;
* S3: bytes stored (input + result objects, from the bucket's listing) and webhooks delivered.

These are the per-photo terms of the capacity model in docs/operations.md ("Capacity"). The generator
is the classical stand-in (the stack's default): what a photo costs the services does not depend on
the model, only its run time does, which benchmarks/pipeline.py and scripts/gpu_check.sh measure.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import redis
from PIL import Image

from devstack import Api, WebhookReceiver, running_stack, wait_until
from restoration.paths import default_faces_dir

PORTRAIT_DIR = default_faces_dir() / "hq" / "london_neutral"


def _photo(side: int) -> bytes:
    path = sorted(PORTRAIT_DIR.glob("*.jpg"))[0]
    with Image.open(path) as im:
        out = io.BytesIO()
        im.convert("RGB").resize((side, side), Image.LANCZOS).save(out, "JPEG", quality=90)
    return out.getvalue()


class Counters:
    """The services' counters at one moment."""

    def __init__(self, db_url: str, redis_url: str) -> None:
        self.dsn = db_url.replace("postgresql+psycopg://", "postgresql://")
        self.db_name = self.dsn.rsplit("/", 1)[1]
        self.redis = redis.Redis.from_url(redis_url)

    def read(self) -> dict[str, Any]:
        from portrait.settings import get_settings
        from portrait.storage import get_storage

        time.sleep(11)  # backends flush their statistics when idle, within PGSTAT_IDLE_INTERVAL (10 s)
        with psycopg.connect(self.dsn, autocommit=True) as c:
            c.execute("SELECT pg_stat_clear_snapshot()")
            row = c.execute("SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database "
                            "WHERE datname = %s", (self.db_name,)).fetchone()
            wal = c.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0]
        stats = self.redis.info("commandstats")
        commands = Counter({k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()})
        s3 = get_storage().s3.list_objects_v2(Bucket=get_settings().s3_bucket)
        stored = sum(o["Size"] for o in s3.get("Contents", []))
        return {"xact": row[0], "inserted": row[1], "updated": row[2], "deleted": row[3], "wal": int(wal),
                "redis": commands, "s3_bytes": stored, "s3_objects": s3.get("KeyCount", 0)}


def per_photo(before: dict[str, Any], after: dict[str, Any], n: int) -> dict[str, Any]:
    d = {k: (after[k] - before[k]) / n for k in ("xact", "inserted", "updated", "deleted", "wal", "s3_bytes",
                                                  "s3_objects")}
    d["redis"] = {k: (after["redis"][k] - before["redis"].get(k, 0)) / n for k in after["redis"]
                  if after["redis"][k] != before["redis"].get(k, 0)}
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--side", type=int, default=1080)
    args = ap.parse_args()
    photo = _photo(args.side)
    # the production cadence of leases and heartbeats; no sweeps or retention during the runs
    hold = {"SWEEP_INTERVAL_S": "3600", "RETENTION_INTERVAL_S": "3600", "HEARTBEAT_S": "10", "LEASE_S": "60",
            "QUEUED_STALE_S": "120"}
    receiver = WebhookReceiver()
    results = {}
    with tempfile.TemporaryDirectory() as tmp, running_stack(Path(tmp), hold) as stack:
        from portrait.storage import client_prefix, get_storage

        api = Api(stack, rate_limit_per_s=1e6, rate_limit_burst=1_000_000)
        counters = Counters(stack.env["DATABASE_URL"], stack.env["REDIS_URL"])
        warm = api.submit(photo, options='{"upscale": 2}').json()
        api.wait(warm["id"], timeout=120)

        before = counters.read()
        ids = [api.submit(photo, options='{"upscale": 2}', webhook_url=f"{receiver.url}/single").json()["id"]
               for _ in range(args.jobs)]
        # finished = its webhook arrived: no polling, whose GETs would count as the photos' traffic
        wait_until(lambda: len(receiver.for_path("/single")) >= args.jobs, 600, 0.5, what="the webhooks")
        results["single job"] = per_photo(before, counters.read(), args.jobs)

        prefix = client_prefix(api.client.id)
        for i in range(args.jobs):
            get_storage().put(f"{prefix}capacity/{i}.jpg", photo, "image/jpeg")
        before = counters.read()
        r = api.http.post("/v1/batches", json={"items": [{"key": f"{prefix}capacity/{i}.jpg"}
                                                         for i in range(args.jobs)],
                                               "options": {"upscale": 2}, "webhook_url": f"{receiver.url}/batch"})
        assert r.status_code == 202, r.text
        wait_until(lambda: receiver.for_path("/batch"), 600, 0.5, what="batch.completed")
        results["batch item"] = per_photo(before, counters.read(), args.jobs)
        for job_id in ids:
            assert api.http.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"
        assert api.http.get(f"/v1/batches/{r.json()['id']}").json()["counts"]["succeeded"] == args.jobs
        webhooks = {"single job": len(receiver.for_path("/single")) / args.jobs,
                    "batch item": len(receiver.for_path("/batch")) / args.jobs}
    receiver.close()

    print(f"\n{args.jobs} photos of {args.side} px (JPEG {len(photo) / 1024:.0f} KiB), x2; per photo:")
    print(f"{'':36s} {'single job':>12s} {'batch item':>12s}")
    rows = [("Postgres transactions", "xact"), ("Postgres rows inserted", "inserted"),
            ("Postgres rows updated", "updated"), ("Postgres rows deleted", "deleted"),
            ("WAL bytes", "wal"), ("S3 objects stored", "s3_objects"), ("S3 bytes stored", "s3_bytes")]
    for label, key in rows:
        print(f"{label:36s} {results['single job'][key]:12.1f} {results['batch item'][key]:12.1f}")
    print(f"{'webhooks delivered':36s} {webhooks['single job']:12.2f} {webhooks['batch item']:12.2f}")
    for kind in ("single job", "batch item"):
        top = sorted(results[kind]["redis"].items(), key=lambda kv: -kv[1])
        total = sum(v for _, v in top)
        print(f"Redis commands, {kind}: {total:.1f} = " + ", ".join(f"{k} {v:.1f}" for k, v in top[:8]))


if __name__ == "__main__":
    main()
