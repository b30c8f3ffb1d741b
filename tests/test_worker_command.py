"""``portrait worker gpu|cpu``, ``beat`` and ``flower`` write the Celery command lines, from the settings,
once (portrait/cli.py): everything else (Makefile, compose, Dockerfiles, devstack/) runs these."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from portrait import cli
from portrait.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _argv(*args: str) -> list[str]:
    return cli.celery_argv(cli.parse_args(list(args)))


def _opt(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_queues_pool_and_concurrency_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings.model_construct(gpu_queue="g", gpu_bulk_queue="gb", fetch_queue="f", webhook_queue="w",
                                 maintenance_queue="m", cpu_worker_concurrency=3)
    monkeypatch.setattr("portrait.settings.get_settings", lambda: s)
    monkeypatch.setattr("worker.layout.visible_gpus", lambda device: 0)  # a CPU host: one child
    gpu = _argv("worker", "gpu")
    assert gpu[:3] == ["-A", "worker.celery_app", "worker"] and "-E" in gpu
    assert (_opt(gpu, "-P"), _opt(gpu, "-c"), _opt(gpu, "-Q")) == ("prefork", "1", "g,gb")  # interactive first
    cpu = _argv("worker", "cpu")
    assert (_opt(cpu, "-P"), _opt(cpu, "-c"), _opt(cpu, "-Q")) == ("threads", "3", "f,w,m")


def test_flags_and_arguments_after_the_double_dash_pass_through() -> None:
    argv = _argv("worker", "cpu", "-c", "2", "-n", "cpu@%h", "-Q", "fetch", "--", "--without-mingle", "-O", "fair")
    assert (_opt(argv, "-c"), _opt(argv, "-n"), _opt(argv, "-Q")) == ("2", "cpu@%h", "fetch")
    assert argv[-3:] == ["--without-mingle", "-O", "fair"]
    assert _argv("beat", "-s", "/tmp/s")[2:] == ["beat", "-l", "info", "-s", "/tmp/s"]
    assert _argv("flower", "--address=0.0.0.0")[2:] == ["flower", "--port=5555", "--address=0.0.0.0"]


def test_print_shows_the_command_without_running_it() -> None:
    env = {**os.environ, "GPU_QUEUE": "inter", "GPU_BULK_QUEUE": "bulk"}
    r = subprocess.run([sys.executable, "-m", "portrait.cli", "worker", "gpu", "--print"], cwd=ROOT, env=env,
                       capture_output=True, text=True, check=True)
    assert r.stdout.split()[:3] == [sys.executable, "-m", "celery"]
    assert "-Q inter,bulk" in r.stdout


def test_the_api_command_owns_uvicorns_flags() -> None:
    """``portrait api`` is the one place the server's flags are written: h11 with the header cap, proxy
    headers on request, and what follows ``--`` passed to uvicorn as is."""
    from portrait.cli import HEADER_SECTION_BYTES

    r = subprocess.run([sys.executable, "-m", "portrait.cli", "api", "--host", "0.0.0.0", "--proxy-headers",
                        "--print", "--", "--forwarded-allow-ips", "10.0.0.1"],
                       cwd=ROOT, capture_output=True, text=True, check=True)
    argv = r.stdout.split()
    assert argv[:4] == [sys.executable, "-m", "uvicorn", "api.app:app"]
    assert (_opt(argv, "--host"), _opt(argv, "--port"), _opt(argv, "--http")) == ("0.0.0.0", "8000", "h11")
    assert _opt(argv, "--h11-max-incomplete-event-size") == str(HEADER_SECTION_BYTES) == "65536"
    assert "--proxy-headers" in argv and argv[-2:] == ["--forwarded-allow-ips", "10.0.0.1"]
    plain = subprocess.run([sys.executable, "-m", "portrait.cli", "api", "--print"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    assert _opt(plain, "--host") == "127.0.0.1" and "--proxy-headers" not in plain
