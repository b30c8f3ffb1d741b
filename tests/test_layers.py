"""The layering rule (docs/code-map.md), read from the code's imports (AST), so it cannot quietly erode.

The floors, bottom up: restoration/ (the ML core: knows nothing of queues, databases or S3); portrait/'s
core (settings, errors, logs, metrics, storage, urlguard); db/ (persists and sends no messages); jobs/
(what speaks of jobs: public objects, messages); api/ and worker/ (never import each other); devstack/
(the stack for ``make dev``, tests and benchmarks) above everything, imported by no service code. No
module imports one on a floor above it, nothing imports in a circle, and db/ never leans on a module that
itself reaches back into db/. Of the ML core, api/, jobs/ and portrait/ see only its light modules
(options, formats, paths), which import no torch or OpenCV. Imports under ``if TYPE_CHECKING:`` are for
type checkers only and do not count; imports inside functions do.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("api", "db", "jobs", "worker", "portrait", "restoration", "devstack")
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
    ("db", "jobs", "db/ persists and sends no messages; the public objects are rendered above it"),
    ("db", "restoration", "db/ knows nothing of the ML core"),
    ("api", "worker", "api/ and worker/ never import each other"),
    ("worker", "api", "api/ and worker/ never import each other (a CPU worker must not load FastAPI)"),
    ("portrait", "api", "portrait/'s core sits below api/"),
    ("portrait", "worker", "portrait/'s core sits below worker/"),
    ("portrait", "db", "portrait/'s core sits below db/"),
    ("portrait", "jobs", "portrait/'s core sits below jobs/"),
    ("jobs", "api", "jobs/ sits below api/"),
    ("jobs", "worker", "jobs/ sits below worker/"),
    ("restoration.training", "restoration.judge", "training never sees the independent identity judge"),
    ("restoration.training", "dlib", "training never sees the independent identity judge"),
    *((pkg, "devstack", "the dev stack starts the service; the service never imports it")
      for pkg in ("api", "db", "jobs", "worker", "portrait", "restoration")),
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
            if (any(_within(importer, p) for p in ("api", "jobs", "portrait")) and _within(target, "restoration")
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


def _project_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports (``from pkg import mod`` resolves to ``pkg.mod``)."""
    edges = project_edges()
    modules = set(edges)
    return {m: {t for t in imported if t in modules and t != m} for m, imported in edges.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph`` (Tarjan's strongly connected components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(sorted([v, *component]))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in graph.get(todo.pop(), ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def leans_back(graph: dict[str, set[str]], floor: str = "db") -> list[str]:
    """Edges from ``floor`` to a module outside it that reaches back into ``floor``."""
    return [f"{m} imports {t}, which reaches back into {floor}/"
            for m in sorted(graph) if _within(m, floor)
            for t in sorted(graph[m]) if not _within(t, floor)
            and any(_within(r, floor) for r in _reach(graph, t))]


def test_no_module_imports_in_a_circle() -> None:
    assert cycles(_project_graph()) == []


def test_db_never_leans_on_a_module_that_reaches_back_into_it() -> None:
    assert leans_back(_project_graph()) == []


def test_a_cycle_and_a_lean_back_are_caught() -> None:
    assert cycles({"a.x": {"a.y"}, "a.y": {"a.z"}, "a.z": {"a.x"}}) == [["a.x", "a.y", "a.z"]]
    assert leans_back({"db.models": {"portrait.settings"}, "portrait.settings": {"portrait.urlguard"},
                       "portrait.urlguard": {"db.models"}}) == [
        "db.models imports portrait.settings, which reaches back into db/"]


@pytest.mark.parametrize(("importer", "imported"), [
    ("worker.webhooks", "api.schemas"), ("db.dispatch", "jobs.messages"), ("api.app", "worker.tasks"),
    ("portrait.storage", "db.models"), ("jobs.objects", "api.schemas"),
    ("restoration.pipeline", "portrait.settings"), ("api.jobs", "restoration.pipeline"),
    ("portrait.settings", "restoration.image_io"), ("restoration.formats", "numpy"),
    ("restoration.training.losses", "restoration.judge"), ("restoration.training.loop", "dlib"),
    ("jobs.messages", "devstack.stack"), ("worker.tasks", "devstack"),
])
def test_a_forbidden_edge_is_caught(importer: str, imported: str) -> None:
    assert violations({importer: {imported}}), f"{importer} -> {imported} should be refused"
