"""Every job, batch, upload, input and result belongs to one client: to any other it does not exist."""

from __future__ import annotations

import uuid

from harness import Api, Stack
from sqlalchemy import select
from test_batches import upload, wait_batch

from db.models import Batch, Job, Upload
from db.session import session_scope
from portrait.storage import client_prefix


def test_another_client_sees_404_everywhere(stack: Stack, api: Api, small_faces: list[bytes]) -> None:
    up = upload(api, small_faces[0])
    spare = upload(api, small_faces[1])
    batch = api.http.post("/v1/batches", json={"items": [{"upload": up["id"]}], "options": {"upscale": 1}}).json()
    done = wait_batch(api, batch["id"], timeout=120)
    job = api.http.get(f"/v1/jobs/{batch['job_ids'][0]}").json()
    assert done["counts"]["succeeded"] == 1 and job["output"]["key"].startswith(client_prefix(api.client.id))

    other = Api(stack)
    not_found = [
        other.http.get(f"/v1/jobs/{job['id']}"),
        other.http.post(f"/v1/jobs/{job['id']}/cancel"),
        other.http.get(f"/v1/batches/{batch['id']}"),
        other.http.get(f"/v1/uploads/{up['id']}"),
        # naming the first client's upload, input or result as one's own input
        other.http.post("/v1/batches", json={"items": [{"upload": spare["id"]}]}),
        other.http.post("/v1/batches", json={"items": [{"key": up["key"]}]}),
        other.http.post("/v1/batches", json={"items": [{"key": job["output"]["key"]}]}),
        other.http.post("/v1/jobs", json={"input": {"key": job["output"]["key"]}}),
        other.http.post("/v1/jobs", json={"input": {"key": f"{client_prefix(other.client.id)}../"
                                                           f"{api.client.id}/uploads/{spare['id']}"}}),
    ]
    for r in not_found:
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found"), r.request.url
    for what in ("jobs", "batches"):
        assert other.http.get(f"/v1/{what}").json()["data"] == []
    # The error does not confirm the resource exists: same answer as a random id.
    ghost = other.http.get(f"/v1/batches/{uuid.uuid4()}").json()["error"]
    assert ghost["code"] == "not_found"

    # Every row and object of the first client carries its id and prefix.
    with session_scope() as s:
        for model in (Job, Batch, Upload):
            owners = set(s.scalars(select(model.client_id).where(model.client_id.in_([api.client.id,
                                                                                       other.client.id]))))
            assert owners == {api.client.id}, model.__name__
        keys = s.execute(select(Job.input_key, Job.output_key).where(Job.client_id == api.client.id)).all()
    assert all(k.startswith(client_prefix(api.client.id)) for row in keys for k in row if k)
