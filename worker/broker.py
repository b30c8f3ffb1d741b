"""What the workers know of Redis as a broker: the transport they consume with, and how the sweeper
reads which job messages (restore or fetch) Redis still holds.

``RedisTransport`` is kombu's Redis transport with one change: when the connection drops while a worker
holds unacknowledged messages, kombu pushes them back, and later acks the tasks that finish meanwhile,
through the channel it has already closed; the AttributeError killed the whole worker ("Unrecoverable
error", found by tests/faults). Now those are logged and the worker reconnects; the messages are still
in Redis' unacked set if Redis survived (redelivered after ``visibility_timeout``, a no-op for a finished
job), or gone with it (the sweeper re-sends what is not finished).
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from typing import Any

import redis
from kombu.transport import redis as kombu_redis

from jobs.messages import FETCH_TASK, RESTORE_TASK, restore_queue
from portrait.settings import get_settings

log = logging.getLogger("portrait.worker")


class _QoS(kombu_redis.QoS):
    """Acks and give-backs on a channel whose connection is gone are logged, not fatal."""

    def restore_unacked(self, client: Any = None) -> None:
        try:
            super().restore_unacked(client)
        except (AttributeError, redis.RedisError) as e:  # the connection is already gone
            log.warning("could not give %d unacknowledged message(s) back to Redis (%s: %s); Redis keeps "
                        "them for redelivery, or they died with it and the sweeper re-sends them",
                        len(self._delivered), type(e).__name__, e)
            self._delivered.clear()

    def ack(self, delivery_tag: Any) -> None:
        try:
            super().ack(delivery_tag)
        except (AttributeError, redis.RedisError) as e:
            # a task that outlived its connection: Postgres has its outcome; a redelivery is a no-op
            log.warning("could not ack a message of a closed connection (%s)", type(e).__name__)

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        try:
            super().reject(delivery_tag, requeue=requeue)
        except (AttributeError, redis.RedisError) as e:
            log.warning("could not reject a message of a closed connection (%s)", type(e).__name__)


class _Channel(kombu_redis.Channel):
    QoS = _QoS


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport whose workers survive a broker outage with messages in hand."""

    Channel = _Channel


#: Longest queue whose messages ``job_messages`` reads (the bulk queue is bounded by the
#: dispatcher at BULK_IN_FLIGHT_PER_CLIENT per busy client; a longer list is a backlog, not a loss).
SCAN_MAX = 2000
UNACKED_KEY = "unacked"  # kombu's Redis transport: delivered, not yet acknowledged messages


def _redis() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url, socket_timeout=5)


JOB_TASKS = (RESTORE_TASK, FETCH_TASK)


def _job_id(raw: bytes | str) -> str | None:
    """The job id a raw kombu message (or unacked entry ``[message, exchange, routing_key]``) restores
    or fetches the input of; None for any other message."""
    try:
        msg = json.loads(raw)
        if isinstance(msg, list):
            msg = msg[0]
        if msg.get("headers", {}).get("task") not in JOB_TASKS:
            return None
        body = msg["body"]
        if msg.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        decoded = json.loads(body)
        args = decoded[0] if isinstance(decoded, list) else decoded.get("args")  # protocol 2 | 1
        return str(uuid.UUID(str(args[0])))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None


def job_messages(bulk: bool) -> set[str] | None:
    """Job ids that still have a message in Redis: waiting in the bulk or single restore list or in the
    fetch list (a URL input's first step, jobs/messages.py), or delivered
    to a worker and not acknowledged yet (reserved, running, or held for a retry's countdown; with
    ``task_acks_late`` a message stays there until its task ends, and kombu puts it back in the list
    if that worker dies). A queued job found in neither has lost its message.

    None when it cannot tell: Redis unreachable, or a list longer than SCAN_MAX (a backlog, not a loss).
    (A message moving from a list to the unacked set is in neither for an instant; the caller's re-send
    is then a duplicate, which the claim's compare-and-set drops.)
    """
    queues = (restore_queue(bulk), get_settings().fetch_queue)
    try:
        r = _redis()
        if any(r.llen(q) > SCAN_MAX for q in queues):
            return None
        found = {_job_id(raw) for q in queues for raw in r.lrange(q, 0, SCAN_MAX)}
        found.update(_job_id(raw) for _, raw in r.hscan_iter(UNACKED_KEY, count=500))
    except redis.RedisError:
        log.warning("could not read the %s queues from Redis", "/".join(queues), exc_info=True)
        return None
    found.discard(None)
    return found  # type: ignore[return-value]
