"""Regenerate the docs' tables from the code that defines them: settings, error codes, the code map.

    .venv/bin/python scripts/gen_docs.py          # rewrite the generated sections in place
    .venv/bin/python scripts/gen_docs.py --check  # exit 1 if any is stale (tests/test_docs.py)

Each table sits between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in its document; the prose
around it is written by hand. docs/settings.md comes from portrait/settings.py, docs/errors.md from
portrait/errors.py and restoration/errors.py, docs/code-map.md from the first sentence of each
module's docstring (a shell script's header comment).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: folders the code map describes, module by module (top-level files of each; subfolders get their own)
CODE_MAP_FOLDERS = ("api", "db", "jobs", "worker", "portrait", "restoration", "restoration/training", "devstack",
                    "scripts", "benchmarks", "tests", "tests/service", "tests/faults", "tests/restoration",
                    "tests/training")
#: a summary longer than this is cut at its first clause break (": " or " — ") past MIN_SUMMARY
MAX_SUMMARY, MIN_SUMMARY = 160, 25


def settings_table() -> str:
    from portrait.settings import Settings

    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, f in Settings.model_fields.items():
        if f.default_factory is not None:
            default = {"weights_dir": "`../shared/weights`"}.get(name, "computed")
        else:
            default = "unset" if f.default is None else f"`{f.default}`"
        rows.append(f"| `{name.upper()}` | {default} | {(f.description or '').replace('|', '/')} |")
    return "\n".join(rows)


def errors_table() -> str:
    from portrait.errors import CATALOGUE
    from restoration import errors as rerr

    rows = ["| code | HTTP status when answered | meaning |", "|---|---|---|"]
    for e in CATALOGUE.values():
        rows.append(f"| `{e.code}` | {e.http_status} | {e.description} |")
    pipeline = {c.code for c in vars(rerr).values() if isinstance(c, type) and issubclass(c, rerr.RestorationError)}
    for code in sorted(pipeline - set(CATALOGUE) - {"restoration_error"}):
        rows.append(f"| `{code}` | — | pipeline error, see restoration/errors.py |")
    return "\n".join(rows)


def code_map_modules(folder: str) -> list[Path]:
    """The modules of ``folder`` the code map lists: its .py and .sh files, ``__init__.py`` aside."""
    return sorted(p for p in (ROOT / folder).iterdir()
                  if p.is_file() and p.suffix in {".py", ".sh"} and p.name != "__init__.py")


def summary(path: Path) -> str:
    """The first sentence of a module's docstring (a script's header comment), in Markdown."""
    text = path.read_text()
    if path.suffix == ".py":
        doc = ast.get_docstring(ast.parse(text)) or ""
    else:
        doc = " ".join(line.lstrip("#").strip() for line in text.splitlines()[1:]
                       if line.startswith("#") and not line.startswith("#!"))
    doc = " ".join(doc.replace("``", "`").split())
    # a sentence ends at . ! ? before a space or the end, but not after "e.g." / "i.e." / "et al."
    m = re.search(r"(?<!e\.g)(?<!i\.e)(?<! al)[.!?](?=\s|$)", doc)
    first = doc[: m.end()] if m else doc
    if len(first) > MAX_SUMMARY:
        cuts = [i for sep in (": ", " — ") for i in [first.find(sep, MIN_SUMMARY)] if i != -1]
        if cuts:
            first = first[: min(cuts)] + "."
    return first.replace("|", "/") or "(no docstring)"


def code_map() -> str:
    out = []
    for folder in CODE_MAP_FOLDERS:
        out += [f"### `{folder}/`", "", "| module | what |", "|---|---|"]
        out += [f"| `{p.relative_to(ROOT)}` | {summary(p)} |" for p in code_map_modules(folder)]
        out.append("")
    return "\n".join(out).rstrip("\n")


#: document → {section name: what fills it}
GENERATED: dict[str, dict[str, Callable[[], str]]] = {
    "docs/settings.md": {"settings": settings_table},
    "docs/errors.md": {"errors": errors_table},
    "docs/code-map.md": {"code-map": code_map},
}


def render(text: str, sections: dict[str, Callable[[], str]]) -> str:
    for name, make in sections.items():
        pattern = rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)"
        if not re.search(pattern, text, flags=re.S):
            raise SystemExit(f"no <!-- {name}:start --> … <!-- {name}:end --> markers")
        table = make()
        text = re.sub(pattern, lambda m, t=table: m.group(1) + t + "\n" + m.group(2), text, flags=re.S)
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a generated section is stale")
    args = ap.parse_args()
    stale = []
    for doc, sections in GENERATED.items():
        path = ROOT / doc
        old = path.read_text()
        new = render(old, sections)
        if new != old:
            stale.append(doc)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print(f"stale: {', '.join(stale)}; run .venv/bin/python scripts/gen_docs.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
