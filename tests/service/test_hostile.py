"""Hostile clients against the running stack: what they try, and the documented refusal they get."""

from __future__ import annotations

import httpx
from harness import Api, Stack


def test_an_allow_listed_address_is_reachable_only_on_its_allowed_ports(api: Api, stack: Stack,
                                                                        portrait_jpeg: bytes) -> None:
    """The stack allow-lists 127.0.0.1 for the test servers' port range only (as a deployment should
    scope its entries): the API's own port, Redis and Postgres on loopback stay out of reach."""
    api_port = httpx.URL(stack.api_url).port
    for url in (f"http://127.0.0.1:{api_port}/healthz", "http://127.0.0.1:6379/", "http://127.0.0.1:5432/"):
        r = api.http.post("/v1/jobs", json={"input": {"url": url}})
        assert r.status_code == 422 and r.json()["error"]["code"] == "url_not_allowed", r.text
        r = api.submit(portrait_jpeg, webhook_url=url)
        assert r.status_code == 422 and r.json()["error"]["code"] == "url_not_allowed", r.text
