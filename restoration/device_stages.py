"""The pipeline's pixel stages in torch, so that a photo stays on the GPU from decode to encode.

restoration/pipeline.py runs these instead of the OpenCV/numpy stages when its device is CUDA (or when
``Restorer(stages="torch")`` forces them, which is how the CPU tests compare the two). Each function
mirrors one numpy stage with the same contract, as tensors on any device:

* images are H×W×3 uint8 RGB (batches N×H×W×3), masks float32 in [0, 1] (N×512×512), face-part maps
  uint8 N×512×512; affines stay small float64 numpy arrays (geometry, not pixels), and the geometry
  itself (which window, which interpolation) comes from the numpy modules' own plans
  (:func:`restoration.alignment.warp_plan`, :func:`restoration.paste.paste_plan`), so only the pixel
  arithmetic is written twice;
* OpenCV's conventions are reproduced: pixel centres at +0.5, each stage's border mode, bicubic a = −0.75,
  INTER_AREA's fractional box weights, Lanczos-4's 8 taps, the circular 5-px bilateral window with an L1
  colour distance, float Lab with the sRGB curve. Results agree with OpenCV within the tolerances that
  tests/restoration/test_device_stages.py states (OpenCV rounds through fixed-point weights; torch does not).

What stays on the numpy path (the functions fall back to it themselves, or the pipeline does):

* decode of anything but an 8-bit baseline/progressive RGB or grey JPEG (PNG, WebP, BMP, TIFF, 16-bit,
  CMYK, MPO, files not ending in an EOI marker): :func:`decode` calls :func:`restoration.image_io.decode`
  and uploads its pixels; errors (truncated, corrupt, too large) are always the numpy path's;
* encode of PNG, WebP, grey and 16-bit output, and of JPEG where torchvision's chroma subsampling would
  differ from Pillow's (nvJPEG encodes 4:4:4, as Pillow does at quality ≥ 90; torchvision's CPU encoder
  4:2:0, as Pillow does below 90): :func:`encode` hands those to :func:`restoration.image_io.encode`;
* the 16-bit output (``Restorer._to16``), alpha resizing, and the ``aligned`` option's resize of the
  input crop; the parsers' own preprocessing (MediaPipe is a CPU model; BiSeNet already runs on the device).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

from restoration import image_io
from restoration.alignment import FACE_SIZE, AlignedFaces, estimate_affines, warp_plan
from restoration.background import resolve_method, upscale_size
from restoration.image_io import DecodedImage, ImageLimits
from restoration.paste import NON_FACE_PARTS, paste_plan, template_mask

# --- helpers: layout, rounding, OpenCV's resampling as matrices -------------------------------------


def upload(array: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """A numpy array as a tensor on ``device`` (pinned and non-blocking where that is CUDA)."""
    array = np.ascontiguousarray(array)
    t = torch.from_numpy(array if array.flags.writeable else array.copy())
    if torch.device(device).type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def _planar(img: torch.Tensor) -> torch.Tensor:
    """H×W×C or N×H×W×C (any dtype) -> float32 N×C×H×W."""
    x = img if img.ndim == 4 else img[None]
    return x.permute(0, 3, 1, 2).float()


def _interleaved(x: torch.Tensor, batch: bool) -> torch.Tensor:
    """float N×C×H×W -> uint8 N×H×W×C (or H×W×C), rounded and saturated as OpenCV's uint8 results are."""
    y = x.round().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    return y if batch else y[0]


@lru_cache(maxsize=64)
def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """cv2.INTER_AREA along one axis as an n_out×n_in weight matrix.

    Downscaling averages each output pixel's footprint with fractional edge weights; upscaling is OpenCV's
    area variant of linear interpolation (weights only in the last source pixel's fraction)."""
    w = np.zeros((n_out, n_in), np.float64)
    s = n_in / n_out
    if n_out <= n_in:
        lo = np.arange(n_out)[:, None] * s
        src = np.arange(n_in)[None, :]
        w = np.clip(np.minimum(lo + s, src + 1) - np.maximum(lo, src), 0, None) / s
        return w
    for dx in range(n_out):
        sx = math.floor(dx * s)
        fx = (dx + 1) - (sx + 1) / s
        fx = 0.0 if fx <= 0 else fx - math.floor(fx)
        if sx >= n_in - 1:
            sx, fx = n_in - 1, 0.0
        w[dx, sx] += 1 - fx
        if fx:
            w[dx, sx + 1] += fx
    return w


