"""Shared by every test folder: the ``services`` mark, and logs of a running stack when a test fails.

A test that uses a stack (real Redis, Postgres, SeaweedFS, Celery, uvicorn) is marked ``services``
here, from the fixtures it asks for, so ``pytest -m "not services"`` (``make check``) runs the rest
without anything started. tests/service/harness.py (the stack, file servers, webhook receivers) is
importable from every folder.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "service"))

STACK_FIXTURES = ("stack", "fault_stack")
#: tests/containers/ builds the images and runs the stack in podman (minutes): `make test-containers` sets
#: CONTAINER_TESTS=1, everything else leaves that folder out
collect_ignore = [] if os.environ.get("CONTAINER_TESTS") == "1" else ["containers"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if set(STACK_FIXTURES) & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


@pytest.fixture(autouse=True)
def _dump_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is None or not rep.failed:
        return
    for name in STACK_FIXTURES:
        if name in request.fixturenames:
            print(request.getfixturevalue(name).diagnostics())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
