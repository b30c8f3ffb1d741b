"""The README is the user's manual: its generated tables must match the code, and its commands must exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_settings_and_error_tables_are_current() -> None:
    r = subprocess.run([sys.executable, "scripts/gen_docs.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_every_setting_and_error_code_is_documented() -> None:
    from portrait.errors import CATALOGUE
    from portrait.settings import Settings

    for name in Settings.model_fields:
        assert f"`{name.upper()}`" in README, name
    for code in CATALOGUE:
        assert f"`{code}`" in README, code


def test_make_targets_named_in_the_readme_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    for target in set(re.findall(r"`make (\w+)", README)) | set(re.findall(r"^make (\w+)", README, re.M)):
        assert target in targets, target


#: Paths the docs name that a command creates; each must go from here once it exists.
NOT_YET: dict[str, str] = {}  # paths the docs may name before they exist: path -> why
PATH_IN_TEXT = re.compile(
    r"(?<![\w./-])((?:api|db|worker|portrait|restoration|devstack|tests|scripts|benchmarks|docs|infra|training|\.ci)"
    r"/[\w./-]*[\w/])")


def _texts() -> list[Path]:
    docs = [ROOT / "README.md", ROOT / "MODEL_CARD.md", ROOT / "Makefile", ROOT / "training" / "LOG.md",
            ROOT / "docker-compose.yml"]
    docs += sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "restoration" / "training" / "configs").glob("*"))
    code = [p for pkg in ("api", "db", "worker", "portrait", "restoration", "devstack", "scripts", "benchmarks",
                          "tests")
            for p in sorted((ROOT / pkg).rglob("*.py"))]
    return docs + code + sorted((ROOT / "infra").glob("Dockerfile*"))


def test_every_repository_path_named_in_docs_and_docstrings_exists() -> None:
    missing = []
    for text in _texts():
        for m in PATH_IN_TEXT.finditer(text.read_text(errors="replace")):
            path = m.group(1)
            if any(c in path for c in "*<{") or path in NOT_YET:
                continue
            if not (ROOT / path).exists():
                missing.append(f"{text.relative_to(ROOT)} names {path}")
    assert sorted(set(missing)) == []
    assert [p for p in NOT_YET if (ROOT / p).exists()] == [], "it exists now: drop it from NOT_YET"


def test_package_data_globs_match_files() -> None:
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for package, globs in data.items():
        for pattern in globs:
            if f"{package}/{pattern}".startswith(tuple(NOT_YET)):
                continue
            assert list((ROOT / package).glob(pattern)), f"package-data {package}/{pattern} matches nothing"


#: folders the README's file table describes, file by file
TABLE_FOLDERS = ("api", "db", "worker", "portrait", "restoration", "restoration/training", "scripts",
                 "benchmarks", "devstack")


def test_the_readme_file_table_names_every_module() -> None:
    """A module added, renamed or removed shows up here until the README's "where | what" table says so."""
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([a-z]+/)`[^\n]*", README, re.M)}
    missing, stale = [], []
    for folder in TABLE_FOLDERS:
        top = folder.split("/")[0] + "/"
        row = rows.get(top, "")
        assert row, f"no row for {top}"
        files = {p.name for p in (ROOT / folder).iterdir()
                 if p.suffix in {".py", ".sh"} and p.name != "__init__.py"}
        missing += [f"{folder}/{f}" for f in sorted(files) if f"`{f}`" not in row]
        if folder == top.rstrip("/"):
            named = set(re.findall(r"`([a-z_\-]+\.(?:py|sh))`", row))
            everywhere = {p.name for p in (ROOT / folder).rglob("*") if p.is_file()}
            stale += [f"{top}{n}" for n in sorted(named - everywhere)]
    assert missing == [], "modules the README's file table does not name"
    assert stale == [], "files the README's file table names that are gone"
