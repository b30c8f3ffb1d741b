"""The ``portrait`` command: one entry point, one sub-command per job.

Heavy modules are imported inside each sub-command so that ``portrait --help`` and the service
commands start fast and never import torch unless they restore something.

``portrait worker gpu|cpu``, ``portrait beat`` and ``portrait flower`` are the only place the Celery
command lines are written (queues from the settings, pool, concurrency, events), and ``portrait api`` the
only place uvicorn's (the h11 parser and its header cap, proxy headers); the Makefile, the compose file,
the Dockerfiles, the dev stack (devstack/), the tests and the benchmarks all start the processes through
them, so a queue, a pool or a server flag changes here and nowhere else.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from portrait.settings import Settings
    from worker.layout import Layout

#: ``celery -A`` of every Celery process of the service
CELERY_APP = "worker.celery_app"
#: sub-commands that run a Celery program; what follows ``--`` on their command line goes to Celery as is
CELERY_COMMANDS = ("worker", "beat", "flower")
#: sub-commands that become another program: what follows ``--`` goes to it as is
PASS_THROUGH_COMMANDS = (*CELERY_COMMANDS, "api")
#: the API's ASGI application, as uvicorn names it
API_APP = "api.app:app"
#: the largest request-header section the API accepts (h11's buffer for an incomplete event: a request
#: line plus headers); bodies are capped by the API itself (docs/operations.md, "Limits")
HEADER_SECTION_BYTES = 64 * 1024
WorkerKind = Literal["gpu", "cpu"]


def _cmd_restore(args: argparse.Namespace) -> int:
    from restoration import cli

    return cli.run_restore(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from restoration import cli

    return cli.run_demo(args)


def _cmd_migrate(args: argparse.Namespace) -> int:
    from db.session import migrate

    migrate()
    print("database is at the latest migration")
    return 0


def _cmd_create_client(args: argparse.Namespace) -> int:
    from db.admin import create_client, webhook_secrets

    client, api_key = create_client(args.name, rate_limit_per_s=args.rate_limit_per_s,
                                    rate_limit_burst=args.rate_limit_burst,
                                    max_jobs_in_flight=args.max_jobs_in_flight, retention_s=args.retention_s)
    print(f"client_id:      {client.id}")
    print(f"api_key:        {api_key}   (shown once; only its hash is stored)")
    print(f"webhook_secret: {webhook_secrets(client.id)[0].secret}")
    return 0


def _client_or_exit(name_or_id: str):  # noqa: ANN202 - db.models.Client, imported lazily
    from db.admin import find_client

    client = find_client(name_or_id)
    if client is None:
        raise SystemExit(f"no client {name_or_id!r}")
    return client


def _cmd_keys(args: argparse.Namespace) -> int:
    """List a client's API keys; --create adds one (printed once), --revoke ID revokes one."""
    from db import admin

    client = _client_or_exit(args.client)
    try:
        if args.create:
            row, api_key = admin.create_api_key(client.id)
            print(f"created {row.prefix}… id {row.id}\napi_key: {api_key}   (shown once; only its hash is stored)")
        elif args.revoke:
            row = admin.revoke_api_key(client.id, uuid.UUID(args.revoke))
            print(f"revoked {row.prefix}… id {row.id} at {row.revoked_at:%Y-%m-%d %H:%M:%S %Z}")
    except admin.CredentialError as e:
        raise SystemExit(f"{e.code}: {e}") from None
    for k in admin.api_keys(client.id):
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        used = f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never"
        print(f"{k.id}  {k.prefix}…  created {k.created_at:%Y-%m-%d %H:%M}  last used {used}  {state}")
    return 0


def _cmd_webhook_secrets(args: argparse.Namespace) -> int:
    """List a client's webhook secrets; --rotate adds one (printed once), --retire ID stops one now."""
    from datetime import timedelta

    from db import admin

    client = _client_or_exit(args.client)
    try:
        if args.rotate:
            row, secret = admin.rotate_webhook_secret(client.id, timedelta(seconds=args.overlap_s))
            print(f"created {row.id}\nwebhook_secret: {secret}   (old secrets sign beside it for "
                  f"{args.overlap_s} s)")
        elif args.retire:
            row = admin.retire_webhook_secret(client.id, uuid.UUID(args.retire))
            print(f"retired {row.id}")
    except admin.CredentialError as e:
        raise SystemExit(f"{e.code}: {e}") from None
    for w in admin.webhook_secrets(client.id, live_only=False):
        until = f"expires {w.expires_at:%Y-%m-%d %H:%M:%S %Z}" if w.expires_at else "no expiry"
        print(f"{w.id}  {w.secret[:12]}…  created {w.created_at:%Y-%m-%d %H:%M}  {until}")
    for e in admin.credential_events(client.id, limit=args.events):
        print(f"  {e.at:%Y-%m-%d %H:%M:%S}  {e.event:24} {e.ref}  {e.detail or ''}")
    return 0


