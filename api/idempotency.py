"""``Idempotency-Key`` on every POST, with Stripe's semantics, so clients can retry safely.

* First request with a key: it runs, and its response (status, body, a few headers) is stored in
  Postgres under (client, key) with a hash of the request.
* Same key, same request again: the stored response is replayed byte for byte, with
  ``Idempotent-Replayed: true``; nothing runs, so no new job, batch or upload.
* Same key, different request (method, path or body): 409 ``idempotency_key_reused``.
* Same key while the first is still running: 409 ``idempotency_request_in_progress`` until it has
  committed what it creates, then the reply recorded with it (below). A request that crashed before
  committing is presumed dead after IDEMPOTENCY_LOCK_S and may be taken over.
* Responses that invite a retry are not stored (5xx, 429): the key is released and a retry runs.
* **Crash-safe**: an endpoint that creates something (a job, a batch) records its reply in the *same
  transaction* as the rows it creates (:func:`record_in`). If the process dies between that commit and
  the reply, a retry replays the recorded reply (the same job id) instead of waiting for the lock to
  expire and creating a second job. The middleware's own record, made when the reply is complete,
  replaces it (e.g. ``Prefer: wait`` turning the 202 into a 200).

Keys are per client and kept IDEMPOTENCY_TTL_S (≥ 24 h); the store is db/idempotency.py and
worker/retention.py purges older keys through it.
"The same request" means the same JSON (key order and whitespace do not matter) or, for multipart,
the same fields and file bytes (boundaries and file names do not matter).

It is ASGI middleware rather than a dependency because it must see the whole response to store it
and must be able to answer without running the endpoint at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import client_from_header
from api.deps import close_form, parse_form
from api.errors import error_response
from api.outages import unavailable
from db import idempotency as store
from db.idempotency import Outcome
from db.models import Client
from portrait.errors import ApiError
from portrait.settings import get_settings

log = logging.getLogger("portrait.api")

HEADER = "idempotency-key"
REPLAYED = "idempotent-replayed"
KEPT_HEADERS = ("content-type", "preference-applied", "location")


def record_in(s: Session, request_state: object, status: int, body: bytes) -> None:
    """Record this request's reply under its Idempotency-Key in the caller's transaction ``s``.

    ``request_state`` is the endpoint's ``request.state``; without a key (no header) nothing happens.
    """
    store.record(s, getattr(request_state, "idempotency", None), status, body)


async def request_hash(scope: Scope, headers: Headers, body: bytes) -> str:
    """SHA-256 of method, path and a canonical form of the body (see the module docstring). A multipart
    body is parsed here once, and the endpoint reuses that form (api/deps.py)."""
    h = hashlib.sha256(f"{scope['method']} {scope['path']}?{scope.get('query_string', b'').decode()}\n".encode())
    ctype = headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await parse_form(scope, body)
        parts = []
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                digest = hashlib.sha256(await value.read()).hexdigest()
                await value.seek(0)  # the endpoint reads it again
                parts.append((name, "file:" + digest))
            else:
                parts.append((name, "field:" + value))
        h.update(json.dumps(sorted(parts)).encode())
    elif ctype.startswith("application/json"):
        try:
            h.update(json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode())
        except ValueError:
            h.update(body)
    else:
        h.update(body)
    return h.hexdigest()


async def _refuse(scope: Scope, receive: Receive, send: Send, code: str, message: str) -> None:
    await error_response(ApiError(code, message))(scope, receive, send)


async def _respond(send: Send, status: int, headers: dict[str, str], body: bytes) -> None:
    """Replay a stored reply byte for byte."""
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _store_reply(client: Client, key: str, status: int, kept: dict[str, str], body: bytes) -> None:
    """Record (or release, for a 5xx/429) the reply whose status line has already left.

    The status line is on the wire by now: if Postgres fails here (an outage at that very instant), raising
    would leave the outage middleware nothing to answer with and uvicorn would drop the connection — the
    client got no reply at all where its neighbours got a 503 (issue 19). The endpoint has committed its
    work, and a job or batch recorded this very reply in the same transaction (``record_in``): so send the
    reply. The key stays locked until IDEMPOTENCY_LOCK_S; a retry in between is told to wait, after it
    replays the recorded reply (or, for endpoints that record none, runs again).
    """
    if status >= 500 or status == 429:
        return await _release(client, key)
    try:
        await run_in_threadpool(store.finish, client.id, key, status, kept, body)
    except Exception as exc:
        if unavailable(exc) is None:
            raise
        log.warning("Idempotency-Key reply not recorded (%s is unavailable); sending the reply anyway",
                    unavailable(exc))


#: releases that failed in an outage, retried in the background (references kept until they finish)
_PENDING: set[asyncio.Task] = set()
RELEASE_RETRY_S = 1.0


async def _release(client: Client, key: str) -> None:
    """Free the key of a request that will not be recorded, so its retry runs. In an outage the release
    itself fails: then it is retried in the background every second (for IDEMPOTENCY_LOCK_S at most),
    and the client's retry after ``Retry-After`` runs instead of meeting ``409 in progress`` for two
    minutes; the error the client gets stays the outage's 503."""
    try:
        await run_in_threadpool(store.release, client.id, key)
    except Exception as exc:
        if unavailable(exc) is None:
            raise
        _release_in_background(client.id, key)


