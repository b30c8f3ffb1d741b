"""Real services for integration tests: a fresh Postgres database, a Redis DB, SeaweedFS (S3 that
checks signatures and presigned expiry), uvicorn, Celery workers and beat, all as subprocesses.

Each test run is isolated: its own database, Redis DB number, bucket and ports.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ADMIN_DSN = os.environ.get("TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")


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


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path
    url: str = ""  # where it listens, for servers

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
    tmp: Path
    env: dict[str, str]
    procs: dict[str, Proc] = field(default_factory=dict)
    api_url: str = ""

    def spawn(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> Proc:
        log = self.tmp / f"{name}-{uuid.uuid4().hex[:6]}.log"
        fh = open(log, "ab")  # noqa: SIM115 - lives as long as the process
        env = {**os.environ, **self.env, **(extra_env or {})}
        p = subprocess.Popen(args, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                             start_new_session=True)
        proc = Proc(name, p, log)
        self.procs[name] = proc
        return proc

    def start_gpu_worker(self, name: str = "gpu", extra_env: dict[str, str] | None = None) -> Proc:
        """A GPU-style worker on the stack's queues; ``extra_env`` overrides its settings (e.g. time limits)."""
        env = {**self.env, **(extra_env or {})}
        queues = f"{env['GPU_QUEUE']},{env['GPU_BULK_QUEUE']}"  # interactive first: it has priority
        port = free_port()
        proc = self.spawn(name, [str(BIN / "celery"), "-A", "worker.celery_app", "worker", "-P", "prefork",
                                 "-c", "1", "-Q", queues, "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h",
                                 "-E", "--without-mingle", "--without-gossip", "-l", "info"],
                          {"WORKER_METRICS_PORT": str(port), **(extra_env or {})})
        proc.url = f"http://127.0.0.1:{port}"  # its Prometheus exporter
        return proc

    def start_cpu_worker(self, name: str = "cpu") -> Proc:
        queues = ",".join(self.env[q] for q in ("FETCH_QUEUE", "WEBHOOK_QUEUE", "MAINTENANCE_QUEUE"))
        port = free_port()
        proc = self.spawn(name, [str(BIN / "celery"), "-A", "worker.celery_app", "worker", "-P", "threads",
                                 "-c", "4", "-Q", queues,
                                 "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h", "-E", "--without-mingle",
                                 "--without-gossip", "-l", "info"], {"WORKER_METRICS_PORT": str(port)})
        proc.url = f"http://127.0.0.1:{port}"  # its Prometheus exporter
        return proc

    def start_api(self, port: int | None = None, name: str = "api",
                  extra_env: dict[str, str] | None = None) -> Proc:
        """uvicorn on ``port`` (the stack's own when restarting it), with the production header cap.

        Only the process named ``api`` is the stack's API (``api_url``); others are extra instances.
        """
        port = port or (httpx.URL(self.api_url).port if self.api_url and name == "api" else free_port())
        url = f"http://127.0.0.1:{port}"
        if name == "api":
            self.api_url = url
        proc = self.spawn(name, [str(BIN / "uvicorn"), "api.app:app", "--host", "127.0.0.1", "--port", str(port),
                                 "--http", "h11", "--h11-max-incomplete-event-size", "65536"], extra_env)
        proc.url = url
        wait_until(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, 60, 0.3, f"{name} /readyz")
        return proc

    def start_beat(self) -> Proc:
        """Celery beat: schedules the sweeper and retention."""
        return self.spawn("beat", [str(BIN / "celery"), "-A", "worker.celery_app", "beat", "-l", "info",
                                   "-s", str(self.tmp / "beat-schedule")])

    def wait_ready(self, name: str, timeout: float = 120) -> None:
        """Block until a Celery worker logged 'ready' (its child has loaded the pipeline)."""
        proc = self.procs[name]
        wait_until(lambda: proc.alive() and " ready." in proc.log.read_text(errors="replace"), timeout, 0.3,
                   f"worker {name} ready")

    @contextlib.contextmanager
    def private_pair(self, name: str, extra_env: dict[str, str] | None = None) -> Iterator[tuple[Proc, Proc]]:
        """A GPU worker and an API of their own, on a private queue (only that worker serves that API's
        jobs), with ``extra_env`` settings; (worker, api) once the worker is ready, both stopped after."""
        queue = f"gpu-{name}-{uuid.uuid4().hex[:6]}"
        env = {"GPU_QUEUE": queue, "GPU_BULK_QUEUE": f"{queue}-bulk", **(extra_env or {})}
        worker = self.start_gpu_worker(f"gpu-{name}", extra_env=env)
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


# --- Postgres, Redis, SeaweedFS -------------------------------------------------------------------


def create_database() -> tuple[str, Callable[[], None]]:
    name = f"portrait_t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
            c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            c.execute(f'DROP DATABASE IF EXISTS "{name}"')

    base = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return f"{base}/{name}", drop


