"""The try-it page at ``/``: paste an API key, drop a photo, watch the job, compare before / after, read
the per-face report. Static files (``api/static/``: HTML, CSS, plain JavaScript; no build step) that call
the public API like any client; served without a key, with a Content-Security-Policy that lets the page
load only its own scripts and talk only to this API (result images come from presigned storage URLs).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self' blob: data: http: https:; frame-ancestors 'none'")

router = APIRouter(tags=["page"])


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": CSP,
                                                         "X-Content-Type-Options": "nosniff"})


def static_files() -> StaticFiles:
    """``/static``: the page's CSS and JavaScript."""
    return StaticFiles(directory=STATIC)
