"""A small Python client for product services, and the folder workflow behind ``portrait submit``.

``PortraitClient`` wraps the HTTP API with httpx. Every POST carries an ``Idempotency-Key`` (random unless
you pass one), so the automatic retries — on 429 and 5xx, honouring ``Retry-After``, and on
connection errors, with exponential backoff (tenacity) — can never submit twice.

``submit_folder`` uploads every image of a folder (presigned POSTs), submits them as batches of up
to 1,000, optionally waits and downloads the results. It is resumable: idempotency keys are derived
from (folder, file path, file SHA-256, options), and a small state file in the output folder
remembers uploads, batches and downloads, so running it again after an interruption continues where
it stopped and creates no duplicate uploads, batches or jobs (within the server's 24 h key window;
the state file covers longer gaps for what it recorded).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from restoration.formats import INPUT_SUFFIXES

STATE_FILE = ".portrait-submit.json"
BATCH_LIMIT = 1000


class PortraitError(Exception):
    """An API error: ``status`` (HTTP), ``code`` (portrait/errors.py), ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class _Retry(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _with_retries(send: Callable[[], httpx.Response], max_attempts: int,
                  retry_on: Callable[[httpx.Response], bool]) -> httpx.Response:
    """Call ``send`` until ``retry_on`` is false for its response; the last response if attempts run out."""
    try:
        for attempt in Retrying(retry=retry_if_exception(_retryable), wait=_wait,
                                stop=stop_after_attempt(max_attempts), reraise=True):
            with attempt:
                r = send()
                if retry_on(r):
                    raise _Retry(r)
    except _Retry as e:
        return e.response
    return r


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, _Retry | httpx.TransportError)


def _wait(state: RetryCallState, base: float = 0.5, cap: float = 30.0) -> float:
    """Retry-After when the server sent one, else base·2^n with full jitter, capped."""
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, _Retry):
        after = exc.response.headers.get("retry-after", "")
        if after.replace(".", "", 1).isdigit():
            return min(float(after), cap)
    return random.uniform(0, min(cap, base * 2 ** (state.attempt_number - 1)))


