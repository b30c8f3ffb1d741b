"""Clients and their credentials: API keys and webhook secrets, with rotation and a record of it.

API keys are shown once and stored only as SHA-256 hashes. SHA-256 (not a slow KDF) is right here: keys
are 256-bit random tokens, so there is nothing to brute force, and every request must verify one cheaply.

Rotation without downtime: a client may hold several active keys (create the new one, move callers over,
revoke the old one; ``last_used_at`` shows when the old one went quiet), and several webhook secrets —
every delivery is signed with each secret not yet expired (Standard Webhooks allows several ``v1,``
signatures in one header), so a receiver that still checks the old secret and one that already checks
the new one both verify, until the old one expires. Each creation, revocation and retirement is a row of
``credential_events``. The last active key and the last live secret cannot be removed: a client never
locks itself out or receives unsigned webhooks.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from db.models import ApiKey, Client, CredentialEvent, WebhookSecret
from db.session import session_scope

API_KEY_PREFIX = "prt_"
PREFIX_CHARS = len(API_KEY_PREFIX) + 6
#: ``last_used_at`` is written at most this often per key (one UPDATE a minute, not one per request)
LAST_USED_EVERY = timedelta(seconds=60)
#: how long an old webhook secret keeps signing after a new one is created, by default and at most
DEFAULT_OVERLAP = timedelta(hours=24)
MAX_OVERLAP = timedelta(days=30)


class CredentialError(Exception):
    """A refused credential change: ``code`` is a catalogue error code (portrait/errors.py)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _now() -> datetime:
    return datetime.now(UTC)


def _record(s: Session, client_id: uuid.UUID, event: str, ref: str, detail: str | None = None) -> None:
    s.add(CredentialEvent(client_id=client_id, event=event, ref=ref, detail=detail))


def _add_key(s: Session, client_id: uuid.UUID) -> tuple[ApiKey, str]:
    api_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(id=uuid.uuid4(), client_id=client_id, prefix=api_key[:PREFIX_CHARS], hash=hash_api_key(api_key),
                 created_at=_now())
    s.add(row)
    _record(s, client_id, "api_key.created", row.prefix)
    return row, api_key


def _add_secret(s: Session, client_id: uuid.UUID) -> tuple[WebhookSecret, str]:
    secret = new_webhook_secret()
    row = WebhookSecret(id=uuid.uuid4(), client_id=client_id, secret=secret, created_at=_now())
    s.add(row)
    _record(s, client_id, "webhook_secret.created", str(row.id))
    return row, secret


def create_client(name: str, *, rate_limit_per_s: float | None = None, rate_limit_burst: int | None = None,
                  max_jobs_in_flight: int | None = None, retention_s: int | None = None) -> tuple[Client, str]:
    """Create a client with one API key and one webhook secret; returns it and the key (the only time the
    key exists in clear; the secret: :func:`webhook_secrets`).

    The keyword arguments override the deployment-wide settings of the same name for this client
    (None = use the setting).
    """
    client = Client(id=uuid.uuid4(), name=name, rate_limit_per_s=rate_limit_per_s,
                    rate_limit_burst=rate_limit_burst, max_jobs_in_flight=max_jobs_in_flight,
                    retention_s=retention_s)
    with session_scope() as s:
        s.add(client)
        s.flush()
        _, api_key = _add_key(s, client.id)
        _add_secret(s, client.id)
    return client, api_key


def find_client(name_or_id: str) -> Client | None:
    """A client by id or by name (the newest of that name)."""
    with session_scope() as s:
        try:
            return s.get(Client, uuid.UUID(name_or_id))
        except ValueError:
            return s.scalars(select(Client).where(Client.name == name_or_id)
                             .order_by(Client.created_at.desc())).first()


def client_for_key(api_key: str) -> Client | None:
    """The active client of an unrevoked key, or None; notes the key's use (at most once a minute)."""
    now = _now()
    with session_scope() as s:
        row = s.execute(select(ApiKey, Client).join(Client, Client.id == ApiKey.client_id)
                        .where(ApiKey.hash == hash_api_key(api_key), ApiKey.revoked_at.is_(None), Client.active)
                        ).first()
        if row is None:
            return None
        key, client = row
        if key.last_used_at is None or key.last_used_at < now - LAST_USED_EVERY:
            s.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
        return client


