"""Synthetic degradations that turn a clean face into a training input.

We have about 300 clean faces and no real (degraded, clean) pairs, so the model only ever learns what
these functions show it. Each kind below has one physical strength parameter with a documented range
(``DEGRADATIONS``); presets (``PRESETS``) sample kinds, strengths and order. Everything is numpy/OpenCV
(no torch, no kornia) so it runs in DataLoader workers and on the GPU box, and every random draw comes
from the ``np.random.Generator`` passed in, so a seed reproduces a sample exactly.

Internally images are float32 RGB in [0, 1]; the public functions take and return uint8 RGB.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

__all__ = [
    "DEGRADATIONS", "PRESETS", "REF_SIZE", "Degradation", "Option", "Preset", "Step",
    "apply", "degrade", "degrade_with_ops", "strength_at",
]

Float = np.ndarray  # H×W×3 float32 in [0, 1]


@dataclass(frozen=True)
class Degradation:
    """One kind of damage: its strength unit and the range from weakest to strongest we ever use."""

    kind: str
    unit: str
    weakest: float
    strongest: float
    note: str


DEGRADATIONS: dict[str, Degradation] = {d.kind: d for d in (
    Degradation("gaussian_blur", "sigma (px)", 0.1, 15.0, "isotropic Gaussian, kernel 41 or 6 sigma"),
    Degradation("aniso_blur", "major sigma (px)", 0.1, 15.0,
                "anisotropic Gaussian: minor sigma 0.1-1x major, random rotation"),
    Degradation("motion_blur", "length (px)", 1.0, 40.0, "straight-line kernel at a random angle"),
    Degradation("defocus_blur", "disk radius (px)", 0.5, 12.0, "uniform disk (lens defocus)"),
    Degradation("resize_blur", "factor", 1.0, 8.0,
                "down then straight back up with random interpolations (soft, aliased)"),
    Degradation("downsample", "factor", 0.8, 30.0,
                "in a chain later steps run at low resolution; back up to size at the end"),
    Degradation("gaussian_noise", "sigma (/255)", 0.0, 50.0, "40% of draws grey (same on all channels)"),
    Degradation("shot_noise", "std at mid-grey (/255)", 0.0, 40.0, "Poisson photon noise, signal dependent"),
    Degradation("impulse_noise", "pixel fraction", 0.0, 0.1, "salt-and-pepper"),
    Degradation("jpeg", "quality", 100.0, 10.0, "OpenCV JPEG encode/decode; lower quality is stronger"),
    Degradation("pixelate", "block (px)", 1.0, 24.0, "area down, nearest up"),
    Degradation("color_jitter", "shift (/255)", 0.0, 40.0, "per-channel offset in [-s, s] (GFPGAN's jitter)"),
    Degradation("gray", "blend", 0.0, 1.0, "blend towards luminance; 1 = fully grey"),
)}


def strength_at(kind: str, t: float) -> float:
    """Strength ``t`` of the way (0 = weakest, 1 = strongest) through the kind's documented range."""
    d = DEGRADATIONS[kind]
    return d.weakest + float(t) * (d.strongest - d.weakest)


# --------------------------------------------------------------------------------------- kernels

def _odd(n: float) -> int:
    n = max(3, int(math.ceil(n)))
    return n if n % 2 else n + 1


def _gauss_size(sigma: float, ksize: int | None) -> int:
    return ksize if ksize else min(_odd(6 * sigma + 1), 121)


def _filter(img: Float, kernel: np.ndarray) -> Float:
    return cv2.filter2D(img, -1, kernel.astype(np.float32) / kernel.sum(), borderType=cv2.BORDER_REFLECT_101)


def _gaussian_blur(img: Float, s: float, rng: np.random.Generator, ksize: int | None = None) -> Float:
    k = _gauss_size(s, ksize)
    return cv2.GaussianBlur(img, (k, k), s, borderType=cv2.BORDER_REFLECT_101)


