"""The API's Prometheus side: request counts and latency by route template and status (an ASGI
middleware, so replies written by the other middlewares count too), and ``GET /metrics`` with them plus
the depth of every queue (read from Redis at scrape time). Metric definitions: portrait/metrics.py.

``/metrics`` needs no API key, like the probes: expose it to your Prometheus, not to the internet.
"""

from __future__ import annotations

import time

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portrait.metrics import HTTP_LATENCY, HTTP_REQUESTS, QueueDepth, exposition_registry
from portrait.settings import get_settings

router = APIRouter(tags=["health"])
UNMATCHED = "<unmatched>"  # 404s and early refusals: one label value, whatever the path


def _queue_kinds() -> dict[str, str]:
    s = get_settings()
    return {"gpu": s.gpu_queue, "gpu_bulk": s.gpu_bulk_queue, "fetch": s.fetch_queue,
            "webhooks": s.webhook_queue, "maintenance": s.maintenance_queue}


#: What /metrics serves, built once: this process's (or, under PROMETHEUS_MULTIPROC_DIR, every API
#: process's merged) samples, plus the queue depths read at scrape time.
SERVED = exposition_registry()
SERVED.register(QueueDepth(get_settings().redis_url, _queue_kinds()))


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    return Response(generate_latest(SERVED), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Counts every HTTP reply by method, matched route template (``/v1/jobs/{job_id}``) and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0, status = time.perf_counter(), 500

        async def recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            route = getattr(scope.get("route"), "path", UNMATCHED)
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            HTTP_LATENCY.labels(scope["method"], route).observe(time.perf_counter() - t0)
