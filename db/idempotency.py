"""The idempotency store: one row per (client, Idempotency-Key) holding the request's hash, whether it
is still running, and once done the reply to replay. The HTTP side (hashing requests, replaying
replies) is api/idempotency.py; the retention task purges old keys through :func:`purge`.

Invariant: a key is claimed by exactly one request at a time (insert-or-nothing, then a row lock); a
claim older than IDEMPOTENCY_LOCK_S is presumed crashed and may be taken over.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import delete, func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import IdempotencyKey, KeyState
from db.session import session_scope
from portrait.settings import get_settings


class Outcome(StrEnum):
    """What to do with a request carrying a key."""

    run = "run"  # first time (or a crashed claim taken over): run it
    replay = "replay"  # done before with the same request: send the stored reply
    reused = "reused"  # the key was used with a different request: 409
    in_progress = "in_progress"  # the first request is still running: 409


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    status: int = 0
    headers: dict[str, str] | None = None
    body: bytes = b""


def begin(client_id: uuid.UUID, key: str, request_hash: str) -> Decision:
    """Claim the key for this request, or say why not (replay, reused, in progress)."""
    settings = get_settings()
    with session_scope() as s:
        inserted = s.execute(
            insert(IdempotencyKey).values(client_id=client_id, key=key, request_hash=request_hash,
                                          state=KeyState.in_progress)
            .on_conflict_do_nothing().returning(IdempotencyKey.key)
        ).first()
        if inserted is not None:
            return Decision(Outcome.run)
        row = s.get(IdempotencyKey, (client_id, key), with_for_update=True)
        if row is None:  # released between our insert and read: treat as a clash, the client retries
            return Decision(Outcome.in_progress)
        if row.request_hash != request_hash:
            return Decision(Outcome.reused)
        if row.state == KeyState.done:
            return Decision(Outcome.replay, row.response_status or 200, row.response_headers or {},
                            row.response_body or b"")
        taken = s.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.client_id == client_id, IdempotencyKey.key == key,
                   IdempotencyKey.state == KeyState.in_progress,
                   IdempotencyKey.locked_at < func.now() - timedelta(seconds=settings.idempotency_lock_s))
            .values(locked_at=func.now())
        ).rowcount
        return Decision(Outcome.run if taken else Outcome.in_progress)


def finish(client_id: uuid.UUID, key: str, status: int, headers: dict[str, str], body: bytes) -> None:
    with session_scope() as s:
        s.execute(update(IdempotencyKey)
                  .where(IdempotencyKey.client_id == client_id, IdempotencyKey.key == key)
                  .values(state=KeyState.done, response_status=status, response_headers=headers, response_body=body))


def record(s: Session, ident: tuple[uuid.UUID, str] | None, status: int, body: bytes) -> None:
    """Record a JSON reply under ``ident`` = (client, key) in the caller's transaction ``s``, so it
    commits with the rows the request created; ``None`` (no key) does nothing."""
    if ident is None:
        return
    client_id, key = ident
    s.execute(update(IdempotencyKey)
              .where(IdempotencyKey.client_id == client_id, IdempotencyKey.key == key)
              .values(state=KeyState.done, response_status=status,
                      response_headers={"content-type": "application/json"}, response_body=body))


def release(client_id: uuid.UUID, key: str) -> None:
    """Forget an unfinished key (the request failed in a way worth retrying)."""
    with session_scope() as s:
        s.execute(delete(IdempotencyKey).where(IdempotencyKey.client_id == client_id, IdempotencyKey.key == key,
                                               IdempotencyKey.state == KeyState.in_progress))


def purge(s: Session, older_than_s: float) -> int:
    """Delete keys older than ``older_than_s``; returns how many."""
    cutoff = func.now() - timedelta(seconds=older_than_s)
    return s.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff)).rowcount or 0
