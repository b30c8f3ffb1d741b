"""Every error code the code can produce is in the public catalogue (portrait/errors.py), which the
error table in docs/errors.md is generated from: a code invented in a call site cannot reach a client undocumented.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from portrait.errors import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]
#: Calls whose string arguments include an error code: raising an ApiError, answering an error,
#: failing a job.
CODE_CALLS = {"ApiError", "_refuse", "_fail", "fail", "BodyTooLarge"}
CODE = re.compile(r"^[a-z][a-z_]+$")
ABSTRACT = {"restoration_error"}  # RestorationError's own code; only its subclasses are raised


def produced_codes() -> dict[str, str]:
    """code → where it appears (file:line)."""
    found: dict[str, str] = {}
    for pkg in ("api", "db", "worker", "portrait", "restoration"):
        for path in (ROOT / pkg).rglob("*.py"):
            tree = ast.parse(path.read_text())
            rel = path.relative_to(ROOT)
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    f = node.func
                    name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                    args = list(node.args) + [k.value for k in node.keywords if k.arg == "code"]
                    if name in CODE_CALLS or any(k.arg == "code" for k in node.keywords):
                        for a in args:
                            if isinstance(a, ast.Constant) and isinstance(a.value, str) and CODE.match(a.value):
                                found.setdefault(a.value, f"{rel}:{node.lineno}")
                elif isinstance(node, ast.ClassDef):
                    for stmt in node.body:
                        if (isinstance(stmt, ast.Assign) and any(getattr(t, "id", "") == "code" for t in stmt.targets)
                                and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)):
                            found.setdefault(stmt.value.value, f"{rel}:{stmt.lineno}")
    return found


def test_every_produced_error_code_is_catalogued() -> None:
    codes = produced_codes()
    assert len(codes) > 15, "the scan finds the codes (it must not silently find nothing)"
    missing = {c: w for c, w in codes.items() if c not in CATALOGUE and c not in ABSTRACT}
    assert missing == {}
