"""The development stack as processes, outside tests/ so that ``make dev``, the integration tests
(tests/service/harness.py) and the service benchmarks (benchmarks/) start it the same way.

devstack/stack.py starts SeaweedFS, uvicorn and, through the ``portrait worker|beat|flower`` entry
point (portrait/cli.py), the Celery processes; ``running_stack`` gives each test run or benchmark an
isolated stack. devstack/client.py drives one (an API client, a webhook receiver).
``python -m devstack`` (devstack/__main__.py) is ``make dev``. Service code never imports this package
(tests/test_layers.py).
"""

from devstack.client import Api, Received, WebhookReceiver
from devstack.stack import (
    BIN,
    ROOT,
    URL_PORTS,
    Proc,
    Stack,
    create_database,
    free_port,
    holds_for,
    portrait_command,
    reset_caches,
    running_stack,
    start_seaweedfs,
    url_port,
    wait_until,
)

__all__ = ["BIN", "ROOT", "URL_PORTS", "Api", "Proc", "Received", "Stack", "WebhookReceiver", "create_database",
           "holds_for", "free_port", "portrait_command", "reset_caches", "running_stack", "start_seaweedfs", "url_port",
           "wait_until"]
