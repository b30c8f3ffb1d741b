"""The layering rule of the README, read from the code's imports (AST), so it cannot quietly erode.

restoration/ knows nothing of queues, databases or S3; db/ persists and sends no messages; api/ and
worker/ never import each other; portrait/'s shared modules sit below both; devstack/ (the stack for
``make dev``, tests and benchmarks) sits above everything, and no service code imports it; of the ML core, api/ and
portrait/ see only its light modules (options, formats, paths), which import no torch or OpenCV. Imports under
``if TYPE_CHECKING:`` are for type checkers only and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("api", "db", "worker", "portrait", "restoration", "devstack")
#: portrait/'s entry points (the ``portrait`` command and the Python client) assemble, like api/app.py
ENTRY_POINTS = {"portrait.cli", "portrait.client"}

#: (importer prefix, imported prefix, why) — an edge matching both prefixes is forbidden.
FORBIDDEN = [
    ("restoration", "api", "the ML core knows nothing of the service"),
    ("restoration", "db", "the ML core knows nothing of databases"),
    ("restoration", "worker", "the ML core knows nothing of queues"),
    ("restoration", "portrait", "the ML core knows nothing of settings, queues or S3"),
    ("db", "api", "db/ sits below the API"),
    ("db", "worker", "db/ sits below the workers"),
    ("db", "portrait.queue", "db/ persists and does not send messages"),
    ("db", "portrait.objects", "the public objects are rendered above db/"),
    ("db", "restoration", "db/ knows nothing of the ML core"),
    ("api", "worker", "api/ and worker/ never import each other"),
    ("worker", "api", "api/ and worker/ never import each other (a CPU worker must not load FastAPI)"),
    ("portrait", "api", "portrait/'s shared modules sit below api/"),
    ("portrait", "worker", "portrait/'s shared modules sit below worker/"),
    ("restoration.training", "restoration.judge", "training never sees the independent identity judge"),
    ("restoration.training", "dlib", "training never sees the independent identity judge"),
    *((pkg, "devstack", "the dev stack starts the service; the service never imports it")
      for pkg in ("api", "db", "worker", "portrait", "restoration")),
]
#: The ML core's light modules (no torch, OpenCV or numpy): the restore options, the formats and
#: limits, where third-party data lives. api/ and portrait/ may import these and nothing else of it.
LIGHT = {"restoration", "restoration.options", "restoration.formats", "restoration.paths"}
HEAVY = ("torch", "cv2", "numpy", "PIL", "facexlib", "mediapipe", "safetensors")


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def module_imports(path: Path) -> set[str]:
    """Every module ``path`` imports at run time (absolute names, ``from x import y`` as x.y too)."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for importer, imported in sorted(edges.items()):
        if importer in ENTRY_POINTS:
            continue
        for target in sorted(imported):
            for src, dst, why in FORBIDDEN:
                if _within(importer, src) and _within(target, dst):
                    bad.append(f"{importer} imports {target}: {why}")
            if ((_within(importer, "api") or _within(importer, "portrait")) and _within(target, "restoration")
                    and target not in LIGHT and target.rsplit(".", 1)[0] not in LIGHT - {"restoration"}):
                bad.append(f"{importer} imports {target}: api/ and portrait/ must not load the ML core")
            if importer in LIGHT and any(_within(target, h) for h in HEAVY):
                bad.append(f"{importer} imports {target}: a light module must stay light")
    return sorted(set(bad))


def project_edges() -> dict[str, set[str]]:
    return {_module_name(p): module_imports(p)
            for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if "migrations" not in p.parts}


def test_the_layers_hold() -> None:
    assert violations(project_edges()) == []


@pytest.mark.parametrize(("importer", "imported"), [
    ("worker.webhooks", "api.schemas"), ("db.dispatch", "portrait.queue"), ("api.app", "worker.tasks"),
    ("restoration.pipeline", "portrait.settings"), ("api.jobs", "restoration.pipeline"),
    ("portrait.settings", "restoration.image_io"), ("restoration.formats", "numpy"),
    ("restoration.training.losses", "restoration.judge"), ("restoration.training.loop", "dlib"),
    ("portrait.queue", "devstack.stack"), ("worker.tasks", "devstack"),
])
def test_a_forbidden_edge_is_caught(importer: str, imported: str) -> None:
    assert violations({importer: {imported}}), f"{importer} -> {imported} should be refused"
