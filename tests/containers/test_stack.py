"""The project's images, built and run as the stack an operator deploys (issue 22): `make test-containers`.

``scripts/containers.sh`` builds every image (the API's, the worker's, and this workplace's Postgres, Redis,
S3 and Prometheus from Debian packages or PyPI) and brings up docker-compose.yml + infra/compose.local.yml
+ tests/containers/compose.test.yml with podman. Then, from the host, as a customer and an operator would:
a job and a batch through a client generated from the served OpenAPI schema (upload, restored result,
signed webhooks), the metrics and Flower behind their credentials as Prometheus scrapes them, and the
worker container killed and restarted mid-job with the job finishing exactly once. The stack is taken
down (volumes too) whatever happens. Not part of `make test`: collected only when CONTAINER_TESTS=1.
"""

from __future__ import annotations

import importlib
import io
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from harness import ROOT, WebhookReceiver, generate_client, holds_for, wait_until
from PIL import Image
from standardwebhooks.webhooks import Webhook

PROJECT = "portrait-ct"
API = "http://127.0.0.1:8000"
FLOWER = "http://127.0.0.1:5555"
PROMETHEUS = "http://127.0.0.1:9090"
FACES = Path(os.environ.get("FACES_DIR", ROOT.parent / "shared" / "faces"))
SOLVAY = FACES / "wild" / "whole" / "gpen_Solvay_conference_1927.png"
SELFIE = FACES / "wild" / "whole" / "gpen_selfie_2020-12-17_185036.jpg"


def _script(*args: str, env: dict[str, str], timeout: float = 900) -> str:
    run = subprocess.run([str(ROOT / "scripts" / "containers.sh"), *args], cwd=ROOT, env=env, text=True,
                         capture_output=True, timeout=timeout)
    assert run.returncode == 0, f"containers.sh {' '.join(args)}:\n{run.stdout}\n{run.stderr}"
    return run.stdout


def _podman(*args: str, timeout: float = 120) -> str:
    run = subprocess.run(["podman", *args], text=True, capture_output=True, timeout=timeout)
    assert run.returncode == 0, f"podman {' '.join(args)}:\n{run.stdout}\n{run.stderr}"
    return run.stdout


class ContainerStack:
    """The running stack: its credentials, the receiver its webhooks reach, and its containers' logs."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.flower_auth = (env["FLOWER_USER"], env["FLOWER_PASSWORD"])
        self.receiver = WebhookReceiver(host="0.0.0.0")  # noqa: S104 - the containers' bridge must reach it
        self.hook_base = f"http://host.containers.internal:{self.receiver.server.server_address[1]}"
        out = _podman("exec", self.name("api"), "portrait", "create-client", f"ct-{uuid.uuid4().hex[:6]}")
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        self.api_key = fields["api_key"].split()[0]
        self.webhook_secret = fields["webhook_secret"].strip()

    @staticmethod
    def name(service: str) -> str:
        return f"{PROJECT}_{service}_1"


def _logs() -> str:
    """The last lines of each service container's log: printed with a failure's report."""
    parts = []
    for s in ("api", "worker", "worker-cpu", "beat", "migrate", "prometheus"):
        run = subprocess.run(["podman", "logs", "--tail", "40", ContainerStack.name(s)], text=True,
                             capture_output=True)
        parts.append(f"--- {s}\n{run.stdout}{run.stderr}")
    return "\n".join(parts)


@pytest.fixture(scope="module")
def cstack() -> Iterator[ContainerStack]:
    env = {**os.environ, "PROJECT": PROJECT, "COMPOSE_FILES": "tests/containers/compose.test.yml",
           "FLOWER_USER": "ops", "FLOWER_PASSWORD": secrets.token_urlsafe(12)}
    _script("down", env=env)  # a stack left by an interrupted run
    try:
        print(_script("up", env=env))
        s = ContainerStack(env)
        yield s
        s.receiver.close()
    finally:
        print(_logs())  # shown by pytest only where something failed
        _script("down", env=env)


@pytest.fixture(scope="module")
def gen(cstack: ContainerStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """A client package generated from the schema the API container serves (openapi-python-client)."""
    tmp = generate_client(API, tmp_path_factory.mktemp("client"))
    sys.path.insert(0, str(tmp))
    try:
        yield importlib.import_module("portrait_api_client")
    finally:
        sys.path.remove(str(tmp))


def _client(gen: ModuleType, cstack: ContainerStack) -> Any:
    return gen.AuthenticatedClient(base_url=API, token=cstack.api_key, raise_on_unexpected_status=True,
                                   timeout=httpx.Timeout(60))


def _wait_job(client: Any, job_id: Any, timeout: float = 300) -> Any:
    from portrait_api_client.api.jobs import get_job

    return wait_until(lambda: (j := get_job.sync(job_id, client=client)).status in ("succeeded", "failed") and j,
                      timeout, 0.5, f"job {job_id} to finish")


def _jpeg(path: Path, width: int) -> bytes:
    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((width, width))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=85)
        return buf.getvalue()


def _signed(cstack: ContainerStack, path: str, count: int = 1, settle: float = 5) -> list[dict[str, Any]]:
    """The ``count`` webhooks posted to ``path``, each verified against the client's secret; none more."""
    wait_until(lambda: len(cstack.receiver.for_path(path)) >= count, 120, 0.5, f"webhooks on {path}")
    holds_for(lambda: len(cstack.receiver.for_path(path)) == count, settle, f"no more webhooks on {path}")
    return [Webhook(cstack.webhook_secret).verify(h.body, h.headers) for h in cstack.receiver.for_path(path)]


