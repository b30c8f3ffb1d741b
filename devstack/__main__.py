"""``make dev`` (``python -m devstack``): the API, a GPU and a CPU worker, beat and Flower against the
local Redis and Postgres, with a local SeaweedFS as S3 unless S3_ENDPOINT_URL is set. Fixed ports (API
:8000, Flower :5555, worker exporters :9808/:9809, S3 :8333), logs in .run/dev/; Ctrl-C stops everything,
and so does any one process exiting.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time

from devstack.stack import BIN, ROOT, Stack, ensure_database, start_seaweedfs

RUN = ROOT / ".run" / "dev"
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/portrait"


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    RUN.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even when started from a script that ignores it
    stack = Stack(tmp=RUN, env={}, unique_logs=False)
    try:
        if not os.environ.get("S3_ENDPOINT_URL"):
            access, secret = "dev", "dev-secret"
            s3 = start_seaweedfs(stack, access, secret, ports=(9333, 8080, 8888, 8333), volume_size_mb=256,
                                 volume_max=None)
            stack.env.update(S3_ENDPOINT_URL=s3, S3_ACCESS_KEY_ID=access, S3_SECRET_ACCESS_KEY=secret)
            print(f"SeaweedFS S3 on :8333 (log {stack.procs['seaweedfs'].log})")
        db_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
        stack.env["DATABASE_URL"] = db_url
        stack.env.setdefault("CPU_WORKER_CONCURRENCY", os.environ.get("CPU_WORKER_CONCURRENCY", "4"))
        os.environ.update(stack.env)
        ensure_database(db_url)
        from db.session import migrate

        migrate(db_url)
        stack.start_worker("gpu", "gpu", metrics_port=9808, hostname="gpu@%h", celery_args=())
        stack.start_worker("cpu", "cpu", metrics_port=9809, hostname="cpu@%h", celery_args=())
        stack.start_beat()
        # Flower never runs without authentication (flowerconfig.py refuses): a random password unless one is set
        auth = os.environ.get("FLOWER_BASIC_AUTH") or f"dev:{secrets.token_hex(12)}"
        stack.start_flower(port=5555, extra_env={"FLOWER_BASIC_AUTH": auth})
        stack.start_api(port=8000)
        print(f"API http://127.0.0.1:8000/docs   Flower http://127.0.0.1:5555 ({auth})   logs in {RUN}/")
        print("Metrics: http://127.0.0.1:8000/metrics, GPU worker :9808/metrics, CPU worker :9809/metrics")
        print(f"Create a client: {BIN / 'portrait'} create-client dev")
        while all(p.alive() for p in stack.procs.values()):
            time.sleep(0.5)
        dead = [n for n, p in stack.procs.items() if not p.alive()]
        print(f"{', '.join(dead)} exited; stopping the stack (logs in {RUN}/)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop_all()


if __name__ == "__main__":
    sys.exit(main())
