"""Fair bulk dispatch on real services: a small batch is not stuck behind another client's big one."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from harness import Api, FileServer, Stack, holds_for, job_events, wait_until
from sqlalchemy import func, select, update
from test_batches import wait_batch

from db import batches as batches_db
from db import dispatch
from db.models import Job
from db.session import session_scope
from jobs import messages
from portrait.settings import get_settings
from portrait.storage import client_prefix, get_storage, input_key
from worker.dispatch import dispatch_bulk


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

        def big_completed() -> bool:
            for cid, n in _in_flight([a.client.id, b.client.id]).items():
                peak[cid] = max(peak[cid], n)
            return a.http.get(f"/v1/batches/{big['id']}").json()["status"] == "completed"

        wait_until(big_completed, 180, 0.1, "the big batch to complete")
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
            sent.append(dispatch_bulk())

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


def _lost_batch(api: Api, faces: list[bytes], lost: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A batch whose first ``lost`` items are marked sent but have no message (the dispatcher committed
    its picks and died before sending them, or Redis lost them)."""
    prefix = client_prefix(api.client.id)
    ids = [uuid.uuid4() for _ in faces]
    items = []
    for jid, data in zip(ids, faces, strict=True):
        key = f"{prefix}lost/{jid}.jpg"
        get_storage().put(key, data, "image/jpeg")
        items.append(batches_db.NewItem(jid, key, "upload", None))
    with session_scope() as s:
        batch = batches_db.create(s, client_id=api.client.id, items=items, options={"upscale": 1},
                                  webhook_url=None, webhook_events_filter=[])
        s.execute(update(Job).where(Job.id.in_(ids[:lost])).values(enqueued_at=func.now()))
    return batch.id, ids


def test_lost_messages_are_resent_while_other_clients_keep_the_bulk_queue_busy(
    stack: Stack, small_faces: list[bytes],
) -> None:
    """A client whose in-flight messages were lost is not stalled until every other client's batch ends.

    Its lost items still count against its cap, so the dispatcher sends it nothing more; the sweeper
    must re-send them although the bulk queue never empties (another client keeps it fed).
    """
    cap = get_settings().bulk_in_flight_per_client
    a, x = Api(stack), Api(stack)
    # Client A: 200 URL items, each held 0.3 s by its server: the bulk queue stays non-empty for a minute.
    srv = FileServer(lambda _path: (time.sleep(0.3), (200, {}, small_faces[11]))[1])
    try:
        big = a.http.post("/v1/batches", json={"items": [{"url": f"{srv.url}/{i}.jpg"} for i in range(200)],
                                               "options": {"upscale": 1}})
        assert big.status_code == 202, big.text
        big_id = big.json()["id"]
        a.wait(big.json()["job_ids"][0], timeout=60)
        batch_id, ids = _lost_batch(x, small_faces[120:120 + cap + 2], lost=cap)
        assert dispatch_bulk() == 0 or _in_flight([x.client.id])[x.client.id] == cap
        done = wait_batch(x, str(batch_id), timeout=60)
        assert done["counts"]["succeeded"] == cap + 2
        assert a.http.get(f"/v1/batches/{big_id}").json()["status"] == "processing", "X waited for all of A"
        for jid in ids[:cap]:
            assert any(r and "sweeper" in r for _, _, r in job_events(str(jid)))
        for jid in big.json()["job_ids"]:  # A's messages were waiting, never lost: none re-sent
            assert not any(r and "sweeper" in r for _, _, r in job_events(jid))
        assert a.http.post(f"/v1/batches/{big_id}/cancel").status_code == 200
        wait_batch(a, big_id, timeout=60)
    finally:
        srv.close()
        a.http.close()
        x.http.close()


def test_messages_waiting_behind_a_busy_worker_are_not_resent(api: Api, stack: Stack,
                                                               small_faces: list[bytes]) -> None:
    """The sweeper reads the bulk queue and the unacked set: messages waiting there longer than
    QUEUED_STALE_S are not lost, so nothing is re-sent (no duplicates pile up)."""
    import redis

    from worker import broker

    cap = get_settings().bulk_in_flight_per_client
    release = threading.Event()
    srv = FileServer(lambda _path: (release.wait(60), (200, {}, small_faces[5]))[1])
    r = redis.Redis.from_url(stack.env["REDIS_URL"])
    try:
        single = api.http.post("/v1/jobs", json={"input": {"url": f"{srv.url}/hold.jpg"},
                                                 "options": {"upscale": 1}}).json()
        api.wait(single["id"], statuses=("running",), timeout=60)  # holds the only worker
        batch = _batch(api, small_faces[130:130 + cap + 1], "waiting")
        wait_until(lambda: r.llen(stack.env["GPU_BULK_QUEUE"]) == cap, 10, what="the batch dispatched")
        present = broker.job_messages(bulk=True)
        assert present is not None and set(batch["job_ids"][:cap]) <= present
        assert single["id"] in broker.job_messages(bulk=False), "the running job's message is unacked"
        holds_for(lambda: r.llen(stack.env["GPU_BULK_QUEUE"]) == cap,
                  get_settings().queued_stale_s + 3 * get_settings().sweep_interval_s, "not re-sent while waiting")
        release.set()
        assert wait_batch(api, batch["id"], 60)["counts"]["succeeded"] == cap + 1
    finally:
        release.set()
        srv.close()
    for jid in batch["job_ids"]:
        assert not any(r and "sweeper" in r for _, _, r in job_events(jid))


def test_a_failed_send_puts_the_unsent_items_back_in_line(api: Api, stack: Stack, small_faces: list[bytes],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis refuses the second message of a dispatch: the first item is in flight, the others are
    waiting again (not counted against the client's cap with no message), and the next dispatch sends them.
    Beat is stopped so that no sweep dispatches or re-sends meanwhile."""
    cap = get_settings().bulk_in_flight_per_client
    assert cap >= 2, "the test needs room for a second message"
    prefix = client_prefix(api.client.id)
    keys = [f"{prefix}unsent/{i}.jpg" for i in range(cap)]
    for i, key in enumerate(keys):
        get_storage().put(key, small_faces[60 + i], "image/jpeg")
    items = [batches_db.NewItem(uuid.uuid4(), k, "object") for k in keys]
    real_send = messages.send_job
    calls: list[uuid.UUID] = []

    def flaky_send(job: Job, **kwargs: Any) -> None:
        calls.append(job.id)
        if len(calls) > 1:
            raise ConnectionError("redis went away")
        real_send(job, **kwargs)

    stack.procs["beat"].stop()
    try:
        with session_scope() as s:  # committed, not yet dispatched
            batch = batches_db.create(s, client_id=api.client.id, items=items, options={"upscale": 1},
                                      webhook_url=None, webhook_events_filter=[])
        monkeypatch.setattr(messages, "send_job", flaky_send)
        assert dispatch_bulk() == 1
        with session_scope() as s:
            waiting = s.scalar(select(func.count()).where(Job.batch_id == batch.id, dispatch.UNDISPATCHED))
        assert waiting == cap - 1
        monkeypatch.setattr(messages, "send_job", real_send)
        done = wait_batch(api, str(batch.id), timeout=120)  # each finished item dispatches the next ones
    finally:
        stack.start_beat()
    assert done["counts"]["succeeded"] == cap
    for it in items:
        assert [(a, b) for a, b, _ in job_events(str(it.job_id))] == [
            (None, "queued"), ("queued", "running"), ("running", "succeeded")]