def test_a_job_through_the_generated_client(cstack: ContainerStack, gen: ModuleType) -> None:
    """Upload a photo as a job: the restored image comes back from S3 at twice the size, and the signed
    job.succeeded webhook reaches the customer's server."""
    from portrait_api_client.api.jobs import create_job
    from portrait_api_client.models import JobUpload, RestoreOptions
    from portrait_api_client.types import File

    client = _client(gen, cstack)
    photo = _jpeg(SELFIE, 640)
    body = JobUpload(file=File(payload=io.BytesIO(photo), file_name="selfie.jpg", mime_type="image/jpeg"),
                     options=RestoreOptions.from_dict({"upscale": 2}), webhook_url=f"{cstack.hook_base}/job")
    job = create_job.sync(client=client, body=body, idempotency_key=uuid.uuid4().hex)
    done = _wait_job(client, job.id)
    assert done.status == "succeeded", done.to_dict()
    assert done.model_version and done.faces and len(done.faces) == 1
    with Image.open(io.BytesIO(httpx.get(done.output.url, timeout=30).raise_for_status().content)) as out, \
            Image.open(io.BytesIO(photo)) as src:
        assert out.size == (src.width * 2, src.height * 2)
    (payload,) = _signed(cstack, "/job")
    assert payload["type"] == "job.succeeded" and payload["data"]["id"] == str(job.id)


def test_a_batch_of_uploads(cstack: ContainerStack, gen: ModuleType) -> None:
    """Three photos uploaded straight to S3 (presigned POST), restored as one batch: every item succeeds
    and one signed batch.completed webhook arrives."""
    from portrait_api_client.api.batches import create_batch, get_batch
    from portrait_api_client.api.uploads import create_upload
    from portrait_api_client.models import BatchCreate, UploadCreate

    client = _client(gen, cstack)
    items = []
    for i in range(3):
        up = create_upload.sync(client=client, body=UploadCreate(filename=f"face-{i}.jpg"))
        r = httpx.post(up.url, data=up.fields.to_dict(), timeout=30,
                       files={"file": (f"face-{i}.jpg", _jpeg(SELFIE, 320 + 40 * i), "image/jpeg")})
        assert r.status_code in (200, 201, 204), r.text
        items.append({"upload": str(up.id)})
    batch = create_batch.sync(client=client, body=BatchCreate.from_dict(
        {"items": items, "options": {"upscale": 1}, "webhook_url": f"{cstack.hook_base}/batch"}))
    done = wait_until(lambda: (b := get_batch.sync(batch.id, client=client)).status == "completed" and b,
                      300, 1, "the batch to complete")
    assert done.counts.to_dict().get("succeeded") == 3, done.to_dict()
    (payload,) = _signed(cstack, "/batch")
    assert payload["type"] == "batch.completed" and payload["data"]["id"] == str(batch.id)


def test_metrics_and_flower_behind_their_credentials(cstack: ContainerStack) -> None:
    """Flower refuses a request without its credentials; the API serves /metrics; Prometheus scrapes the
    API, both workers' exporters and Flower (with the credentials it was given) and sees them all up."""
    assert httpx.get(f"{FLOWER}/api/workers", timeout=10).status_code == 401
    assert httpx.get(f"{FLOWER}/api/workers", auth=cstack.flower_auth, timeout=10).status_code == 200
    metrics = httpx.get(f"{API}/metrics", timeout=10).raise_for_status().text
    assert "portrait_http_requests_total" in metrics

    def all_up() -> dict[str, str] | None:
        targets = httpx.get(f"{PROMETHEUS}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets}
        return health if set(health) == {"api", "worker-gpu", "worker-cpu", "flower"} and \
            all(h == "up" for h in health.values()) else None

    wait_until(all_up, 90, 2, "Prometheus to scrape every target")


def test_services_run_unprivileged(cstack: ContainerStack) -> None:
    """The project's containers run as the unprivileged user ``portrait``, which cannot write the code."""
    for service in ("api", "worker", "worker-cpu", "beat", "flower"):
        c = cstack.name(service)
        assert _podman("exec", c, "id", "-un").strip() == "portrait", service
        probe = subprocess.run(["podman", "exec", c, "touch", "/app/probe"], capture_output=True, text=True)
        assert probe.returncode != 0 and "Permission denied" in probe.stderr, (service, probe.stderr)


def test_worker_killed_mid_job_finishes_it_once(cstack: ContainerStack, gen: ModuleType) -> None:
    """The worker container is killed while it restores a 29-face photo and started again: the job is
    taken up again and succeeds, with one result and exactly one job.succeeded webhook."""
    from portrait_api_client.api.jobs import create_job, get_job
    from portrait_api_client.models import JobUpload, RestoreOptions
    from portrait_api_client.types import File

    client = _client(gen, cstack)
    body = JobUpload(file=File(payload=io.BytesIO(SOLVAY.read_bytes()), file_name="solvay.png",
                               mime_type="image/png"),
                     options=RestoreOptions.from_dict({"upscale": 2}), webhook_url=f"{cstack.hook_base}/killed")
    job = create_job.sync(client=client, body=body)
    wait_until(lambda: get_job.sync(job.id, client=client).status == "running", 120, 0.2, "the job to start")
    t0 = time.monotonic()
    _podman("restart", "--time", "0", cstack.name("worker"))  # SIGKILL, no warm shutdown
    done = _wait_job(client, job.id, timeout=300)
    assert done.status == "succeeded" and done.attempts >= 2, done.to_dict()
    print(f"recovered {time.monotonic() - t0:.0f} s after the restart")
    (payload,) = _signed(cstack, "/killed", settle=10)
    assert payload["type"] == "job.succeeded" and payload["data"]["attempts"] == done.attempts
