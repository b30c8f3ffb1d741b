"""A client generated from the served schema by a standard generator (openapi-python-client) submits a
photo, polls it to success and reads a documented error — nothing written by hand."""

from __future__ import annotations

import importlib
import io
import sys
import uuid
from pathlib import Path

import httpx
from harness import Api, Stack, generate_client, wait_until


def test_a_generated_client_submits_polls_and_reads_errors(stack: Stack, api: Api, portrait_jpeg: bytes,
                                                           tmp_path: Path) -> None:
    sys.path.insert(0, str(generate_client(stack.api_url, tmp_path)))
    try:
        gen = importlib.import_module("portrait_api_client")
        from portrait_api_client.api.jobs import create_job, get_job
        from portrait_api_client.models import ErrorResponse, JobObject, JobUpload, RestoreOptions
        from portrait_api_client.types import File

        client = gen.AuthenticatedClient(base_url=stack.api_url, token=api.api_key, raise_on_unexpected_status=True)
        body = JobUpload(file=File(payload=io.BytesIO(portrait_jpeg), file_name="p.jpg", mime_type="image/jpeg"),
                         options=RestoreOptions.from_dict({"upscale": 1}))  # a JSON part, as the schema says
        key = f"gen-{uuid.uuid4().hex}"
        created = create_job.sync_detailed(client=client, body=body, idempotency_key=key)
        assert created.status_code == 202 and isinstance(created.parsed, JobObject), created.content
        job_id = created.parsed.id
        again = create_job.sync_detailed(client=client, body=JobUpload(
            file=File(payload=io.BytesIO(portrait_jpeg), file_name="p.jpg", mime_type="image/jpeg"),
            options=RestoreOptions.from_dict({"upscale": 1})), idempotency_key=key)
        assert again.parsed.id == job_id and again.headers.get("idempotent-replayed") == "true"

        done = wait_until(lambda: (j := get_job.sync(job_id, client=client)) and j.status in ("succeeded", "failed")
                          and j, 180, 0.5, "the job to finish")
        assert done.status == "succeeded", done.to_dict()
        assert httpx.get(done.output.url, timeout=30).content[:3] == b"\xff\xd8\xff", "the result is a JPEG"

        missing = get_job.sync_detailed(uuid.uuid4(), client=client)
        assert missing.status_code == 404 and isinstance(missing.parsed, ErrorResponse)
        assert missing.parsed.error.code == "not_found"
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("portrait_api_client")]:
            del sys.modules[name]
