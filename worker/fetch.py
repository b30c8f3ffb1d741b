"""Download an input URL with a size and time cap (the worker stores it in S3 before restoring)."""

from __future__ import annotations

import httpx

from portrait.settings import Settings


class FetchError(Exception):
    pass


def fetch_url(url: str, settings: Settings) -> bytes:
    limit = settings.max_upload_bytes
    try:
        with httpx.Client(timeout=settings.url_fetch_timeout_s, follow_redirects=False) as c, \
                c.stream("GET", url) as r:
            if r.status_code != 200:
                raise FetchError(f"GET {url} answered {r.status_code}")
            chunks, size = [], 0
            for chunk in r.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise FetchError(f"{url} is larger than {limit} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as e:
        raise FetchError(f"GET {url} failed: {type(e).__name__}") from e
