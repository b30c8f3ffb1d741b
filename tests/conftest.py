"""Shared by every test folder: a failed test that used a running stack prints its processes' logs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

STACK_FIXTURES = ("stack", "fault_stack")


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
