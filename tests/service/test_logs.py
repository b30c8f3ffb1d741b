"""With LOG_FORMAT=json the API and the workers write one JSON object per line, and every line of a job's
handling says which job, client, batch and attempt it is about; replies carry an X-Request-Id."""

from __future__ import annotations

import json

import httpx
from harness import Api, Stack, wait_until


def _records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(errors="replace").splitlines() if line.startswith("{")]


def test_json_logs_carry_request_and_job_context(stack: Stack, api: Api, portrait_jpeg: bytes) -> None:
    with stack.private_pair("json", {"LOG_FORMAT": "json"}) as (worker, server):
        headers = {"Authorization": f"Bearer {api.api_key}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
            r = http.post("/v1/jobs", files={"file": ("p.jpg", portrait_jpeg)}, data={"options": '{"upscale": 1}'},
                          headers={"X-Request-Id": "trace-4bf92f3577b34da6"})
            assert r.status_code == 202, r.text
            assert r.headers["x-request-id"] == "trace-4bf92f3577b34da6", "a client's id is echoed"
            job_id = r.json()["id"]
            odd = http.get(f"/v1/jobs/{job_id}", headers={"X-Request-Id": "not an id; DROP"})
            assert len(odd.headers["x-request-id"]) == 32 and odd.headers["x-request-id"] != "not an id"
            wait_until(lambda: http.get(f"/v1/jobs/{job_id}").json()["status"] in ("succeeded", "failed"),
                       180, 0.5, "the job to finish")
            assert http.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"

        api_lines = server.log.read_text(errors="replace").splitlines()
        assert api_lines and all(line.startswith("{") for line in api_lines if line.strip()), api_lines[:5]
        created = [r for r in _records(server.log) if r.get("job_id") == job_id]
        assert created, "the API logged the job's creation"
        assert all(r["request_id"] == "trace-4bf92f3577b34da6" for r in created)
        assert created[0]["client_id"] == str(api.client.id) and "batch_id" in created[0]

        mine = wait_until(lambda: [r for r in _records(worker.log) if r.get("job_id") == job_id and
                                   "succeeded" in r["message"]] and
                          [r for r in _records(worker.log) if r.get("job_id") == job_id], 30, 0.5, "worker lines")
        assert len(mine) >= 2, mine  # claimed ... succeeded
        for rec in mine:
            assert {"time", "level", "logger", "message"} <= set(rec), rec
            assert (rec["client_id"], rec["batch_id"], rec["attempt"]) == (str(api.client.id), None, 1), rec
