"""The stack as processes: SeaweedFS (S3 that checks signatures and presigned expiry), uvicorn, the
Celery workers, beat and Flower, plus a Postgres database and a Redis DB to run them on.

One module starts them for every caller: ``make dev`` (devstack/__main__.py, fixed ports, the
``portrait`` database), and the integration tests and service benchmarks (``running_stack``: a fresh
database, Redis DB, bucket, queues and ports per run, all torn down after). Celery processes are started
as ``portrait worker gpu|cpu``, ``portrait beat`` and ``portrait flower`` (portrait/cli.py owns their
command lines), so what runs here is what runs in production.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ADMIN_DSN = os.environ.get("TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
#: what an isolated stack's workers skip: syncing with (mingle) and watching (gossip) other workers
QUIET_WORKER = ("--without-mingle", "--without-gossip")


def portrait_command(*args: str) -> list[str]:
    """``portrait ARGS`` run by this interpreter from the repository root (the checkout's own modules,
    whatever console script is first on PATH)."""
    return [sys.executable, "-m", "portrait.cli", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: Loopback ports the tests' own receivers and file servers listen on, and the only loopback ports the
#: stack's URL_ALLOWLIST opens (below Linux's ephemeral range, so the API and Flower never land in it).
URL_PORTS = (31000, 31999)


def url_port() -> int:
    """A free loopback port inside URL_PORTS, for a server the stack may reach by URL."""
    for _ in range(200):
        p = random.randint(*URL_PORTS)
        if _port_free(p):
            return p
    raise RuntimeError(f"no free port in {URL_PORTS}")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def weed_ports() -> list[int]:
    """Four ports p with p and p+10000 free (SeaweedFS puts gRPC at port+10000)."""
    ports: list[int] = []
    while len(ports) < 4:
        p = random.randint(20000, 29999)
        if p not in ports and _port_free(p) and _port_free(p + 10000):
            ports.append(p)
    return ports


def wait_until(pred: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = pred()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - keep polling
            last_exc = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}" + (f" ({last_exc!r})" if last_exc else ""))


def holds_for(pred: Callable[[], Any], seconds: float, what: str, interval: float = 0.2) -> Any:
    """Check ``pred`` stays true for ``seconds`` (nothing more arrives, nothing is re-sent), polling every
    ``interval``; an AssertionError naming ``what`` the moment it does not. Returns its last value."""
    deadline = time.monotonic() + seconds
    while True:
        value = pred()
        assert value, f"no longer true: {what}"
        if time.monotonic() >= deadline:
            return value
        time.sleep(interval)



@dataclass
class Proc:
    """One process of the stack, in its own session (a signal reaches its children too)."""

    name: str
    popen: subprocess.Popen
    log: Path
    url: str = ""  # where it listens, for servers
    loads_model: bool = False  # a GPU worker: ready once its child has loaded the pipeline
    queue: str = ""  # a private pair's worker: its interactive queue

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 10) -> None:
        if not self.alive():
            return
        self.kill(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            self.popen.wait(5)

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@dataclass
class Stack:
    """Processes started with the stack's settings (``env``); logs and state files under ``tmp``.

    ``unique_logs`` names each log ``NAME-xxxxxx.log`` (a test may start a name twice); ``make dev``
    writes ``NAME.log``.
    """

    tmp: Path
    env: dict[str, str]
    procs: dict[str, Proc] = field(default_factory=dict)
    api_url: str = ""
    unique_logs: bool = True

    def spawn(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> Proc:
        log = self.tmp / (f"{name}-{uuid.uuid4().hex[:6]}.log" if self.unique_logs else f"{name}.log")
        fh = open(log, "ab")  # noqa: SIM115 - lives as long as the process
        env = {**os.environ, **self.env, **(extra_env or {})}
        p = subprocess.Popen(args, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                             start_new_session=True)
        proc = Proc(name, p, log)
        self.procs[name] = proc
        return proc

    def start_worker(self, kind: Literal["gpu", "cpu"], name: str, extra_env: dict[str, str] | None = None, *,
                     metrics_port: int | None = None, hostname: str | None = None,
                     celery_args: Sequence[str] = QUIET_WORKER) -> Proc:
        """``portrait worker KIND`` on the stack's queues (its settings, ``extra_env`` overriding them),
        its Prometheus exporter on ``metrics_port`` (default: a free one), as node ``hostname``
        (default: NAME-xxxxxx@%h, unique per start)."""
        port = metrics_port or free_port()
        hostname = hostname or f"{name}-{uuid.uuid4().hex[:6]}@%h"
        proc = self.spawn(name, portrait_command("worker", kind, "-n", hostname, "--", *celery_args),
                          {"WORKER_METRICS_PORT": str(port), **(extra_env or {})})
        proc.url = f"http://127.0.0.1:{port}"  # its Prometheus exporter
        proc.loads_model = kind == "gpu"
        return proc

    def start_gpu_worker(self, name: str = "gpu", extra_env: dict[str, str] | None = None) -> Proc:
        """A GPU worker on the stack's queues; ``extra_env`` overrides its settings (e.g. time limits)."""
        return self.start_worker("gpu", name, extra_env)

    def start_cpu_worker(self, name: str = "cpu") -> Proc:
        return self.start_worker("cpu", name)

    def start_api(self, port: int | None = None, name: str = "api",
                  extra_env: dict[str, str] | None = None) -> Proc:
        """``portrait api`` on ``port`` (the stack's own when restarting it): uvicorn as in production.

        Only the process named ``api`` is the stack's API (``api_url``); others are extra instances.
        """
        port = port or (httpx.URL(self.api_url).port if self.api_url and name == "api" else free_port())
        url = f"http://127.0.0.1:{port}"
        if name == "api":
            self.api_url = url
        proc = self.spawn(name, portrait_command("api", "--port", str(port)), extra_env)
        proc.url = url
        wait_until(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, 60, 0.3, f"{name} /readyz")
        return proc

    def start_beat(self) -> Proc:
        """Celery beat: schedules the sweeper and retention."""
        return self.spawn("beat", portrait_command("beat", "-s", str(self.tmp / "beat-schedule")))

    def start_flower(self, name: str = "flower", port: int | None = None,
                     extra_env: dict[str, str] | None = None) -> Proc:
        """Flower on loopback (``port``: default a free one); it refuses to start without FLOWER_BASIC_AUTH."""
        port = port or free_port()
        proc = self.spawn(name, portrait_command("flower", f"--port={port}", "--address=127.0.0.1"), extra_env)
        proc.url = f"http://127.0.0.1:{port}"
        return proc

    def wait_ready(self, name: str, timeout: float = 120) -> None:
        """Block until a Celery worker logged 'ready' and, for a GPU worker, its child has loaded the
        pipeline (Celery says 'ready' before that: a job sent meanwhile could wait past QUEUED_STALE_S,
        and the sweeper would send it again)."""
        proc = self.procs[name]

        def ready() -> bool:
            text = proc.log.read_text(errors="replace")
            return proc.alive() and " ready." in text and (
                not proc.loads_model or "restoration pipeline ready" in text)

        wait_until(ready, timeout, 0.3, f"worker {name} ready")

    @contextlib.contextmanager
    def private_pair(self, name: str, extra_env: dict[str, str] | None = None) -> Iterator[tuple[Proc, Proc]]:
        """A GPU worker and an API of their own, on a private queue (only that worker serves that API's
        jobs), with ``extra_env`` settings; (worker, api) once the worker is ready, both stopped after."""
        queue = f"gpu-{name}-{uuid.uuid4().hex[:6]}"
        env = {"GPU_QUEUE": queue, "GPU_BULK_QUEUE": f"{queue}-bulk", **(extra_env or {})}
        worker = self.start_gpu_worker(f"gpu-{name}", extra_env=env)
        worker.queue = queue
        server = self.start_api(name=f"api-{name}", extra_env=env)
        try:
            self.wait_ready(f"gpu-{name}")
            yield worker, server
        finally:
            server.stop()
            worker.stop()

    def diagnostics(self) -> str:
        return "\n".join(f"===== {n} ({'alive' if p.alive() else 'dead'})\n{p.tail()}"
                         for n, p in self.procs.items())

    def stop_all(self) -> None:
        for p in reversed(list(self.procs.values())):
            p.stop()


