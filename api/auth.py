"""Bearer API keys. Unknown, malformed and missing keys are all the same 401, by design."""

from __future__ import annotations

import uuid
from typing import TypeVar

from fastapi import Request

from db.admin import client_for_key
from db.models import Client
from db.session import session_scope
from portrait.errors import ApiError

T = TypeVar("T")


def client_from_header(authorization: str) -> Client | None:
    """The active client whose key is in ``Authorization: Bearer <key>``, or None."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return client_for_key(token.strip())


def current_client(request: Request) -> Client:
    client = getattr(request.state, "client", None)  # already looked up by the idempotency middleware
    if client is None:
        client = client_from_header(request.headers.get("authorization", ""))
    if client is None:
        raise ApiError("unauthorized", "send 'Authorization: Bearer <api key>' with a valid, active key",
                       headers={"WWW-Authenticate": "Bearer"})
    return client


def owned_or_404(model: type[T], row_id: uuid.UUID, client: Client, noun: str) -> T:
    """The row if it belongs to ``client``; another client's row is the same 404 as a missing one."""
    with session_scope() as s:
        row = s.get(model, row_id)
        if row is None or row.client_id != client.id:  # type: ignore[attr-defined]
            raise ApiError("not_found", f"{noun} {row_id} not found")
        return row
