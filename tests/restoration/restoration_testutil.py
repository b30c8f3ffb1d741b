"""Paths and small helpers shared by the restoration tests (conftest.py re-uses them)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from restoration.paths import default_faces_dir, default_weights_dir

REPO = Path(__file__).resolve().parents[2]
WEIGHTS_DIR, FACES_DIR = default_weights_dir(), default_faces_dir()
SOLVAY = FACES_DIR / "wild" / "whole" / "gpen_Solvay_conference_1927.png"
#: a small real photo with one face (191×264 JPEG)
ONE_FACE = FACES_DIR / "wild" / "whole" / "codeformer_05.jpg"


def encode(arr: np.ndarray, fmt: str = "PNG", **save: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **save)
    return buf.getvalue()


def face_photo() -> np.ndarray:
    """The one-face photo as RGB uint8."""
    return np.asarray(Image.open(ONE_FACE).convert("RGB"))
