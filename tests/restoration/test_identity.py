"""Identity embeddings: ONNX metric, the torch twin used for the loss, and the labelled pairs."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from restoration_testutil import FACES_DIR as FACES
from restoration_testutil import WEIGHTS_DIR as WEIGHTS

from restoration.errors import WeightsMissing
from restoration.identity import (
    ARCFACE_TEMPLATE_112,
    IdentityEmbedder,
    align_ffhq_to_arcface,
    cosine,
    load_torch_mobilefacenet,
    similarity_matrix,
)

PAIRS = FACES / "identity_pairs"

pytestmark = pytest.mark.skipif(not (WEIGHTS / "identity" / "MobileFaceNet.onnx").is_file(),
                                reason="no identity weights")


@pytest.fixture(scope="module")
def embedder() -> IdentityEmbedder:
    return IdentityEmbedder(WEIGHTS)


@pytest.fixture(scope="module")
def aligned_faces() -> np.ndarray:
    paths = [FACES / "hq" / "ffhq_gpen" / f"0000{i}.png" for i in (0, 1, 2)]
    return np.stack([cv2.resize(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB), (512, 512),
                                interpolation=cv2.INTER_AREA) for p in paths])


def test_missing_weights_named(tmp_path: Path) -> None:
    with pytest.raises(WeightsMissing, match="MobileFaceNet.onnx"):
        IdentityEmbedder(tmp_path)
    with pytest.raises(WeightsMissing, match="mobilefacenet.pt"):
        load_torch_mobilefacenet(tmp_path)


def test_similarity_matrix_recovers_transform() -> None:
    a = np.deg2rad(12)
    m = np.array([[1.7 * np.cos(a), -1.7 * np.sin(a), 30], [1.7 * np.sin(a), 1.7 * np.cos(a), -4]])
    src = ARCFACE_TEMPLATE_112
    dst = src @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(similarity_matrix(src, dst), m, atol=1e-4)


def test_embed_aligned_shapes_and_norm(embedder: IdentityEmbedder, aligned_faces: np.ndarray) -> None:
    e = embedder.embed_aligned(aligned_faces)
    assert e.shape == (3, 128)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    # a mirrored face is the same person; other FFHQ faces are not
    flipped = embedder.embed_aligned(aligned_faces[:1, :, ::-1].copy())[0]
    assert cosine(e[0], flipped) > 0.6 > max(cosine(e[0], e[1]), cosine(e[0], e[2]))


def test_torch_twin_matches_onnx(embedder: IdentityEmbedder, aligned_faces: np.ndarray) -> None:
    net = load_torch_mobilefacenet(WEIGHTS)
    x = torch.from_numpy(aligned_faces).permute(0, 3, 1, 2).float() / 127.5 - 1
    x.requires_grad_(True)
    t = net(align_ffhq_to_arcface(x))
    t.sum().backward()  # differentiable end to end
    assert x.grad is not None and torch.isfinite(x.grad).all()
    o = embedder.embed_aligned(aligned_faces)
    sims = cosine(o, t.detach().numpy())
    assert np.all(sims > 0.99), sims


def test_same_person_closer_than_different(embedder: IdentityEmbedder) -> None:
    from facexlib.detection import init_detection_model

    with open(PAIRS / "master.csv") as fh:
        rows = list(csv.DictReader(fh))
    same = [r for r in rows if r["Decision"] == "Yes"][:4]
    diff = [r for r in rows if r["Decision"] == "No"][:4]
    det = init_detection_model("retinaface_mobile0.25", device="cpu",
                               model_rootpath=str(WEIGHTS / "facexlib"))
    cache: dict[str, np.ndarray] = {}

    def emb(name: str) -> np.ndarray:
        if name not in cache:
            bgr = cv2.imread(str(PAIRS / name))
            with torch.no_grad():
                boxes = det.detect_faces(bgr, 0.9)
            best = boxes[np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))]
            cache[name] = embedder.embed(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), best[5:15].reshape(5, 2))
        return cache[name]

    s_same = [cosine(emb(r["file_x"]), emb(r["file_y"])) for r in same]
    s_diff = [cosine(emb(r["file_x"]), emb(r["file_y"])) for r in diff]
    assert min(s_same) > max(s_diff), (s_same, s_diff)
    assert np.mean(s_same) > 0.5 > 0.25 > np.mean(s_diff)


def test_torch_twin_stays_frozen() -> None:
    net = load_torch_mobilefacenet(WEIGHTS)
    holder = torch.nn.ModuleList([net]).train()
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert holder.training
