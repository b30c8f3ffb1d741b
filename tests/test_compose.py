"""No Docker engine runs here, so check the compose file statically: every service command names a
real entry point of this project (``portrait worker|beat|flower|api`` checked through the Celery or
uvicorn command line they run), the images it builds exist, and the GPU worker reserves a GPU."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from unittest.mock import patch

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OURS = {name: svc for name, svc in SERVICES.items() if "build" in svc}


def _celery_argv(argv: list[str]) -> list[str]:
    """The ``celery`` command line a ``portrait worker|beat|flower`` command runs, with the shipped settings."""
    from portrait import cli
    from portrait.settings import Settings

    args = cli.parse_args(argv[1:])
    with patch("portrait.settings.get_settings", return_value=Settings.model_construct()):  # the defaults
        return ["celery", *cli.celery_argv(args)]


def _check_command(argv: list[str]) -> None:
    from portrait.cli import CELERY_COMMANDS, build_parser
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
        if argv[1] in CELERY_COMMANDS:
            _check_command(_celery_argv(argv))
        if argv[1] == "api":  # its flags parse, and the uvicorn command it becomes names the real app
            from portrait import cli

            args = cli.parse_args(argv[1:])
            _check_command(["uvicorn", *cli.api_argv(host=args.host, port=args.port,
                                                     proxy_headers=args.proxy_headers)])
    else:
        raise AssertionError(f"unknown entry point {prog!r}")


@pytest.mark.parametrize("name", sorted(OURS))
def test_service_command_is_a_real_entry_point(name: str) -> None:
    svc = OURS[name]
    dockerfile = ROOT / svc["build"]["dockerfile"]
    assert dockerfile.is_file()
    _check_command(svc["command"])


@pytest.mark.parametrize("dockerfile", sorted((ROOT / "infra").glob("Dockerfile*")))
def test_dockerfile_copies_every_package_the_service_imports(dockerfile: Path) -> None:
    """Each image gets every package of the service (devstack/ is the development stack, not shipped):
    a package left out of the COPY lines installs without complaint and fails on its first import."""
    import tomllib

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = {p.rstrip("*") for p in include["include"]} - {"devstack"}
    copied = set(re.findall(r"^COPY (\S+) \1$", dockerfile.read_text(), re.M))
    assert packages <= copied, f"{dockerfile.name} does not copy {sorted(packages - copied)}"


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
    cmd = _celery_argv(SERVICES["worker"]["command"])
    assert cmd[cmd.index("-P") + 1] == "prefork" and cmd[cmd.index("-c") + 1] == "1"
    assert cmd[cmd.index("-Q") + 1] == "gpu,gpu-bulk", "interactive first: the order is the priority"
    cpu = _celery_argv(SERVICES["worker-cpu"]["command"])
    assert cpu[cpu.index("-P") + 1] == "threads" and cpu[cpu.index("-Q") + 1] == "fetch,webhooks,maintenance"
    for name in ("postgres", "redis", "minio", "api"):
        assert "healthcheck" in SERVICES[name], name


def test_prometheus_scrapes_every_exporter_of_the_stack() -> None:
    """Each scrape target is a compose service on the port its exporter listens on, and nothing is left out."""
    prom = yaml.safe_load((ROOT / "infra" / "prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    ports = {"api": "8000", "flower": "5555"}
    for name in ("worker", "worker-cpu"):
        env = SERVICES[name]["environment"]
        assert env["WORKER_METRICS_HOST"] == "0.0.0.0", "reachable from the Prometheus container"
        ports[name] = env["WORKER_METRICS_PORT"]
    assert targets == {f"{svc}:{port}" for svc, port in ports.items()}
    flower = next(j for j in prom["scrape_configs"] if j["job_name"] == "flower")
    mounted = {c["target"] for c in SERVICES["prometheus"]["configs"]}
    assert {flower["basic_auth"]["username_file"], flower["basic_auth"]["password_file"]} <= mounted
    for volume in SERVICES["prometheus"]["volumes"] + SERVICES["grafana"]["volumes"]:
        src = volume.split(":")[0]
        assert not src.startswith("./") or (ROOT / src).exists(), src


def test_the_dashboard_only_queries_metrics_that_exist() -> None:
    from portrait import metrics

    defined = set()
    for m in vars(metrics).values():
        if hasattr(m, "_name") and hasattr(m, "_type"):
            base = m._name
            defined |= {base, f"{base}_total", f"{base}_bucket", f"{base}_count", f"{base}_sum"}
    defined |= {"portrait_queue_depth", "flower_worker_online"}  # collected at scrape time / Flower's own
    dash = json.loads((ROOT / "infra" / "grafana" / "dashboards" / "portrait.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {n for e in exprs for n in re.findall(r"\b((?:portrait|flower)_[a-z_]+)", e)}
    assert len(dash["panels"]) >= 10 and used
    assert used <= defined, used - defined
    assert {"portrait_jobs_total", "portrait_stage_seconds_bucket", "portrait_queue_depth",
            "portrait_webhook_deliveries_total", "portrait_http_requests_total"} <= used


def test_alert_rules_name_only_exported_metrics() -> None:
    from portrait import metrics
    from worker.children import BookCollector

    defined = {f"{m._name}{s}" for m in vars(metrics).values() if hasattr(m, "_name") and hasattr(m, "_type")
               for s in ("", "_total", "_bucket", "_count", "_sum")}
    defined |= {s.name for fam in BookCollector().collect() for s in fam.samples}
    rules = yaml.safe_load((ROOT / "infra" / "alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = {n for e in exprs for n in re.findall(r"\b(portrait_[a-z_]+)", e)}
    assert {"portrait_worker_child_early_deaths_total", "portrait_worker_children_without_metrics"} <= used
    assert used <= defined, used - defined
    prom = yaml.safe_load((ROOT / "infra" / "prometheus.yml").read_text())
    assert prom["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert "./infra/alerts.yml:/etc/prometheus/alerts.yml:ro" in SERVICES["prometheus"]["volumes"]
