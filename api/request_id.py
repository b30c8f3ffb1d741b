"""``X-Request-Id``: every reply carries one, and every log line written while answering it.

A client's own id is echoed when it looks like an id (1–64 of ``[A-Za-z0-9._-]``, e.g. a UUID or a
trace id), so their logs and ours join on it; otherwise, or without one, a fresh UUID is made. Pure
ASGI middleware, outermost, so the other middlewares' replies and log lines carry it too.
"""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portrait.logs import log_context

HEADER = "X-Request-Id"
ACCEPTED = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = Headers(scope=scope).get(HEADER, "")
        request_id = given if ACCEPTED.match(given) else uuid.uuid4().hex

        async def with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        with log_context(request_id=request_id):
            await self.app(scope, receive, with_header)
