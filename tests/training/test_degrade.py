"""Synthetic degradations: seeded reproducibility, each kind's effect grows with its strength, presets
stay inside their documented ranges."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import clean_face

from restoration.degrade import DEGRADATIONS, PRESETS, apply, degrade, degrade_with_ops, strength_at

BLURS = ("gaussian_blur", "aniso_blur", "motion_blur", "defocus_blur", "resize_blur", "downsample")


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return clean_face(256)


def _hf(img: np.ndarray) -> float:
    """High-frequency energy: variance of the Laplacian of the luminance."""
    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64), cv2.CV_64F).var())


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_seeded_reproducible(face: np.ndarray, preset: str) -> None:
    a = degrade(face, preset, np.random.default_rng(123))
    b = degrade(face, preset, np.random.default_rng(123))
    c = degrade(face, preset, np.random.default_rng(124))
    assert a.shape == face.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("kind", sorted(DEGRADATIONS))
def test_each_kind_changes_image_more_when_stronger(face: np.ndarray, kind: str) -> None:
    outs = [apply(kind, face, strength_at(kind, t), np.random.default_rng(0)) for t in (0.25, 1.0)]
    for o in outs:
        assert o.shape == face.shape and o.dtype == np.uint8
    weak, strong = (_mse(o, face) for o in outs)
    assert weak > 0.5, f"{kind} at 25% strength left the image unchanged"
    assert strong > weak, f"{kind}: stronger should change the image more ({weak:.1f} vs {strong:.1f})"


@pytest.mark.parametrize("kind", BLURS)
def test_stronger_blur_less_high_frequency(face: np.ndarray, kind: str) -> None:
    hf = [_hf(apply(kind, face, strength_at(kind, t), np.random.default_rng(0))) for t in (0.0, 0.3, 1.0)]
    assert _hf(face) * 1.05 >= hf[0] > hf[1] > hf[2], f"{kind}: {hf}"


def test_strength_semantics(face: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    flat = np.full((64, 64, 3), 128, np.uint8)
    noisy = apply("gaussian_noise", flat, 10.0, rng).astype(np.float64)
    assert 8.5 < noisy.std() < 11.5  # sigma in /255 units
    shot = apply("shot_noise", flat, 10.0, rng).astype(np.float64)
    assert 8.0 < shot.std() < 12.0  # std at mid-grey in /255 units
    imp = apply("impulse_noise", flat, 0.05, rng)
    assert 0.04 < np.mean(np.all(imp != 128, axis=2)) < 0.06  # fraction of pixels hit
    jit = apply("color_jitter", face, 10.0, rng).astype(np.int16) - face
    assert np.abs(jit).max() <= 11
    gray = apply("gray", face, 1.0, rng)
    assert np.abs(gray[..., 0].astype(int) - gray[..., 2]).max() <= 1
    assert np.array_equal(apply("jpeg", face, 100, rng).shape, face.shape)


def test_presets_sample_within_documented_ranges(face: np.ndarray) -> None:
    small = face[::4, ::4].copy()
    for name, preset in PRESETS.items():
        ranges = {}
        for step in preset.steps:
            for opt in step.options:
                ranges.setdefault(opt.kind, []).append((opt.lo, opt.hi))
        seen = set()
        for seed in range(150):
            out, ops = degrade_with_ops(small, name, np.random.default_rng(seed))
            assert out.shape == small.shape
            for kind, s in ops:
                seen.add(kind)
                assert any(lo - 1e-9 <= s <= hi + 1e-9 for lo, hi in ranges[kind]), (name, kind, s)
                d = DEGRADATIONS[kind]
                assert min(d.weakest, d.strongest) - 1e-9 <= s <= max(d.weakest, d.strongest) + 1e-9
        assert seen >= set(ranges) - {"gray", "pixelate"}, f"{name} never sampled {set(ranges) - seen}"


def test_gfpgan_preset_is_gfpgan_order(face: np.ndarray) -> None:
    order = ["blur", "downsample", "gaussian_noise", "jpeg"]
    for seed in range(10):
        _, ops = degrade_with_ops(face[::4, ::4].copy(), "gfpgan", np.random.default_rng(seed))
        kinds = ["blur" if k.endswith("blur") else k for k, _ in ops][:4]
        assert kinds == order


def test_pixel_strengths_scale_with_image_size(face: np.ndarray) -> None:
    """A 64-px face is damaged like a 512-px face shrunk 8x, not 8x harder."""
    big = cv2.resize(face, (512, 512), interpolation=cv2.INTER_CUBIC)
    small = cv2.resize(face, (64, 64), interpolation=cv2.INTER_AREA)
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    a, ops_a = degrade_with_ops(big, "heavy", rng_a)
    b, ops_b = degrade_with_ops(small, "heavy", rng_b)
    assert [k for k, _ in ops_a] == [k for k, _ in ops_b]
    a_small = cv2.resize(a, (64, 64), interpolation=cv2.INTER_AREA)
    assert _mse(a_small, b) < _mse(small, b)