def _aniso_blur(img: Float, s: float, rng: np.random.Generator, ksize: int | None = None) -> Float:
    s_minor = max(0.1, s * rng.uniform(0.1, 1.0))
    theta = rng.uniform(-math.pi, math.pi)
    k = _gauss_size(s, ksize)
    r = np.arange(k, dtype=np.float64) - k // 2
    xx, yy = np.meshgrid(r, r)
    c, sn = math.cos(theta), math.sin(theta)
    u, v = c * xx + sn * yy, -sn * xx + c * yy
    return _filter(img, np.exp(-0.5 * ((u / s) ** 2 + (v / s_minor) ** 2)))


def _motion_blur(img: Float, length: float, rng: np.random.Generator) -> Float:
    if length < 1.0:
        return img
    theta = rng.uniform(0, math.pi)
    k = _odd(length + 2)
    ss = 4  # draw the line 4x supersampled so short and diagonal kernels stay smooth
    canvas = np.zeros((k * ss, k * ss), np.float32)
    c = (k * ss - 1) / 2
    dx, dy = math.cos(theta) * length * ss / 2, math.sin(theta) * length * ss / 2
    cv2.line(canvas, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, ss, cv2.LINE_AA)
    return _filter(img, cv2.resize(canvas, (k, k), interpolation=cv2.INTER_AREA))


def _defocus_blur(img: Float, radius: float, rng: np.random.Generator) -> Float:
    if radius < 0.5:
        return img
    k = _odd(2 * radius + 1)
    ss = 4
    r = (np.arange(k * ss, dtype=np.float64) + 0.5) / ss - k / 2
    xx, yy = np.meshgrid(r, r)
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float32)
    return _filter(img, cv2.resize(disk, (k, k), interpolation=cv2.INTER_AREA))


_DOWN = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC)
_UP = (cv2.INTER_LINEAR, cv2.INTER_CUBIC)


def _resize(img: Float, w: int, h: int, choices: tuple[int, ...], rng: np.random.Generator) -> Float:
    interp = choices[int(rng.integers(len(choices)))]
    return np.clip(cv2.resize(img, (w, h), interpolation=interp), 0.0, 1.0)


def _down(img: Float, f: float, rng: np.random.Generator) -> Float:
    h, w = img.shape[:2]
    return _resize(img, max(2, round(w / f)), max(2, round(h / f)), _DOWN, rng)


def _resize_blur(img: Float, f: float, rng: np.random.Generator) -> Float:
    h, w = img.shape[:2]
    return _resize(_down(img, f, rng), w, h, _UP, rng)


def _downsample(img: Float, f: float, rng: np.random.Generator, keep_size: bool = True) -> Float:
    return _resize_blur(img, f, rng) if keep_size else _down(img, f, rng)


def _luma(img: Float) -> Float:
    return img @ np.array([0.299, 0.587, 0.114], np.float32)


def _gaussian_noise(img: Float, s: float, rng: np.random.Generator) -> Float:
    shape = img.shape[:2] + (1,) if rng.random() < 0.4 else img.shape
    return img + rng.normal(0.0, s / 255.0, shape).astype(np.float32)


def _shot_noise(img: Float, s: float, rng: np.random.Generator) -> Float:
    """Poisson noise whose std at mid-grey is ``s``/255: photons at white = 0.5 (255/s)^2."""
    if s <= 0:
        return img
    peak = 0.5 * (255.0 / s) ** 2
    if rng.random() < 0.4:  # luminance-only noise, as real sensors after demosaicing often look
        y = _luma(np.clip(img, 0, 1))
        return img + (rng.poisson(y * peak) / peak - y).astype(np.float32)[..., None]
    return (rng.poisson(np.clip(img, 0, 1) * peak) / peak).astype(np.float32)


def _impulse_noise(img: Float, p: float, rng: np.random.Generator) -> Float:
    out = img.copy()
    hit = rng.random(img.shape[:2])
    out[hit < p / 2] = 0.0
    out[(hit >= p / 2) & (hit < p)] = 1.0
    return out


