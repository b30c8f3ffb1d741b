"""Logs of the API and the workers: plain text by default (``make dev``), one JSON object per line with
LOG_FORMAT=json (python-json-logger), for a log pipeline to index.

Every line carries the context of what the process is doing, whoever logs it (our code, Celery,
uvicorn, a library): ``request_id`` while the API answers a request (api/request_id.py), and
``job_id``, ``client_id``, ``batch_id``, ``attempt`` while a worker or the API handles a job. The
context lives in a ContextVar (:func:`log_context`, :func:`bind`), so concurrent requests and threads
never mix theirs; a filter on the handlers copies it onto each record.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

from pythonjsonlogger.json import JsonFormatter

#: The context fields, in the order a JSON line shows them.
FIELDS = ("request_id", "job_id", "client_id", "batch_id", "attempt")
_CONTEXT: ContextVar[Mapping[str, Any]] = ContextVar("portrait_log_context", default=MappingProxyType({}))
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class ContextFilter(logging.Filter):
    """Copies the current context onto every record the handler emits (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _CONTEXT.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Within the block, every log line also carries ``fields`` (on top of the enclosing context)."""
    token = _CONTEXT.set({**_CONTEXT.get(), **_clean(fields)})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def bind(**fields: Any) -> None:
    """Add ``fields`` to the current context until the enclosing :func:`log_context` ends."""
    _CONTEXT.set({**_CONTEXT.get(), **_clean(fields)})


def job_fields(job: Any, attempt: int | None = None) -> dict[str, Any]:
    """The context of a job row: its id, client, batch (None for a single job) and attempt."""
    return {"job_id": job.id, "client_id": job.client_id, "batch_id": job.batch_id,
            "attempt": attempt if attempt is not None else job.attempts}


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown log context fields {sorted(unknown)}; add them to FIELDS")
    return {k: (v if v is None or isinstance(v, int) else str(v)) for k, v in fields.items()}


def formatter(fmt: str) -> logging.Formatter:
    """``json``: one object per line with time, level, logger, message, the context fields and any
    ``extra``; ``text``: the classic one-line format."""
    if fmt == "json":
        return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                             rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})
    return logging.Formatter(TEXT_FORMAT)


def install(logger: logging.Logger, fmt: str, *, take_over: bool = True) -> None:
    """Give ``logger``'s handlers (a stderr one if it has none) the context filter, and with
    ``take_over`` our formatter (json always takes over: a mixed stream cannot be parsed)."""
    if not logger.handlers:
        logger.addHandler(logging.StreamHandler(sys.stderr))
    for handler in logger.handlers:
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())
        if take_over or fmt == "json":
            handler.setFormatter(formatter(fmt))


def configure_api(fmt: str) -> None:
    """The API process: our handler on the root logger; in json mode uvicorn's loggers (server and
    access lines) go through it too, so the whole stream is JSON."""
    root = logging.getLogger()
    install(root, fmt)
    root.setLevel(logging.INFO)
    if fmt == "json":
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            lg = logging.getLogger(name)
            lg.handlers.clear()
            lg.propagate = True
