"""Flower's configuration file, read from the working directory (repository root, /app in the images).

Its one job: Flower never runs without authentication. Its API can shut workers down
(``/api/worker/shutdown/…``) and read every task's arguments, so an open Flower on a reachable port is a
way to stop the GPU workers. Set ``FLOWER_BASIC_AUTH=user:password`` (or ``FLOWER_AUTH`` with OAuth);
``make dev`` makes a random password and prints it.
"""

import os
import sys

_argv = " ".join(sys.argv)
if not (os.environ.get("FLOWER_BASIC_AUTH") or os.environ.get("FLOWER_AUTH")
        or "--basic-auth" in _argv or "--auth" in _argv):
    raise SystemExit("refusing to start Flower without authentication: set FLOWER_BASIC_AUTH=user:password")
if os.environ.get("FLOWER_UNAUTHENTICATED_API", "").strip().lower() in ("1", "true", "yes", "on"):
    raise SystemExit("refusing to start Flower with FLOWER_UNAUTHENTICATED_API: its API stops workers")
