"""The Python client and ``portrait submit``: a folder becomes one batch, re-runs resume, 429s are waited out."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from harness import Api, Stack
from PIL import Image
from sqlalchemy import func, select

from db.models import Upload
from db.session import session_scope
from portrait.cli import main
from portrait.client import STATE_FILE, PortraitClient


def test_submit_a_folder_then_resume_without_duplicates(stack: Stack, small_faces: list[bytes],
                                                        tmp_path: Path) -> None:
    api = Api(stack)
    folder, out = tmp_path / "photos", tmp_path / "out"
    (folder / "day2").mkdir(parents=True)
    names = ["a.jpg", "b.jpg", "c.jpg", "day2/d.jpg", "day2/e.jpg"]
    for i, name in enumerate(names):
        (folder / name).write_bytes(small_faces[20 + i])
    (folder / "notes.txt").write_text("not a photo")
    argv = ["submit", str(folder), "-o", str(out), "--api-url", stack.api_url, "--api-key", api.api_key, "-q",
            "--options", '{"upscale": 1}']

    assert main(argv) == 0, "submitted without waiting"
    state = json.loads((out / STATE_FILE).read_text())
    assert sorted(state["uploads"]) == names and len(state["batches"]) == 1

    # Interrupted after the batch was created but before it was recorded, and one upload forgotten.
    state["batches"] = {}
    del state["uploads"]["b.jpg"]
    (out / STATE_FILE).write_text(json.dumps(state))
    assert main([*argv, "--wait"]) == 0
    for name in names:
        with Image.open(out / name) as im:
            assert im.size == (112, 112)
    batches = api.http.get("/v1/batches").json()["data"]
    assert len(batches) == 1 and batches[0]["counts"]["succeeded"] == 5, "no second batch"
    assert len(api.http.get("/v1/jobs").json()["data"]) == 5, "no duplicate jobs"
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Upload).where(Upload.client_id == api.client.id)) == 5

    before = {n: (out / n).stat().st_mtime_ns for n in names}
    assert main([*argv, "--wait"]) == 0, "a third run has nothing left to do"
    assert {n: (out / n).stat().st_mtime_ns for n in names} == before
    assert len(api.http.get("/v1/batches").json()["data"]) == 1


class Recording(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.codes: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        r = super().handle_request(request)
        self.codes.append(r.status_code)
        return r


def test_client_waits_out_429_and_retries_posts_safely(stack: Stack) -> None:
    api = Api(stack, rate_limit_per_s=2, rate_limit_burst=2)
    transport = Recording()
    with PortraitClient(stack.api_url, api.api_key, transport=transport) as client:
        uploads = [client.create_upload(f"{i}.jpg") for i in range(5)]
    assert 429 in transport.codes, "the server did push back"
    assert transport.codes[-1] == 201 and len(uploads) == 5
    assert len({u["id"] for u in uploads}) == 5
    with session_scope() as s:
        n = s.scalar(select(func.count()).select_from(Upload).where(Upload.client_id == api.client.id))
    assert n == 5, "retried POSTs created nothing twice"


def test_operator_rotates_a_clients_key_and_secret_from_the_command_line(stack: Stack, capsys) -> None:
    """``portrait keys`` and ``portrait webhook-secrets``: an operator rotates for a client; the new key
    works at once, the old one until it is revoked; the last key cannot go; each change is listed."""
    api = Api(stack)
    name = api.client.name
    assert main(["keys", name, "--create"]) == 0
    new_key = next(line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("api_key:"))
    new = httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {new_key}"}, timeout=30)
    assert new.get("/v1/jobs").status_code == 200 and api.http.get("/v1/jobs").status_code == 200
    assert main(["keys", name]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if " active" in line]
    assert len(rows) == 2
    old_id = next(r.split()[0] for r in rows if api.api_key.startswith(r.split()[1].rstrip("…")))
    assert main(["keys", name, "--revoke", old_id]) == 0
    assert api.http.get("/v1/jobs").status_code == 401 and new.get("/v1/jobs").status_code == 200
    new_id = next(r.split()[0] for r in rows if r.split()[0] != old_id)
    try:
        main(["keys", name, "--revoke", new_id])
        raise AssertionError("the last active key was revoked")
    except SystemExit as e:
        assert str(e).startswith("last_credential")
    capsys.readouterr()
    assert main(["webhook-secrets", name, "--rotate", "--overlap-s", "60"]) == 0
    out = capsys.readouterr().out
    assert "webhook_secret: whsec_" in out and "expires" in out and "no expiry" in out
    assert "api_key.revoked" in out and "webhook_secret.expiring" in out
