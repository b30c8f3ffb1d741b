"""Health probes: ``/healthz`` (the process answers) and ``/readyz`` (Postgres, Redis and S3 answer
within READYZ_TIMEOUT_S, checked side by side on daemon threads so a hung store cannot hold the probe).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, wait

import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from db.session import get_engine
from portrait.settings import get_settings
from portrait.storage import get_storage

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


def _check_database() -> None:
    with get_engine().connect() as c:
        c.execute(text("select 1"))


def _check_redis() -> None:
    t = get_settings().readyz_timeout_s
    redis.Redis.from_url(get_settings().redis_url, socket_connect_timeout=t, socket_timeout=t).ping()


def _check_s3() -> None:
    get_storage().ping(timeout_s=get_settings().readyz_timeout_s)


_READY_CHECKS: dict[str, Callable[[], None]] = {"database": _check_database, "redis": _check_redis,
                                                  "s3": _check_s3}
_ready_running: dict[str, Future[None]] = {}
_ready_lock = threading.Lock()


def _start_check(name: str, check: Callable[[], None]) -> Future[None]:
    """Run ``check`` on a daemon thread (a hung one must not hold up the process's exit)."""
    f: Future[None] = Future()

    def run() -> None:
        try:
            check()
            f.set_result(None)
        except BaseException as e:  # noqa: BLE001 - reported by readyz
            f.set_exception(e)

    threading.Thread(target=run, name=f"readyz-{name}", daemon=True).start()
    return f


@router.get("/readyz")
def readyz() -> JSONResponse:
    """Readiness: Postgres, Redis and S3 all answer within READYZ_TIMEOUT_S. 503 with the failing checks
    otherwise.

    The checks run side by side and the answer never waits longer than the timeout, whatever a hung
    store does to a socket. A check still running from an earlier probe is waited on, not started
    again, so a store that hangs holds at most one thread per check.
    """
    timeout = get_settings().readyz_timeout_s
    with _ready_lock:
        for name, check in _READY_CHECKS.items():
            running = _ready_running.get(name)
            if running is None or running.done():
                _ready_running[name] = _start_check(name, check)
        futures = dict(_ready_running)
    wait(futures.values(), timeout=timeout)
    checks: dict[str, str] = {}
    for name, f in futures.items():
        if not f.done():
            checks[name] = f"error: timeout after {timeout:g} s"
        elif (e := f.exception()) is not None:
            checks[name] = f"error: {type(e).__name__}"
        else:
            checks[name] = "ok"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks},
                        status_code=200 if ok else 503)
