"""The FastAPI application, ``uvicorn api.app:app``: it only assembles — middleware (api/outages.py,
api/limits.py, api/idempotency.py), the error handlers (api/errors.py) and one router per resource
(api/jobs.py, api/batches.py, api/uploads.py, api/health.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api import batches, health, jobs, uploads
from api.errors import install_handlers
from api.idempotency import IdempotencyMiddleware
from api.limits import BodyLimitMiddleware
from api.outages import OutageMiddleware
from api.schemas import ErrorResponse

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
install_handlers(app)