def _lanczos4(x: np.ndarray) -> np.ndarray:
    """OpenCV's 8 Lanczos-4 weights for fractional offsets ``x`` (…×8), normalised to sum 1."""
    t = x[..., None] + 3 - np.arange(8)  # distance of each tap
    w = np.where(np.abs(t) < 1e-7, 1.0, np.sinc(t) * np.sinc(t / 4))
    return w / w.sum(-1, keepdims=True)


@lru_cache(maxsize=64)
def _lanczos_matrix(n_in: int, n_out: int) -> np.ndarray:
    """cv2.INTER_LANCZOS4 along one axis (n_out×n_in): 8 taps, edge pixels replicated as OpenCV's resize does."""
    fx = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    sx = np.floor(fx).astype(int)
    weights = _lanczos4(fx - sx)
    idx = np.clip(sx[:, None] + np.arange(-3, 5)[None, :], 0, n_in - 1)
    w = np.zeros((n_out, n_in), np.float64)
    np.add.at(w, (np.repeat(np.arange(n_out), 8), idx.ravel()), weights.ravel())
    return w


def _resample(x: torch.Tensor, rows: np.ndarray, cols: np.ndarray) -> torch.Tensor:
    """Separable resampling of float N×C×H×W by row (H'×H) and column (W'×W) weight matrices (full float32:
    the pipeline leaves ``torch.backends.cuda.matmul.allow_tf32`` at its default, off)."""
    r = torch.as_tensor(rows, dtype=torch.float32, device=x.device)
    c = torch.as_tensor(cols, dtype=torch.float32, device=x.device)
    return torch.matmul(torch.matmul(r, x), c.T)


