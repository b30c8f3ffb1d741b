"""Opaque cursors for pagination (Stripe-style ``has_more`` + ``next_cursor``).

A cursor encodes the sort key of the last row returned; the next page starts strictly after it, so
pages are stable while new rows arrive. Clients must treat cursors as opaque strings. Every cursor is
checked here before it reaches a query — length, base64, JSON, shape, and each value's type and range —
so a forged or damaged one is a 400 ``invalid_cursor``, never a database error.
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


#: a cursor this API issues is well under this; longer ones are refused before any decoding
MAX_CURSOR_CHARS = 512
#: Postgres ``integer`` (int4): a batch item index past it would be a DataError, not a page
INT4_MAX = 2**31 - 1


def _bad(why: str) -> ApiError:
    return ApiError("invalid_cursor", f"malformed cursor ({why}); pass next_cursor back unchanged")


def decode_cursor(cursor: str, n: int) -> list[Any]:
    """The ``n`` JSON values of a cursor, or 400 ``invalid_cursor`` (never a 500, whatever the string)."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise _bad("too long")
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, RecursionError) as e:  # binascii.Error, UnicodeDecodeError, JSONDecodeError
        raise _bad("not base64 JSON") from e
    if not isinstance(values, list) or len(values) != n:
        raise _bad(f"not a list of {n}")
    return values


def decode_index_cursor(cursor: str) -> int:
    """A cursor of one non-negative Postgres integer (a batch's item index), or 400 ``invalid_cursor``."""
    (value,) = decode_cursor(cursor, 1)
    if type(value) is not int or not 0 <= value <= INT4_MAX:  # bool, float, str, null, 1e30, 2**31 refused
        raise _bad("not an item index")
    return value


def newest_first(q: Select, model: Any, cursor: str | None, limit: int) -> Select:
    """Order ``q`` by (created_at, id) descending, start strictly after ``cursor``, fetch one extra row
    (``newest_first_page`` uses it to tell whether there is a next page)."""
    if cursor:
        created, row_id = decode_cursor(cursor, 2)
        try:
            created, row_id = datetime.fromisoformat(created), uuid.UUID(row_id)
        except (ValueError, TypeError, AttributeError) as e:
            raise _bad("not a time and an id") from e
        if created.tzinfo is None:  # every cursor we issue carries the offset; naive times compare wrongly
            raise _bad("time without offset")
        q = q.where(or_(model.created_at < created, and_(model.created_at == created, model.id < row_id)))
    return q.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)


def newest_first_page(rows: list[Any], limit: int) -> tuple[list[Any], bool, str | None]:
    """(the page, has_more, next_cursor) from the ``limit + 1`` rows of a ``newest_first`` query."""
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, more, encode_cursor(rows[-1].created_at.isoformat(), rows[-1].id) if more else None
