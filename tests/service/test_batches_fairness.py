"""Fair bulk dispatch on real services: a small batch is not stuck behind another client's big one."""

from __future__ import annotations

import threading
import time
import uuid

from harness import Api, FileServer, Stack, job_events
from sqlalchemy import func, select
from test_batches import wait_batch

from db import batches as batches_db
from db import dispatch
from db.models import Job
from db.session import session_scope
from portrait.settings import get_settings
from portrait.storage import client_prefix, get_storage, input_key


def _in_flight(client_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    with session_scope() as s:
        return dict(s.execute(select(Job.client_id, func.count())
                              .where(dispatch.IN_FLIGHT, Job.client_id.in_(client_ids))
                              .group_by(Job.client_id)).all())


def _batch(api: Api, faces: list[bytes], name: str) -> dict:
    prefix = client_prefix(api.client.id)
    items = []
    for i, data in enumerate(faces):
        key = f"{prefix}{name}/{i}.jpg"
        get_storage().put(key, data, "image/jpeg")
        items.append({"key": key})
    r = api.http.post("/v1/batches", json={"items": items, "options": {"upscale": 1}})
    assert r.status_code == 202, r.text
    return r.json()


def test_a_small_batch_finishes_before_a_big_earlier_one(stack: Stack, small_faces: list[bytes]) -> None:
    cap = get_settings().bulk_in_flight_per_client
    a, b = Api(stack), Api(stack)
    try:
        big = _batch(a, small_faces[:60], "big")
        a.wait(big["job_ids"][0], timeout=60)  # the big batch is under way (with FIFO, all of it queued)
        small = _batch(b, small_faces[100:104], "small")
        peak = {a.client.id: 0, b.client.id: 0}
        deadline = time.monotonic() + 180
        while a.http.get(f"/v1/batches/{big['id']}").json()["status"] != "completed":
            assert time.monotonic() < deadline, "the big batch did not complete"
            for cid, n in _in_flight([a.client.id, b.client.id]).items():
                peak[cid] = max(peak[cid], n)
            time.sleep(0.1)
        assert wait_batch(b, small["id"], 30)["counts"]["succeeded"] == 4
    finally:
        a.http.close()
        b.http.close()

    with session_scope() as s:
        finished = {jid: at for jid, at in s.execute(select(Job.id, Job.finished_at).where(
            Job.batch_id.in_([uuid.UUID(big["id"]), uuid.UUID(small["id"])])))}
    small_done = max(finished[uuid.UUID(j)] for j in small["job_ids"])
    big_before = sum(finished[uuid.UUID(j)] < small_done for j in big["job_ids"])
    # FIFO would finish all 60 first; fair dispatch lets the small batch in behind at most `cap` of them
    # (plus the one or two that finished before it was submitted).
    assert big_before <= 2 * cap, f"{big_before} of the big batch's 60 items finished before the small batch"
    assert 0 < peak[a.client.id] <= cap and peak[b.client.id] <= cap, peak
    # Waiting longer than QUEUED_STALE_S for a turn is not a lost message: the sweeper left them alone.
    reasons = {r for j in big["job_ids"] for _, _, r in job_events(j)}
    assert not any(r and "sweeper" in r for r in reasons), reasons


def test_concurrent_dispatchers_never_exceed_the_cap(api: Api, small_faces: list[bytes]) -> None:
    """Eight dispatchers at once over a batch nobody has dispatched yet send exactly `cap` messages."""
    cap = get_settings().bulk_in_flight_per_client
    release = threading.Event()
    # URL items whose server answers only when released: nothing finishes, so no slot frees meanwhile.
    srv = FileServer(lambda _path: (release.wait(60), (200, {}, small_faces[7]))[1])
    try:
        ids = [uuid.uuid4() for _ in range(3 * cap)]
        items = [batches_db.NewItem(jid, input_key(api.client.id, jid), "url", f"{srv.url}/{i}.jpg")
                 for i, jid in enumerate(ids)]
        with session_scope() as s:  # committed, not yet dispatched (as if the API died after the commit)
            batch = batches_db.create(s, client_id=api.client.id, items=items, options={"upscale": 1},
                                      webhook_url=None, webhook_events_filter=[])
        start = threading.Barrier(8)
        sent: list[int] = []

        def run() -> None:
            start.wait()
            sent.append(dispatch.dispatch_bulk())

        threads = [threading.Thread(target=run) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sum(sent) <= cap  # the sweeper may have dispatched some first
        with session_scope() as s:
            marked = s.scalar(select(func.count()).where(Job.batch_id == batch.id, Job.enqueued_at.is_not(None)))
        assert marked == cap
        assert _in_flight([api.client.id]) == {api.client.id: cap}
        api.wait(str(ids[0]), statuses=("running",), timeout=30)
        release.set()
        done = wait_batch(api, str(batch.id), timeout=120)
    finally:
        release.set()
        srv.close()
    assert done["counts"]["succeeded"] == 3 * cap
    for jid in ids:  # claimed once; none re-sent by the sweeper
        assert [(a, b) for a, b, _ in job_events(str(jid))] == [(None, "queued"), ("queued", "running"),
                                                                 ("running", "succeeded")]
