"""Property-based run of the live API against its own OpenAPI schema (Schemathesis).

Every operation gets generated requests, valid and invalid by the schema, sent to the real stack; every
check is on: no 5xx, responses, status codes, headers and content types as documented, schema-valid
requests accepted (``positive_data_acceptance``: the schema promises no more than the API accepts),
schema-invalid ones refused, a ``405`` with its ``Allow`` header. Bounded: a fixed number of examples
per operation and a deadline, so it stops by itself.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from harness import Api, Stack

pytestmark = pytest.mark.slow
BIG_LIMITS = {"rate_limit_per_s": 10_000, "rate_limit_burst": 10_000, "max_jobs_in_flight": 10_000}


def test_the_api_keeps_every_promise_of_its_schema(stack: Stack, tmp_path: Path) -> None:
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if st is None:
        pytest.fail("schemathesis is not installed (pip install -e '.[dev]')")
    api = Api(stack, **BIG_LIMITS)
    r = subprocess.run(
        [st, "run", f"{stack.api_url}/openapi.json", "--checks", "all", "--max-examples", "20",
         "--seed", "1", "--generation-deterministic", "--request-timeout", "30", "--max-time", "240",
         "--header", f"Authorization: Bearer {api.api_key}", "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    out = r.stdout + r.stderr
    assert "API capabilities" in out or "operations" in out.lower(), out[-3000:]  # it ran
    # Three refusals no schema can state, all documented (docs/api.md): a cursor the API did not issue (an
    # opaque token: 400 invalid_cursor); an input URL whose name does not resolve — this machine resolves no
    # public name, so even the schema's own example https://example.com/photo.jpg is url_not_allowed here;
    # and a request without a key once its source address has spent the unauthenticated budget (429
    # rate_limited instead of 401) — how soon the fuzzer's keyless requests spend it depends on the
    # machine's speed.
    failures = out.split("Test Case ID:")[1:]
    real = [b for b in failures
            if not ("ST202" in b and ("does not resolve" in b or '"invalid_cursor"' in b))
            and not ("ST203" in b and "Got 429" in b and '"rate_limited"' in b)]
    assert r.returncode == 0 or (failures and not real), out[-8000:]
