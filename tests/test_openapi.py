"""The published schema is the contract: valid OpenAPI, and it says everything a generated client needs."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate
from test_error_codes import produced_codes

from api.app import app


@pytest.fixture(scope="module")
def schema() -> dict:
    return app.openapi()


def _ops(schema: dict) -> list[tuple[str, str, dict]]:
    return [(p, m, op) for p, ops in schema["paths"].items() for m, op in ops.items()]


def test_the_schema_is_valid_openapi(schema: dict) -> None:
    validate(schema)  # openapi-spec-validator: raises on any violation (unique operationIds included)
    assert {op["operationId"] for _, _, op in _ops(schema)} >= {"create_job", "get_job", "list_jobs", "cancel_job",
                                                                  "create_batch", "get_batch", "create_upload"}


def test_job_submit_documents_both_request_forms_and_prefer_wait(schema: dict) -> None:
    op = schema["paths"]["/v1/jobs"]["post"]
    content = op["requestBody"]["content"]
    upload = schema["components"]["schemas"]["JobUpload"]
    assert upload["properties"]["file"] == {**upload["properties"]["file"], "type": "string", "format": "binary"}
    assert content["multipart/form-data"]["schema"]["$ref"].endswith("/JobUpload")
    assert content["application/json"]["schema"]["$ref"].endswith("/JobCreate")
    assert {"url", "key"} <= set(content["application/json"]["examples"])
    assert "JobInput" in schema["components"]["schemas"], "JobCreate's nested models are in the components"
    headers = {p["name"] for p in op["parameters"] if p["in"] == "header"}
    assert {"Prefer", "Idempotency-Key"} <= headers
    assert {"200", "202"} <= set(op["responses"])


def test_every_post_takes_an_idempotency_key_and_bearer_auth_is_global(schema: dict) -> None:
    assert schema["components"]["securitySchemes"]["bearer"] == {**schema["components"]["securitySchemes"]["bearer"],
                                                                 "type": "http", "scheme": "bearer"}
    assert schema["security"] == [{"bearer": []}]
    for path, method, op in _ops(schema):
        if method == "post":
            assert "Idempotency-Key" in {p["name"] for p in op.get("parameters", [])}, path
        if path in ("/healthz", "/readyz"):
            assert op["security"] == [], "probes need no key"


def test_errors_use_the_one_shape_and_every_api_code_is_documented(schema: dict) -> None:
    described = ""
    for path, _, op in _ops(schema):
        for status, resp in op["responses"].items():
            if int(status) >= 400:
                assert resp["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse"), (path, status)
                described += resp["description"]
        if not path.startswith("/v1/"):
            continue
        assert {"401", "429", "503"} <= set(op["responses"]), path
    api_codes = {c for c, where in produced_codes().items() if where.startswith("api/")}
    assert len(api_codes) > 10
    assert sorted(c for c in api_codes if f"`{c}`" not in described) == []
