"""Alignment of faces to the 512×512 FFHQ five-point template, the geometry every face model here expects.

The template and the similarity fit (``cv2.estimateAffinePartial2D`` with LMEDS) are those of facexlib's
``FaceRestoreHelper``, so crops match what GFPGAN/CodeFormer-style generators were trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FACE_SIZE = 512
#: five landmarks (eyes, nose, mouth corners) of an FFHQ-aligned 512×512 face, as in facexlib
FFHQ_TEMPLATE_512 = np.array(
    [[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
     [201.26117, 371.41043], [313.08905, 371.15118]],
    dtype=np.float32,
)


@dataclass
class AlignedFaces:
    """Crops and the transforms between photo and crop coordinates."""

    crops: np.ndarray  # N×512×512×3 uint8 RGB
    affines: np.ndarray  # N×2×3, photo -> crop
    inverse_affines: np.ndarray  # N×2×3, crop -> photo


def estimate_affines(landmarks: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """Similarity transforms (N×2×3) taking each face's five landmarks (N×5×2) onto the template."""
    template = FFHQ_TEMPLATE_512 * (size / 512.0)
    out = np.zeros((len(landmarks), 2, 3), np.float64)
    for i, lm in enumerate(np.asarray(landmarks, np.float32)):
        m, _ = cv2.estimateAffinePartial2D(lm, template, method=cv2.LMEDS)
        if m is None:  # degenerate landmarks: fall back to a least-squares fit of all five points
            m, _ = cv2.estimateAffinePartial2D(lm, template, method=cv2.RANSAC, ransacReprojThreshold=1e6)
        out[i] = m
    return out


@dataclass
class WarpPlan:
    """How one face is warped, shared by the OpenCV warp here and the torch one (restoration/device_stages.py).

    ``roi`` (x0, y0, x1, y1) of the photo is first area-resized to ``small`` (w, h) when set; ``matrix``
    then maps that source (the ROI's resize, or the whole photo) to the crop with ``interp``.
    """

    matrix: np.ndarray  # 2×3, source -> crop
    interp: int  # cv2.INTER_LINEAR or cv2.INTER_CUBIC
    roi: tuple[int, int, int, int] | None = None
    small: tuple[int, int] | None = None


def warp_plan(m: np.ndarray, height: int, width: int, size: int = FACE_SIZE) -> WarpPlan:
    """A face larger than the crop is area-downscaled first so it does not alias; small ones go bicubic."""
    k = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))  # crop pixels per photo pixel
    if k < 0.75:
        inv = cv2.invertAffineTransform(m)
        corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64) @ inv.T
        x0, y0 = np.clip(np.floor(corners.min(0)).astype(int) - 2, 0, [width, height])
        x1, y1 = np.clip(np.ceil(corners.max(0)).astype(int) + 2, 0, [width, height])
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            r = min(1.0, 1.5 * k)  # leave the final warp a little downscaling to do
            rw, rh = max(2, round((x1 - x0) * r)), max(2, round((y1 - y0) * r))
            rx, ry = rw / (x1 - x0), rh / (y1 - y0)
            # small pixel s <-> photo pixel p: p = (s + 0.5) / r - 0.5 + offset
            to_photo = np.array([[1 / rx, 0, 0.5 / rx - 0.5 + x0],
                                 [0, 1 / ry, 0.5 / ry - 0.5 + y0],
                                 [0, 0, 1]])
            m_small = (np.vstack([m, [0, 0, 1]]) @ to_photo)[:2]
            return WarpPlan(m_small, cv2.INTER_LINEAR, (int(x0), int(y0), int(x1), int(y1)), (rw, rh))
    return WarpPlan(np.asarray(m, np.float64), cv2.INTER_CUBIC if k > 1.25 else cv2.INTER_LINEAR)


def _warp(rgb: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """Warp one face as :func:`warp_plan` says."""
    plan = warp_plan(m, rgb.shape[0], rgb.shape[1], size)
    src = rgb
    if plan.roi is not None and plan.small is not None:
        x0, y0, x1, y1 = plan.roi
        src = cv2.resize(rgb[y0:y1, x0:x1], plan.small, interpolation=cv2.INTER_AREA)
    return cv2.warpAffine(src, plan.matrix, (size, size), flags=plan.interp, borderMode=cv2.BORDER_REFLECT101)


def align_faces(rgb: np.ndarray, landmarks: np.ndarray, size: int = FACE_SIZE) -> AlignedFaces:
    """Warp every face of one photo to the template in one call.

    Borders are reflected rather than filled grey: a face at the photo's edge then gives the generator
    plausible context, and paste only ever maps crop pixels that came from inside the photo. Small
    faces are upsampled bicubically (sharper than facexlib's bilinear), large ones area-downscaled.
    """
    landmarks = np.asarray(landmarks, np.float32).reshape(-1, 5, 2)
    affines = estimate_affines(landmarks, size)
    crops = np.empty((len(affines), size, size, 3), np.uint8)
    inverses = np.empty_like(affines)
    for i, m in enumerate(affines):
        crops[i] = _warp(rgb, m, size)
        inverses[i] = cv2.invertAffineTransform(m)
    return AlignedFaces(crops=crops, affines=affines, inverse_affines=inverses)
