"""Batches: many inputs, shared options and webhook, one ``batch.completed`` (AWS Batch array jobs).

``POST /v1/batches`` resolves every item (an object key under the client's prefix, an https URL, or
an upload id), then inserts the batch and all its jobs in **one** transaction, and only after the
commit (in the background, after the reply) asks a CPU worker to run the fair dispatcher
(db/dispatch.py picks, worker/dispatch.py sends), which sends the first few items' messages to the
bulk queue; the rest follow as earlier ones finish. If that request is lost, the sweeper dispatches.
Object keys and uploads are not HEAD-checked here (1,000 round trips); a missing one fails its job
with ``input_missing``.

Batch items go to GPU_BULK_QUEUE, which GPU workers serve only when the interactive queue is empty
(worker/celery_app.py), so a big batch never holds up single photos.

``POST /v1/batches/{id}/cancel`` cancels the items that have not started; their messages, if any,
stay in Redis and are dropped by the worker's claim (a canceled job cannot be claimed).
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, BackgroundTasks, Request
from sqlalchemy import select

from api import idempotency
from api.auth import owned_or_404
from api.deps import ClientDep, Cursor, PageSize
from api.inputs import check_own_key, url_checker
from api.openapi import errors
from api.pagination import decode_index_cursor, encode_cursor, newest_first, newest_first_page
from api.ratelimit import reserve_in_flight
from api.schemas import BatchCreate, BatchCreated, BatchDetail, BatchList, JobList
from db import batches as batches_db
from db import jobs as jobs_db
from db.models import Batch, Client, InputSource, Job, Upload
from db.session import session_scope
from jobs import messages
from jobs.objects import BatchObject, batch_object, job_object
from portrait.errors import ApiError
from portrait.settings import get_settings
from portrait.storage import get_storage, input_key

router = APIRouter(tags=["batches"])


def _resolve_items(body: BatchCreate, client: Client) -> list[batches_db.NewItem]:
    settings = get_settings()
    if len(body.items) > settings.batch_max_items:
        raise ApiError("validation_error", f"items: at most {settings.batch_max_items} per batch, "
                                           f"got {len(body.items)}")
    wanted = {it.upload for it in body.items if it.upload is not None}
    uploads: dict[uuid.UUID, str] = {}
    if wanted:
        with session_scope() as s:
            uploads = dict(s.execute(select(Upload.id, Upload.key)
                                     .where(Upload.id.in_(wanted), Upload.client_id == client.id)).all())
    check_url = url_checker()
    items = []
    for i, it in enumerate(body.items):
        jid = uuid.uuid4()
        if it.key is not None:
            items.append(batches_db.NewItem(jid, check_own_key(it.key, client), InputSource.object))
        elif it.upload is not None:
            if it.upload not in uploads:
                raise ApiError("not_found", f"items[{i}].upload: upload {it.upload} not found")
            items.append(batches_db.NewItem(jid, uploads[it.upload], InputSource.upload))
        else:
            url = check_url(str(it.url), f"items[{i}].url")
            items.append(batches_db.NewItem(jid, input_key(client.id, jid), InputSource.url, url))
    return items


@router.post("/v1/batches", status_code=202, response_model=BatchCreated,
             responses=errors("not_found", "url_not_allowed", "too_many_jobs_in_flight"))
def create_batch(body: BatchCreate, client: ClientDep, background: BackgroundTasks,
                 request: Request) -> BatchCreated:
    """Submit up to BATCH_MAX_ITEMS photos sharing ``options`` and ``webhook_url``.

    Items: ``{"key": "clients/<id>/…"}``, ``{"url": "https://…"}`` or ``{"upload": "<upload id>"}``.
    The webhook gets ``batch.completed`` once, plus the per-job events in ``webhook_events_filter``.
    """
    items = _resolve_items(body, client)
    webhook = url_checker()(str(body.webhook_url), "webhook_url") if body.webhook_url else None
    options = body.options.model_dump(mode="json")
    with session_scope() as s:
        reserve_in_flight(s, client, len(items))
        batch = batches_db.create(s, client_id=client.id, items=items, options=options, webhook_url=webhook,
                                  webhook_events_filter=list(body.webhook_events_filter))
        s.flush()
        s.refresh(batch)
        counts = batches_db.status_counts(s, batch.id)
        created = BatchCreated(**batch_object(batch, counts).model_dump(), job_ids=[it.job_id for it in items])
        idempotency.record_in(s, request.state, 202, created.model_dump_json().encode())
    background.add_task(messages.request_dispatch)
    return created


@router.post("/v1/batches/{batch_id}/cancel", response_model=BatchObject, responses=errors("not_found"))
def cancel_batch(batch_id: uuid.UUID, client: ClientDep) -> BatchObject:
    """Cancel every item that has not started; running and finished items are left to finish.

    Idempotent: a second call (or one on a completed batch) cancels nothing and returns the batch.
    Canceled items count as terminal, so the batch completes (and ``batch.completed`` fires, once)
    as soon as its running items finish, or at once if none is running. Canceled items that had been
    dispatched free their client's slots: their notices ask the dispatcher to fill them.
    """
    owned_or_404(Batch, batch_id, client, "batch")
    with session_scope() as s:
        canceled = jobs_db.cancel_batch(s, batch_id)
    messages.send(*canceled)  # also runs the dispatcher once for the slots they freed
    with session_scope() as s:
        batch = s.get(Batch, batch_id)  # before the counts, as in get_batch
        return batch_object(batch, batches_db.status_counts(s, batch_id))


@router.get("/v1/batches/{batch_id}", response_model=BatchDetail,
            responses=errors("not_found", "invalid_request", "invalid_cursor"))
def get_batch(
    batch_id: uuid.UUID,
    client: ClientDep,
    limit: PageSize = 100,
    cursor: Cursor = None,
) -> BatchDetail:
    """Counts per status, progress, and a page of its jobs in item order (``jobs.next_cursor``)."""
    batch = owned_or_404(Batch, batch_id, client, "batch")
    q = select(Job).where(Job.batch_id == batch.id)
    if cursor:
        q = q.where(Job.batch_index > decode_index_cursor(cursor))
    with session_scope() as s:
        # The batch row before the counts: once it says completed, the counts read after it are final.
        batch = s.get(Batch, batch.id)
        counts = batches_db.status_counts(s, batch.id)
        rows = list(s.scalars(q.order_by(Job.batch_index).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    storage = get_storage()
    page = JobList(data=[job_object(j, storage) for j in rows], has_more=more,
                   next_cursor=encode_cursor(rows[-1].batch_index) if more and rows else None)
    return BatchDetail(**batch_object(batch, counts).model_dump(), jobs=page)


@router.get("/v1/batches", response_model=BatchList, responses=errors("invalid_request", "invalid_cursor"))
def list_batches(
    client: ClientDep,
    limit: PageSize = 20,
    cursor: Cursor = None,
) -> BatchList:
    """This client's batches, newest first."""
    q = newest_first(select(Batch).where(Batch.client_id == client.id), Batch, cursor, limit)
    with session_scope() as s:
        rows, more, next_cursor = newest_first_page(list(s.scalars(q)), limit)
        data = [batch_object(b, batches_db.status_counts(s, b.id)) for b in rows]
    return BatchList(data=data, has_more=more, next_cursor=next_cursor)
