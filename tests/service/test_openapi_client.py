"""A client generated from the served schema by a standard generator (openapi-python-client) submits a
photo, polls it to success and reads a documented error — nothing written by hand."""

from __future__ import annotations

import importlib
import io
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
from harness import BIN, Api, Stack, wait_until


def _generate(stack: Stack, tmp: Path) -> Path:
    spec = tmp / "openapi.json"
    spec.write_bytes(httpx.get(f"{stack.api_url}/openapi.json", timeout=10).raise_for_status().content)
    out = tmp / "portrait_api_client"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # it runs ruff on the output
    run = subprocess.run([str(BIN / "openapi-python-client"), "generate", "--path", str(spec), "--meta", "none",
                          "--output-path", str(out)], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Warning" not in run.stdout + run.stderr, run.stdout + run.stderr  # every operation generated
    return tmp


def test_a_generated_client_submits_polls_and_reads_errors(stack: Stack, api: Api, portrait_jpeg: bytes,
                                                           tmp_path: Path) -> None:
    sys.path.insert(0, str(_generate(stack, tmp_path)))
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
