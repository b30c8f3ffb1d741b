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
