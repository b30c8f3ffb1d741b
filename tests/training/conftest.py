"""Fixtures for the training tests: a miniature pack built from a few already-aligned clean faces."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from restoration.paths import default_faces_dir, default_weights_dir

ROOT = Path(__file__).resolve().parents[2]
FACES_DIR, WEIGHTS_DIR = default_faces_dir(), default_weights_dir()
#: FFHQ/CelebA-HQ files are already FFHQ-aligned: no detector needed to make a pack of them
ALIGNED = ("celebahq_stargan", "ffhq_gpen", "celebahq_ddnm")


def clean_face(size: int = 512) -> np.ndarray:
    path = FACES_DIR / "hq" / "ffhq_gpen" / "00000.png"
    if not path.is_file():
        pytest.skip(f"clean faces not found under {FACES_DIR} (set FACES_DIR)")
    return cv2.resize(cv2.imread(str(path)), (size, size), interpolation=cv2.INTER_AREA)[..., ::-1].copy()


@pytest.fixture(scope="session")
def mini_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 faces at 64 px (8 train, 2 val) with template-prior masks, in the make_pack layout."""
    from restoration.parsing import template_prior

    files = [p for src in ALIGNED for p in sorted((FACES_DIR / "hq" / src).glob("*"))][:10]
    if len(files) < 10:
        pytest.skip(f"clean faces not found under {FACES_DIR} (set FACES_DIR)")
    pack = tmp_path_factory.mktemp("pack")
    for sub in ("faces", "masks", "masks_degraded"):
        (pack / sub).mkdir()
    prior = cv2.resize(template_prior(512), (64, 64), interpolation=cv2.INTER_NEAREST)
    rows = []
    for i, p in enumerate(files):
        fid = f"f{i:02d}"
        img = cv2.resize(cv2.imread(str(p)), (64, 64), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(pack / "faces" / f"{fid}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(pack / "masks" / f"{fid}.png"), prior)
        cv2.imwrite(str(pack / "masks_degraded" / f"{fid}_0.png"), np.roll(prior, 2, axis=1))
        rows.append({"id": fid, "person": fid, "source": p.parent.name, "split": "val" if i >= 8 else "train",
                     "face_px": 1024, "file": f"faces/{fid}.jpg"})
    with open(pack / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return pack
