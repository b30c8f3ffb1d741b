"""URL inputs are fetched on a CPU queue (FETCH_QUEUE), never on a GPU worker's time.

A job with a URL input is sent here first (``jobs.messages.send_job`` picks this queue while
FETCH_URL_INPUTS_ON_CPU is on); this task fetches the URL through portrait/urlguard.py (SSRF checks at
every hop, size cap, and a total URL_FETCH_TIMEOUT_S deadline), stores it under the job's input key and
sends the job on to its restore queue. A slow or hostile origin so costs one CPU thread for at most
URL_FETCH_TIMEOUT_S, and a GPU nothing. A refused or failed fetch fails the job (``url_not_allowed``,
``input_fetch_failed``) while it is still queued. Duplicate fetch messages (the sweeper re-sends a queued
job's message when it sees none) are harmless: an input already stored is not fetched again, and the
claim drops extra restores.
"""

from __future__ import annotations

import logging
import uuid

from db import jobs as jobs_db
from db.models import Job
from db.session import session_scope
from jobs import messages
from portrait.logs import bind, job_fields, log_context
from portrait.settings import get_settings
from portrait.storage import get_storage
from portrait.urlguard import UrlFetchError, UrlRefused, fetch
from worker.celery_app import app

log = logging.getLogger("portrait.worker")


def fetch_to_storage(url: str, key: str) -> bytes:
    """GET ``url`` through the SSRF guard and store it under ``key``; the one place inputs are fetched
    (this task, or the GPU task itself when FETCH_URL_INPUTS_ON_CPU is off)."""
    data = fetch(url, get_settings())
    get_storage().put(key, data)
    return data


@app.task(name=messages.FETCH_TASK)
def fetch_input(job_id: str) -> str:
    with log_context(job_id=job_id):
        return _fetch_input(job_id)


def _fetch_input(job_id: str) -> str:
    jid = uuid.UUID(job_id)
    with session_scope() as s:
        job = s.get(Job, jid)
        if job is None or not job.waits_for_url:
            return "skipped"
        url, key = job.input_url or "", job.input_key
        bind(**job_fields(job, job.attempts + 1))  # the attempt this fetch is for
    if get_storage().size(key) is None:
        try:
            fetch_to_storage(url, key)
        except (UrlRefused, UrlFetchError) as e:
            code = e.code
            with session_scope() as s:
                failed = jobs_db.fail(s, jid, code, str(e))
            log.info("job %s failed: %s: %s", job_id, code, e)
            messages.send(failed)
            return "failed"
    messages.send_job(job, fetched=True)
    return "fetched"
