"""The shipped generator is what runs by default, and it restores faces it never saw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from restoration_testutil import FACES_DIR

from restoration.classical import CLASSICAL_VERSION
from restoration.degrade import degrade
from restoration.generator import read_generator_metadata
from restoration.metrics import gradient_magnitude, psnr
from restoration.options import RestoreOptions
from restoration.pipeline import CLASSICAL_MODEL, Restorer, shipped_model

#: validation people of the pack (person-disjoint from training: scripts/make_pack.py split_of)
VAL_FACES = [FACES_DIR / "hq" / "london_neutral" / f"{p}_03.jpg" for p in ("002", "016", "024")]


def test_the_default_is_the_shipped_model_and_classical_stays_selectable(shipped_restorer, weights_dir) -> None:
    path = shipped_model()
    assert path is not None and path.name == "restorer.safetensors"
    assert path.stat().st_size < 40 * 2**20
    version = read_generator_metadata(path)["model_version"]
    assert shipped_restorer.model_version == version and not shipped_restorer.is_classical
    classical = Restorer(weights_dir, device="cpu", model_path=Path(CLASSICAL_MODEL))
    assert classical.model_version == CLASSICAL_VERSION and classical.is_classical


@pytest.fixture(scope="module")
def val_pairs(identity_restorer) -> list[tuple[np.ndarray, np.ndarray]]:
    """(clean aligned face, degraded copy) of validation people: aligned by the pipeline itself."""
    from PIL import Image

    if not all(p.is_file() for p in VAL_FACES):
        pytest.skip(f"London faces not found under {FACES_DIR}")
    pairs = []
    for i, path in enumerate(VAL_FACES):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        res = identity_restorer.restore_image(rgb, RestoreOptions(upscale=1, max_faces=1), keep_crops=True)
        clean = res.input_crops[0]
        pairs.append((clean, degrade(clean, "gfpgan", np.random.default_rng(i))))
    return pairs


def test_shipped_model_restores_faces_it_never_saw(shipped_restorer, val_pairs) -> None:
    """Closer to the clean face than its degraded input, and more like the person: what a user pays for."""
    emb = shipped_restorer.embedder
    opts = RestoreOptions(aligned=True, upscale=1)
    gains, id_gains = [], []
    for clean, lq in val_pairs:
        out = shipped_restorer.restore_image(lq, opts).image
        gains.append(psnr(out, clean) - psnr(lq, clean))
        if emb is not None:
            e = emb.embed_aligned(np.stack([clean, lq, out]))
            id_gains.append(float(e[0] @ e[2] - e[0] @ e[1]))
    assert np.mean(gains) > 0.5, gains
    if emb is not None:
        assert np.mean(id_gains) > 0.0, id_gains


def test_bf16_restores_like_fp32(weights_dir, val_pairs) -> None:
    """``precision="bf16"`` (the default where the CPU or GPU computes bf16) changes the face imperceptibly."""
    with pytest.raises(ValueError, match="precision"):
        Restorer(weights_dir, device="cpu", precision="fp8")
    bf16 = Restorer(weights_dir, device="cpu", precision="bf16")
    assert bf16.precision == "bf16"
    fp32 = Restorer(weights_dir, device="cpu", precision="fp32")
    clean, lq = val_pairs[0]
    opts = RestoreOptions(aligned=True, upscale=1)
    a, b = fp32.restore_image(lq, opts).image, bf16.restore_image(lq, opts).image
    assert not np.array_equal(a, b), "bf16 autocast ran"
    assert abs(psnr(a, clean) - psnr(b, clean)) < 0.1


def _oval_edge(restored: np.ndarray) -> float:
    """Mean gradient of a restored 512 face along the oval of :func:`_oval_mask`, over that inside it."""
    import cv2

    grad = gradient_magnitude(restored)
    rim, inner = np.zeros((512, 512), np.uint8), np.zeros((512, 512), np.uint8)
    cv2.ellipse(rim, (256, 280), (140, 180), 0, 0, 360, 1, 6)
    cv2.ellipse(inner, (256, 280), (110, 150), 0, 0, 360, 1, 6)
    return float(grad[rim > 0].mean() / grad[inner > 0].mean())


def test_a_soft_mask_leaves_a_weaker_ring_where_the_input_has_no_edge() -> None:
    """The mask-outline ring (docs/TRAINING.md): on a featureless input, the shipped generator draws the
    hard edge of the part map's face oval; ``mask_blur`` softens the condition and the drawn edge with it."""
    import dataclasses

    import cv2
    import torch

    from restoration.generator import Generator, from_model, generator_mask, load_generator, to_model
    from restoration.parsing import PART_CLASSES

    hard, _ = load_generator(shipped_model(), "cpu")
    soft = Generator(dataclasses.replace(hard.config, mask_blur=2.0)).eval()
    soft.load_state_dict(hard.state_dict())
    labels = np.zeros((512, 512), np.uint8)
    cv2.ellipse(labels, (256, 280), (140, 180), 0, 0, 360, PART_CLASSES.index("skin"), -1)
    flat = np.full((1, 512, 512, 3), 150, np.uint8)
    with torch.no_grad():
        edge = {name: _oval_edge(from_model(g(to_model(flat), generator_mask(labels[None]), noise_mode="fixed"))[0])
                for name, g in (("hard", hard), ("soft", soft))}
        plain = from_model(soft(to_model(flat), None, noise_mode="fixed"))[0]
    assert edge["hard"] > 4.0, edge  # the ring: an edge the input does not have
    assert edge["soft"] < 0.75 * edge["hard"], edge
    assert _oval_edge(plain) < 2.0  # without a mask there is no oval to draw
