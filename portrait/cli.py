"""The ``portrait`` command: one entry point, one sub-command per job.

Heavy modules are imported inside each sub-command so that ``portrait --help`` and the service
commands start fast and never import torch unless they restore something.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
