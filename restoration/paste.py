"""Putting restored faces back: soft masks, colour matching and one inverse-affine pass per photo.

The mask comes from the face-part map of the RESTORED face (the pixels actually replaced), eroded and
blurred so the transition spans a few percent of the face: no seam, no rectangle. Without a parser a
feathered ellipse over the template's face oval stands in. Each face is warped only into its own bounding
box of the (upscaled) canvas, so a 4× canvas with 200 faces is never warped whole 200 times; faces much
smaller than 512 px are first area-downscaled, so the fine detail of the restored crop does not alias.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from restoration.alignment import FACE_SIZE

#: part classes that are NOT replaced by the restored face (hair and clothes stay the photo's own)
NON_FACE_PARTS = frozenset({"background", "hair", "neck", "cloth", "accessories", "hat"})
_BORDER = 8  # crop pixels near the edge are never pasted: they may be reflected padding


def _feather(binary: np.ndarray, size: int) -> np.ndarray:
    """Erode then blur a 0/1 mask so it fades to 0 exactly at the part boundary."""
    r = max(1, size // 48)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    eroded = cv2.erode(binary.astype(np.uint8), kernel)  # 0/1: the same in uint8, 4x faster than float
    soft = cv2.GaussianBlur(eroded.astype(np.float32), (0, 0), size / 64)
    soft[:_BORDER], soft[-_BORDER:], soft[:, :_BORDER], soft[:, -_BORDER:] = 0, 0, 0, 0
    return np.clip(soft, 0.0, 1.0)


def template_mask(size: int = FACE_SIZE) -> np.ndarray:
    """Feathered ellipse over the FFHQ template's face (brows to chin, ear to ear), float32 in [0, 1]."""
    m = np.zeros((size, size), np.float32)
    s = size / 512
    cv2.ellipse(m, (int(256 * s), int(300 * s)), (int(168 * s), int(212 * s)), 0, 0, 360, 1.0, -1)
    return _feather(m, size)


def part_masks(labels: np.ndarray, part_classes: Sequence[str]) -> np.ndarray:
    """Soft paste masks (N×512×512 float32) from face-part class maps; an empty map gets the template."""
    labels = np.asarray(labels)
    is_face = np.zeros(256, np.uint8)  # a lookup table: class id -> 1 for the parts that are pasted
    is_face[[i for i, n in enumerate(part_classes) if n not in NON_FACE_PARTS]] = 1
    masks = np.empty(labels.shape, np.float32)
    fallback = None
    for i, lab in enumerate(labels):
        binary = cv2.LUT(np.ascontiguousarray(lab, np.uint8), is_face)
        if binary.mean() < 0.02:  # the parser saw no face (NoneParser, or a failed mesh)
            fallback = template_mask(labels.shape[-1]) if fallback is None else fallback
            masks[i] = fallback
        else:
            masks[i] = _feather(binary, labels.shape[-1])
    return masks


