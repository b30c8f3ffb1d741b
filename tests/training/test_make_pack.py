"""scripts/make_pack.py on real photos: the gate lists every rejected file with its reason and never
crashes on a bad file, copies are caught, the same person never straddles the split, licences stay apart."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from restoration.paths import default_faces_dir, default_weights_dir

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HQ = default_faces_dir() / "hq"
WILD = default_faces_dir() / "wild" / "whole"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "make_pack.py"), *args,
                           "--weights-dir", str(default_weights_dir())],
                          capture_output=True, text=True, timeout=600)


def test_gate_lists_every_reject_and_never_crashes(tmp_path: Path) -> None:
    faces = sorted((HQ / "us_congress").glob("*.jpg"))[:3]
    crowd = WILD / "gpen_Solvay_conference_1927.png"
    if len(faces) < 3 or not crowd.is_file():
        pytest.skip(f"faces not found under {HQ} (set FACES_DIR)")
    photos = tmp_path / "photos"
    photos.mkdir()
    for f in faces:
        shutil.copy(f, photos / f.name)
    data = faces[0].read_bytes()
    (photos / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (photos / "not_an_image.png").write_text("hello")
    (photos / "notes.pdf").write_bytes(b"%PDF-1.4")
    # the same photo re-encoded and slightly smaller: a near-duplicate of the original
    img = cv2.imread(str(faces[1]))
    cv2.imwrite(str(photos / "copy.jpg"), cv2.resize(img, None, fx=0.95, fy=0.95), [cv2.IMWRITE_JPEG_QUALITY, 80])
    # a small version of a face: the 512 template would span far fewer than 300 source pixels
    cv2.imwrite(str(photos / "small.jpg"), cv2.resize(cv2.imread(str(faces[2])), None, fx=0.25, fy=0.25))
    shutil.copy(crowd, photos / "crowd.png")

    out = tmp_path / "pack"
    r = _run("--pack", "research", "--sources", "canada", str(photos), "--out", str(out), "--degraded-masks", "0",
             "--masks", "none")
    assert r.returncode == 0, r.stderr[-3000:]
    with open(out / "rejects.tsv") as f:
        rejects = {Path(row["file"]).name: row["reason"] for row in csv.DictReader(f, delimiter="\t")}
    assert rejects["truncated.jpg"].startswith("unreadable (OSError: image file is truncated")
    assert rejects["not_an_image.png"].startswith("unreadable")
    assert rejects["notes.pdf"].startswith("unreadable")
    assert rejects["copy.jpg"] == f"near-duplicate of photos_{faces[1].stem}"
    assert rejects["small.jpg"].startswith("small face")
    assert rejects["crowd.png"].startswith("several faces")
    with open(out / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["id"] for r in rows if r["source"] == "photos"} == {f"photos_{f.stem}" for f in faces}
    assert {r["licence"] for r in rows if r["source"] == "photos"} == {"unknown"}
    assert {r["licence"] for r in rows if r["source"] == "canada"} == {"CC-BY-4.0"}
    # every accepted and rejected photo has its line in the quality table and in the report's counts
    with open(out / "quality.tsv") as f:
        quality = list(csv.DictReader(f, delimiter="\t"))
    assert len(quality) == len(rows) + len(rejects)
    report = (out / "report.md").read_text()
    assert "| unreadable | 3 |" in report and "| near-duplicate | 1 |" in report
    assert cv2.imread(str(out / "contact.jpg")) is not None and cv2.imread(str(out / "rejects.jpg")) is not None


def test_same_person_is_one_group_and_one_split(tmp_path: Path) -> None:
    neutral = sorted((HQ / "london_neutral").glob("*.jpg"))[:2]
    if len(neutral) < 2:
        pytest.skip(f"faces not found under {HQ} (set FACES_DIR)")
    studio, elsewhere = tmp_path / "studio", tmp_path / "elsewhere"
    studio.mkdir()
    elsewhere.mkdir()
    for f in neutral:
        shutil.copy(f, studio / f.name)
    # the first sitter smiling, under another name in another folder: only the identity embedding ties them
    shutil.copy(HQ / "london_smiling" / neutral[0].name.replace("_03", "_08"), elsewhere / "someone.jpg")
    out = tmp_path / "pack"
    r = _run("--pack", "research", "--sources", "canada", str(studio), str(elsewhere), "--out", str(out),
             "--masks", "none")
    assert r.returncode == 0, r.stderr[-3000:]
    with open(out / "manifest.csv") as f:
        rows = {row["id"]: row for row in csv.DictReader(f)}
    first, twin = rows[f"studio_{neutral[0].stem}"], rows["elsewhere_someone"]
    assert twin["person"] == first["person"] and twin["split"] == first["split"]
    assert rows[f"studio_{neutral[1].stem}"]["person"] != first["person"]


def test_commercial_pack_refuses_other_licences(tmp_path: Path) -> None:
    r = _run("--pack", "commercial", "--sources", "celebahq_stargan", "--out", str(tmp_path / "p"))
    assert r.returncode == 2 and "evaluation only" in r.stderr
    r = _run("--pack", "commercial", str(tmp_path), "--out", str(tmp_path / "p"))
    assert r.returncode == 2 and "--licence" in r.stderr
