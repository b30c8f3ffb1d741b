"""Caps on what a request may make the API read: the body, before any of it is parsed or spooled.

Outermost but one (inside api/outages.py), so nothing (the idempotency middleware's hash, Starlette's
multipart spooling to disk, pydantic's JSON parser) sees more than the cap:

* multipart (``POST /v1/jobs`` uploads): MAX_UPLOAD_BYTES plus 64 KiB of form overhead;
* anything else (JSON bodies of jobs, batches, uploads): MAX_JSON_BYTES.

A declared ``Content-Length`` over the cap is refused before reading; a body without one (chunked) is
counted as it arrives and refused the moment it passes the cap. Either way: 413 ``payload_too_large``.
Headers are capped by the HTTP server itself (uvicorn ``--http h11 --h11-max-incomplete-event-size``,
64 KiB in every command that starts the API): a header section past it gets 400 before the app runs.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from portrait.errors import ApiError
from portrait.settings import get_settings

MULTIPART_OVERHEAD = 64 * 1024


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        # "connection: close" so the server hangs up instead of draining the rest of a huge body
        super().__init__("payload_too_large", f"the request body exceeds {limit} bytes",
                         headers={"connection": "close"})


def body_limit(headers: Headers) -> int:
    """The cap for a request with these headers."""
    s = get_settings()
    if headers.get("content-type", "").startswith("multipart/form-data"):
        return s.max_upload_bytes + MULTIPART_OVERHEAD
    return s.max_json_bytes


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        limit = body_limit(headers)
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            err = BodyTooLarge(limit) if declared.isdigit() else ApiError("invalid_request", "bad Content-Length")
            return await _reply(err, scope, receive, send)
        seen, started, exceeded = 0, False, None

        async def counted() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = BodyTooLarge(limit)
                    raise exceeded
            return message

        async def tracked(message: Message) -> None:
            # Whatever the app answers once the body passed the cap (FastAPI turns a failed body read
            # into its own 400), the client gets the 413, and the connection closes.
            nonlocal started
            if exceeded is not None:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _reply(exceeded, scope, receive, send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge as e:
            if not started:
                started = True
                await _reply(e, scope, receive, send)


async def _reply(err: ApiError, scope: Scope, receive: Receive, send: Send) -> None:
    await error_response(err, {"connection": "close"})(scope, receive, send)
