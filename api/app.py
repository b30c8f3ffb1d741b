"""The FastAPI application, ``uvicorn api.app:app``: it only assembles — middleware (api/outages.py,
api/limits.py, api/idempotency.py), the error handlers that give every error the
``{"error": {"code", "message"}}`` shape with a code from portrait/errors.py, and one router per
resource (api/jobs.py, api/batches.py, api/uploads.py, api/health.py).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import batches, health, jobs, uploads
from api.idempotency import IdempotencyMiddleware
from api.limits import BodyLimitMiddleware
from api.outages import OutageMiddleware
from api.schemas import ErrorResponse
from portrait.errors import ApiError

log = logging.getLogger("portrait.api")

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 409, 413, 415, 422, 429, 503)
}

app = FastAPI(
    title="Portrait restoration API",
    version="0.1.0",
    description="Submit photos, poll jobs, receive signed webhooks. See README.md for the error codes.",
    responses=ERRORS,
)
app.add_middleware(IdempotencyMiddleware)
app.add_middleware(BodyLimitMiddleware)  # nothing reads more than the cap
app.add_middleware(OutageMiddleware)  # outermost: a backing service down is a 503 wherever it shows
app.include_router(health.router)
app.include_router(jobs.router)
app.include_router(batches.router)
app.include_router(uploads.router)


def _error(code: str, message: str, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


@app.exception_handler(ApiError)
async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
    return _error(exc.code, exc.message, exc.http_status, exc.headers)


@app.exception_handler(RequestValidationError)
async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return _error("validation_error", f"{where}: {first.get('msg', 'invalid')}".strip(": "), 422)


@app.exception_handler(Exception)
async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """Whatever went wrong, the client gets the documented shape (and no Python repr)."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error("internal_error", f"unexpected {type(exc).__name__}; the error is logged", 500)


@app.exception_handler(StarletteHTTPException)
async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    codes = {404: "not_found", 405: "invalid_request", 401: "unauthorized"}
    code = codes.get(exc.status_code, "invalid_request")
    return _error(code, str(exc.detail), exc.status_code)


