"""Opaque cursors for pagination (Stripe-style ``has_more`` + ``next_cursor``).

A cursor encodes the sort key of the last row returned; the next page starts strictly after it, so
pages are stable while new rows arrive. Clients must treat cursors as opaque strings.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_

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


def newest_first(q: Select, model: Any, cursor: str | None, limit: int) -> Select:
    """Order ``q`` by (created_at, id) descending, start strictly after ``cursor``, fetch one extra row
    (``newest_first_page`` uses it to tell whether there is a next page)."""
    if cursor:
        created, row_id = decode_cursor(cursor, 2)
        try:
            created, row_id = datetime.fromisoformat(created), uuid.UUID(row_id)
        except (ValueError, TypeError) as e:
            raise ApiError("invalid_request", "malformed cursor") from e
        q = q.where(or_(model.created_at < created, and_(model.created_at == created, model.id < row_id)))
    return q.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)


def newest_first_page(rows: list[Any], limit: int) -> tuple[list[Any], bool, str | None]:
    """(the page, has_more, next_cursor) from the ``limit + 1`` rows of a ``newest_first`` query."""
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, more, encode_cursor(rows[-1].created_at.isoformat(), rows[-1].id) if more else None