def _release_in_background(client_id: uuid.UUID, key: str) -> None:
    task = asyncio.create_task(_release_later(client_id, key))
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)


async def _release_later(client_id: uuid.UUID, key: str) -> None:
    deadline = time.monotonic() + get_settings().idempotency_lock_s
    while time.monotonic() < deadline:
        await asyncio.sleep(RELEASE_RETRY_S)
        try:
            await run_in_threadpool(store.release, client_id, key)
            return
        except Exception as exc:  # noqa: BLE001 - still down: try again; anything else ends the retries
            if unavailable(exc) is None:
                log.warning("Idempotency-Key release gave up: %s", type(exc).__name__)
                return


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope) if scope["type"] == "http" else None
        key = headers.get(HEADER) if headers is not None and scope["method"] == "POST" else None
        if key is None:
            return await self.app(scope, receive, send)
        if not 1 <= len(key) <= 255:
            return await _refuse(scope, receive, send, "invalid_request",
                                 "Idempotency-Key must be 1 to 255 characters")
        client = await run_in_threadpool(client_from_header, headers.get("authorization", ""))
        if client is None:  # the endpoint answers 401 as usual
            return await self.app(scope, receive, send)

        limit = get_settings().max_upload_bytes + 1024 * 1024
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                return await _refuse(scope, receive, send, "payload_too_large", f"the body exceeds {limit} bytes")
            if not message.get("more_body", False):
                break
        try:
            await self._keyed(scope, receive, send, client, key, b"".join(chunks))
        finally:
            await close_form(scope)

    async def _keyed(self, scope: Scope, receive: Receive, send: Send, client: Client, key: str,
                     body: bytes) -> None:
        """Run, replay or refuse the keyed request whose whole ``body`` was read."""
        try:
            digest = await request_hash(scope, Headers(scope=scope), body)
        except Exception:  # noqa: BLE001 - an unparsable body: hash the bytes, the endpoint reports it
            await close_form(scope)
            digest = hashlib.sha256(body).hexdigest()

        try:
            decision = await run_in_threadpool(store.begin, client.id, key, digest)
        except Exception as exc:
            # cut mid-commit, the lock row may exist though we never heard so: free it once Postgres is back
            if unavailable(exc) is not None:
                _release_in_background(client.id, key)
            raise
        if decision.outcome == Outcome.replay:
            return await _respond(send, decision.status, {**(decision.headers or {}), REPLAYED: "true"},
                                  decision.body)
        if decision.outcome == Outcome.reused:
            return await _refuse(scope, receive, send, "idempotency_key_reused",
                                 "this Idempotency-Key was used with a different request")
        if decision.outcome == Outcome.in_progress:
            return await _refuse(scope, receive, send, "idempotency_request_in_progress",
                                 "a request with this Idempotency-Key is still running; retry")

        scope.setdefault("state", {})["client"] = client
        scope["state"]["idempotency"] = (client.id, key)  # for record_in, in the endpoint's transaction
        sent = False

        async def replay_body() -> Message:
            nonlocal sent
            if sent:
                return await receive()  # http.disconnect, when the client goes
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        status, kept, out = 0, {}, bytearray()
        stored = False

        async def capture(message: Message) -> None:
            nonlocal status, kept, stored
            if message["type"] == "http.response.start":
                status = message["status"]
                kept = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])
                        if k.decode().lower() in KEPT_HEADERS}
            elif message["type"] == "http.response.body":
                out.extend(message.get("body", b""))
                if not message.get("more_body", False) and not stored:
                    stored = True
                    # Store before the last byte leaves, so a retry that races the reply replays it.
                    await _store_reply(client, key, status, kept, bytes(out))
            await send(message)

        try:
            await self.app(scope, replay_body, capture)
        finally:
            if not stored:
                await _release(client, key)

