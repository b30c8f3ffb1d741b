"""A client's own credentials: API keys and webhook secrets, rotated without downtime (db/admin.py).

Keys: create a second one, move every caller to it, watch the old one's ``last_used_at`` go quiet, then
revoke it — both work meanwhile. Webhook secrets: create a new one; every delivery is then signed with the
new *and* the old secrets (several ``v1,`` signatures in one ``webhook-signature`` header) until the old
ones expire (``overlap_s``, default 24 h) or are retired, so the receiver can switch at any moment in
between. The last active key and the last live secret cannot be removed (409 ``last_credential``).
Each change is recorded: ``GET /v1/credential-events``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter

from api.deps import ClientDep
from api.openapi import errors
from api.schemas import (
    ApiKeyList,
    ApiKeyObject,
    CredentialEventList,
    CredentialEventObject,
    WebhookSecretCreate,
    WebhookSecretList,
    WebhookSecretObject,
)
from db import admin
from db.models import ApiKey, WebhookSecret
from portrait.errors import ApiError

router = APIRouter(tags=["credentials"])


def _key(k: ApiKey, api_key: str | None = None) -> ApiKeyObject:
    return ApiKeyObject(id=k.id, prefix=k.prefix, created_at=k.created_at, last_used_at=k.last_used_at,
                        revoked_at=k.revoked_at, api_key=api_key)


def _secret(w: WebhookSecret, secret: str | None = None) -> WebhookSecretObject:
    live = w.expires_at is None or w.expires_at > datetime.now(UTC)
    return WebhookSecretObject(id=w.id, created_at=w.created_at, expires_at=w.expires_at, live=live,
                               prefix=w.secret[:12], secret=secret)


def _refused(e: admin.CredentialError) -> ApiError:
    return ApiError(e.code, str(e))


@router.post("/v1/api-keys", status_code=201, response_model=ApiKeyObject)
def create_api_key(client: ClientDep) -> ApiKeyObject:
    """A new API key beside the others; the reply is the only time the key is shown."""
    row, api_key = admin.create_api_key(client.id)
    return _key(row, api_key)


@router.get("/v1/api-keys", response_model=ApiKeyList)
def list_api_keys(client: ClientDep) -> ApiKeyList:
    """Every key of this client, newest first, revoked ones included (never the keys themselves)."""
    return ApiKeyList(data=[_key(k) for k in admin.api_keys(client.id)])


@router.delete("/v1/api-keys/{key_id}", response_model=ApiKeyObject, responses=errors("not_found", "last_credential"))
def revoke_api_key(key_id: uuid.UUID, client: ClientDep) -> ApiKeyObject:
    """Revoke a key now: the next request with it is a 401. Not the last active one."""
    try:
        return _key(admin.revoke_api_key(client.id, key_id))
    except admin.CredentialError as e:
        raise _refused(e) from None


@router.post("/v1/webhook-secrets", status_code=201, response_model=WebhookSecretObject,
             responses=errors("validation_error"))
def rotate_webhook_secret(client: ClientDep, body: WebhookSecretCreate | None = None) -> WebhookSecretObject:
    """A new signing secret (shown once). The live ones keep signing beside it for ``overlap_s``."""
    overlap = timedelta(seconds=(body or WebhookSecretCreate()).overlap_s)
    row, secret = admin.rotate_webhook_secret(client.id, overlap)
    return _secret(row, secret)


@router.get("/v1/webhook-secrets", response_model=WebhookSecretList)
def list_webhook_secrets(client: ClientDep) -> WebhookSecretList:
    """Every secret of this client, newest first: which sign deliveries now, and until when."""
    return WebhookSecretList(data=[_secret(w) for w in admin.webhook_secrets(client.id, live_only=False)])


@router.delete("/v1/webhook-secrets/{secret_id}", response_model=WebhookSecretObject,
               responses=errors("not_found", "last_credential"))
def retire_webhook_secret(secret_id: uuid.UUID, client: ClientDep) -> WebhookSecretObject:
    """Stop signing with a secret now (before its overlap ends). Not the last live one."""
    try:
        return _secret(admin.retire_webhook_secret(client.id, secret_id))
    except admin.CredentialError as e:
        raise _refused(e) from None


@router.get("/v1/credential-events", response_model=CredentialEventList)
def list_credential_events(client: ClientDep) -> CredentialEventList:
    """The last 100 credential changes of this client, newest first."""
    return CredentialEventList(data=[CredentialEventObject(event=e.event, ref=e.ref, detail=e.detail, at=e.at)
                                     for e in admin.credential_events(client.id)])