def start_seaweedfs(stack: Stack, access_key: str, secret_key: str) -> str:
    master, volume, filer, s3 = weed_ports()
    data = stack.tmp / "weed"
    data.mkdir()
    conf = stack.tmp / "s3.json"
    conf.write_text(json.dumps({"identities": [{
        "name": "portrait", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    stack.spawn("seaweedfs", [
        str(BIN / "weed"), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
        f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}", "-s3",
        f"-s3.port={s3}", f"-s3.config={conf}", "-master.volumeSizeLimitMB=64", "-volume.max=20",
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


# --- webhook receiver -----------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class WebhookReceiver:
    """A local HTTP server that records POSTs; ``responses`` maps a path to a list of status codes
    answered in turn (the last one repeats), 200 by default."""

    def __init__(self) -> None:
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

        self.server = ThreadingHTTPServer(("127.0.0.1", url_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def for_path(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def close(self) -> None:
        self.server.shutdown()


class FileServer:
    """A loopback HTTP server answering every GET with ``handler(path) -> (status, headers, body)``;
    ``hosts`` records the Host header of each request."""

    def __init__(self, handler: Callable[[str], tuple[int, dict[str, str], bytes]]) -> None:
        self.hosts: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                server.hosts.append(self.headers.get("host", ""))
                status, headers, body = handler(self.path)
                self.send_response(status)
                for k, v in {"content-length": str(len(body)), **headers}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", url_port()), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


class DribbleServer:
    """A hostile loopback server: reads the request, then sends a response's headers one byte every
    ``interval`` seconds and never finishes them (each socket read returns data, so per-read timeouts
    never fire). ``served`` counts connections."""

    def __init__(self, interval: float = 0.5, limit_s: float = 120.0) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", url_port()))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.interval, self.limit_s, self.served = interval, limit_s, 0
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.served += 1
            threading.Thread(target=self._dribble, args=(conn,), daemon=True).start()

    def _dribble(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            with contextlib.suppress(OSError):
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                end = time.monotonic() + self.limit_s
                while time.monotonic() < end and not self._closed.is_set():
                    conn.sendall(b"a")
                    time.sleep(self.interval)

    def close(self) -> None:
        self._closed.set()
        self.sock.close()


class RedisServer:
    """A private redis-server that keeps nothing on disk, so killing it loses every message, as a real
    crash of the production Redis (no persistence) would. ``start()`` again reuses the port."""

    def __init__(self, tmp: Path) -> None:
        self.port, self.tmp = free_port(), tmp
        self.popen: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        log = open(self.tmp / f"redis-{self.port}.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.popen = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no", "--dir", str(self.tmp)],
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: redis.Redis.from_url(self.url).ping(), 20, 0.1, "private redis-server")

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)


def _reset(sock: socket.socket) -> None:
    """Drop a connection as a host that went away does: its peer reads an error at once.

    shutdown() first: close() alone does not release a socket another thread is blocked in recv() or
    accept() on (a pump's, the listener's), so nothing would reach the peer, whose next query would then
    wait for an answer forever (or the next client would get through); the close after it, with linger
    0, sends the RST.
    """
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class TcpProxy:
    """Forwards a loopback port to ``target_port``. ``cut()`` resets every connection and stops
    listening (what clients see when a database host goes down); ``restore()`` listens again."""

    def __init__(self, target_port: int) -> None:
        self.port, self.target = free_port(), target_port
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        """Listen again (a no-op while listening)."""
        if self._listener is not None:
            return
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(128)
        with self._lock:
            self._listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def _accept(self, ls: socket.socket) -> None:
        while True:
            try:
                down, _ = ls.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(("127.0.0.1", self.target), timeout=5)
                up.settimeout(None)
            except OSError:
                down.close()
                continue
            with self._lock:
                if self._listener is not ls:  # cut while this one was being accepted: it never got through
                    for sock in (down, up):
                        _reset(sock)
                    return
                self._socks.update((down, up))
            for a, b in ((down, up), (up, down)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self._lock:
            ls, self._listener = self._listener, None
            socks, self._socks = self._socks, set()
        if ls is not None:
            _reset(ls)  # shut down first, or the thread blocked in accept() would go on listening
        for sock in socks:
            _reset(sock)

    close = cut


@contextlib.contextmanager
def running_stack(tmp: Path, extra_env: dict[str, str] | None = None,
                  db_proxy: TcpProxy | None = None) -> Iterator[Stack]:
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


# --- API client helpers ----------------------------------------------------------------------------


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


def jpeg_bytes(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def job_events(job_id: str) -> list[tuple[str | None, str, str | None]]:
    from sqlalchemy import select

    from db.models import JobEvent
    from db.session import session_scope

    with session_scope() as s:
        rows = s.execute(select(JobEvent.from_status, JobEvent.to_status, JobEvent.reason)
                         .where(JobEvent.job_id == uuid.UUID(job_id)).order_by(JobEvent.id)).all()
    return [tuple(r) for r in rows]


def lose_worker(job_id: str, attempts: int) -> None:
    """Pretend the worker of a finished job died on attempt ``attempts``: the job is running again, its lease
    long expired, so the sweeper must take it back (requeue it, or fail it at MAX_ATTEMPTS)."""
    from sqlalchemy import update

    from db.models import Job
    from db.session import session_scope

    with session_scope() as s:
        s.execute(update(Job).where(Job.id == uuid.UUID(job_id)).values(
            status="running", attempts=attempts, finished_at=None, lease_expires_at=Job.created_at))
