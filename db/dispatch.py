"""Fair dispatch of batch items: Postgres decides which ones get a message on the bulk queue.

The bulk queue in Redis is FIFO, so sending a batch's messages all at once would make every other
client's batch wait behind it. Instead a batch item is created ``queued`` with ``enqueued_at`` NULL
(no message yet), and the dispatcher (worker/dispatch.py) sends messages so that each client has at most
BULK_IN_FLIGHT_PER_CLIENT items *in flight* (a message sent and not yet finished: queued with
``enqueued_at`` set, or running). Clients with room take turns, one item each per round, oldest
batch first within a client. With K clients busy, the queue holds at most K × the cap messages and
each client gets about 1/K of the bulk throughput; a newcomer's first items wait behind at most the
cap of each other client's, not behind their whole batches.

This module picks and marks (Postgres only; it sends nothing). The worker's dispatcher sends what
was picked; it runs after a batch is created or canceled (the API asks for it with a message), after
each bulk task ends (a slot was freed) and on every sweep (the safety net for a lost trigger).
Concurrent dispatchers serialise on one transaction-scoped advisory lock, so counts and picks cannot
interleave and exceed the cap; rows locked by someone else (a batch being canceled) are skipped. The
rows are marked sent and committed *before* their messages go out: a send that fails puts the unsent
ones back to NULL (:func:`unmark`), and a message lost afterwards still counts against its client's
cap until the sweeper re-sends it (the lost-message rule: worker/sweeper.py). Single jobs never
pass through here."""

from __future__ import annotations

import itertools
import logging
import uuid

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.orm import Session

from db.models import Client, Job, JobStatus
from db.session import session_scope

log = logging.getLogger("portrait.dispatch")

#: A batch item waiting for its client's turn (no message yet).
UNDISPATCHED = and_(Job.status == JobStatus.queued, Job.batch_id.is_not(None), Job.enqueued_at.is_(None))
#: A batch item whose message was sent and which has not finished.
IN_FLIGHT = and_(Job.status.in_((JobStatus.queued, JobStatus.running)), Job.batch_id.is_not(None),
                 Job.enqueued_at.is_not(None))


def pick(s: Session, per_client: int) -> list[Job]:
    """Mark the next batch items to send (``enqueued_at`` = now), in round-robin order over clients.

    Holds the dispatch lock until the caller's commit.
    """
    s.execute(select(func.pg_advisory_xact_lock(func.hashtextextended("portrait.bulk_dispatch", 0))))
    # One index probe per client (a DISTINCT over the waiting items would read all of them).
    waiting = select(Client.id).where(exists().where(UNDISPATCHED, Job.client_id == Client.id))
    in_flight = dict(s.execute(select(Job.client_id, func.count()).where(IN_FLIGHT, Job.client_id.in_(waiting))
                               .group_by(Job.client_id)).all())
    clients = sorted(s.scalars(waiting), key=lambda c: (in_flight.get(c, 0), str(c)))
    picks = []
    for client_id in clients:
        room = per_client - in_flight.get(client_id, 0)
        if room > 0:
            picks.append(list(s.scalars(
                select(Job).where(UNDISPATCHED, Job.client_id == client_id)
                .order_by(Job.created_at, Job.batch_index).limit(room).with_for_update(skip_locked=True)
            )))
    jobs = [job for rnd in itertools.zip_longest(*picks) for job in rnd if job is not None]
    if jobs:
        s.execute(update(Job).where(Job.id.in_([job.id for job in jobs])).values(enqueued_at=func.now()))
    return jobs


def unmark(ids: list[uuid.UUID]) -> None:
    """Back to 'not sent' (only while still queued), so the next dispatch sends them.

    The rows are locked in id order first, as ``db.jobs.cancel_batch`` locks them: two multi-row
    updates taking the same rows in different orders can deadlock (Postgres would abort one).
    """
    if not ids:
        return
    try:
        with session_scope() as s:
            locked = list(s.scalars(select(Job.id).where(Job.id.in_(ids), Job.status == JobStatus.queued)
                                    .order_by(Job.id).with_for_update()))
            if locked:
                s.execute(update(Job).where(Job.id.in_(locked), Job.status == JobStatus.queued)
                          .values(enqueued_at=None))
    except Exception:  # noqa: BLE001 - left marked: the sweeper's lost-message rule re-sends them
        log.exception("could not unmark %d unsent batch items", len(ids))
