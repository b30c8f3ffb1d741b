"""Test-only tools around the dev stack (devstack/, which starts the processes and is re-exported
here for the tests): file servers, a hostile slow server, a killable private Redis, a TCP proxy in front
of Postgres that can be cut, and helpers that read a job's events or fake a lost worker.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from devstack import (
    BIN,
    ROOT,
    URL_PORTS,
    Api,
    Proc,
    Received,
    Stack,
    WebhookReceiver,
    free_port,
    holds_for,
    reset_caches,
    running_stack,
    url_port,
    wait_until,
)

__all__ = ["BIN", "ROOT", "URL_PORTS", "Api", "DribbleServer", "FileServer", "Proc", "Received", "RedisServer",
           "Stack", "TcpProxy", "WebhookReceiver", "free_port", "generate_client", "holds_for", "job_events",
           "jpeg_bytes", "lose_worker", "reset_caches", "running_stack", "url_port", "wait_until"]


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



def jpeg_bytes(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def generate_client(api_url: str, tmp: Path) -> Path:
    """Generate ``portrait_api_client`` from the schema ``api_url`` serves, with a standard generator
    (openapi-python-client, which runs ruff on its output), into ``tmp``; returns ``tmp`` for sys.path.
    Every operation must generate (no warning)."""
    spec = tmp / "openapi.json"
    spec.write_bytes(httpx.get(f"{api_url}/openapi.json", timeout=10).raise_for_status().content)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run([str(BIN / "openapi-python-client"), "generate", "--path", str(spec), "--meta", "none",
                          "--output-path", str(tmp / "portrait_api_client")], capture_output=True, text=True,
                         timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Warning" not in run.stdout + run.stderr, run.stdout + run.stderr
    return tmp


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
