"""The independent identity judge (dlib's ResNet): it tells people apart on aligned faces, and nothing
in training can reach it."""

from __future__ import annotations

import ast
from pathlib import Path

import cv2
import numpy as np
import pytest

from restoration.degrade import degrade
from restoration.judge import IdentityJudge, recognised
from restoration.paths import default_faces_dir

ROOT = Path(__file__).resolve().parents[2]


def _faces() -> np.ndarray:
    # adults of CelebA-HQ (dlib's ResNet is weak on small children, as FFHQ's first faces are)
    files = sorted((default_faces_dir() / "hq" / "celebahq_stargan").glob("*"))[:6]
    if len(files) < 6:
        pytest.skip("CelebA-HQ faces not found (set FACES_DIR)")
    return np.stack([cv2.resize(cv2.imread(str(f)), (512, 512), interpolation=cv2.INTER_AREA)[..., ::-1]
                     for f in files])


def test_judge_keeps_a_person_and_tells_people_apart() -> None:
    faces = _faces()
    judge = IdentityJudge()
    ref = judge.reference(faces)
    assert np.allclose(judge.distances(faces, ref), 0, atol=1e-5)
    mild = np.stack([degrade(f, "gfpgan", np.random.default_rng(i)) for i, f in enumerate(faces)])
    heavy = np.stack([degrade(f, "heavy", np.random.default_rng(i)) for i, f in enumerate(faces)])
    same, worse = judge.distances(mild, ref), judge.distances(heavy, ref)
    others = np.concatenate([judge.distances(np.roll(faces, k, axis=0), ref) for k in (1, 2, 3)])
    assert recognised(same) == 1.0, same
    assert recognised(others) == 0.0, others
    assert worse.mean() > same.mean() + 0.1, (worse, same)  # a heavier degradation loses more of the person


def test_training_never_imports_the_judge() -> None:
    """Never judge with what you train against: no module of restoration/training names dlib or the judge."""
    for path in (ROOT / "restoration" / "training").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] == "dlib" or n.endswith("judge") for n in names), path
