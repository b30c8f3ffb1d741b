"""Per-client fairness: a request rate limit (token bucket in Redis) and a cap on jobs in flight.

* Every authenticated request takes one token from the client's bucket, refilled at
  RATE_LIMIT_PER_S up to RATE_LIMIT_BURST (a client row may override both). The bucket lives in
  Redis and is updated by one Lua script, so concurrent API processes cannot race it, and uses Redis'
  clock, so they need not agree on the time. No token → 429 ``rate_limited`` with ``Retry-After``
  (whole seconds until a token is back). If Redis is down the limit is skipped (fail open): Redis
  carries no state we cannot lose.
* Requests without a valid key are limited too, per source address (the TCP peer; behind a proxy,
  run uvicorn with ``--forwarded-allow-ips`` so the peer is the real client): each 401 takes a
  token from ``ratelimit:unauth:<ip>`` (UNAUTHENTICATED_RATE_LIMIT_PER_S / _BURST); an empty bucket
  answers 429 ``rate_limited`` instead of 401. Valid keys are looked up first, so a client sharing
  an address with a key-guessing flood is not locked out.
* Queued + running jobs are counted in Postgres at submit, under a per-client advisory lock; a
  submit that would exceed MAX_JOBS_IN_FLIGHT (a batch counts all its items) → 429
  ``too_many_jobs_in_flight``. It is all or nothing: a batch is never partly accepted.
"""

from __future__ import annotations

import logging
import math
from functools import lru_cache

import redis
from fastapi import Request
from sqlalchemy.orm import Session

from api.auth import current_client
from db import jobs as jobs_db
from db.models import Client
from portrait.errors import ApiError
from portrait.settings import get_settings

log = logging.getLogger("portrait.api")

IN_FLIGHT_RETRY_AFTER_S = 5

# KEYS[1]: the bucket. ARGV: rate (tokens/s), burst, cost. Returns {allowed, retry_after_s, tokens_left}.
TOKEN_BUCKET = """
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(b[1]), tonumber(b[2])
if tokens == nil then tokens, ts = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed, retry = 0, 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(retry), tostring(tokens)}
"""


@lru_cache
def _script() -> redis.commands.core.Script:
    r = redis.Redis.from_url(get_settings().redis_url, socket_timeout=2, socket_connect_timeout=2)
    return r.register_script(TOKEN_BUCKET)


def _take(bucket: str, rate: float, burst: int) -> tuple[bool, float]:
    """(allowed, seconds until a token is back). Fails open when Redis does not answer."""
    try:
        allowed, retry, _ = _script()(keys=[bucket], args=[rate, burst, 1])
    except redis.RedisError:
        log.warning("rate limiter unavailable (Redis); request let through", exc_info=True)
        return True, 0.0
    return bool(int(allowed)), float(retry)


def take_token(client: Client) -> tuple[bool, float]:
    """Charge one request to ``client``'s bucket (its own limits, else the settings')."""
    s = get_settings()
    return _take(f"ratelimit:{client.id}", client.rate_limit_per_s or s.rate_limit_per_s,
                 client.rate_limit_burst or s.rate_limit_burst)


def _raise_limited(retry: float) -> None:
    wait = max(1, math.ceil(retry))
    raise ApiError("rate_limited", f"too many requests; retry in {wait} s", headers={"Retry-After": str(wait)})


def rate_limited_client(request: Request) -> Client:
    """The authenticated client, after it paid one token; a failed authentication pays its address's."""
    try:
        client = current_client(request)
    except ApiError:
        s = get_settings()
        source = request.client.host if request.client else "unknown"
        allowed, retry = _take(f"ratelimit:unauth:{source}", s.unauthenticated_rate_limit_per_s,
                               s.unauthenticated_rate_limit_burst)
        if not allowed:
            _raise_limited(retry)
        raise
    allowed, retry = take_token(client)
    if not allowed:
        _raise_limited(retry)
    return client



def reserve_in_flight(s: Session, client: Client, adding: int) -> None:
    """Call inside the transaction that inserts ``adding`` jobs; raises 429 if the cap would be passed."""
    cap = client.max_jobs_in_flight or get_settings().max_jobs_in_flight
    jobs_db.lock_client(s, client.id)
    active = jobs_db.active_count(s, client.id)
    if active + adding > cap:
        raise ApiError("too_many_jobs_in_flight",
                       f"{active} jobs queued or running, {adding} more would pass your cap of {cap}",
                       headers={"Retry-After": str(IN_FLIGHT_RETRY_AFTER_S)})
