"""Jobs: ``POST /v1/jobs`` (an upload, an object key or an https URL), get, list, cancel.

Submit is write-then-enqueue: the input is stored, then the job row is committed (status ``queued``,
with the Idempotency-Key's reply in the same transaction), then the message is sent; a Redis outage
at submit loses nothing, the sweeper sends what never left (worker/sweeper.py). ``Prefer: wait=N``
holds the reply until the job finishes or N seconds pass.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api import idempotency
from api.auth import owned_or_404
from api.deps import ClientDep, Cursor, PageSize, request_form
from api.image_check import check_image_header
from api.inputs import check_own_key, url_checker
from api.openapi import PREFER_WAIT, SUBMIT_BODY, errors
from api.pagination import newest_first, newest_first_page
from api.ratelimit import reserve_in_flight
from api.schemas import JobCreate, JobList
from db import jobs as jobs_db
from db.models import TERMINAL_STATUSES, Client, InputSource, Job, JobStatus
from db.session import session_scope
from jobs import messages
from jobs.objects import JobObject, job_object
from portrait.errors import ApiError
from portrait.logs import bind, job_fields
from portrait.settings import get_settings
from portrait.storage import get_storage, input_key

log = logging.getLogger("portrait.api")

router = APIRouter(tags=["jobs"])



async def _read_capped(upload: Any, limit: int) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise ApiError("payload_too_large", f"the upload exceeds {limit} bytes")
    return data


#: the parts of a multipart submit (api/schemas.py JobUpload); any other is refused like an unknown JSON field
FORM_PARTS = {"file", "options", "webhook_url", "webhook_events_filter"}


def _form_events(values: list[str]) -> list[Any] | None:
    """A multipart ``webhook_events_filter``: one part per event (OpenAPI's way of sending an array in a
    form), or one part holding a JSON list (the older way); None when absent."""
    values = [v for v in values if v]
    if not values:
        return None
    if len(values) == 1 and values[0].lstrip().startswith("["):
        return json.loads(values[0])
    return [json.loads(v) if v.lstrip().startswith('"') else v for v in values]


async def _parse_submit(request: Request, client: Client) -> tuple[JobCreate, bytes | None]:
    settings = get_settings()  # the body's size was capped before it was read (api/limits.py)
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request_form(request)  # parsed once, maybe by api/idempotency.py
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiError("invalid_request", "multipart submit needs a 'file' part")
        data = await _read_capped(upload, settings.max_upload_bytes)
        unknown = sorted(set(form.keys()) - FORM_PARTS)
        if unknown:
            raise ApiError("validation_error", f"{unknown[0][:40]!r}: unknown form field (expected "
                                               f"{', '.join(sorted(FORM_PARTS))})")
        try:
            raw_options = form.get("options")
            options = json.loads(raw_options) if isinstance(raw_options, str) and raw_options else {}
            fields: dict[str, Any] = {"input": {"key": "upload"}, "options": options,
                                      "webhook_url": form.get("webhook_url") or None}
            events = _form_events([v for v in form.getlist("webhook_events_filter") if isinstance(v, str)])
            if events is not None:
                fields["webhook_events_filter"] = events
            body = JobCreate.model_validate(fields)
        except (json.JSONDecodeError, RecursionError) as e:
            raise ApiError("invalid_request", "options and webhook_events_filter must be JSON "
                                              "(and nested at most a few levels)") from e
        except ValidationError as e:
            raise RequestValidationError(e.errors()) from e
        return body, data
    if ctype.startswith("application/json"):
        try:
            body = JobCreate.model_validate_json(await request.body())
        except ValidationError as e:
            raise RequestValidationError(e.errors()) from e
        if body.input.key is not None:
            check_own_key(body.input.key, client)
        if body.input.url is not None:
            await run_in_threadpool(url_checker(), str(body.input.url), "input.url")
        return body, None
    raise ApiError("unsupported_media_type", "send multipart/form-data (file) or application/json")


def _prefer_wait(request: Request) -> float | None:
    """Seconds from ``Prefer: wait=N`` (RFC 7240), capped at WAIT_MAX_S; None without it."""
    m = re.search(r"(?:^|[,;\s])wait=(\d{1,6}(?:\.\d{1,3})?)(?=$|[,;\s])", request.headers.get("prefer", ""))
    return min(float(m.group(1)), get_settings().wait_max_s) if m else None


async def _wait_terminal(job_id: uuid.UUID, seconds: float) -> None:
    """Poll Postgres (the source of truth) until the job is terminal or ``seconds`` passed."""
    deadline = time.monotonic() + seconds
    delay = 0.1
    while time.monotonic() < deadline:
        status = await run_in_threadpool(_status, job_id)
        if status in TERMINAL_STATUSES:
            return
        await asyncio.sleep(min(delay, max(deadline - time.monotonic(), 0)))
        delay = min(delay * 1.5, 1.0)


def _status(job_id: uuid.UUID) -> JobStatus | None:
    with session_scope() as s:
        return s.scalar(select(Job.status).where(Job.id == job_id))


@router.post("/v1/jobs", status_code=202, response_model=JobObject, openapi_extra={
    "requestBody": SUBMIT_BODY, "parameters": [PREFER_WAIT]},
    responses={200: {"model": JobObject, "description": "The job finished within `Prefer: wait`."},
               **errors("empty_input", "unsupported_media_type", "not_found", "invalid_image", "image_too_large",
                        "image_too_small", "url_not_allowed", "too_many_jobs_in_flight")})
async def create_job(request: Request, response: Response, client: ClientDep) -> JobObject:
    """Submit one photo: a multipart ``file`` upload, or JSON naming an object key or an https URL.

    Multipart form fields: ``file`` (required), ``options`` (JSON object), ``webhook_url``,
    ``webhook_events_filter`` (JSON list). JSON: ``{"input": {"key": "clients/<id>/…"} | {"url":
    "https://…"}, "options": {…}, "webhook_url": …, "webhook_events_filter": ["start", "completed"]}``.

    ``Prefer: wait=N`` holds the reply up to N seconds (at most WAIT_MAX_S) for the job to finish:
    200 with the finished job, or 202 with its current state when time ran out.
    """
    body, data = await _parse_submit(request, client)
    webhook = (await run_in_threadpool(url_checker(), str(body.webhook_url), "webhook_url")
               if body.webhook_url else None)
    # S3, Postgres and Redis clients are blocking: run them off the event loop so submits overlap.
    created = await run_in_threadpool(_store_and_enqueue, client, body, data, webhook, request.state)
    wait = _prefer_wait(request)
    if wait is None:
        return created  # as committed (queued), the reply a retry with the same Idempotency-Key replays
    await _wait_terminal(created.id, wait)
    response.headers["Preference-Applied"] = f"wait={wait:g}"
    job = await run_in_threadpool(_load_job_object, created.id)
    if job.status in TERMINAL_STATUSES:
        response.status_code = 200
    return job


def _store_and_enqueue(client: Client, body: JobCreate, data: bytes | None, webhook: str | None,
                       request_state: object = None) -> JobObject:
    """Store the input, commit the job row (queued) with the Idempotency-Key's reply, then send its
    message: write before enqueue. Returns the job as committed."""
    settings = get_settings()
    storage = get_storage()
    job_id = uuid.uuid4()
    if data is not None:
        check_image_header(data, settings)
        key, source, url = input_key(client.id, job_id), InputSource.upload, None
        storage.put(key, data)
    elif body.input.key is not None:
        size = storage.size(body.input.key)
        if size is None:
            raise ApiError("not_found", f"object {body.input.key!r} not found")
        if size == 0:
            raise ApiError("empty_input", "the input object is zero bytes")
        if size > settings.max_upload_bytes:
            raise ApiError("payload_too_large", f"the object exceeds {settings.max_upload_bytes} bytes")
        key, source, url = body.input.key, InputSource.object, None
    else:
        key, source, url = input_key(client.id, job_id), InputSource.url, str(body.input.url)
    with session_scope() as s:
        reserve_in_flight(s, client, 1)
        job = jobs_db.create(s, client_id=client.id, job_id=job_id, input_key=key, input_source=source,
                             input_url=url, options=body.options.model_dump(mode="json"), webhook_url=webhook,
                             webhook_events_filter=list(body.webhook_events_filter))
        s.flush()
        s.refresh(job)
        created = job_object(job, storage)
        idempotency.record_in(s, request_state, 202, created.model_dump_json().encode())
        bind(**job_fields(job))  # this request's remaining lines are about this job
    log.info("job created (input from %s)", source)
    try:
        messages.send_job(job)
        with session_scope() as s:
            jobs_db.mark_enqueued(s, job_id)
    except Exception:  # noqa: BLE001 - the sweeper re-sends queued jobs whose message never left
        log.exception("enqueue failed for job %s; the sweeper will retry", job_id)
    return created


def _load_job_object(job_id: uuid.UUID) -> JobObject:
    with session_scope() as s:
        return job_object(s.get(Job, job_id), get_storage())


def _own_job(job_id: uuid.UUID, client: Client) -> Job:
    return owned_or_404(Job, job_id, client, "job")


@router.get("/v1/jobs/{job_id}", response_model=JobObject, responses=errors("not_found"))
def get_job(job_id: uuid.UUID, client: ClientDep) -> JobObject:
    return job_object(_own_job(job_id, client), get_storage())


@router.get("/v1/jobs", response_model=JobList, responses=errors("invalid_request", "invalid_cursor"))
def list_jobs(
    client: ClientDep,
    limit: PageSize = 20,
    cursor: Cursor = None,
    status: JobStatus | None = None,
) -> JobList:
    """Newest first. Pass ``next_cursor`` back as ``cursor`` for the next page (stable under inserts)."""
    q = select(Job).where(Job.client_id == client.id)
    if status is not None:
        q = q.where(Job.status == status)
    with session_scope() as s:
        rows = list(s.scalars(newest_first(q, Job, cursor, limit)))
    rows, more, next_cursor = newest_first_page(rows, limit)
    storage = get_storage()
    return JobList(data=[job_object(j, storage) for j in rows], has_more=more, next_cursor=next_cursor)


@router.post("/v1/jobs/{job_id}/cancel", response_model=JobObject,
             responses=errors("not_found", "job_not_cancelable"))
def cancel_job(job_id: uuid.UUID, client: ClientDep) -> JobObject:
    """Cancel a queued or running job. A running job's result is discarded when its worker finishes."""
    _own_job(job_id, client)
    with session_scope() as s:
        canceled = jobs_db.cancel(s, job_id)
        if canceled is None:
            current = s.get(Job, job_id)
            raise ApiError("job_not_cancelable", f"job {job_id} is already {current.status.value}")
    messages.send(canceled)  # a batch item's cancel also frees its fair-dispatch slot
    return job_object(canceled.job, get_storage())
