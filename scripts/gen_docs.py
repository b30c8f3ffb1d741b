"""Regenerate the README's settings and error-code tables from the code that defines them.

    .venv/bin/python scripts/gen_docs.py          # rewrite README.md in place
    .venv/bin/python scripts/gen_docs.py --check  # exit 1 if README.md is stale (tests/test_docs.py)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


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


def render(text: str) -> str:
    for name, table in (("settings", settings_table()), ("errors", errors_table())):
        text = re.sub(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)",
                      lambda m, t=table: m.group(1) + t + "\n" + m.group(2), text, flags=re.S)
    return text


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    readme = ROOT / "README.md"
    old = readme.read_text()
    new = render(old)
    if args.check:
        if new != old:
            print("README.md is stale: run .venv/bin/python scripts/gen_docs.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
