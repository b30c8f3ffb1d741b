"""The API's one error writer: every error a client sees is ``{"error": {"code", "message"}}`` with a
code from the catalogue (portrait/errors.py), whoever answers — an endpoint raising ``ApiError``, a
validation failure, an unexpected exception, or an ASGI middleware answering before the app runs
(api/limits.py, api/outages.py, api/idempotency.py). Both go through :func:`error_response`.
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from portrait.errors import ApiError

log = logging.getLogger("portrait.api")

#: Starlette's own HTTP errors (unknown route, wrong method, ...) mapped to catalogue codes.
HTTP_CODES = {404: "not_found", 405: "invalid_request", 401: "unauthorized"}
HTTP_METHODS = {"GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS"}


def error_response(err: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    """``err`` as the documented JSON error, with its headers (and ``headers`` on top).

    A JSONResponse is also an ASGI app: middlewares answer with ``await error_response(e)(scope, receive, send)``.
    """
    return JSONResponse({"error": {"code": err.code, "message": err.message}}, status_code=err.http_status,
                        headers={**(err.headers or {}), **(headers or {})} or None)


async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc)


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return error_response(ApiError("validation_error", f"{where}: {first.get('msg', 'invalid')}".strip(": ")))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """Whatever went wrong, the client gets the documented shape (and no Python repr)."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(ApiError("internal_error", f"unexpected {type(exc).__name__}; the error is logged"))


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's own errors, with their headers. A 405's ``Allow`` (RFC 9110) lists every method of the
    path: Starlette names only those of the first route that matched it, and FastAPI makes one route per
    method (``GET`` and ``POST /v1/api-keys`` are two)."""
    code = HTTP_CODES.get(exc.status_code, "invalid_request")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _methods_of(request, headers.get("allow") or headers.get("Allow", ""))
        headers.pop("allow", None)
    return error_response(ApiError(code, str(exc.detail), exc.status_code, headers=headers))


def _methods_of(request: Request, fallback: str) -> str:
    """Every method the published schema lists for the request's path (else Starlette's own list)."""
    methods: set[str] = set()
    for template, ops in request.app.openapi().get("paths", {}).items():
        if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), request.url.path):
            methods |= {m.upper() for m in ops if m.upper() in HTTP_METHODS}
    return ", ".join(sorted(methods)) if methods else fallback


def install_handlers(app: FastAPI) -> None:
    """Register the handlers that render every exception as the JSON error shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
    app.add_exception_handler(StarletteHTTPException, _http_error)
