"""The published contract (``/openapi.json``): what FastAPI derives from the routes, plus what it cannot
see, so that a client generated from the schema by a standard generator can use every operation.

FastAPI cannot see, because the code reads it by hand:

* the two request forms of ``POST /v1/jobs`` (a multipart upload, or JSON naming a key or a URL), which
  the endpoint parses itself (api/jobs.py) — declared here as one ``requestBody`` with both media types;
* ``Idempotency-Key`` (api/idempotency.py, a middleware), on every POST;
* ``Prefer: wait=N`` where it works (the job submit);
* bearer authentication (api/auth.py, a dependency that reads the header itself), declared globally,
  with the health probes open;
* the error codes: each operation lists its HTTP error statuses with the catalogue codes
  (portrait/errors.py) each can carry, all in the one ``ErrorResponse`` shape. Routes name their own
  codes with :func:`errors`; the ones every authenticated call can get are added here.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from api.schemas import ErrorResponse, JobCreate, JobUpload
from portrait.errors import CATALOGUE

#: Every authenticated operation can answer these.
COMMON_ERRORS = ("unauthorized", "validation_error", "rate_limited", "service_unavailable", "internal_error")
#: ... and every POST these (body caps, the Idempotency-Key middleware).
POST_ERRORS = ("invalid_request", "payload_too_large", "idempotency_key_reused", "idempotency_request_in_progress")
SCHEMA_REF = "#/components/schemas/{model}"
OPEN_PATHS = ("/healthz", "/readyz")  # no credentials


def errors(*codes: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these catalogue codes: one entry per HTTP status, in the ErrorResponse
    shape, its description listing the codes (a code not in the catalogue is a KeyError at import)."""
    by_status: dict[int, list[str]] = defaultdict(list)
    for code in codes:
        by_status[CATALOGUE[code].http_status].append(code)
    return {status: {"model": ErrorResponse, "description": _describe(cs)} for status, cs in sorted(by_status.items())}


def _describe(codes: list[str]) -> str:
    return "Error codes:\n" + "\n".join(f"- `{c}`: {CATALOGUE[c].description}" for c in codes)


SUBMIT_BODY: dict[str, Any] = {
    "required": True,
    "description": "An upload (multipart/form-data with the file) or JSON naming an object key or an https URL.",
    "content": {
        "multipart/form-data": {
            "schema": {"$ref": SCHEMA_REF.format(model="JobUpload")},
            "encoding": {"file": {"contentType": "image/jpeg, image/png, image/webp, image/bmp, image/tiff"},
                         "options": {"contentType": "application/json"}},
        },
        "application/json": {
            "schema": {"$ref": SCHEMA_REF.format(model="JobCreate")},
            "examples": {
                "url": {"summary": "an https URL",
                        "value": {"input": {"url": "https://example.com/photo.jpg"}, "options": {"upscale": 2}}},
                "key": {"summary": "an object uploaded with POST /v1/uploads",
                        "value": {"input": {"key": "clients/<client_id>/uploads/<id>/photo.jpg"},
                                  "webhook_url": "https://example.com/hooks/portrait",
                                  "webhook_events_filter": ["start", "completed"]}},
            },
        },
    },
}

PREFER_WAIT: dict[str, Any] = {
    "name": "Prefer", "in": "header", "required": False, "schema": {"type": "string", "pattern": r"wait=\d+"},
    "example": "wait=30",
    "description": "RFC 7240 `wait=N`: hold the reply up to N seconds (at most WAIT_MAX_S) for the job to "
                   "finish — 200 with the finished job, or 202 with its current state when time ran out.",
}

IDEMPOTENCY_KEY: dict[str, Any] = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Retry safely: the same key with the same request replays the first reply (header "
                   "`Idempotent-Replayed: true`), with another request is 409 `idempotency_key_reused`. "
                   "Keys are per client, kept at least 24 h.",
}


def build_schema(app: FastAPI) -> dict[str, Any]:
    """The full schema of ``app`` (cached on it, as FastAPI does)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    _, defs = models_json_schema([(JobCreate, "validation"), (JobUpload, "validation")], ref_template=SCHEMA_REF)
    components.setdefault("schemas", {}).update(defs["$defs"])
    for prop in components["schemas"]["JobUpload"]["properties"].values():
        prop.pop("default", None)  # optional parts are absent, never null (the model's None is the parser's)
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                                "description": "An API key: `Authorization: Bearer <key>`."}}
    schema["security"] = [{"bearer": []}]
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            responses = op.setdefault("responses", {})
            if "HTTPValidationError" in str(responses.get("422")):  # FastAPI's: ours is an ErrorResponse
                del responses["422"]
            if path in OPEN_PATHS:
                op["security"] = []
                continue
            codes = list(COMMON_ERRORS) + (list(POST_ERRORS) if method == "post" else [])
            for status, entry in errors(*codes).items():
                _merge(responses, str(status), entry["description"])
            if method == "post":
                op.setdefault("parameters", []).append(IDEMPOTENCY_KEY)
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 shape, replaced above
        components["schemas"].pop(unused, None)
    app.openapi_schema = schema
    return schema


def _merge(responses: dict[str, Any], status: str, description: str) -> None:
    """Add the common codes to a status the route may already document with its own codes."""
    ref = {"application/json": {"schema": {"$ref": SCHEMA_REF.format(model="ErrorResponse")}}}
    if status in responses:
        have = responses[status].get("description", "")
        lines = [line for line in description.splitlines()[1:] if line not in have]
        responses[status]["description"] = "\n".join([have, *lines]) if have.startswith("Error codes") else description
    else:
        responses[status] = {"description": description, "content": ref}
