"""Metric sanity: PSNR/SSIM of known cases, NIQE of a clean face in the usual range and worse when damaged,
the MATLAB-style resize that NIQE depends on."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import WEIGHTS_DIR, clean_face

from restoration.degrade import apply
from restoration.metrics import matlab_imresize, niqe, psnr, ssim


def test_psnr_ssim_known_values() -> None:
    a = np.full((32, 32, 3), 100, np.uint8)
    assert psnr(a, a) == float("inf") and ssim(a, a) == pytest.approx(1.0)
    b = a.copy()
    b[..., 0] += 10  # MSE = 100 / 3
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / (100 / 3)), abs=1e-9)
    rng = np.random.default_rng(0)
    noisy = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    assert ssim(a, noisy) < 0.5


def test_matlab_imresize() -> None:
    assert np.allclose(matlab_imresize(np.full((20, 30), 7.0), 0.5), 7.0)  # weights sum to 1, borders too
    x = np.random.default_rng(0).random((40, 40))
    y = matlab_imresize(x, 0.5)
    assert y.shape == (20, 20) and abs(y.mean() - x.mean()) < 0.01


def test_niqe_plausible() -> None:
    if not (WEIGHTS_DIR / "metrics" / "niqe_pris_params.npz").is_file():
        pytest.skip("niqe_pris_params.npz not found (set WEIGHTS_DIR)")
    face = clean_face(512)
    clean = niqe(face, WEIGHTS_DIR)
    assert abs(clean - 4.5627) < 1e-3  # BasicSR-style NIQE of a clean 512 face (the per-block loop's 4.5627)
    rng = np.random.default_rng(0)
    assert niqe(apply("gaussian_blur", face, 4, rng), WEIGHTS_DIR) > clean + 3
    assert niqe(apply("gaussian_noise", face, 25, rng), WEIGHTS_DIR) > clean + 3


def test_niqe_of_a_flat_image_is_nan_not_an_error() -> None:
    """A flat crop (no block has statistics) is not measurable: NaN, which fidelity=auto reads as the floor."""
    if not (WEIGHTS_DIR / "metrics" / "niqe_pris_params.npz").is_file():
        pytest.skip("niqe_pris_params.npz not found (set WEIGHTS_DIR)")
    from restoration import fidelity

    flat = np.full((512, 512, 3), 128, np.uint8)
    assert np.isnan(niqe(flat, WEIGHTS_DIR))
    # partly flat (a black band, a blown-out backdrop): BasicSR's mean over every block, not only the
    # blocks with all features defined (values of the per-block loop it replaced)
    band, sky = clean_face(512), clean_face(512)
    band[:, :200], sky[:150] = 0, 255
    assert abs(niqe(band, WEIGHTS_DIR) - 28.0243) < 1e-3 and abs(niqe(sky, WEIGHTS_DIR) - 5.7642) < 1e-3
    assert fidelity.fidelity_for(niqe(flat, WEIGHTS_DIR)) == fidelity.FLOOR


def test_colour_shift_sees_a_pale_grey_crop_not_detail() -> None:
    """The issue's colour shift (a crop gone pale and grey) moves the mean Lab colour; noise does not."""
    from restoration.metrics import colour_shift

    face = clean_face(256)
    grey = np.repeat(face.mean(axis=2, keepdims=True), 3, axis=2)
    pale = (0.6 * grey + 0.4 * 200).astype(np.uint8)
    noisy = apply("gaussian_noise", face, 10, np.random.default_rng(0))
    assert colour_shift(face, face) == 0.0
    assert colour_shift(pale, face) > 5.0 > 1.5 > colour_shift(noisy, face)


def test_outline_edge_sees_a_drawn_mask_outline_not_blur() -> None:
    """The ring and the wavy hair edge are the mask's region borders drawn into the face: a face with the
    part map's oval and hair border painted on reads well above 1; the truth reads 1, and a blurred copy
    (softer everywhere, nothing drawn) stays near 1."""
    import cv2

    from restoration.metrics import outline_edge
    from restoration.parsing import PART_CLASSES, outlines

    face = clean_face(512)
    labels = np.zeros((512, 512), np.uint8)
    cv2.ellipse(labels, (256, 250), (170, 200), 0, 0, 360, PART_CLASSES.index("hair"), -1)
    cv2.ellipse(labels, (256, 280), (130, 170), 0, 0, 360, PART_CLASSES.index("skin"), -1)
    cv2.ellipse(labels, (200, 250), (25, 10), 0, 0, 360, PART_CLASSES.index("eyes"), -1)
    band = outlines(labels)
    assert band[280, 256 - 130] and band[250, 256 + 170] and not band[250, 200 - 25]  # eyes are not an outline
    drawn, line = face.copy(), outlines(labels, width=3)
    drawn[line] = (drawn[line] * 0.4).astype(np.uint8)
    blurred = cv2.GaussianBlur(face, (0, 0), 3)
    assert outline_edge(face, face, band) == 1.0
    assert outline_edge(drawn, face, band) > 2.0
    assert abs(outline_edge(blurred, face, band) - 1.0) < 0.2
