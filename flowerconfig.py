"""Flower's configuration file, read from the working directory (repository root, /app in the images).

Its one job: Flower never runs without authentication. Its API can shut workers down
(``/api/worker/shutdown/…``) and read every task's arguments, so an open Flower on a reachable port is a
way to stop the GPU workers. Set ``FLOWER_BASIC_AUTH=user:password`` (or ``FLOWER_AUTH`` with OAuth);
``make dev`` makes a random password and prints it.

Flower 2.0 serves ``/metrics`` and ``/healthcheck`` without asking for credentials. ``/metrics`` names every
task and worker host, so it is closed here (Prometheus scrapes it with basic auth: infra/prometheus.yml);
``/healthcheck`` only ever answers ``OK`` and stays open for liveness probes.
"""

import os
import sys

_argv = " ".join(sys.argv)
if not (os.environ.get("FLOWER_BASIC_AUTH") or os.environ.get("FLOWER_AUTH")
        or "--basic-auth" in _argv or "--auth" in _argv):
    raise SystemExit("refusing to start Flower without authentication: set FLOWER_BASIC_AUTH=user:password")
if os.environ.get("FLOWER_UNAUTHENTICATED_API", "").strip().lower() in ("1", "true", "yes", "on"):
    raise SystemExit("refusing to start Flower with FLOWER_UNAUTHENTICATED_API: its API stops workers")


def _close_metrics() -> None:
    """Flower's /metrics behind the same authentication as its pages and API."""
    from flower.views import monitor
    from tornado.web import authenticated

    if not getattr(monitor.Metrics.get, "_portrait_closed", False):
        monitor.Metrics.get = authenticated(monitor.Metrics.get)
        monitor.Metrics.get._portrait_closed = True


_close_metrics()