# --- Postgres, SeaweedFS --------------------------------------------------------------------------


def create_database() -> tuple[str, Callable[[], None]]:
    """A fresh database on ADMIN_DSN's server: (its SQLAlchemy URL, a function that drops it)."""
    name = f"portrait_t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
            c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            c.execute(f'DROP DATABASE IF EXISTS "{name}"')

    base = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return f"{base}/{name}", drop


def ensure_database(url: str) -> None:
    """Create the database of SQLAlchemy ``url`` on its server if it does not exist yet (``make dev``)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    admin = u.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as c:
        if c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (u.database,)).fetchone() is None:
            c.execute(f'CREATE DATABASE "{u.database}"')


def start_seaweedfs(stack: Stack, access_key: str, secret_key: str, *, ports: Sequence[int] | None = None,
                    volume_size_mb: int = 64, volume_max: int | None = 20) -> str:
    """SeaweedFS (master, volume, filer, S3) with one S3 identity; ``ports`` = (master, volume, filer,
    s3), each with port+10000 free for gRPC (default: random ones); returns the S3 endpoint once it answers."""
    master, volume, filer, s3 = ports or weed_ports()
    data = stack.tmp / "weed"
    data.mkdir(exist_ok=True)
    conf = stack.tmp / "s3.json"
    conf.write_text(json.dumps({"identities": [{
        "name": "portrait", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    stack.spawn("seaweedfs", [
        str(BIN / "weed"), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
        f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}", "-s3",
        f"-s3.port={s3}", f"-s3.config={conf}", f"-master.volumeSizeLimitMB={volume_size_mb}",
        *([f"-volume.max={volume_max}"] if volume_max is not None else []),
        "-s3.port.iceberg=0", "-s3.port.lance=0",  # fixed default ports: two stacks at once would clash
        f"-filer.localSocket={stack.tmp / 'filer.sock'}",
    ])
    endpoint = f"http://127.0.0.1:{s3}"

    def ready() -> bool:
        import boto3
        from botocore.config import Config

        c = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access_key,
                         aws_secret_access_key=secret_key, region_name="us-east-1",
                         config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}))
        c.create_bucket(Bucket="readiness-probe")
        return True

    wait_until(ready, 60, 0.5, "SeaweedFS S3")
    return endpoint


# --- an isolated stack ----------------------------------------------------------------------------


class HasPort(Protocol):
    """A TCP forwarder (tests/service/harness.py's TcpProxy) that the stack reaches Postgres through."""

    port: int


@contextlib.contextmanager
def running_stack(tmp: Path, extra_env: dict[str, str] | None = None,
                  db_proxy: HasPort | None = None) -> Iterator[Stack]:
    """Start everything; yield the stack; tear it all down (database dropped, Redis DB flushed).

    With ``db_proxy`` (forwarding to Postgres) every process reaches the database through it.
    """
    import redis

    db_url, drop_db = create_database()
    stack_db_url = db_url
    if db_proxy is not None:
        parts = httpx.URL(db_url.replace("postgresql+psycopg", "http"))
        stack_db_url = db_url.replace(f"{parts.host}:{parts.port}", f"127.0.0.1:{db_proxy.port}")
    redis_db = random.randint(1, 15)
    redis_url = f"{REDIS_BASE}/{redis_db}"
    redis.Redis.from_url(redis_url).flushdb()
    access, secret = "portrait-test", uuid.uuid4().hex
    suffix = uuid.uuid4().hex[:8]
    stack = Stack(tmp=tmp, env={})
    saved_env = dict(os.environ)
    try:
        s3 = start_seaweedfs(stack, access, secret)
        stack.env.update({
            "DATABASE_URL": stack_db_url,
            "REDIS_URL": redis_url,
            "S3_ENDPOINT_URL": s3,
            "S3_ACCESS_KEY_ID": access,
            "S3_SECRET_ACCESS_KEY": secret,
            "S3_BUCKET": f"portrait-test-{suffix}",
            "GPU_QUEUE": f"gpu-{suffix}",
            "GPU_BULK_QUEUE": f"gpu-bulk-{suffix}",
            "WEBHOOK_QUEUE": f"webhooks-{suffix}",
            "MAINTENANCE_QUEUE": f"maintenance-{suffix}",
            "FETCH_QUEUE": f"fetch-{suffix}",
            # GPU workers fetch URL inputs themselves here, so a held URL keeps a job running (the batch
            # cancel and fairness tests rely on it); test_hostile starts a worker with the default (true)
            "FETCH_URL_INPUTS_ON_CPU": "false",
            "DEVICE": "cpu",
            "LEASE_S": "6",
            "HEARTBEAT_S": "1",
            "QUEUED_STALE_S": "8",
            "SWEEP_INTERVAL_S": "2",
            "MAX_ATTEMPTS": "3",
            "WEBHOOK_BACKOFF_BASE_S": "0.5",
            "WEBHOOK_MAX_ATTEMPTS": "4",
            "ALLOW_HTTP_URLS": "true",
            "URL_ALLOWLIST": "127.0.0.1:{}-{}".format(*URL_PORTS),  # the tests' receivers and file servers
            "RETENTION_INTERVAL_S": "2",
            "MAX_UPLOAD_BYTES": str(8 * 1024 * 1024),
            "OMP_NUM_THREADS": "2",
            # the spine's tests (batches, fairness, faults, ...) run hundreds of jobs on 2 CPU cores: the
            # stand-in keeps each ~0.1 s; the shipped model serves a job in test_e2e.py (its own worker)
            "MODEL_PATH": "classical",
            "CPU_WORKER_CONCURRENCY": "4",
            **(extra_env or {}),
        })
        os.environ.update(stack.env)
        reset_caches()
        from db.session import migrate

        migrate(db_url)
        stack.start_gpu_worker()
        stack.start_cpu_worker()
        stack.start_beat()
        stack.start_api()
        for name in ("gpu", "cpu"):
            stack.wait_ready(name)
        yield stack
    finally:
        stack.stop_all()
        os.environ.clear()
        os.environ.update(saved_env)  # later tests must see the settings they would see alone
        reset_caches()
        with contextlib.suppress(Exception):
            redis.Redis.from_url(redis_url).flushdb()
        drop_db()


def reset_caches() -> None:
    """Settings, engine, storage and producer are per-process singletons; rebuild them from env."""
    from db.session import dispose_engine
    from jobs.messages import producer
    from portrait.settings import get_settings
    from portrait.storage import get_storage

    dispose_engine()
    get_settings.cache_clear()
    get_storage.cache_clear()
    producer.cache_clear()