def _cmd_submit(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from portrait.client import PortraitClient, submit_folder

    if not args.api_key:
        print("set PORTRAIT_API_KEY or pass --api-key", file=sys.stderr)
        return 2
    out = Path(args.output or Path(args.folder) / "restored")
    options = json.loads(args.options) if args.options else {}
    with PortraitClient(args.api_url, args.api_key) as client:
        result = submit_folder(client, Path(args.folder), out, options=options, webhook_url=args.webhook_url,
                               wait=args.wait, timeout=args.timeout, progress=not args.quiet)
    print(f"batches: {', '.join(result.batch_ids) or 'none (empty folder)'}")
    if args.wait:
        print(f"succeeded: {result.succeeded}  downloaded now: {result.downloaded}  into {out}")
        for rel, code in sorted(result.failed.items()):
            print(f"failed: {rel}: {code}")
    return 1 if result.failed else 0


def worker_queues(kind: WorkerKind, settings: Settings) -> list[str]:
    """The queues a worker of ``kind`` consumes, in the order it polls them.

    GPU: interactive before bulk; with ``queue_order_strategy="priority"`` (worker/celery_app.py) this
    order *is* the priority of single jobs over batch items. CPU: URL fetches, webhooks, maintenance.
    """
    if kind == "gpu":
        return [settings.gpu_queue, settings.gpu_bulk_queue]
    return [settings.fetch_queue, settings.webhook_queue, settings.maintenance_queue]


def worker_argv(kind: WorkerKind, settings: Settings, *, concurrency: int | None = None,
                hostname: str | None = None, queues: Sequence[str] | None = None, loglevel: str = "info",
                extra: Sequence[str] = ()) -> list[str]:
    """``celery`` arguments of a worker: GPU = prefork, ``concurrency`` children (default: one, see
    :func:`gpu_layout` for what ``portrait worker gpu`` passes), each loading the pipeline after fork;
    CPU = threads, CPU_WORKER_CONCURRENCY of them, never the model. Task events on (-E) for Flower.
    ``extra`` is appended as is (e.g. ``--without-mingle``)."""
    pool, default_c = ("prefork", 1) if kind == "gpu" else ("threads", settings.cpu_worker_concurrency)
    argv = ["-A", CELERY_APP, "worker", "-P", pool, "-c", str(concurrency or default_c),
            "-Q", ",".join(queues or worker_queues(kind, settings)), "-E", "-l", loglevel]
    if hostname:
        argv += ["-n", hostname]
    return argv + list(extra)


def beat_argv(*, schedule: str | None = None, loglevel: str = "info", extra: Sequence[str] = ()) -> list[str]:
    """``celery`` arguments of beat (the sweeper's and retention's schedule); ``schedule`` is its state file."""
    return ["-A", CELERY_APP, "beat", "-l", loglevel, *(["-s", schedule] if schedule else []), *extra]


def flower_argv(*, port: int = 5555, address: str = "127.0.0.1", extra: Sequence[str] = ()) -> list[str]:
    """``celery`` arguments of Flower; flowerconfig.py (read from the working directory) refuses to run it open."""
    return ["-A", CELERY_APP, "flower", f"--port={port}", f"--address={address}", *extra]


def api_argv(*, host: str = "127.0.0.1", port: int = 8000, proxy_headers: bool = False,
             extra: Sequence[str] = ()) -> list[str]:
    """``uvicorn`` arguments of the API: the h11 parser (its header cap is a setting; httptools' is not)
    capped at :data:`HEADER_SECTION_BYTES`; ``proxy_headers`` behind a reverse proxy."""
    return [API_APP, "--host", host, "--port", str(port), "--http", "h11",
            "--h11-max-incomplete-event-size", str(HEADER_SECTION_BYTES),
            *(["--proxy-headers"] if proxy_headers else []), *extra]


def _cmd_api(args: argparse.Namespace) -> int:
    """Become uvicorn (same pid, as the Celery commands)."""
    return _become("uvicorn", api_argv(host=args.host, port=args.port, proxy_headers=args.proxy_headers,
                                       extra=getattr(args, "passed_args", [])), args.print_only)


def _become(module: str, args: list[str], print_only: bool) -> int:
    """Replace this process by ``python -m module args`` (same pid: signals from a supervisor, Docker or a
    test reach the program itself), or only print that command."""
    argv = [sys.executable, "-m", module, *args]
    if print_only:
        print(" ".join(argv))
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)
    return 1  # pragma: no cover - execv does not return


