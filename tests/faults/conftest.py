"""The fault and abuse suite's stack: like the service tests' one, but with a private Redis the tests
may kill and a TCP proxy in front of Postgres they may cut. Figures go to ``out/faults.json`` and are
printed at the end of the run (docs/operations.md's fault table quotes them)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import RedisServer, Stack, TcpProxy, running_stack

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "out" / "faults.json"
_figures: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="package")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.kill()


@pytest.fixture(scope="package")
def pg_proxy() -> Iterator[TcpProxy]:
    proxy = TcpProxy(5432)
    yield proxy
    proxy.close()


@pytest.fixture(scope="package")
def fault_stack(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer,
                pg_proxy: TcpProxy) -> Iterator[Stack]:
    env = {"REDIS_URL": redis_server.url, "FETCH_URL_INPUTS_ON_CPU": "true"}
    with running_stack(tmp_path_factory.mktemp("faults"), env, db_proxy=pg_proxy) as s:
        yield s


@pytest.fixture
def report() -> dict[str, dict[str, Any]]:
    """Tests put their figures here, one entry per fault."""
    return _figures


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _figures:
        return
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(_figures, indent=2) + "\n")
    terminalreporter.section("fault and abuse figures")
    for name, figures in _figures.items():
        terminalreporter.write_line(f"{name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
    terminalreporter.write_line(f"(written to {REPORT.relative_to(ROOT)})")