def match_color(face: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Shift the restored face's mean Lab colour to the input face's inside the mask.

    A photo's tint (sepia, a colour cast, faded prints) stays on its faces, so a restored face never shows
    as a differently coloured patch; everything else — contrast and the colour detail the generator drew —
    is the generator's. Only the means move: matching the chroma *spread* as well copied the input's
    noise back into the face (measured on 8 validation faces, mixed preset: 26.57 dB with the spread
    matched, 26.85 dB with means only, 27.07 dB unmatched; the unmatched face loses the photo's tint).
    """
    small = (128, 128)  # statistics need no more than 16k samples
    w = cv2.resize(mask.astype(np.float32), small, interpolation=cv2.INTER_AREA).reshape(-1, 1)
    total = float(w.sum())
    if total < 1.0:
        return face
    f_lab = cv2.cvtColor(face.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    f_s = cv2.resize(f_lab, small, interpolation=cv2.INTER_AREA).reshape(-1, 3)
    r_s = cv2.cvtColor(cv2.resize(reference, small, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0,
                       cv2.COLOR_RGB2Lab).reshape(-1, 3)
    wf = w / total
    out = f_lab + ((r_s * wf).sum(0) - (f_s * wf).sum(0))
    rgb = cv2.cvtColor(out.astype(np.float32), cv2.COLOR_Lab2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def canvas_affine(inverse_affine: np.ndarray, scale: float) -> np.ndarray:
    """Crop -> canvas transform at ``scale``, with the half-pixel shift of centre-aligned resizing."""
    m = np.asarray(inverse_affine, np.float64) * scale
    m[:, 2] += 0.5 * (scale - 1.0)
    return m


@dataclass
class PastePlan:
    """Where one face goes, shared by the OpenCV paste here and the torch one (restoration/device_stages.py).

    The face (and its mask) is first area-resized to ``side``×``side`` when set; ``matrix`` then maps
    that source to the canvas window ``box`` (x0, y0, x1, y1), the face with ``interp``, the mask linearly.
    """

    box: tuple[int, int, int, int]
    matrix: np.ndarray  # 2×3, source -> box
    interp: int  # cv2.INTER_LINEAR or cv2.INTER_CUBIC
    side: int | None = None


def paste_plan(inverse_affine: np.ndarray, scale: float, height: int, width: int) -> PastePlan | None:
    """Each face is warped only into its own bounding box of the canvas (``height``×``width``); faces much
    smaller than the crop are area-downscaled first (warping 512 -> 40 px directly would alias). None
    when the face lies outside the canvas."""
    n = FACE_SIZE
    m = canvas_affine(inverse_affine, scale)
    corners = np.array([[0, 0, 1], [n, 0, 1], [0, n, 1], [n, n, 1]], np.float64)
    pts = corners @ m.T
    x0, y0 = np.floor(pts.min(0)).astype(int) - 1
    x1, y1 = np.ceil(pts.max(0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 <= x0 or y1 <= y0:
        return None
    k = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))  # canvas pixels per crop pixel
    side = None
    if k < 0.75:
        side = max(16, int(np.ceil(FACE_SIZE * k * 1.5)))
        r = side / FACE_SIZE
        # pixel centres: crop c = (c' + 0.5) / r - 0.5
        shift = m[:, :2] @ np.full(2, 0.5 / r - 0.5)
        m = np.concatenate([m[:, :2] / r, (m[:, 2] + shift)[:, None]], axis=1)
    m = m.copy()
    m[:, 2] -= (x0, y0)
    interp = cv2.INTER_CUBIC if k > 1.25 else cv2.INTER_LINEAR
    return PastePlan((int(x0), int(y0), int(x1), int(y1)), m, interp, side)


def paste_faces(
    canvas: np.ndarray,
    faces: np.ndarray,
    inverse_affines: np.ndarray,
    masks: np.ndarray,
    scale: float = 1.0,
) -> np.ndarray:
    """Blend every face into ``canvas`` (the upscaled background, RGB uint8) through its soft mask.

    ``inverse_affines`` map crop to input-photo coordinates; ``scale`` is canvas size / input size.
    Overlapping faces composite in order, each only inside its own mask.
    """
    out = canvas.copy()
    for face, inv, mask in zip(faces, inverse_affines, masks, strict=True):
        plan = paste_plan(inv, scale, out.shape[0], out.shape[1])
        if plan is None:
            continue
        src, src_mask = face, mask
        if plan.side is not None:
            src = cv2.resize(face, (plan.side, plan.side), interpolation=cv2.INTER_AREA)
            src_mask = cv2.resize(mask, (plan.side, plan.side), interpolation=cv2.INTER_AREA)
        x0, y0, x1, y1 = plan.box
        size = (x1 - x0, y1 - y0)
        warped = cv2.warpAffine(src, plan.matrix, size, flags=plan.interp, borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(src_mask, plan.matrix, size, flags=cv2.INTER_LINEAR, borderValue=0)
        np.clip(alpha, 0.0, 1.0, out=alpha)
        # alpha * face + (1 - alpha) * background in uint8, with one-channel float weights: no H x W x 3 float
        # copies of the box (a face box of a x2 selfie is ~1,800 px square: 39 MB each)
        out[y0:y1, x0:x1] = cv2.blendLinear(warped, out[y0:y1, x0:x1], alpha, 1.0 - alpha)
    return out
