"""Image-quality metrics for validation and evaluation: PSNR, SSIM, NIQE, colour, outline, identity.

* PSNR / SSIM: full-reference, on RGB uint8 (SSIM from scikit-image, Gaussian-weighted like Wang et al.).
* NIQE: no-reference (lower is better), a port of BasicSR's ``calculate_niqe`` (Y channel, 96-px blocks,
  MATLAB-style antialiased bicubic half-scale), with BasicSR's pristine parameters
  ``<weights_dir>/metrics/niqe_pris_params.npz``; so numbers compare with papers that use BasicSR.
* colour shift and outline edge: the issue-18 artefacts as figures: ΔE of the whole crop's mean colour, and
  how much more an output's edges gather on its part map's region borders than the truth's (ring, wavy hair).
* identity cosine: MobileFaceNet embeddings of aligned faces (restoration.identity); ONNX on CPU, or the
  torch copy of the network where onnxruntime is absent (the GPU box).

Only numpy / scipy / scikit-image / OpenCV at import time, so the training loop can use it anywhere.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from scipy.special import gamma

from restoration.paths import default_weights_dir


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (inf when identical)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * math.log10(255.0**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two uint8 RGB (or grey) images."""
    from skimage.metrics import structural_similarity

    kw = {"channel_axis": -1} if a.ndim == 3 else {}
    return float(structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, **kw))


# ------------------------------------------------------------------------------------------- NIQE

def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def _resize_matrix(n_in: int, scale: float) -> np.ndarray:
    """MATLAB imresize (bicubic, antialiasing) along one axis as an out×in matrix, symmetric borders."""
    n_out = int(math.ceil(n_in * scale))
    width = 4.0 / scale if scale < 1 else 4.0
    x = np.arange(1, n_out + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    p = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(p)[None, :]  # 1-based
    d = u[:, None] - idx
    w = scale * _cubic(d * scale) if scale < 1 else _cubic(d)
    w /= w.sum(1, keepdims=True)
    k = idx.astype(np.int64) - 1
    k = np.where(k < 0, -k - 1, k)
    k = np.where(k >= n_in, 2 * n_in - 1 - k, k)
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.repeat(np.arange(n_out), p), k.ravel()), w.ravel())
    return m


def matlab_imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """2-D float image resized like MATLAB's ``imresize(img, scale)`` (bicubic, antialiased)."""
    return _resize_matrix(img.shape[0], scale) @ img @ _resize_matrix(img.shape[1], scale).T


_GAM = np.arange(0.2, 10.001, 0.001)
_R_GAM = gamma(2 / _GAM) ** 2 / (gamma(1 / _GAM) * gamma(3 / _GAM))