def _jpeg(img: Float, q: float, rng: np.random.Generator) -> Float:
    u8 = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", u8[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(round(q))])
    assert ok, "OpenCV failed to encode a JPEG"
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255.0


def _pixelate(img: Float, block: float, rng: np.random.Generator) -> Float:
    if block < 1.5:
        return img
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, round(w / block)), max(1, round(h / block))),
                       interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def _color_jitter(img: Float, s: float, rng: np.random.Generator) -> Float:
    return img + rng.uniform(-s, s, 3).astype(np.float32) / 255.0


def _gray(img: Float, t: float, rng: np.random.Generator) -> Float:
    return img * (1.0 - t) + _luma(img)[..., None] * t


_FUNCS: dict[str, Callable[..., Float]] = {
    "gaussian_blur": _gaussian_blur, "aniso_blur": _aniso_blur, "motion_blur": _motion_blur,
    "defocus_blur": _defocus_blur, "resize_blur": _resize_blur, "downsample": _downsample,
    "gaussian_noise": _gaussian_noise, "shot_noise": _shot_noise, "impulse_noise": _impulse_noise,
    "jpeg": _jpeg, "pixelate": _pixelate, "color_jitter": _color_jitter, "gray": _gray,
}
assert set(_FUNCS) == set(DEGRADATIONS)


def _to_float(img: np.ndarray) -> Float:
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected uint8 H×W×3 RGB, got {img.dtype} {img.shape}")
    return img.astype(np.float32) / 255.0


def _to_uint8(img: Float) -> np.ndarray:
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def apply(kind: str, img: np.ndarray, strength: float, rng: np.random.Generator, **kwargs: Any) -> np.ndarray:
    """One degradation at an explicit strength (in the kind's unit, see ``DEGRADATIONS``); same size out."""
    if kind not in _FUNCS:
        raise KeyError(f"unknown degradation {kind!r}; known: {sorted(_FUNCS)}")
    return _to_uint8(_FUNCS[kind](_to_float(img), float(strength), rng, **kwargs))


# --------------------------------------------------------------------------------------- presets

@dataclass(frozen=True)
class Option:
    """A kind with the strength range a preset samples it from (uniform, or log-uniform)."""

    kind: str
    lo: float
    hi: float
    log: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict)

    def sample(self, rng: np.random.Generator) -> float:
        if self.log and self.lo > 0:
            return float(math.exp(rng.uniform(math.log(self.lo), math.log(self.hi))))
        return float(rng.uniform(self.lo, self.hi))


@dataclass(frozen=True)
class Step:
    """With probability ``p``, one of ``options`` (chosen uniformly) is applied."""

    p: float
    options: tuple[Option, ...]


@dataclass(frozen=True)
class Preset:
    """Steps in order, or in a random order per image when ``shuffle``."""

    name: str
    steps: tuple[Step, ...]
    shuffle: bool = False


def _one(p: float, kind: str, lo: float, hi: float, **kw: Any) -> Step:
    return Step(p, (Option(kind, lo, hi, **kw),))


PRESETS: dict[str, Preset] = {p.name: p for p in (
    # GFPGAN's training degradation (options/train_gfpgan_v1.yml): blur → down → noise → JPEG → up,
    # then colour jitter (p 0.3, shift 20) and 1% grey.
    Preset("gfpgan", (
        Step(1.0, (Option("gaussian_blur", 0.1, 10, kwargs={"ksize": 41}),
                   Option("aniso_blur", 0.1, 10, kwargs={"ksize": 41}))),
        _one(1.0, "downsample", 0.8, 8),
        _one(1.0, "gaussian_noise", 0, 20),
        _one(1.0, "jpeg", 60, 100),
        _one(0.3, "color_jitter", 0, 20),
        _one(0.01, "gray", 1, 1),
    )),
    # The worst inputs the service should still handle: tiny, blurred, blocky faces.
    Preset("heavy", (
        Step(1.0, (Option("gaussian_blur", 1, 15), Option("aniso_blur", 1, 15))),
        _one(1.0, "downsample", 4, 30, log=True),
        _one(1.0, "gaussian_noise", 0, 20),
        _one(1.0, "jpeg", 30, 80),
    )),
    # Training default: every kind, random subsets, random order, wide ranges (log-uniform where the
    # visual effect is multiplicative) so one batch mixes mild and severe, blur and noise, JPEG and pixels.
    Preset("mixed", (
        Step(0.8, (Option("gaussian_blur", 0.1, 12), Option("aniso_blur", 0.1, 12),
                   Option("motion_blur", 1, 30, log=True), Option("defocus_blur", 0.5, 10, log=True),
                   Option("resize_blur", 1, 8, log=True))),
        _one(0.6, "downsample", 1, 24, log=True),
        Step(0.6, (Option("gaussian_noise", 0, 30), Option("shot_noise", 0, 30),
                   Option("impulse_noise", 0, 0.05))),
        _one(0.7, "jpeg", 25, 100),
        _one(0.05, "pixelate", 2, 16),
        _one(0.3, "color_jitter", 0, 20),
        _one(0.02, "gray", 1, 1),
    ), shuffle=True),
)}


