"""Retention: past the client's retention period, inputs and results are deleted and jobs expire."""

from __future__ import annotations

import httpx
from harness import Api, Stack, wait_until
from test_batches import upload, wait_batch

from portrait.storage import get_storage


def test_inputs_and_results_expire(stack: Stack, small_faces: list[bytes]) -> None:
    api = Api(stack, retention_s=4)  # RETENTION_INTERVAL_S is 2 in the test stack
    storage = get_storage()
    single = api.submit(small_faces[6], options='{"upscale": 1}').json()
    up = upload(api, small_faces[7])
    batch = api.http.post("/v1/batches", json={"items": [{"upload": up["id"]}], "options": {"upscale": 1}}).json()
    done = api.wait(single["id"])
    assert done["status"] == "succeeded"
    result_url, keys = done["output"]["url"], [done["input"]["key"], done["output"]["key"]]
    assert httpx.get(result_url, timeout=30).status_code == 200
    wait_batch(api, batch["id"], timeout=120)
    unused = upload(api, small_faces[8])  # never used by a job

    expired = api.wait(single["id"], statuses=("expired",), timeout=60)
    assert expired["output"] is None
    assert all(storage.size(k) is None for k in keys), "input and result objects are deleted"
    assert httpx.get(result_url, timeout=30).status_code == 404, "an old result link no longer works"
    b = wait_until(lambda: (x := api.http.get(f"/v1/batches/{batch['id']}").json())["counts"]["expired"] == 1 and x,
                   60, what="batch item expired")
    assert b["counts"]["succeeded"] == 0 and b["status"] == "completed"
    assert storage.size(up["key"]) is None
    wait_until(lambda: api.http.get(f"/v1/uploads/{unused['id']}").status_code == 404, 60, what="upload purged")
    assert storage.size(unused["key"]) is None
    listed = api.http.get("/v1/jobs", params={"status": "expired"}).json()["data"]
    assert {j["id"] for j in listed} == {single["id"], batch["job_ids"][0]}

