"""Outages of what the API depends on are ``503 service_unavailable`` with ``Retry-After``, never a 500.

Postgres, Redis or S3 unreachable, or the temporary disk Starlette spools uploads to full: the client
did nothing wrong and should retry later with the same Idempotency-Key (5xx replies are not stored,
so the retry runs). A pure ASGI middleware, outermost but for the metrics one, so it also covers the
idempotency middleware's own database work, and it answers instead of re-raising: Starlette's
catch-all would send its reply and then re-raise, and uvicorn would log a traceback and drop the
keep-alive connection.
"""

from __future__ import annotations

import errno
import logging

import redis
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from portrait.errors import ApiError

log = logging.getLogger("portrait.api")

RETRY_AFTER_S = 5


def _cut_mid_ping(exc: DBAPIError) -> bool:
    """The pool's pre-ping on a connection cut mid-query: psycopg leaves it ACTIVE and refuses to reset
    autocommit (a ProgrammingError, seen by the fault suite's Postgres cut) — an outage, not a bug."""
    return "connection in transaction status ACTIVE" in str(exc.orig)


def unavailable(exc: BaseException) -> str | None:
    """What is down when ``exc`` means a backing service (or the temp disk) failed, else None."""
    if isinstance(exc, OperationalError | InterfaceError) or (
            isinstance(exc, DBAPIError) and (exc.connection_invalidated or _cut_mid_ping(exc))):
        return "the database"
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return "the queue"
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError):
        return "object storage"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "the API's temporary disk (full)"
    return None


class OutageMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            down = unavailable(exc)
            if down is None or started:
                raise
            log.warning("%s %s: %s is unavailable (%s)", scope["method"], scope["path"], down,
                        type(exc).__name__)
            err = ApiError("service_unavailable", f"{down} is unavailable; retry later",
                           headers={"Retry-After": str(RETRY_AFTER_S)})
            await error_response(err)(scope, receive, send)
