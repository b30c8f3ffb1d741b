"""Image-quality metrics for validation and evaluation: PSNR, SSIM, NIQE, identity cosine.

* PSNR / SSIM: full-reference, on RGB uint8 (SSIM from scikit-image, Gaussian-weighted like Wang et al.).
* NIQE: no-reference (lower is better), a port of BasicSR's ``calculate_niqe`` (Y channel, 96-px blocks,
  MATLAB-style antialiased bicubic half-scale), with BasicSR's pristine parameters
  ``<weights_dir>/metrics/niqe_pris_params.npz``; so numbers compare with papers that use BasicSR.
* identity cosine: MobileFaceNet embeddings of aligned faces (restoration.identity); ONNX on CPU, or the
  torch copy of the network where onnxruntime is absent (the GPU box).

Only numpy / scipy / scikit-image / OpenCV at import time, so the training loop can use it anywhere.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.ndimage import convolve
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


def _aggd(block: np.ndarray) -> tuple[float, float, float]:
    block = block.ravel()
    left = np.sqrt(np.mean(block[block < 0] ** 2))
    right = np.sqrt(np.mean(block[block > 0] ** 2))
    g = left / right
    rhat = np.mean(np.abs(block)) ** 2 / np.mean(block**2)
    rnorm = rhat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    alpha = _GAM[np.argmin((_R_GAM - rnorm) ** 2)]
    k = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return float(alpha), float(left * k), float(right * k)


def _features(block: np.ndarray) -> list[float]:
    alpha, bl, br = _aggd(block)
    feat = [alpha, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        alpha, bl, br = _aggd(block * np.roll(block, shift, axis=(0, 1)))
        feat += [alpha, (br - bl) * gamma(2 / alpha) / gamma(1 / alpha), bl, br]
    return feat


@lru_cache(maxsize=2)
def _niqe_params(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = np.load(path)
    return p["mu_pris_param"].ravel(), p["cov_pris_param"], p["gaussian_window"]


def niqe(
    img: np.ndarray, weights_dir: Path | str | None = None, crop_border: int = 0, block: int = 96
) -> float:
    """NIQE of a uint8 RGB image (lower = more natural), as BasicSR's ``calculate_niqe(img, crop_border)``."""
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
        mu = convolve(y, window, mode="nearest")
        sigma = np.sqrt(np.abs(convolve(y**2, window, mode="nearest") - mu**2))
        yn = (y - mu) / (sigma + 1)
        b = block // scale
        dist.append(np.array([_features(yn[i * b:(i + 1) * b, j * b:(j + 1) * b])
                              for j in range(nw) for i in range(nh)]))
        if scale == 1:
            y = matlab_imresize(y / 255.0, 0.5) * 255.0
    d = np.concatenate(dist, axis=1)
    mu_d = np.nanmean(d, axis=0)
    cov_d = np.cov(d[~np.isnan(d).any(axis=1)], rowvar=False)
    diff = mu_p - mu_d
    return float(np.sqrt(diff @ np.linalg.pinv((cov_p + cov_d) / 2) @ diff))


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
