"""The restoration task: claim → read input → restore → write result → record outcome → webhook.

Idempotent by construction: the claim is a compare-and-set in Postgres, so a redelivered message for
a finished job does nothing, and the outcome is recorded only if this attempt still holds the job.
While it runs, a heartbeat thread extends the job's lease; if the worker dies, the lease expires and
the sweeper gives the job to another worker, up to MAX_ATTEMPTS. When a batch item's task ends, the
fair dispatcher sends the next batch items (db/dispatch.py).

While Postgres is unreachable the task waits (``DB_WAIT_S``, retrying) instead of failing at once: a
claim that failed at once would drop its message and the worker would take the next one, emptying the
whole queue in seconds and leaving every job to the sweeper's ``QUEUED_STALE_S``; an outcome not
recorded would throw away a finished restoration. After the wait the message goes back to Redis, or the
job is given back as on any transient error.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from billiard.exceptions import SoftTimeLimitExceeded
from botocore.exceptions import BotoCoreError, ClientError
from celery.exceptions import Reject
from sqlalchemy.exc import OperationalError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_before_delay, wait_exponential

from db import jobs as jobs_db
from db.jobs import Claim, ClaimOutcome
from db.models import InputSource, Job, JobStatus
from db.session import session_scope
from portrait import queue
from portrait.logs import bind, job_fields, log_context
from portrait.settings import get_settings
from portrait.storage import ObjectMissing, get_storage, result_key
from portrait.urlguard import UrlFetchError, UrlRefused
from restoration.errors import RestorationError
from restoration.formats import CONTENT_TYPES, EXTENSIONS
from restoration.options import RestoreOptions
from worker import metrics
from worker.celery_app import app
from worker.fetch import fetch_to_storage
from worker.restorer import get_restorer

log = logging.getLogger("portrait.worker")

TRANSIENT = (OperationalError, BotoCoreError, ConnectionError)
T = TypeVar("T")


def _wait_for_db(what: str, transaction: Callable[[], T], wait_s: float) -> T:
    """Run ``transaction`` (a whole ``session_scope``), retrying with backoff (0.5 s doubling, at most
    5 s) while Postgres is unreachable, for up to ``wait_s``; then the last OperationalError propagates."""

    def warn(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%s: the database is unavailable (%s); retrying in %.1f s", what, type(exc).__name__,
                    state.upcoming_sleep)

    return Retrying(retry=retry_if_exception_type(OperationalError), wait=wait_exponential(0.5, max=5.0),
                    stop=stop_before_delay(wait_s), before_sleep=warn, reraise=True)(transaction)


class _Heartbeat(threading.Thread):
    """Renews the lease every HEARTBEAT_S; stops once the job was canceled or taken over (the final
    compare-and-set then fails, so the outcome of this attempt is dropped)."""

    def __init__(self, job_id: uuid.UUID, attempt: int) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{job_id}")
        self.job_id, self.attempt = job_id, attempt
        self.stop = threading.Event()

    def run(self) -> None:
        s = get_settings()
        while not self.stop.wait(s.heartbeat_s):
            try:
                with session_scope() as db:
                    if not jobs_db.heartbeat(db, self.job_id, self.attempt, s.lease_s):
                        return
            except Exception:  # noqa: BLE001 - a missed beat is not fatal; the lease has slack
                log.warning("heartbeat failed for %s", self.job_id, exc_info=True)


def _read_input(job: Job) -> bytes:
    """The stored input; a URL input not fetched yet only when FETCH_URL_INPUTS_ON_CPU is off."""
    storage = get_storage()
    if job.input_source == InputSource.url and storage.size(job.input_key) is None:
        return fetch_to_storage(job.input_url or "", job.input_key)
    return storage.get(job.input_key)


def _needs_fetch(jid: uuid.UUID) -> bool:
    """A queued URL job whose input is not stored yet: worker/fetch.py fetches it, not this GPU."""
    with session_scope() as s:
        job = s.get(Job, jid)
        if job is None or not job.waits_for_url:
            return False
        key = job.input_key
    return get_storage().size(key) is None


def _fail(job_id: uuid.UUID, attempt: int, worker: str, code: str, message: str) -> None:
    with session_scope() as s:
        job = jobs_db.fail(s, job_id, code, message, attempt=attempt, worker=worker)
    log.info("job %s failed: %s: %s", job_id, code, message)
    if job is not None:
        metrics.job_finished("failed", code)
    queue.send_notices(job)


@app.task(name=queue.RESTORE_TASK, bind=True)
def restore(self: Any, job_id: str) -> str:
    with log_context(job_id=job_id):  # every line of this job's handling says which job (portrait/logs.py)
        return _restore(self, job_id)


def _restore(self: Any, job_id: str) -> str:
    settings = get_settings()
    jid = uuid.UUID(job_id)
    worker = self.request.hostname or "worker"

    def claim_it() -> tuple[Claim, Job | None]:
        with session_scope() as s:
            claim = jobs_db.claim(s, jid, worker=worker, lease_s=settings.lease_s,
                                  max_attempts=settings.max_attempts)
            if claim.outcome != ClaimOutcome.exhausted:
                return claim, None
            return claim, jobs_db.fail(s, jid, "attempts_exhausted",
                                       f"gave up after {claim.job.attempts} attempts", worker=worker)

    try:
        if settings.fetch_url_inputs_on_cpu and _wait_for_db("reading the job", lambda: _needs_fetch(jid),
                                                             settings.db_wait_s):
            queue.enqueue_fetch(jid)
            return "fetching"
        claim, job = _wait_for_db("claim", claim_it, settings.db_wait_s)
    except OperationalError as e:  # still down: the message goes back to Redis, not to the sweeper
        raise Reject(f"database unavailable: {type(e).__name__}", requeue=True) from e
    if claim.outcome == ClaimOutcome.exhausted:
        metrics.job_finished("failed", "attempts_exhausted")
        queue.send_notices(job)
    if claim.outcome != ClaimOutcome.claimed:
        # terminal: a redelivered message for a finished job; leased: another live worker has it
        # (the sweeper hands it over if that worker dies); missing: deleted.
        log.info("job %s not claimed: %s", job_id, claim.outcome)
        return claim.outcome

    job, attempt = claim.job, claim.attempt
    bind(**job_fields(job, attempt))
    log.info("job claimed by %s", worker)
    queue.send_notices(job)  # the start event, if this first claim owes one
    beat = _Heartbeat(jid, attempt)
    beat.start()
    t0 = time.perf_counter()
    metrics.job_started()
    try:
        data = _read_input(job)
        options = RestoreOptions.model_validate(job.options or {})
        result = get_restorer().restore_bytes(data, options)
        fmt = result.format
        key = result_key(job.client_id, job.id, EXTENSIONS[fmt])
        get_storage().put(key, result.data, CONTENT_TYPES.get(fmt, "application/octet-stream"))
        timings = dict(result.timings)
        timings["job_total"] = round((time.perf_counter() - t0) * 1000, 1)

        def record() -> tuple[Job | None, Job | None]:
            with session_scope() as s:
                done = jobs_db.succeed(
                    s, jid, attempt, worker=worker, output_key=key, output_content_type=CONTENT_TYPES.get(fmt),
                    output_width=result.width, output_height=result.height,
                    model_version=result.model_version, timings=timings, faces=result.faces,
                )
                return done, (s.get(Job, jid) if done is None else None)

        done, current = _wait_for_db("recording the result", record, settings.db_wait_s)
        if done is None:
            # Lost the CAS: canceled meanwhile (drop the result) or taken over after our lease expired
            # (the other attempt writes the same deterministic key, so leave it).
            if current is not None and current.status == JobStatus.canceled:
                get_storage().delete(key)
            log.info("job %s finished but is no longer ours (%s)", job_id,
                     current.status.value if current else "gone")
            metrics.job_finished("discarded")
            return "lost"
        metrics.job_finished("succeeded", seconds=time.perf_counter() - t0, result=result)
        log.info("job succeeded: %d face(s), %.0f ms, model %s", len(result.faces), timings["job_total"],
                 result.model_version)
        queue.send_notices(done)
        return "succeeded"
    except RestorationError as e:
        _fail(jid, attempt, worker, e.code, e.message)
    except ObjectMissing:
        _fail(jid, attempt, worker, "input_missing", f"input object {job.input_key!r} does not exist")
    except (UrlRefused, UrlFetchError) as e:
        _fail(jid, attempt, worker, e.code, str(e))
    except SoftTimeLimitExceeded:
        _fail(jid, attempt, worker, "timeout", f"ran past {settings.task_soft_time_limit_s} s")
    except TRANSIENT as e:
        # Storage or database hiccup: give the job back and try again later, within MAX_ATTEMPTS.
        if attempt >= settings.max_attempts:
            _fail(jid, attempt, worker, "attempts_exhausted", f"last error: {type(e).__name__}: {e}")
        else:
            with session_scope() as s:
                back = jobs_db.requeue(s, jid, f"transient error: {type(e).__name__}", attempt=attempt)
            if back is not None:
                metrics.job_finished("requeued", type(e).__name__)
                queue.enqueue_restore(jid, countdown=min(60.0, 5.0 * 2 ** (attempt - 1)),
                                      bulk=back.batch_id is not None)
    except ClientError as e:
        _fail(jid, attempt, worker, "internal_error", f"storage error: {e}")
    except Exception as e:  # noqa: BLE001 - any bug fails this job, never the worker
        log.exception("job %s crashed", job_id)
        _fail(jid, attempt, worker, "internal_error", f"{type(e).__name__}: {e}")
    finally:
        beat.stop.set()
        metrics.job_left()
    return "failed"
