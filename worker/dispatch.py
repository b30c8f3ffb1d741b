"""Sends the batch items the fair dispatcher picked (db/dispatch.py says who and why).

The rows are marked sent and committed before their messages go out; a send that fails puts the
unsent ones back (``dispatch.unmark``). It runs on one trigger, a ``DISPATCH_TASK`` message
(``jobs.messages.request_dispatch``): sent when a batch is created, when batch items finish or are
canceled (``Transition.frees_bulk_slot``, decided in db/jobs.py) and at every sweep.
"""

from __future__ import annotations

import logging

from db import dispatch
from db.models import Job
from db.session import session_scope
from jobs import messages
from portrait.settings import get_settings
from worker.celery_app import app

log = logging.getLogger("portrait.dispatch")


def dispatch_bulk() -> int:
    """Send the batch items that fit under every client's cap; the number sent. Never raises."""
    picked: list[Job] = []
    sent = 0
    try:
        with session_scope() as s:
            picked = dispatch.pick(s, get_settings().bulk_in_flight_per_client)
        for job in picked:
            messages.send_job(job)
            sent += 1
    except Exception:  # noqa: BLE001 - the next trigger or the sweeper dispatches again
        log.exception("bulk dispatch stopped after %d of %d messages", sent, len(picked))
        dispatch.unmark([job.id for job in picked[sent:]])
    return sent


@app.task(name=messages.DISPATCH_TASK)
def dispatch_task() -> int:
    return dispatch_bulk()
