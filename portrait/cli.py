"""The ``portrait`` command: one entry point, one sub-command per job.

Heavy modules are imported inside each sub-command so that ``portrait --help`` and the service
commands start fast and never import torch unless they restore something.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


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
    from db.admin import create_client

    client, api_key = create_client(args.name, rate_limit_per_s=args.rate_limit_per_s,
                                    rate_limit_burst=args.rate_limit_burst,
                                    max_jobs_in_flight=args.max_jobs_in_flight, retention_s=args.retention_s)
    print(f"client_id:      {client.id}")
    print(f"api_key:        {api_key}   (shown once; only its hash is stored)")
    print(f"webhook_secret: {client.webhook_secret}")
    return 0


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
        p = sub.add_parser("restore", help="Restore photos on this machine (no services needed).")
        rcli.add_restore_arguments(p, weights_dir=settings.weights_dir, model_path=settings.model_path)
        p.set_defaults(func=_cmd_restore)
        p = sub.add_parser("demo", help="Degrade and restore scikit-image's astronaut; write before/after.")
        rcli.add_demo_arguments(p, weights_dir=settings.weights_dir, model_path=settings.model_path)
        p.set_defaults(func=_cmd_demo)

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
