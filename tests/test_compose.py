"""No Docker engine runs here, so check the compose file statically: every service command names a
real entry point of this project, the images it builds exist, and the GPU worker reserves a GPU."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OURS = {name: svc for name, svc in SERVICES.items() if "build" in svc}


def _check_command(argv: list[str]) -> None:
    from portrait.cli import build_parser
    from portrait.settings import Settings

    prog = argv[0]
    if prog == "uvicorn":
        module, _, attr = argv[1].partition(":")
        assert getattr(importlib.import_module(module), attr) is not None
    elif prog == "celery":
        module = argv[argv.index("-A") + 1]
        app = importlib.import_module(module).app
        sub = argv[argv.index("-A") + 2]
        assert sub in {"worker", "beat", "flower"}, sub
        if "-Q" in argv:
            # the shipped defaults, whatever this process's environment says
            known = {f.default for name, f in Settings.model_fields.items() if name.endswith("_queue")}
            known |= {r["queue"] for r in app.conf.task_routes.values()}
            assert set(argv[argv.index("-Q") + 1].split(",")) <= known
    elif prog == "portrait":
        parser = build_parser()
        sub_actions = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        assert argv[1] in sub_actions[0].choices, argv
    else:
        raise AssertionError(f"unknown entry point {prog!r}")


@pytest.mark.parametrize("name", sorted(OURS))
def test_service_command_is_a_real_entry_point(name: str) -> None:
    svc = OURS[name]
    dockerfile = ROOT / svc["build"]["dockerfile"]
    assert dockerfile.is_file()
    _check_command(svc["command"])


@pytest.mark.parametrize("dockerfile", sorted((ROOT / "infra").glob("Dockerfile*")))
def test_dockerfile_default_command_is_real(dockerfile: Path) -> None:
    cmd = [line for line in dockerfile.read_text().splitlines() if line.startswith("CMD ")][-1]
    _check_command(json.loads(cmd[4:]))
    for src in re.findall(r"^COPY (\S+) ", dockerfile.read_text(), re.M):
        assert (ROOT / src).exists(), src


def test_stack_shape() -> None:
    assert {"api", "worker", "flower", "redis", "postgres", "minio", "minio-init"} <= set(SERVICES)
    gpu = SERVICES["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    cmd = SERVICES["worker"]["command"]
    assert cmd[cmd.index("-P") + 1] == "prefork" and cmd[cmd.index("-c") + 1] == "1"
    for name in ("postgres", "redis", "minio", "api"):
        assert "healthcheck" in SERVICES[name], name
