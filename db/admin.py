"""Clients and their credentials. API keys are shown once and stored only as SHA-256 hashes.

SHA-256 (not a slow KDF) is right here: keys are 256-bit random tokens, so there is nothing to brute
force, and every request must verify one cheaply.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from sqlalchemy import select

from db.models import Client
from db.session import session_scope

API_KEY_PREFIX = "prt_"


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def create_client(name: str, *, rate_limit_per_s: float | None = None, rate_limit_burst: int | None = None,
                  max_jobs_in_flight: int | None = None, retention_s: int | None = None) -> tuple[Client, str]:
    """Create a client; returns it and its API key (the only time the key exists in clear).

    The keyword arguments override the deployment-wide settings of the same name for this client
    (None = use the setting).
    """
    api_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    client = Client(
        name=name,
        api_key_prefix=api_key[: len(API_KEY_PREFIX) + 6],
        api_key_hash=hash_api_key(api_key),
        webhook_secret=new_webhook_secret(),
        rate_limit_per_s=rate_limit_per_s,
        rate_limit_burst=rate_limit_burst,
        max_jobs_in_flight=max_jobs_in_flight,
        retention_s=retention_s,
    )
    with session_scope() as s:
        s.add(client)
    return client, api_key


def client_for_key(api_key: str) -> Client | None:
    with session_scope() as s:
        return s.scalar(select(Client).where(Client.api_key_hash == hash_api_key(api_key), Client.active))
