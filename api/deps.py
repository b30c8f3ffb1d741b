"""Dependencies shared by the routers: who is calling (authenticated and rate-limited), how big a
page may be, and a multipart body parsed once per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.types import Message, Scope

from api.ratelimit import rate_limited_client
from db.models import Client

#: The authenticated client, after it paid one rate-limit token (api/ratelimit.py).
ClientDep = Annotated[Client, Depends(rate_limited_client)]
#: ``?limit=`` of a list endpoint: 1 to 100 items a page.
PageSize = Annotated[int, Query(ge=1, le=100)]
#: ``?cursor=`` of a list endpoint: an opaque token, checked before any query (api/pagination.py).
Cursor = Annotated[str | None, Query(description="Opaque token: the `next_cursor` of the previous page, passed "
                                                 "back unchanged. Any other string is refused with 400 "
                                                 "`invalid_cursor`; empty means the first page.")]

#: A multipart submit has one file and a few fields (POST /v1/jobs); anything bigger is refused.
FORM_LIMITS = {"max_files": 1, "max_fields": 10}
_FORM = "form"  # scope["state"] key of a form parsed before the endpoint ran


async def parse_form(scope: Scope, body: bytes) -> FormData:
    """Parse a buffered multipart ``body`` and keep it for the endpoint (:func:`request_form`), so a
    middleware that needs the fields first (api/idempotency.py hashes them) does not parse twice.
    The caller closes it after the endpoint ran."""
    async def replay() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(scope, replay).form(**FORM_LIMITS)
    scope.setdefault("state", {})[_FORM] = form
    return form


async def close_form(scope: Scope) -> None:
    """Close (delete the spooled files of) the form :func:`parse_form` kept, if any."""
    form = scope.get("state", {}).pop(_FORM, None)
    if form is not None:
        await form.close()


async def request_form(request: Request) -> FormData:
    """This request's multipart form: the one a middleware already parsed, else parsed now."""
    form = request.scope.get("state", {}).get(_FORM)
    return form if form is not None else await request.form(**FORM_LIMITS)