#: kinds whose strength is a length in pixels, and those that are a resize factor
_PIXEL_KINDS = frozenset({"gaussian_blur", "aniso_blur", "motion_blur", "defocus_blur", "pixelate"})
_FACTOR_KINDS = frozenset({"resize_blur", "downsample"})
REF_SIZE = 512  # preset strengths are for a 512 aligned face


def _scaled(kind: str, s: float, kwargs: dict[str, Any], k: float) -> tuple[float, dict[str, Any]]:
    """Strength and kwargs for an image ``k`` times the reference size, so that a 128-px face is damaged
    like the same face at 512 then shrunk (a factor-8 down-sampling of 512 leaves 64 px: factor 2 at 128)."""
    if k == 1.0:
        return s, kwargs
    if "ksize" in kwargs:
        kwargs = dict(kwargs, ksize=_odd(kwargs["ksize"] * k))
    if kind in _PIXEL_KINDS:
        return s * k, kwargs
    if kind in _FACTOR_KINDS and s > 1.0:
        return max(1.0, s * k), kwargs
    return s, kwargs


def degrade_with_ops(
    img: np.ndarray, preset: str | Preset = "mixed", rng: np.random.Generator | None = None
) -> tuple[np.ndarray, list[tuple[str, float]]]:
    """Like ``degrade``, also returning the ``(kind, strength)`` applied, in order (for tests and logs).

    Strengths are sampled (and reported) for a ``REF_SIZE`` face; on smaller or larger images the pixel
    lengths and resize factors are scaled with the image side.
    """
    p = PRESETS[preset] if isinstance(preset, str) else preset
    rng = rng if rng is not None else np.random.default_rng()
    h, w = img.shape[:2]
    k = min(h, w) / REF_SIZE
    x = _to_float(img)
    steps = [p.steps[i] for i in rng.permutation(len(p.steps))] if p.shuffle else list(p.steps)
    ops: list[tuple[str, float]] = []
    for step in steps:
        if rng.random() >= step.p:
            continue
        opt = step.options[int(rng.integers(len(step.options)))]
        s = opt.sample(rng)
        s_px, kw = _scaled(opt.kind, s, opt.kwargs, k)
        if opt.kind == "downsample":
            kw = dict(kw, keep_size=False)
        x = _FUNCS[opt.kind](x, s_px, rng, **kw)
        if opt.kind != "jpeg":  # noise may leave [0, 1]; clip like a camera would before the next step
            x = np.clip(x, 0.0, 1.0)
        ops.append((opt.kind, s))
    if x.shape[:2] != (h, w):
        x = _resize(x, w, h, _UP, rng)
    return _to_uint8(x), ops


def degrade(
    img: np.ndarray, preset: str | Preset = "mixed", rng: np.random.Generator | None = None
) -> np.ndarray:
    """A randomly degraded copy (same size, uint8 RGB) of a clean uint8 RGB face; seeded by ``rng``."""
    return degrade_with_ops(img, preset, rng)[0]