def gpu_layout(settings: Settings, concurrency: int | None = None) -> Layout:
    """The GPU worker's children, devices and threads on this host (worker/layout.py); ``concurrency``
    (``-c``) overrides the count of children."""
    from worker import layout

    return layout.plan(settings, layout.visible_gpus(settings.device), layout.host_cores(), concurrency)


def celery_argv(args: argparse.Namespace, layout: Layout | None = None) -> list[str]:
    """The ``celery`` arguments ``portrait worker|beat|flower`` runs, from its parsed command line; a GPU
    worker's count of children from ``layout`` (:func:`gpu_layout` when not given)."""
    from portrait.settings import get_settings

    extra = getattr(args, "passed_args", [])
    if args.command == "worker":
        queues = args.queues.split(",") if args.queues else None
        settings, concurrency = get_settings(), args.concurrency
        if args.kind == "gpu":
            concurrency = (layout or gpu_layout(settings, concurrency)).children
        return worker_argv(args.kind, settings, concurrency=concurrency, hostname=args.hostname,
                           queues=queues, loglevel=args.loglevel, extra=extra)
    if args.command == "beat":
        return beat_argv(schedule=args.schedule, loglevel=args.loglevel, extra=extra)
    return flower_argv(port=args.port, address=args.address, extra=extra)


def _cmd_celery(args: argparse.Namespace) -> int:
    """Become the Celery program (same pid: signals from a supervisor, Docker or a test reach Celery itself)."""
    layout = None
    if args.command == "worker" and args.kind == "gpu":  # its children, and their share of the cores
        from portrait.settings import get_settings

        layout = gpu_layout(get_settings(), args.concurrency)
        os.environ["WORKER_CHILD_THREADS"] = str(layout.threads_per_child)
    return _become("celery", celery_argv(args, layout), args.print_only)


def _add_celery_parsers(sub: argparse._SubParsersAction) -> None:
    def celery_parser(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=summary,
                           description=f"{description} Arguments after -- go to celery as they are.")
        p.add_argument("--print", dest="print_only", action="store_true",
                       help="Print the command instead of running it.")
        p.set_defaults(func=_cmd_celery)
        return p

    p = celery_parser("worker", "Run a Celery worker: gpu (restores) or cpu (fetches, webhooks, maintenance).",
                      "Run a Celery worker on the queues of the settings. gpu: -P prefork -c GPU_WORKER_CHILDREN "
                      "x GPUs -Q GPU_QUEUE,GPU_BULK_QUEUE (interactive first: the order is the priority); "
                      "cpu: -P threads -c "
                      "CPU_WORKER_CONCURRENCY -Q FETCH_QUEUE,WEBHOOK_QUEUE,MAINTENANCE_QUEUE.")
    p.add_argument("kind", choices=("gpu", "cpu"))
    p.add_argument("-c", "--concurrency", type=int,
                   help="Processes (gpu, default GPU_WORKER_CHILDREN per GPU) or threads (cpu, default "
                        "CPU_WORKER_CONCURRENCY).")
    p.add_argument("-Q", "--queues", help="Comma-separated queues instead of the settings' (e.g. only GPU_QUEUE "
                                          "for a worker reserved to single jobs).")
    p.add_argument("-n", "--hostname", help="Celery node name, e.g. gpu@%%h (default celery@HOSTNAME).")
    p.add_argument("-l", "--loglevel", default="info")

    p = celery_parser("beat", "Run Celery beat (schedules the sweeper and retention).", "Run Celery beat.")
    p.add_argument("-s", "--schedule", help="Beat's state file (default celerybeat-schedule in the working dir).")
    p.add_argument("-l", "--loglevel", default="info")

    p = celery_parser("flower", "Run Flower (needs FLOWER_BASIC_AUTH=user:password).",
                      "Run Flower on the broker; flowerconfig.py refuses to start it without authentication.")
    p.add_argument("--port", type=int, default=5555)
    p.add_argument("--address", default="127.0.0.1", help="Address to bind (0.0.0.0 in containers).")


