"""The docs are the user's manual: the README stays short and points into docs/, the generated tables
(settings, error codes, code map) match the code, and every link, path and command they name is real."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
#: the Markdown documents whose links must resolve and whose commands must exist
MARKDOWN = [ROOT / "README.md", ROOT / "MODEL_CARD.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 250


def _generated(name: str, doc: str) -> str:
    """The generated section ``name`` of ``doc`` (between its start and end markers)."""
    m = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", (ROOT / doc).read_text(), re.S)
    assert m, f"{doc} has no generated {name} section"
    return m.group(1)


def test_generated_docs_are_current() -> None:
    r = subprocess.run([sys.executable, "scripts/gen_docs.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_every_setting_and_error_code_is_documented() -> None:
    from portrait.errors import CATALOGUE
    from portrait.settings import Settings

    settings, errors = _generated("settings", "docs/settings.md"), _generated("errors", "docs/errors.md")
    assert [n for n in Settings.model_fields if f"| `{n.upper()}` |" not in settings] == []
    assert [c for c in CATALOGUE if f"| `{c}` |" not in errors] == []


def test_the_readme_is_short_and_starts_with_the_two_commands() -> None:
    lines = README.splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"
    first_block = README.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split("#")[0].strip() for line in first_block] == ["make demo", "make test"]


def test_make_targets_named_in_the_docs_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    for doc in MARKDOWN:
        text = doc.read_text()
        named = set(re.findall(r"`make ([\w-]+)", text)) | set(re.findall(r"^make ([\w-]+)", text, re.M))
        assert named <= targets, f"{doc.relative_to(ROOT)} names make targets {sorted(named - targets)}"


def test_workers_are_named_by_their_entry_point() -> None:
    """The hand-written docs start workers with ``portrait worker gpu|cpu`` or a make target, never with a
    Celery command line (the generated code map quotes docstrings, which are the code's business)."""
    for doc in MARKDOWN:
        text = re.sub(r"<!-- code-map:start -->.*?<!-- code-map:end -->", "", doc.read_text(), flags=re.S)
        assert "celery -A" not in text, f"{doc.relative_to(ROOT)} spells a Celery command line"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)  # no headings in code blocks
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        slug = _slug(heading)
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def test_every_relative_link_resolves() -> None:
    broken = []
    for doc in MARKDOWN:
        text = re.sub(r"^```.*?^```", "", doc.read_text(), flags=re.S | re.M)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            file, _, anchor = target.partition("#")
            path = (doc.parent / file).resolve() if file else doc
            if not path.exists():
                broken.append(f"{doc.relative_to(ROOT)} → {target}: no such file")
            elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
                broken.append(f"{doc.relative_to(ROOT)} → {target}: no such heading")
    assert broken == []


#: Paths the docs name that a command creates; each must go from here once it exists.
NOT_YET: dict[str, str] = {}  # paths the docs may name before they exist: path -> why
PATH_IN_TEXT = re.compile(
    r"(?<![\w./-])((?:api|db|jobs|worker|portrait|restoration|devstack|tests|scripts|benchmarks|docs|infra|training|\.ci)"
    r"/[\w./-]+[\w/])")  # at least two characters after the slash: "jobs/s" is a rate, not a path


def _texts() -> list[Path]:
    docs = [ROOT / "README.md", ROOT / "MODEL_CARD.md", ROOT / "Makefile", ROOT / "training" / "LOG.md",
            ROOT / "docker-compose.yml"]
    docs += sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "restoration" / "training" / "configs").glob("*"))
    code = [p for pkg in ("api", "db", "jobs", "worker", "portrait", "restoration", "devstack", "scripts", "benchmarks",
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

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert (ROOT / project["project"]["readme"]).is_file(), "the package's long description"
    data = project["tool"]["setuptools"]["package-data"]
    for package, globs in data.items():
        for pattern in globs:
            if f"{package}/{pattern}".startswith(tuple(NOT_YET)):
                continue
            assert list((ROOT / package).glob(pattern)), f"package-data {package}/{pattern} matches nothing"


def test_the_code_map_names_every_module() -> None:
    """A module added, renamed or removed shows up here until docs/code-map.md is regenerated."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from gen_docs import CODE_MAP_FOLDERS, code_map_modules

    table = _generated("code-map", "docs/code-map.md")
    rows = set(re.findall(r"^\| `([^`]+)` \|", table, re.M))
    modules = {str(p.relative_to(ROOT)) for folder in CODE_MAP_FOLDERS for p in code_map_modules(folder)}
    for folder in ("api", "db", "worker", "portrait", "restoration", "restoration/training", "scripts",
                   "benchmarks"):
        assert folder in CODE_MAP_FOLDERS, f"the code map must cover {folder}/"
    assert sorted(modules - rows) == [], "modules the code map does not name"
    assert sorted(rows - modules) == [], "modules the code map names that are gone"
