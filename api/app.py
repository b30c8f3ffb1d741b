"""The FastAPI application, ``uvicorn api.app:app``: it only assembles — middleware (api/outages.py,
api/limits.py, api/idempotency.py), the error handlers (api/errors.py), one router per resource
(api/jobs.py, api/batches.py, api/uploads.py, api/health.py, api/metrics.py, api/page.py) and the
published schema (api/openapi.py).
"""

from __future__ import annotations

from fastapi import FastAPI

from api import batches, credentials, health, jobs, metrics, page, uploads
from api.errors import install_handlers
from api.idempotency import IdempotencyMiddleware
from api.limits import BodyLimitMiddleware
from api.metrics import MetricsMiddleware
from api.openapi import build_schema
from api.outages import OutageMiddleware
from api.request_id import RequestIdMiddleware
from portrait.logs import configure_api
from portrait.settings import get_settings

configure_api(get_settings().log_format)  # text, or JSON lines with request and job context (portrait/logs.py)
app = FastAPI(
    title="Portrait restoration API",
    version="0.1.0",
    description="Submit photos, poll jobs, receive signed webhooks. Error codes: docs/errors.md.",
    generate_unique_id_function=lambda route: route.name,  # operationIds: create_job, get_job, ...
)
app.add_middleware(IdempotencyMiddleware)
app.add_middleware(BodyLimitMiddleware)  # nothing reads more than the cap
app.add_middleware(OutageMiddleware)  # a backing service down is a 503 wherever it shows
app.add_middleware(MetricsMiddleware)  # counts every reply, the other middlewares' too
app.add_middleware(RequestIdMiddleware)  # outermost: every reply and log line has its X-Request-Id
app.include_router(health.router)
app.include_router(metrics.router)
app.include_router(page.router)  # the try-it page at /
app.mount("/static", page.static_files(), name="static")
app.include_router(jobs.router)
app.include_router(batches.router)
app.include_router(uploads.router)
app.include_router(credentials.router)
install_handlers(app)
app.openapi = lambda: build_schema(app)  # the contract: routes + what FastAPI cannot see (api/openapi.py)

