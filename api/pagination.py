"""Opaque cursors for pagination (Stripe-style ``has_more`` + ``next_cursor``).

A cursor encodes the sort key of the last row returned; the next page starts strictly after it, so
pages are stable while new rows arrive. Clients must treat cursors as opaque strings.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from portrait.errors import ApiError


def encode_cursor(*values: Any) -> str:
    raw = json.dumps([v if isinstance(v, int | float | str) else str(v) for v in values]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, n: int) -> list[Any]:
    """The ``n`` values of a cursor, or 400 invalid_request."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError as e:
        raise ApiError("invalid_request", "malformed cursor") from e
    if not isinstance(values, list) or len(values) != n:
        raise ApiError("invalid_request", "malformed cursor")
    return values
