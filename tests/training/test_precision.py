"""Precision by hardware, and the float32 structure loss that runs under any autocast."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from restoration.precision import cpu_bf16_native, resolve_precision
from restoration.training import losses as L


def test_auto_precision_follows_the_cpu() -> None:
    assert resolve_precision("auto", "cpu") == ("bf16" if cpu_bf16_native() else "fp32")
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp16", "cpu")


def _ssim_2d(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Textbook SSIM with the full 11x11 Gaussian window (the reference for the separable one)."""
    r = torch.arange(11, dtype=torch.float32) - 5
    g = torch.exp(-0.5 * (r / 1.5) ** 2)
    g = g / g.sum()
    w = (g[:, None] * g[None, :]).expand(3, 1, 11, 11)
    x, y = (x + 1) / 2, (y + 1) / 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(t, [5] * 4, mode="reflect"), w, groups=3)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    return (((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))).mean()


def test_separable_ssim_matches_the_2d_window_even_under_bf16_autocast() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    y = (x + 0.2 * torch.randn(2, 3, 64, 64, generator=g)).clamp(-1, 1)
    ref = _ssim_2d(x, y)
    assert abs(float(L.ssim(x, y)) - float(ref)) < 1e-5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert abs(float(L.ssim(x, y)) - float(ref)) < 1e-5
    assert abs(float(L.ssim(x, x)) - 1.0) < 1e-5