class PortraitClient:
    """``PortraitClient("https://portrait.example.com", api_key)``; methods return the API's JSON objects."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 60.0, max_attempts: int = 8,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport,
                                 headers={"Authorization": f"Bearer {api_key}",
                                          "User-Agent": "portrait-client/0.1"})
        self.max_attempts = max_attempts

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> PortraitClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, idempotency_key: str | None = None, **kw: Any) -> Any:
        """One API call with retries; raises PortraitError for a final 4xx/5xx."""
        headers = dict(kw.pop("headers", None) or {})
        if method.upper() == "POST":
            headers["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
        r = _with_retries(lambda: self.http.request(method, path, headers=headers, **kw), self.max_attempts,
                          lambda r: r.status_code == 429 or r.status_code >= 500 or _in_progress(r))
        return _result(r)

    # --- jobs ------------------------------------------------------------------------------
    def submit_job(self, *, file: bytes | None = None, key: str | None = None, url: str | None = None,
                   options: dict[str, Any] | None = None, webhook_url: str | None = None,
                   wait: float | None = None, idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Prefer": f"wait={wait:g}"} if wait else {}
        if file is not None:
            data = {"options": json.dumps(options or {})} | ({"webhook_url": webhook_url} if webhook_url else {})
            return self.request("POST", "/v1/jobs", files={"file": ("input", file)}, data=data, headers=headers,
                                idempotency_key=idempotency_key)
        body: dict[str, Any] = {"input": {"key": key} if key else {"url": url}, "options": options or {}}
        if webhook_url:
            body["webhook_url"] = webhook_url
        return self.request("POST", "/v1/jobs", json=body, headers=headers, idempotency_key=idempotency_key)

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/jobs/{job_id}")

    # --- uploads ---------------------------------------------------------------------------
    def create_upload(self, filename: str | None = None, idempotency_key: str | None = None) -> dict[str, Any]:
        return self.request("POST", "/v1/uploads", json={"filename": filename}, idempotency_key=idempotency_key)

    def get_upload(self, upload_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/uploads/{upload_id}")

    def send_upload(self, upload: dict[str, Any], data: bytes) -> None:
        """POST the bytes to the store with the upload's presigned form (retried on network errors)."""
        r = _with_retries(lambda: httpx.post(upload["url"], data=upload["fields"], files={"file": ("input", data)},
                                             timeout=self.http.timeout),
                          self.max_attempts, lambda r: r.status_code >= 500)
        if r.status_code >= 300:
            raise PortraitError(r.status_code, "upload_refused", r.text[:300])

    # --- batches ---------------------------------------------------------------------------
    def create_batch(self, items: list[dict[str, Any]], *, options: dict[str, Any] | None = None,
                     webhook_url: str | None = None, webhook_events_filter: list[str] | None = None,
                     idempotency_key: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"items": items, "options": options or {}}
        if webhook_url:
            body["webhook_url"] = webhook_url
        if webhook_events_filter is not None:
            body["webhook_events_filter"] = webhook_events_filter
        return self.request("POST", "/v1/batches", json=body, idempotency_key=idempotency_key)

    def get_batch(self, batch_id: str, *, cursor: str | None = None, limit: int = 100) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        return self.request("GET", f"/v1/batches/{batch_id}", params=params)

    def batch_jobs(self, batch_id: str) -> Iterator[dict[str, Any]]:
        """Every job of a batch, in item order (follows the cursor)."""
        cursor = None
        while True:
            page = self.get_batch(batch_id, cursor=cursor)["jobs"]
            yield from page["data"]
            if not page["has_more"]:
                return
            cursor = page["next_cursor"]

    def wait_batch(self, batch_id: str, *, timeout: float | None = None, first_delay: float = 1.0,
                   max_delay: float = 15.0, on_poll: Callable[[dict[str, Any]], None] | None = None
                   ) -> dict[str, Any]:
        """Poll with growing delays (×1.5 up to ``max_delay``) until the batch is completed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = first_delay
        while True:
            batch = self.request("GET", f"/v1/batches/{batch_id}", params={"limit": 1})
            if on_poll:
                on_poll(batch)
            if batch["status"] == "completed":
                return batch
            if deadline is not None and time.monotonic() + delay > deadline:
                raise TimeoutError(f"batch {batch_id} not completed after {timeout} s")
            time.sleep(delay)
            delay = min(delay * 1.5, max_delay)

    def download(self, url: str, dest: Path) -> Path:
        """Fetch a presigned result URL to ``dest`` (written atomically)."""
        r = _with_retries(lambda: httpx.get(url, timeout=self.http.timeout), self.max_attempts,
                          lambda r: r.status_code >= 500)
        if r.status_code != 200:
            raise PortraitError(r.status_code, "download_failed", r.text[:300])
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        tmp.write_bytes(r.content)
        tmp.replace(dest)
        return dest


def _in_progress(r: httpx.Response) -> bool:
    return r.status_code == 409 and "idempotency_request_in_progress" in r.text


def _result(r: httpx.Response) -> Any:
    if r.status_code >= 400:
        try:
            err = r.json()["error"]
            raise PortraitError(r.status_code, err["code"], err["message"])
        except (ValueError, KeyError, TypeError):
            raise PortraitError(r.status_code, "http_error", r.text[:300]) from None
    return r.json()


# --- portrait submit FOLDER ---------------------------------------------------------------------


def idempotency_key(*parts: Any) -> str:
    """A deterministic key from parts: the same work always gets the same key."""
    return "ptr-" + hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:48]


@dataclass
class SubmitState:
    """What a run already did, kept in ``OUT/.portrait-submit.json`` (written after every step)."""

    path: Path
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)  # rel path → {sha256, id, key, sent}
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)  # idempotency key → {id, files, job_ids}
    downloaded: dict[str, str] = field(default_factory=dict)          # rel path → output file

    @classmethod
    def load(cls, path: Path) -> SubmitState:
        if path.is_file():
            raw = json.loads(path.read_text())
            return cls(path, raw.get("uploads", {}), raw.get("batches", {}), raw.get("downloaded", {}))
        return cls(path)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"uploads": self.uploads, "batches": self.batches,
                                   "downloaded": self.downloaded}, indent=1, sort_keys=True))
        os.replace(tmp, self.path)


@dataclass
class SubmitResult:
    batch_ids: list[str]
    succeeded: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # rel path → error code
    downloaded: int = 0


def list_images(folder: Path, exclude: Path | None = None) -> list[Path]:
    out = []
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() in INPUT_SUFFIXES and p.is_file() and not any(x.startswith(".") for x in p.parts):
            if exclude is not None and exclude.resolve() in p.resolve().parents:
                continue
            out.append(p)
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: The name this class had until it was told apart from ``db.models.Client`` (a row of the clients table);
#: kept so that code written against it keeps working. New code says PortraitClient.
Client = PortraitClient


def submit_folder(client: PortraitClient, folder: Path, out: Path, *, options: dict[str, Any] | None = None,
                  webhook_url: str | None = None, wait: bool = False, timeout: float | None = None,
                  progress: bool = True) -> SubmitResult:
    """Upload ``folder``'s images, submit them as batches, and with ``wait`` download the results."""
    from tqdm import tqdm

    folder, options = folder.resolve(), options or {}
    state = SubmitState.load(out / STATE_FILE)
    files = list_images(folder, exclude=out)
    rels = [p.relative_to(folder).as_posix() for p in files]
    shas = {rel: _sha256(p) for rel, p in zip(rels, files, strict=True)}

    for rel, path in tqdm(list(zip(rels, files, strict=True)), desc="upload", unit="file", disable=not progress):
        done = state.uploads.get(rel)
        if done and done["sha256"] == shas[rel] and done.get("sent"):
            continue
        up = client.create_upload(rel, idempotency_key=idempotency_key("upload", str(folder), rel, shas[rel]))
        if not client.get_upload(up["id"]).get("uploaded"):
            if up.get("url") is None or _expired(up.get("expires_at")):  # replayed after the POST URL expired
                up = client.create_upload(rel, idempotency_key=idempotency_key(
                    "upload", str(folder), rel, shas[rel], time.time()))
            client.send_upload(up, path.read_bytes())
        state.uploads[rel] = {"sha256": shas[rel], "id": up["id"], "key": up["key"], "sent": True}
        state.save()

    result = SubmitResult(batch_ids=[])
    for start in range(0, len(rels), BATCH_LIMIT):
        chunk = rels[start:start + BATCH_LIMIT]
        key = idempotency_key("batch", str(folder), [(r, shas[r]) for r in chunk], options, webhook_url)
        if key not in state.batches:
            batch = client.create_batch([{"upload": state.uploads[r]["id"]} for r in chunk], options=options,
                                        webhook_url=webhook_url, idempotency_key=key)
            state.batches[key] = {"id": batch["id"], "files": chunk, "job_ids": batch["job_ids"]}
            state.save()
        result.batch_ids.append(state.batches[key]["id"])
    if not wait:
        return result

    current = {state.batches[k]["id"]: state.batches[k] for k in state.batches
               if state.batches[k]["id"] in result.batch_ids}
    with tqdm(total=len(rels), desc="restore", unit="photo", disable=not progress) as bar:
        finished: dict[str, int] = {}

        def tick(batch: dict[str, Any]) -> None:
            finished[batch["id"]] = round(batch["progress"] * batch["total"])
            bar.update(sum(finished.values()) - bar.n)

        for bid in result.batch_ids:
            client.wait_batch(bid, timeout=timeout, on_poll=tick)

    taken: set[str] = set(state.downloaded.values())
    for bid, info in current.items():
        by_job = dict(zip(info["job_ids"], info["files"], strict=True))
        for job in client.batch_jobs(bid):
            rel = by_job[job["id"]]
            if job["status"] != "succeeded":
                result.failed[rel] = (job.get("error") or {}).get("code") or job["status"]
                continue
            result.succeeded += 1
            target = state.downloaded.get(rel)
            if target and (out / target).is_file():
                continue
            target = _output_name(rel, job["output"]["key"], taken)
            taken.add(target)
            client.download(job["output"]["url"], out / target)
            state.downloaded[rel] = target
            state.save()
            result.downloaded += 1
    return result


def _expired(expires_at: str | None) -> bool:
    from datetime import UTC, datetime

    return expires_at is not None and datetime.fromisoformat(expires_at) <= datetime.now(UTC)


def _output_name(rel: str, output_key: str, taken: set[str]) -> str:
    """``a/b.png`` restored as JPEG → ``a/b.jpg``; if two inputs would collide, keep the full name."""
    ext = output_key.rsplit(".", 1)[-1]
    name = str(Path(rel).with_suffix("." + ext).as_posix())
    return f"{rel}.{ext}" if name in taken else name
