"""Paths and small helpers shared by the restoration tests (conftest.py re-uses them)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
WEIGHTS_DIR = Path(os.environ.get("WEIGHTS_DIR", REPO.parent / "shared" / "weights"))
FACES_DIR = Path(os.environ.get("FACES_DIR", REPO.parent / "shared" / "faces"))
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