def build_parser() -> argparse.ArgumentParser:
    from portrait.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(prog="portrait", description="Portrait restoration service.")
    sub = parser.add_subparsers(dest="command", required=True)

    try:
        from restoration import cli as rcli
    except ImportError:  # pragma: no cover - restoration CLI not present
        rcli = None
    if rcli is not None:
        from restoration.image_io import ImageLimits

        limits = ImageLimits(max_pixels=settings.max_image_pixels, max_side=settings.max_image_side,
                             min_side=settings.min_image_side)
        p = sub.add_parser("restore", help="Restore photos on this machine (no services needed).")
        rcli.add_restore_arguments(p, weights_dir=settings.weights_dir, model_path=settings.model_path)
        p.set_defaults(func=_cmd_restore, limits=limits)
        p = sub.add_parser("demo", help="Degrade and restore scikit-image's astronaut; write before/after.")
        rcli.add_demo_arguments(p, weights_dir=settings.weights_dir, model_path=settings.model_path)
        p.set_defaults(func=_cmd_demo, limits=limits)

    p = sub.add_parser("migrate", help="Apply database migrations (alembic upgrade head).")
    p.set_defaults(func=_cmd_migrate)

    p = sub.add_parser("create-client", help="Create an API client; prints its API key once.")
    p.add_argument("name", help="Human-readable client name, e.g. 'acme-prints'.")
    p.add_argument("--rate-limit-per-s", type=float, help="This client's request rate (default RATE_LIMIT_PER_S).")
    p.add_argument("--rate-limit-burst", type=int, help="This client's burst (default RATE_LIMIT_BURST).")
    p.add_argument("--max-jobs-in-flight", type=int, help="Queued+running cap (default MAX_JOBS_IN_FLIGHT).")
    p.add_argument("--retention-s", type=int, help="Delete inputs/results after this many seconds (default "
                                                   "RETENTION_DAYS).")
    p.set_defaults(func=_cmd_create_client)

    p = sub.add_parser("keys", help="List a client's API keys; create or revoke one (rotation with overlap).")
    p.add_argument("client", help="Client name or id.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--create", action="store_true", help="Add a key beside the others (printed once).")
    g.add_argument("--revoke", metavar="KEY_ID", help="Revoke this key now (not the last active one).")
    p.set_defaults(func=_cmd_keys)

    p = sub.add_parser("webhook-secrets", help="List a client's webhook secrets and rotations; rotate or retire.")
    p.add_argument("client", help="Client name or id.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--rotate", action="store_true", help="Add a secret; the live ones sign beside it for a while.")
    g.add_argument("--retire", metavar="SECRET_ID", help="Stop signing with this secret now (not the last one).")
    p.add_argument("--overlap-s", type=int, default=86_400, help="With --rotate: how long the old secrets keep "
                                                                "signing (default 86400 = 24 h; at most 30 days).")
    p.add_argument("--events", type=int, default=10, help="How many recorded rotations to list (default 10).")
    p.set_defaults(func=_cmd_webhook_secrets)

    p = sub.add_parser("submit", help="Restore a folder through the API as a batch; resumable.")
    p.add_argument("folder", help="Folder of photos (searched recursively).")
    p.add_argument("-o", "--output", help="Where results and the resume state go (default FOLDER/restored).")
    p.add_argument("--wait", action="store_true", help="Wait for the batch and download the results.")
    p.add_argument("--options", help='Restore options as JSON, e.g. \'{"upscale": 2}\'.')
    p.add_argument("--webhook-url", help="Also notify this URL (batch.completed).")
    p.add_argument("--timeout", type=float, help="Give up waiting after this many seconds.")
    p.add_argument("--api-url", default=os.environ.get("PORTRAIT_API_URL", "http://127.0.0.1:8000"),
                   help="API base URL (env PORTRAIT_API_URL).")
    p.add_argument("--api-key", default=os.environ.get("PORTRAIT_API_KEY"), help="API key (env PORTRAIT_API_KEY).")
    p.add_argument("-q", "--quiet", action="store_true", help="No progress bars.")
    p.set_defaults(func=_cmd_submit)

    p = sub.add_parser("api", help="Run the API (uvicorn, h11 with the header cap).",
                       description="Run the API under uvicorn with the service's flags. Arguments after -- go "
                                   "to uvicorn as they are (e.g. --forwarded-allow-ips, --workers).")
    p.add_argument("--host", default="127.0.0.1", help="Address to bind (0.0.0.0 in containers).")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--proxy-headers", action="store_true",
                   help="Trust X-Forwarded-* from --forwarded-allow-ips (behind a reverse proxy).")
    p.add_argument("--print", dest="print_only", action="store_true", help="Print the command instead of running it.")
    p.set_defaults(func=_cmd_api)

    _add_celery_parsers(sub)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse a ``portrait`` command line; for the sub-commands that become another program (Celery,
    uvicorn), what follows ``--`` is ``passed_args``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] in PASS_THROUGH_COMMANDS and "--" in argv:
        cut = argv.index("--")
        args = parser.parse_args(argv[:cut])
        args.passed_args = argv[cut + 1:]
        return args
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