def _aggd(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric generalised Gaussian fits of N blocks (N×B×B) at once: alpha, left and right scale."""
    v = blocks.reshape(len(blocks), -1)
    sq = v**2
    with np.errstate(invalid="ignore", divide="ignore"):  # a block with no negative (positive) value: NaN
        left = np.sqrt(np.where(v < 0, sq, 0).sum(1) / (v < 0).sum(1))
        right = np.sqrt(np.where(v > 0, sq, 0).sum(1) / (v > 0).sum(1))
        g = left / right
        rhat = np.abs(v).mean(1) ** 2 / sq.mean(1)
        rnorm = rhat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    alpha = _GAM[np.argmin((_R_GAM[None, :] - rnorm[:, None]) ** 2, axis=1)]
    k = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, left * k, right * k


def _features(blocks: np.ndarray) -> np.ndarray:
    """BasicSR's 18 NIQE features of each of N blocks (N×B×B) -> N×18."""
    alpha, bl, br = _aggd(blocks)
    feat = [alpha, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        alpha, bl, br = _aggd(blocks * np.roll(blocks, shift, axis=(1, 2)))
        feat += [alpha, (br - bl) * gamma(2 / alpha) / gamma(1 / alpha), bl, br]
    return np.stack(feat, axis=1)


def _local_normalise(y: np.ndarray, window: np.ndarray) -> np.ndarray:
    """MSCN coefficients: (y − μ) / (σ + 1) with the Gaussian ``window``, borders replicated
    (scipy.ndimage's ``nearest``; cv2.filter2D correlates, the symmetric window makes that a convolution)."""
    mu = cv2.filter2D(y, cv2.CV_64F, window, borderType=cv2.BORDER_REPLICATE)
    sigma = np.sqrt(np.abs(cv2.filter2D(y * y, cv2.CV_64F, window, borderType=cv2.BORDER_REPLICATE) - mu**2))
    return (y - mu) / (sigma + 1)


@lru_cache(maxsize=2)
def _niqe_params(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = np.load(path)
    return p["mu_pris_param"].ravel(), p["cov_pris_param"], p["gaussian_window"]


def niqe(
    img: np.ndarray, weights_dir: Path | str | None = None, crop_border: int = 0, block: int = 96
) -> float:
    """NIQE of a uint8 RGB image (lower = more natural), as BasicSR's ``calculate_niqe(img, crop_border)``;
    NaN for an image with fewer than two blocks that have statistics (a flat image)."""
    path = Path(weights_dir or default_weights_dir()) / "metrics" / "niqe_pris_params.npz"
    if not path.is_file():
        from restoration.errors import WeightsMissing

        raise WeightsMissing(f"NIQE needs {path} (BasicSR's niqe_pris_params.npz)")
    mu_p, cov_p, window = _niqe_params(str(path))
    x = img.astype(np.float64) / 255.0
    y = x @ np.array([65.481, 128.553, 24.966]) + 16.0 if x.ndim == 3 else x * 255.0  # BT.601 Y, [16, 235]
    if crop_border:
        y = y[crop_border:-crop_border, crop_border:-crop_border]
    y = y.round()
    h, w = y.shape
    nh, nw = h // block, w // block
    if nh == 0 or nw == 0:
        raise ValueError(f"NIQE needs at least {block}x{block} pixels, got {w}x{h}")
    y = y[: nh * block, : nw * block]
    dist = []
    for scale in (1, 2):
        yn = _local_normalise(y, window)
        b = block // scale
        blocks = yn[: nh * b, : nw * b].reshape(nh, b, nw, b).transpose(2, 0, 1, 3).reshape(-1, b, b)
        dist.append(_features(blocks))  # blocks column by column, as BasicSR's loop
        if scale == 1:
            y = matlab_imresize(y / 255.0, 0.5) * 255.0
    d = np.concatenate(dist, axis=1)
    valid = d[~np.isnan(d).any(axis=1)]  # BasicSR: the mean over every block's features, the covariance
    with np.errstate(invalid="ignore"):  # over the blocks whose features are all defined
        mu_d = np.nanmean(d, axis=0) if len(valid) else np.full(d.shape[1], np.nan)
    if len(valid) < 2 or np.isnan(mu_d).any():  # flat blocks have no statistics: not measurable
        return float("nan")
    diff = mu_p - mu_d
    return float(np.sqrt(diff @ np.linalg.pinv((cov_p + np.cov(valid, rowvar=False)) / 2) @ diff))


# ----------------------------------------------------------------------------------------- artefacts


def colour_shift(out: np.ndarray, ref: np.ndarray) -> float:
    """CIE76 ΔE between the mean Lab colours of two uint8 RGB images: a whole-crop colour shift (a face and
    background gone pale or grey) moves the mean; detail does not (≈ 2.3 is a just-noticeable difference)."""
    def mean_lab(img: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab).reshape(-1, 3).mean(0)

    return float(np.linalg.norm(mean_lab(out) - mean_lab(ref)))


def gradient_magnitude(img: np.ndarray) -> np.ndarray:
    """Per-pixel Sobel gradient magnitude (float32 H×W) of a uint8 RGB image's grey level."""
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))


def outline_edge(out: np.ndarray, ref: np.ndarray, band: np.ndarray) -> float:
    """How much more an output's edges gather on a part map's outlines than the truth's do: the mean
    gradient of ``out`` (uint8 RGB) inside ``band`` (parsing.outlines of the mask the generator was given)
    over its mean gradient on the whole crop, divided by the same ratio for ``ref``. 1 = the outlines are as
    marked as in the truth; above 1 the output draws its condition's outline: the face-oval ring and wavy
    hair edges (issue 18). Blur-insensitive to first order: a soft output lowers both means. NaN for an
    empty band or a flat image."""
    def gathered(img: np.ndarray) -> float:
        grad = gradient_magnitude(img)
        whole = float(grad.mean())
        return float(grad[band].mean()) / whole if band.any() and whole > 0 else float("nan")

    return gathered(out) / gathered(ref)


# --------------------------------------------------------------------------------------- identity

class IdentityScorer:
    """Cosine between identity embeddings of aligned faces (N×S×S×3 uint8), ONNX or torch backend."""

    def __init__(self, weights_dir: Path | str | None = None, device: str = "cpu") -> None:
        wd = Path(weights_dir or default_weights_dir())
        try:
            from restoration.identity import IdentityEmbedder

            self._onnx = IdentityEmbedder(wd)
        except ImportError:  # no onnxruntime (GPU box): the same network in torch
            import torch

            from restoration.identity import load_torch_mobilefacenet

            self._onnx = None
            self._torch, self._device = load_torch_mobilefacenet(wd, device), torch.device(device)

    def embed(self, faces: np.ndarray) -> np.ndarray:
        if self._onnx is not None:
            return self._onnx.embed_aligned(faces)
        import torch

        from restoration.identity import align_ffhq_to_arcface

        x = torch.from_numpy(np.ascontiguousarray(faces.transpose(0, 3, 1, 2))).float().to(self._device)
        with torch.no_grad():
            e = self._torch(align_ffhq_to_arcface(x / 127.5 - 1)).cpu().numpy()
        return e / (np.linalg.norm(e, axis=1, keepdims=True) + 1e-12)

    def cosine(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Row-wise cosine of the embeddings of two batches of aligned faces."""
        ea, eb = self.embed(a), self.embed(b)
        return (ea * eb).sum(1)


__all__ = ["psnr", "ssim", "niqe", "matlab_imresize", "IdentityScorer"]
