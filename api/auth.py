"""Bearer API keys. Unknown, malformed and missing keys are all the same 401, by design."""

from __future__ import annotations

from fastapi import Request

from db.admin import client_for_key
from db.models import Client
from portrait.errors import ApiError


def current_client(request: Request) -> Client:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError("unauthorized", "send 'Authorization: Bearer <api key>'",
                       headers={"WWW-Authenticate": "Bearer"})
    client = client_for_key(token.strip())
    if client is None:
        raise ApiError("unauthorized", "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    return client
