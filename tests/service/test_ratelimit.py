"""Per-client fairness: a request burst is cut with 429 + Retry-After; jobs in flight are capped."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from harness import Api, FileServer, Stack, wait_until


def test_a_burst_gets_429_with_retry_after(stack: Stack) -> None:
    api = Api(stack, rate_limit_per_s=0.5, rate_limit_burst=5)
    bystander = Api(stack, rate_limit_per_s=0.5, rate_limit_burst=5)
    codes = [api.http.get("/v1/jobs") for _ in range(12)]
    assert [r.status_code for r in codes[:5]] == [200] * 5, "the burst is allowed"
    limited = [r for r in codes if r.status_code == 429]
    assert len(limited) >= 6
    for r in limited:
        assert r.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(r.headers["retry-after"]) <= 2  # one token comes back every 2 s
    assert bystander.http.get("/v1/jobs").status_code == 200, "another client is not affected"
    # POSTs pay too, and a limited POST does nothing.
    r = api.http.post("/v1/uploads")
    assert r.status_code == 429
    time.sleep(int(r.headers["retry-after"]))
    assert api.http.post("/v1/uploads").status_code == 201, "after Retry-After the client gets through"


@pytest.fixture
def held_server(small_faces: list[bytes]) -> Iterator[tuple[str, threading.Event]]:
    release = threading.Event()

    def handler(path: str) -> tuple[int, dict[str, str], bytes]:
        release.wait(30)
        return 200, {}, small_faces[5]

    srv = FileServer(handler)
    yield srv.url, release
    release.set()
    srv.close()


def test_jobs_in_flight_are_capped_per_client(stack: Stack, held_server: tuple, small_faces: list[bytes]) -> None:
    url, release = held_server
    api = Api(stack, max_jobs_in_flight=3)
    items = [{"url": f"{url}/{i}.jpg"} for i in range(4)]
    r = api.http.post("/v1/batches", json={"items": items, "options": {"upscale": 1}})
    assert (r.status_code, r.json()["error"]["code"]) == (429, "too_many_jobs_in_flight"), "a batch counts all items"
    assert int(r.headers["retry-after"]) >= 1
    assert api.http.get("/v1/batches").json()["data"] == [], "nothing of it was accepted"

    batch = api.http.post("/v1/batches", json={"items": items[:3], "options": {"upscale": 1}})
    assert batch.status_code == 202
    single = api.submit(small_faces[0], options='{"upscale": 1}')
    assert (single.status_code, single.json()["error"]["code"]) == (429, "too_many_jobs_in_flight")
    assert Api(stack, max_jobs_in_flight=3).submit(small_faces[0]).status_code == 202, "other clients unaffected"

    release.set()
    wait_until(lambda: api.http.get(f"/v1/batches/{batch.json()['id']}").json()["status"] == "completed", 120,
               what="batch done")
    assert api.submit(small_faces[0], options='{"upscale": 1}').status_code == 202


def test_a_default_client_is_not_limited_in_ordinary_use(stack: Stack) -> None:
    api = Api(stack)  # RATE_LIMIT_PER_S=20, RATE_LIMIT_BURST=100
    assert all(api.http.get("/v1/jobs").status_code == 200 for _ in range(50))


def test_unauthenticated_flood_is_cut_per_address_but_valid_keys_pass(stack: Stack) -> None:
    import redis

    bucket = "ratelimit:unauth:127.0.0.1"
    r = redis.Redis.from_url(stack.env["REDIS_URL"])
    r.delete(bucket)
    try:
        api = Api(stack)
        with httpx.Client(base_url=stack.api_url, timeout=10,
                          headers={"Authorization": "Bearer guess-0000"}) as attacker:
            t0 = time.monotonic()
            codes = [attacker.get("/v1/jobs") for _ in range(60)]
            took = time.monotonic() - t0
        statuses = [c.status_code for c in codes]
        assert statuses[:25] == [401] * 25, "the first guesses are plain 401s (burst 30)"
        limited = [c for c in codes if c.status_code == 429]
        # 30 pass on the burst, and 2 more per second the flood took (a loaded machine sends it slowly)
        assert len(limited) >= min(20, 60 - 30 - math.ceil(2 * took) - 1), f"a flood is cut: {statuses}"
        assert limited, f"a flood is cut: {statuses}"
        for c in limited:
            assert c.json()["error"]["code"] == "rate_limited"
            assert c.headers["retry-after"] == "1"  # 2 tokens/s: one is back within a second
        assert api.http.get("/v1/jobs").status_code == 200, "a valid key from the same address still works"
        # a missing header pays the same address's bucket: empty it, so refill while we ran cannot mask it
        now = r.time()
        r.hset(bucket, mapping={"tokens": "0", "ts": str(now[0] + now[1] / 1e6)})
        assert httpx.get(f"{stack.api_url}/v1/jobs", timeout=10).status_code == 429
    finally:
        r.delete(bucket)
