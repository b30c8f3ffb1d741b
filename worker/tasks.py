"""The restoration task, in the order of its story: claim → execute → record.

* **claim** — a compare-and-set in Postgres (db/jobs.py), so a redelivered message for a finished job
  does nothing; a job out of attempts is failed by the claim itself.
* **execute** — read the input, restore, store the result, while a heartbeat thread extends the job's
  lease; if the worker dies, the lease expires and the sweeper gives the job to another worker.
* **record** — the outcome, only if this attempt still holds the job: succeeded; failed with the code
  :func:`error_code` maps the exception to (one table); or, for a transient error, given back to run
  again (db/jobs.py fails it instead once MAX_ATTEMPTS are used). Then the messages the transition owes
  (jobs/messages.py); when a batch item ends, that includes a run of the fair dispatcher.

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
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from billiard.exceptions import SoftTimeLimitExceeded
from botocore.exceptions import BotoCoreError, ClientError
from celery.exceptions import Reject
from sqlalchemy.exc import OperationalError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_before_delay, wait_exponential

from db import jobs as jobs_db
from db.jobs import Claim, ClaimOutcome, Transition
from db.models import InputSource, Job, JobStatus
from db.session import session_scope
from jobs import messages
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

#: A storage or database hiccup: the job is given back to run again, not failed.
TRANSIENT = (OperationalError, BotoCoreError, ConnectionError)
T = TypeVar("T")


class TaskOutcome(StrEnum):
    """What one run of the task did (the task's return value, and its log line)."""

    succeeded = "succeeded"
    failed = "failed"
    given_back = "given_back"  # a transient error: queued again (or failed once out of attempts)
    lost = "lost"  # finished, but canceled or taken over meanwhile: the result was not recorded
    terminal = "terminal"  # not claimed: a redelivered message for a finished job
    leased = "leased"  # not claimed: another live worker holds it
    exhausted = "exhausted"  # not claimed: out of attempts, the claim failed it
    missing = "missing"  # not claimed: deleted


#: The one table from an exception to the error code a job fails with (and its message); first match
#: wins. The transient ones (TRANSIENT) are not here: those give the job back. Anything else is a bug:
#: ``internal_error``, and the worker goes on.
ERROR_CODES: list[tuple[type[BaseException] | tuple[type[BaseException], ...],
                        Callable[[Any, Job], tuple[str, str]]]] = [
    (RestorationError, lambda e, job: (e.code, e.message)),
    (ObjectMissing, lambda e, job: ("input_missing", f"input object {job.input_key!r} does not exist")),
    ((UrlRefused, UrlFetchError), lambda e, job: (e.code, str(e))),
    (SoftTimeLimitExceeded, lambda e, job: ("timeout", f"ran past {get_settings().task_soft_time_limit_s} s")),
    (ClientError, lambda e, job: ("internal_error", f"storage error: {e}")),
]


def error_code(exc: BaseException, job: Job) -> tuple[str, str]:
    """(code, message) a job fails with for ``exc`` (see ERROR_CODES)."""
    for types, describe in ERROR_CODES:
        if isinstance(exc, types):
            return describe(exc, job)
    return "internal_error", f"{type(exc).__name__}: {exc}"


def _wait_for_db(what: str, transaction: Callable[[], T], wait_s: float) -> T:
    """Run ``transaction`` (a whole ``session_scope``), retrying with backoff (0.5 s doubling, at most
    5 s) while Postgres is unreachable, for up to ``wait_s``; then the last OperationalError propagates."""

    def warn(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%s: the database is unavailable (%s); retrying in %.1f s", what, type(exc).__name__,
                    state.upcoming_sleep)

    return Retrying(retry=retry_if_exception_type(OperationalError), wait=wait_exponential(0.5, max=5.0),
                    stop=stop_before_delay(wait_s), before_sleep=warn, reraise=True)(transaction)


def _in_db(what: str, transaction: Callable[[Any], T]) -> T:
    """``transaction(session)`` in one ``session_scope``, waiting out a Postgres outage (DB_WAIT_S)."""

    def run() -> T:
        with session_scope() as s:
            return transaction(s)

    return _wait_for_db(what, run, get_settings().db_wait_s)


class _Heartbeat(threading.Thread):
    """Renews the lease every HEARTBEAT_S while the job runs (``with _Heartbeat(...)``); stops once the
    job was canceled or taken over (the final compare-and-set then fails, so this attempt's outcome is
    dropped)."""

    def __init__(self, job_id: uuid.UUID, attempt: int) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{job_id}")
        self.job_id, self.attempt = job_id, attempt
        self.stop = threading.Event()

    def __enter__(self) -> _Heartbeat:
        self.start()
        metrics.job_started()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        metrics.job_left()

    def run(self) -> None:
        s = get_settings()
        while not self.stop.wait(s.heartbeat_s):
            try:
                with session_scope() as db:
                    if not jobs_db.heartbeat(db, self.job_id, self.attempt, s.lease_s):
                        return
            except Exception:  # noqa: BLE001 - a missed beat is not fatal; the lease has slack
                log.warning("heartbeat failed for %s", self.job_id, exc_info=True)


@dataclass(frozen=True)
class _Stored:
    """A restoration written to storage, waiting to be recorded."""

    key: str
    result: Any  # restoration.pipeline.RestoreResult
    seconds: float


def _read_input(job: Job) -> bytes:
    """The stored input; a URL input not fetched yet only when FETCH_URL_INPUTS_ON_CPU is off."""
    storage = get_storage()
    if job.input_source == InputSource.url and storage.size(job.input_key) is None:
        return fetch_to_storage(job.input_url or "", job.input_key)
    return storage.get(job.input_key)


def _notify(outcome: str, transition: Transition | None, code: str = "") -> None:
    """After the commit: count the outcome and send the messages the transition owes."""
    if transition is not None:
        metrics.job_finished(outcome, code)
    messages.send(transition)


@app.task(name=messages.RESTORE_TASK, bind=True)
def restore(self: Any, job_id: str) -> str:
    with log_context(job_id=job_id):  # every line of this job's handling says which job (portrait/logs.py)
        return _restore(uuid.UUID(job_id), self.request.hostname or "worker")


def _restore(jid: uuid.UUID, worker: str) -> TaskOutcome:
    claim = _claim(jid, worker)
    if claim.outcome != ClaimOutcome.claimed:
        # terminal: a redelivered message for a finished job; leased: another live worker has it (the
        # sweeper hands it over if that worker dies); exhausted: failed by the claim; missing: deleted.
        log.info("job not claimed: %s", claim.outcome)
        if claim.outcome == ClaimOutcome.exhausted:
            _notify("failed", claim.transition, jobs_db.EXHAUSTED)
        return TaskOutcome(claim.outcome.value)
    job, attempt = claim.job, claim.attempt
    bind(**job_fields(job, attempt))
    log.info("job claimed by %s", worker)
    messages.send(claim.transition)  # the start event, if this first claim owes one
    with _Heartbeat(jid, attempt):
        try:
            stored = _execute(job)
        except TRANSIENT as e:
            return _give_back(job, attempt, e)
        except Exception as e:  # noqa: BLE001 - any error fails this job, never the worker
            return _record_failure(job, attempt, worker, e)
        return _record_success(job, attempt, worker, stored)


def _claim(jid: uuid.UUID, worker: str) -> Claim:
    settings = get_settings()
    try:
        return _in_db("claim", lambda s: jobs_db.claim(s, jid, worker=worker, lease_s=settings.lease_s,
                                                       max_attempts=settings.max_attempts))
    except OperationalError as e:  # still down: the message goes back to Redis, not to the sweeper
        raise Reject(f"database unavailable: {type(e).__name__}", requeue=True) from e


def _execute(job: Job) -> _Stored:
    """Read the input, restore it, store the result under the job's deterministic key."""
    t0 = time.perf_counter()
    data = _read_input(job)
    result = get_restorer().restore_bytes(data, RestoreOptions.model_validate(job.options or {}))
    key = result_key(job.client_id, job.id, EXTENSIONS[result.format])
    get_storage().put(key, result.data, CONTENT_TYPES.get(result.format, "application/octet-stream"))
    return _Stored(key, result, time.perf_counter() - t0)


def _record_success(job: Job, attempt: int, worker: str, stored: _Stored) -> TaskOutcome:
    result = stored.result
    timings = {**result.timings, "job_total": round(stored.seconds * 1000, 1)}

    def record(s: Any) -> tuple[Transition | None, JobStatus | None]:
        done = jobs_db.succeed(
            s, job.id, attempt, worker=worker, output_key=stored.key,
            output_content_type=CONTENT_TYPES.get(result.format), output_width=result.width,
            output_height=result.height, model_version=result.model_version, timings=timings,
            faces=result.faces)
        current = s.get(Job, job.id) if done is None else None
        return done, current.status if current is not None else None

    done, now = _in_db("recording the result", record)
    if done is None:
        # Lost the CAS: canceled meanwhile (drop the result) or taken over after our lease expired
        # (the other attempt writes the same deterministic key, so leave it).
        if now == JobStatus.canceled:
            get_storage().delete(stored.key)
        log.info("job finished but is no longer ours (%s)", now.value if now else "gone")
        metrics.job_finished("discarded")
        return TaskOutcome.lost
    metrics.job_finished("succeeded", seconds=stored.seconds, result=result)
    log.info("job succeeded: %d face(s), %.0f ms, model %s", len(result.faces), timings["job_total"],
             result.model_version)
    messages.send(done)
    return TaskOutcome.succeeded


def _record_failure(job: Job, attempt: int, worker: str, exc: Exception) -> TaskOutcome:
    code, message = error_code(exc, job)
    if not any(isinstance(exc, types) for types, _ in ERROR_CODES):
        log.error("job %s crashed", job.id, exc_info=exc)
    with session_scope() as s:
        failed = jobs_db.fail(s, job.id, code, message, attempt=attempt, worker=worker)
    log.info("job %s failed: %s: %s", job.id, code, message)
    _notify("failed", failed, code)
    return TaskOutcome.failed


def _give_back(job: Job, attempt: int, exc: Exception) -> TaskOutcome:
    """A transient error: queue the job again after a back-off (or, out of attempts, fail it)."""
    reason = f"transient error: {type(exc).__name__}: {exc}"
    with session_scope() as s:
        back = jobs_db.give_back(s, job, reason, attempt=attempt, max_attempts=get_settings().max_attempts)
    if back is not None and back.job.status == JobStatus.queued:
        metrics.job_finished("requeued", type(exc).__name__)
        messages.send_job(back.job, countdown=min(60.0, 5.0 * 2 ** (attempt - 1)))
        return TaskOutcome.given_back
    if back is None:  # canceled or taken over meanwhile
        return TaskOutcome.lost
    _notify("failed", back, jobs_db.EXHAUSTED)
    return TaskOutcome.failed
