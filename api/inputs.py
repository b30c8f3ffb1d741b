"""Checks of client-named inputs shared by jobs and batches: keys under the client's prefix, safe URLs."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from db.models import Client
from portrait import urlguard
from portrait.errors import ApiError
from portrait.settings import get_settings
from portrait.storage import client_prefix

MAX_KEY_LENGTH = 1024  # S3's limit on object keys


def check_own_key(key: str, client: Client) -> str:
    """A key with control characters or backslashes, or too long, is malformed: 422. Any key outside this
    client's prefix (another client's object, a ``..`` segment) does not exist for it: 404."""
    if len(key) > MAX_KEY_LENGTH or "\\" in key or any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise ApiError("validation_error", f"input key: at most {MAX_KEY_LENGTH} characters, no control "
                                           "characters or backslashes")
    if not key.startswith(client_prefix(client.id)) or ".." in key.split("/"):
        raise ApiError("not_found", f"object {key!r} not found under your prefix {client_prefix(client.id)!r}")
    return key


def url_checker() -> Callable[[str, str], str]:
    """A checker for one request: each host is resolved once however many URLs name it."""
    settings = get_settings()
    resolve = lru_cache(maxsize=1024)(urlguard.resolve)

    def check(url: str, field: str) -> str:
        try:
            urlguard.check(url, settings, resolver=resolve)
        except urlguard.UrlRefused as e:
            raise ApiError(e.code, f"{field}: {e}") from e
        return url

    return check
