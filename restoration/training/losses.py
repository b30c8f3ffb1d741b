"""Training losses, chosen for what we can compute here (see docs/TRAINING.md, "Losses").

No ImageNet VGG / LPIPS weights exist on our machines, so the "perceptual" term is built from:

* **multi-scale SSIM** (structure and contrast at 3 scales; no weights),
* **identity**: 1 - cosine between MobileFaceNet embeddings of the output and the ground truth, plus an L1
  on its intermediate features (a face-trained network's features as a face-specific perceptual loss),
* **discriminator feature matching** (pix2pixHD): L1 between D's block features on output and ground truth,
* **VGG19** feature L1, only when ``<weights_dir>/vgg/vgg19.pth`` (torchvision's ImageNet state dict) exists.

Adversarial: non-saturating logistic loss, lazy R1 on reals (StyleGAN2).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def l1(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(fake.float(), real.float())


def _gauss_taps(size: int = 11, sigma: float = 1.5, device: torch.device | None = None) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float32, device=device) - size // 2
    g = torch.exp(-0.5 * (r / sigma) ** 2)
    return g / g.sum()


def _blur_separable(t: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Gaussian blur of every channel as two 1-D passes (2·11 instead of 121 multiply-adds a pixel)."""
    c, k = t.shape[1], taps.numel()
    pad = k // 2
    t = F.pad(t, [pad] * 4, mode="reflect")
    t = F.conv2d(t, taps.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(t, taps.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def ssim(fake: torch.Tensor, real: torch.Tensor, taps: torch.Tensor | None = None) -> torch.Tensor:
    """Mean SSIM of images in [-1, 1] (computed on [0, 1], Gaussian window 11 / 1.5 like Wang et al.).

    Always float32 (autocast off): SSIM's variances are differences of nearly equal means, which bf16
    rounds away. The five local moments are blurred in one separable grouped convolution.
    """
    with torch.autocast(fake.device.type, enabled=False):
        x, y = (fake.float() + 1) / 2, (real.float() + 1) / 2
        w = taps if taps is not None else _gauss_taps(device=x.device)
        n = x.shape[1]
        m = _blur_separable(torch.cat([x, y, x * x, y * y, x * y], 1), w)
        mx, my, sxx, syy, sxy = m.split(n, dim=1)
        vx, vy, cxy = sxx - mx**2, syy - my**2, sxy - mx * my
        c1, c2 = 0.01**2, 0.03**2
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        return s.mean()


def ms_ssim_loss(fake: torch.Tensor, real: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """1 - SSIM averaged over ``scales`` dyadic scales (down to 16 px): structure coarse and fine."""
    w = _gauss_taps(device=fake.device)
    total, n = fake.new_zeros((), dtype=torch.float32), 0
    for i in range(scales):
        if i:
            fake, real = F.avg_pool2d(fake, 2), F.avg_pool2d(real, 2)
        if fake.shape[-1] < 16:
            break
        total = total + (1 - ssim(fake, real, w))
        n += 1
    return total / max(n, 1)


class IdentityLoss(nn.Module):
    """Frozen MobileFaceNet: (1 - cosine of embeddings, L1 of normalised intermediate features)."""

    def __init__(self, weights_dir: Path | str, device: torch.device | str = "cpu") -> None:
        super().__init__()
        from restoration.identity import load_torch_mobilefacenet

        self.net = load_torch_mobilefacenet(weights_dir, device)

    def _run(self, faces: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        from restoration.identity import align_ffhq_to_arcface

        net = self.net
        x = align_ffhq_to_arcface(faces.float())
        feats = []
        x = net.dw_conv(net.conv1(x))
        feats.append(x)
        for i, block in enumerate(net.features):
            x = block(x)
            if i in (4, 11, 14):  # ends of the 28, 14 and 7 px stages
                feats.append(x)
        emb = net.bn(net.conv3(net.gdconv(net.conv2(x)))).flatten(1)
        return emb, feats

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ef, ff = self._run(fake)
        with torch.no_grad():
            er, fr = self._run(real)
        id_loss = (1 - F.cosine_similarity(ef, er, dim=1)).mean()
        feat = sum(F.l1_loss(F.normalize(a, dim=1), F.normalize(b, dim=1))
                   for a, b in zip(ff, fr, strict=True))
        return id_loss, feat / len(ff)


class VGGLoss(nn.Module):
    """VGG19 feature L1 (relu1_2 .. relu5_4); only when ImageNet weights are present."""

    LAYERS = (3, 8, 17, 26, 35)
    WEIGHTS = (0.1, 0.1, 1.0, 1.0, 1.0)

    def __init__(self, path: Path, device: torch.device | str = "cpu") -> None:
        super().__init__()
        from torchvision.models import vgg19

        vgg = vgg19()
        vgg.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.body = vgg.features[: self.LAYERS[-1] + 1].eval().requires_grad_(False).to(device)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1))

    @staticmethod
    def available(weights_dir: Path | str) -> Path | None:
        p = Path(weights_dir) / "vgg" / "vgg19.pth"
        return p if p.is_file() else None

    def _feats(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x.float() + 1) / 2 - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i in self.LAYERS:
                out.append(x)
        return out

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            fr = self._feats(real)
        return sum(w * F.l1_loss(a, b) for w, a, b in zip(self.WEIGHTS, self._feats(fake), fr, strict=True))


def feature_matching(fake_feats: list[torch.Tensor], real_feats: list[torch.Tensor]) -> torch.Tensor:
    """L1 between D's features of output and ground truth (reals detached): a learned perceptual metric."""
    pairs = zip(fake_feats, real_feats, strict=True)
    return sum(F.l1_loss(a.float(), b.detach().float()) for a, b in pairs) / len(fake_feats)


def g_adv_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: softplus(-D(G(x)))."""
    return F.softplus(-fake_logits.float()).mean()


def d_adv_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Logistic discriminator loss: softplus(D(fake)) + softplus(-D(real))."""
    return F.softplus(fake_logits.float()).mean() + F.softplus(-real_logits.float()).mean()


def r1_penalty(d: nn.Module, real: torch.Tensor) -> torch.Tensor:
    """E ||∇_x D(x)||² on reals (float32, outside autocast: a double backward in bf16 is too coarse)."""
    real = real.detach().float().requires_grad_(True)
    logits = d(real)
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


__all__ = [
    "l1", "ssim", "ms_ssim_loss", "IdentityLoss", "VGGLoss", "feature_matching", "g_adv_loss", "d_adv_loss",
    "r1_penalty",
]