def resize_area(x: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """cv2.resize(..., INTER_AREA) of float N×C×H×W (the caller rounds for uint8)."""
    return _resample(x, _area_matrix(x.shape[-2], height), _area_matrix(x.shape[-1], width))


@lru_cache(maxsize=16)
def _gauss_kernel(sigma: float, for_uint8: bool) -> np.ndarray:
    """cv2.getGaussianKernel with GaussianBlur's automatic size (3σ each side for uint8, 4σ for float)."""
    k = int(round(sigma * (3 if for_uint8 else 4) * 2 + 1)) | 1
    return cv2.getGaussianKernel(k, sigma, cv2.CV_64F).ravel()


def gaussian_blur(x: torch.Tensor, sigma: float, for_uint8: bool = False) -> torch.Tensor:
    """cv2.GaussianBlur(x, (0, 0), sigma) of float N×C×H×W, BORDER_REFLECT_101 (unrounded)."""
    k = torch.as_tensor(_gauss_kernel(float(sigma), for_uint8), dtype=torch.float32, device=x.device)
    n, c, h, w = x.shape
    p = len(k) // 2
    y = x.reshape(n * c, 1, h, w)
    cudnn = torch.backends.cudnn  # TF32 (cuDNN's default for float32) would cost ~1e-3 of precision
    with cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                     allow_tf32=False):
        y = F.conv2d(F.pad(y, (p, p, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
        y = F.conv2d(F.pad(y, (0, 0, p, p), mode="reflect"), k.view(1, 1, -1, 1))
    return y.reshape(n, c, h, w)


def _fold(coord: torch.Tensor, n: int) -> torch.Tensor:
    """Continuous coordinates folded into [0, n−1] as BORDER_REFLECT_101 does (exact for symmetric kernels)."""
    if n == 1:
        return torch.zeros_like(coord)
    period = 2.0 * (n - 1)
    c = torch.remainder(coord, period)
    return torch.where(c > n - 1, period - c, c)


def warp_affine(
    x: torch.Tensor, m: np.ndarray, width: int, height: int, interp: int, border: str
) -> torch.Tensor:
    """cv2.warpAffine of float 1×C×H×W by ``m`` (2×3, source -> destination), unrounded.

    ``interp``: cv2.INTER_LINEAR or cv2.INTER_CUBIC; ``border``: ``reflect101``, ``replicate`` or ``zero``
    (BORDER_REFLECT_101, BORDER_REPLICATE, BORDER_CONSTANT 0)."""
    inv = torch.as_tensor(cv2.invertAffineTransform(np.asarray(m, np.float64)), device=x.device)
    ys, xs = torch.meshgrid(torch.arange(height, device=x.device, dtype=torch.float64),
                            torch.arange(width, device=x.device, dtype=torch.float64), indexing="ij")
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    h, w = x.shape[-2:]
    if border == "reflect101":
        sx, sy = _fold(sx, w), _fold(sy, h)
    grid = torch.stack([(2 * sx + 1) / w - 1, (2 * sy + 1) / h - 1], -1).float()[None]
    mode = "bicubic" if interp == cv2.INTER_CUBIC else "bilinear"
    padding = "zeros" if border == "zero" else "border"
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding, align_corners=False)


# --- decode --------------------------------------------------------------------------------------------

_ORIENT = {  # EXIF orientation -> ops on an H×W×C tensor, as restoration.image_io._orient
    2: lambda a: a.flip(1),
    3: lambda a: a.flip(0).flip(1),
    4: lambda a: a.flip(0),
    5: lambda a: a.transpose(0, 1),
    6: lambda a: torch.rot90(a, -1, (0, 1)),
    7: lambda a: torch.rot90(a, -1, (0, 1)).flip(0),
    8: lambda a: torch.rot90(a, 1, (0, 1)),
}


def decode(
    data: bytes, limits: ImageLimits | None, device: torch.device | str
) -> tuple[DecodedImage, torch.Tensor]:
    """:func:`restoration.image_io.decode`, with JPEGs decoded on ``device`` (nvJPEG on CUDA).

    Returns the DecodedImage (its ``rgb`` a host copy: detection and the CPU parsers read it) and the same
    pixels as an H×W×3 uint8 tensor on ``device``. The header is read and the limits checked by
    image_io first; anything but an 8-bit RGB/grey JPEG, and any JPEG torchvision refuses, takes the numpy
    path, whose errors are the ones raised."""
    limits = limits or ImageLimits()
    im = image_io.open_image(data, limits)
    jpeg = (im.format == "JPEG" and im.mode in ("RGB", "L") and image_io.file_bit_depth(im) == 8
            and data.rstrip(b"\0\r\n ").endswith(b"\xff\xd9"))
    if jpeg:
        try:
            raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            with warnings.catch_warnings():  # torchvision 0.29 points at TorchCodec; ours is pinned
                warnings.simplefilter("ignore", DeprecationWarning)
                chw = decode_jpeg(raw, mode=ImageReadMode.RGB, device=device)
        except RuntimeError:
            jpeg = False
    if not jpeg:
        d = image_io.decode(data, limits)
        return d, upload(d.rgb, device)
    orientation = int(im.getexif().get(0x0112, 1) or 1)
    hwc = chw.permute(1, 2, 0)
    hwc = _ORIENT[orientation](hwc) if orientation in _ORIENT else hwc
    pixels = hwc.contiguous()
    rgb = pixels.cpu().numpy()
    is_gray = im.mode == "L" or image_io.looks_gray(rgb)
    return DecodedImage(rgb=rgb, is_gray=is_gray, bit_depth=8, format="JPEG"), pixels


# --- align ---------------------------------------------------------------------------------------------


def warp_faces(image: torch.Tensor, affines: np.ndarray, size: int = FACE_SIZE) -> torch.Tensor:
    """Crops N×size×size×3 uint8 of an H×W×3 uint8 photo, as restoration.alignment's warp does."""
    h, w = image.shape[:2]
    x = _planar(image)
    crops = torch.empty((len(affines), size, size, 3), dtype=torch.uint8, device=image.device)
    for i, m in enumerate(affines):
        plan = warp_plan(m, h, w, size)
        src = x
        if plan.roi is not None and plan.small is not None:
            x0, y0, x1, y1 = plan.roi
            src = resize_area(x[..., y0:y1, x0:x1], *plan.small).round().clamp_(0, 255)
        crops[i] = _interleaved(warp_affine(src, plan.matrix, size, size, plan.interp, "reflect101"), False)
    return crops


def align_faces(
    image: torch.Tensor, landmarks: np.ndarray, size: int = FACE_SIZE
) -> tuple[AlignedFaces, torch.Tensor]:
    """:func:`restoration.alignment.align_faces` on the device: the AlignedFaces (crops copied to the
    host, for the CPU parsers and the identity embedder) and the crops as a device tensor."""
    affines = estimate_affines(np.asarray(landmarks, np.float32).reshape(-1, 5, 2), size)
    crops = warp_faces(image, affines, size)
    inverses = np.stack([cv2.invertAffineTransform(m) for m in affines]) if len(affines) else affines.copy()
    return AlignedFaces(crops=crops.cpu().numpy(), affines=affines, inverse_affines=inverses), crops


# --- masks, colour, fidelity ---------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _ellipse_rows(r: int) -> tuple[tuple[int, int], ...]:
    """(row offset, half-width) of cv2's MORPH_ELLIPSE structuring element of radius ``r``."""
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return tuple((dy - r, int(k[dy].sum()) // 2) for dy in range(2 * r + 1) if k[dy].any())


def _erode_ellipse(x: torch.Tensor, r: int) -> torch.Tensor:
    """cv2.erode of a 0/1 float N×1×H×W by the ellipse of radius ``r``; outside the image counts as 1.

    Row by row of the element: a horizontal erosion (a window sum equal to its width, from a cumulative
    sum: O(1) per pixel whatever the width) shifted by the row's offset, all rows AND-ed."""
    h = x.shape[-2]
    eroded: dict[int, torch.Tensor] = {}
    for _, half in _ellipse_rows(r):
        if half not in eroded:
            width = 2 * half + 1
            c = F.pad(F.pad(x, (half, half), value=1.0).cumsum(-1), (1, 0))
            eroded[half] = (c[..., width:] - c[..., :-width] > width - 0.5).to(x.dtype)
    out = torch.ones_like(x)
    for dy, half in _ellipse_rows(r):
        row = eroded[half]  # row dy of the element at pixel y reads image row y + dy
        if dy >= 0:
            out[..., :h - dy, :] = torch.minimum(out[..., :h - dy, :], row[..., dy:, :])
        else:
            out[..., -dy:, :] = torch.minimum(out[..., -dy:, :], row[..., :h + dy, :])
    return out


def part_masks(labels: torch.Tensor, part_classes: Sequence[str]) -> torch.Tensor:
    """:func:`restoration.paste.part_masks`: uint8 N×S×S part maps -> float32 N×S×S soft paste masks."""
    size = labels.shape[-1]
    face_ids = torch.tensor([i for i, n in enumerate(part_classes) if n not in NON_FACE_PARTS],
                            device=labels.device)
    binary = torch.isin(labels.long(), face_ids).float()[:, None]
    soft = gaussian_blur(_erode_ellipse(binary, max(1, size // 48)), size / 64)[:, 0]
    b = 8  # restoration.paste._BORDER
    soft[:, :b], soft[:, -b:], soft[:, :, :b], soft[:, :, -b:] = 0, 0, 0, 0
    soft = soft.clamp_(0.0, 1.0)
    fallback = upload(template_mask(size), labels.device)
    empty = binary.mean(dim=(1, 2, 3)) < 0.02  # the parser saw no face
    return torch.where(empty[:, None, None], fallback, soft)


_RGB2XYZ = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227))
_WHITE = (0.950456, 1.0, 1.088754)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """cv2.COLOR_RGB2Lab of float N×3×H×W in [0, 1]: L in [0, 100], a and b about ±127."""
    lin = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = torch.tensor(_RGB2XYZ, device=rgb.device) / torch.tensor(_WHITE, device=rgb.device)[:, None]
    xyz = torch.einsum("ij,njhw->nihw", m, lin)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(1e-12) ** (1 / 3), 7.787 * xyz + 16 / 116)
    y = xyz[:, 1:2]
    lum = torch.where(y > 0.008856, 116 * f[:, 1:2] - 16, 903.3 * y)
    return torch.cat([lum, 500 * (f[:, 0:1] - f[:, 1:2]), 200 * (f[:, 1:2] - f[:, 2:3])], 1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """cv2.COLOR_Lab2RGB of float N×3×H×W: the inverse of :func:`rgb_to_lab`, clipped to [0, 1]."""
    lum, a, b = lab[:, 0:1], lab[:, 1:2], lab[:, 2:3]
    low = lum <= 8
    y = torch.where(low, lum / 903.3, ((lum + 16) / 116) ** 3)
    fy = torch.where(low, 7.787 * y + 16 / 116, (lum + 16) / 116)
    fxz = torch.cat([a / 500 + fy, fy - b / 200], 1)
    xz = torch.where(fxz > 0.206893, fxz ** 3, (fxz - 16 / 116) / 7.787)
    white = torch.tensor(_WHITE, device=lab.device)
    xyz = torch.cat([xz[:, 0:1] * white[0], y, xz[:, 1:2] * white[2]], 1)
    m = torch.linalg.inv(torch.tensor(_RGB2XYZ, dtype=torch.float64)).float().to(lab.device)
    lin = torch.einsum("ij,njhw->nihw", m, xyz).clamp(0, 1)
    return torch.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)


def match_color(faces: torch.Tensor, references: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """:func:`restoration.paste.match_color` for a batch: uint8 N×512×512×3 restored faces, their input
    crops, float32 N×512×512 masks -> uint8 faces whose Lab mean inside the mask is the input's."""
    small = 128
    w = resize_area(masks[:, None].float(), small, small).flatten(1)
    total = w.sum(1)
    f_lab = rgb_to_lab(_planar(faces) / 255.0)
    f_s = resize_area(f_lab, small, small).flatten(2)
    r8 = resize_area(_planar(references), small, small).round().clamp_(0, 255)  # cv2 rounds to uint8
    r_s = rgb_to_lab(r8 / 255.0).flatten(2)
    wf = (w / total.clamp_min(1e-12)[:, None])[:, None]
    shift = (r_s * wf).sum(-1) - (f_s * wf).sum(-1)  # N×3
    rgb = lab_to_rgb(f_lab + shift[:, :, None, None])
    out = (rgb * 255.0 + 0.5).clamp_(0, 255).floor().to(torch.uint8).permute(0, 2, 3, 1)
    keep = (total < 1.0)[:, None, None, None]
    return torch.where(keep, faces, out)


def mix(a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """cv2.addWeighted(a, w, b, 1 − w, 0) per image of uint8 N×H×W×C batches (``weights``: N floats)."""
    w = weights.float().to(a.device).view(-1, 1, 1, 1)
    return (a.float() * w + b.float() * (1 - w)).round().clamp_(0, 255).to(torch.uint8)


# --- background and paste ------------------------------------------------------------------------------


def bilateral(x: torch.Tensor, d: int = 5, sigma_color: float = 12.0, sigma_space: float = 3.0) -> torch.Tensor:
    """cv2.bilateralFilter of float N×3×H×W in 0..255, unrounded: a circular window of radius d/2,
    colour distance the L1 sum over channels, BORDER_REFLECT_101."""
    r = d // 2
    h, w = x.shape[-2:]
    pad = F.pad(x, (r, r, r, r), mode="reflect")
    num, den = torch.zeros_like(x), torch.zeros_like(x[:, :1])
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy * dy + dx * dx > r * r:
                continue
            nb = pad[..., r + dy:r + dy + h, r + dx:r + dx + w]
            dist = (nb - x).abs().sum(1, keepdim=True).round()  # OpenCV indexes its table by integer L1
            wt = math.exp(-(dx * dx + dy * dy) / (2 * sigma_space ** 2)) * torch.exp(
                -dist * dist / (2 * sigma_color ** 2))
            num += nb * wt
            den += wt
    return num / den


def enhance_background(image: torch.Tensor, scale: int = 2, method: str = "auto") -> torch.Tensor:
    """:func:`restoration.background.enhance_background` of an H×W×3 uint8 tensor."""
    method = resolve_method(method)
    h, w = image.shape[:2]
    out_w, out_h = upscale_size(w, h, scale)
    x = _planar(image)
    if method == "none":
        if scale == 1:
            return image.clone()
        return _interleaved(_resample(x, _lanczos_matrix(h, out_h), _lanczos_matrix(w, out_w)), False)
    x = bilateral(x).round().clamp_(0, 255)
    if scale != 1:
        x = _resample(x, _lanczos_matrix(h, out_h), _lanczos_matrix(w, out_w)).round().clamp_(0, 255)
    blurred = gaussian_blur(x, 0.8 * scale, for_uint8=True).round()
    return _interleaved(x * 1.35 - blurred * 0.35, False)


def paste_faces(
    canvas: torch.Tensor,
    faces: torch.Tensor,
    inverse_affines: np.ndarray,
    masks: torch.Tensor,
    scale: float = 1.0,
) -> torch.Tensor:
    """:func:`restoration.paste.paste_faces`: uint8 H×W×3 canvas, uint8 N×512×512×3 faces, float32
    N×512×512 masks on one device -> the canvas with every face blended in through its mask."""
    out = canvas.clone()
    ch, cw = out.shape[:2]
    for face, inv, mask in zip(faces, inverse_affines, masks, strict=True):
        plan = paste_plan(inv, scale, ch, cw)
        if plan is None:
            continue
        src, src_mask = _planar(face), mask[None, None].float()
        if plan.side is not None:
            src = resize_area(src, plan.side, plan.side).round().clamp_(0, 255)
            src_mask = resize_area(src_mask, plan.side, plan.side)
        x0, y0, x1, y1 = plan.box
        bw, bh = x1 - x0, y1 - y0
        warped = warp_affine(src, plan.matrix, bw, bh, plan.interp, "replicate").round().clamp_(0, 255)
        alpha = warp_affine(src_mask, plan.matrix, bw, bh, cv2.INTER_LINEAR, "zero").clamp_(0.0, 1.0)
        roi = _planar(out[y0:y1, x0:x1])
        blended = roi + (warped - roi) * alpha
        out[y0:y1, x0:x1] = (blended + 0.5).clamp_(0, 255).floor().to(torch.uint8)[0].permute(1, 2, 0)
    return out


def gray(image: torch.Tensor) -> torch.Tensor:
    """RGB -> grey -> RGB of an H×W×3 uint8 tensor (cv2.COLOR_RGB2GRAY weights), as grey inputs leave."""
    y = (image.float() * torch.tensor([0.299, 0.587, 0.114], device=image.device)).sum(-1).round()
    return y.clamp_(0, 255).to(torch.uint8)[..., None].expand(*image.shape).contiguous()


# --- encode --------------------------------------------------------------------------------------------


def device_jpeg_subsampling(device: torch.device) -> str:
    """The chroma subsampling of torchvision's JPEG encoder on ``device``: nvJPEG 4:4:4, libjpeg 4:2:0."""
    return "444" if device.type == "cuda" else "420"


def encode(
    image: torch.Tensor,
    fmt: str,
    *,
    quality: int = 95,
    alpha: np.ndarray | None = None,
    is_gray: bool = False,
) -> bytes:
    """:func:`restoration.image_io.encode` of an H×W×3 uint8 tensor; JPEG on the tensor's device where its
    subsampling matches Pillow's at this quality (4:4:4 at ≥ 90), everything else through image_io."""
    fmt = fmt.lower()
    pillow = "444" if quality >= 90 else "420"
    if (fmt == "jpeg" and not is_gray and image.dtype == torch.uint8
            and device_jpeg_subsampling(image.device) == pillow):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                data = encode_jpeg(image.permute(2, 0, 1).contiguous(), quality=quality)
            return bytes(data.cpu().numpy().tobytes())
        except RuntimeError:  # no nvJPEG encoder in this build or driver: the host's, as for other formats
            pass
    return image_io.encode(image.cpu().numpy(), fmt, quality=quality, alpha=alpha, is_gray=is_gray)


__all__ = [
    "upload", "decode", "warp_faces", "align_faces", "part_masks", "rgb_to_lab", "lab_to_rgb", "match_color",
    "mix", "bilateral", "enhance_background", "paste_faces", "gray", "encode", "resize_area", "gaussian_blur",
    "warp_affine", "device_jpeg_subsampling",
]