# --- API keys
def create_api_key(client_id: uuid.UUID) -> tuple[ApiKey, str]:
    """A new active key beside the others; returns its row and the key in clear (shown once)."""
    with session_scope() as s:
        return _add_key(s, client_id)


def api_keys(client_id: uuid.UUID) -> list[ApiKey]:
    """The client's keys, newest first, revoked ones included."""
    with session_scope() as s:
        return list(s.scalars(select(ApiKey).where(ApiKey.client_id == client_id)
                              .order_by(ApiKey.created_at.desc(), ApiKey.id)))


def revoke_api_key(client_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey:
    """Revoke one key at once (``not_found``; ``last_credential`` if it is the last active one)."""
    with session_scope() as s:
        # lock the client's keys: two concurrent revokes cannot both see "another one is left"
        keys = list(s.scalars(select(ApiKey).where(ApiKey.client_id == client_id).with_for_update()))
        key = next((k for k in keys if k.id == key_id), None)
        if key is None:
            raise CredentialError("not_found", f"API key {key_id} not found")
        if key.revoked_at is None:
            if not any(k.revoked_at is None and k.id != key_id for k in keys):
                raise CredentialError("last_credential", "this is the client's last active API key: create "
                                                         "another one first")
            key.revoked_at = _now()
            _record(s, client_id, "api_key.revoked", key.prefix)
        return key


# --- webhook secrets
def _live(now: datetime):  # noqa: ANN202 - a SQL expression
    return or_(WebhookSecret.expires_at.is_(None), WebhookSecret.expires_at > now)


def webhook_secrets(client_id: uuid.UUID, *, live_only: bool = True) -> list[WebhookSecret]:
    """The client's secrets, newest first: the live ones (that sign deliveries), or all."""
    with session_scope() as s:
        q = select(WebhookSecret).where(WebhookSecret.client_id == client_id)
        if live_only:
            q = q.where(_live(_now()))
        return list(s.scalars(q.order_by(WebhookSecret.created_at.desc(), WebhookSecret.id)))


def signing_secrets(s: Session, client_id: uuid.UUID) -> list[str]:
    """The secrets a delivery is signed with now (newest first), inside the caller's session."""
    q = (select(WebhookSecret.secret).where(WebhookSecret.client_id == client_id, _live(_now()))
         .order_by(WebhookSecret.created_at.desc(), WebhookSecret.id))
    return list(s.scalars(q))


def rotate_webhook_secret(client_id: uuid.UUID, overlap: timedelta = DEFAULT_OVERLAP) -> tuple[WebhookSecret, str]:
    """A new secret; the live ones keep signing for ``overlap`` more (at most 30 days), then expire."""
    if not timedelta(0) <= overlap <= MAX_OVERLAP:
        raise CredentialError("validation_error", f"overlap must be 0 to {MAX_OVERLAP.days} days")
    now = _now()
    with session_scope() as s:
        for old in s.scalars(select(WebhookSecret).where(WebhookSecret.client_id == client_id, _live(now))
                             .with_for_update()):
            old.expires_at = min(old.expires_at or now + overlap, now + overlap)
            _record(s, client_id, "webhook_secret.expiring", str(old.id), f"expires {old.expires_at.isoformat()}")
        return _add_secret(s, client_id)


def retire_webhook_secret(client_id: uuid.UUID, secret_id: uuid.UUID) -> WebhookSecret:
    """Stop signing with one secret now (``not_found``; ``last_credential`` if no other is live)."""
    now = _now()
    with session_scope() as s:
        rows = list(s.scalars(select(WebhookSecret).where(WebhookSecret.client_id == client_id).with_for_update()))
        row = next((r for r in rows if r.id == secret_id), None)
        if row is None:
            raise CredentialError("not_found", f"webhook secret {secret_id} not found")
        live = [r for r in rows if r.expires_at is None or r.expires_at > now]
        if row in live:
            if len(live) == 1:
                raise CredentialError("last_credential", "this is the client's last live webhook secret: "
                                                         "rotate first")
            row.expires_at = now
            _record(s, client_id, "webhook_secret.retired", str(row.id))
        return row


def credential_events(client_id: uuid.UUID, limit: int = 100) -> list[CredentialEvent]:
    """The client's rotations, newest first."""
    with session_scope() as s:
        return list(s.scalars(select(CredentialEvent).where(CredentialEvent.client_id == client_id)
                              .order_by(CredentialEvent.id.desc()).limit(limit)))
