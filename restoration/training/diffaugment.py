"""Differentiable augmentation of everything the discriminator sees (DiffAugment, Zhao et al. 2020).

With a few hundred training faces a discriminator memorises the reals and its gradients stop teaching
the generator anything general. DiffAugment applies the same random, differentiable transforms to real
and generated images before every D pass (generator step and discriminator step alike), so D can only
tell them apart by what survives the transforms — and the generator still gets gradients through them.
Policies as in mit-han-lab/data-efficient-gans: ``color`` (brightness, saturation, contrast),
``translation`` (up to 1/8 of the side, zero-filled), ``cutout`` (a zeroed square of half the side).

Images are in [-1, 1]. ``pairs=2`` gives the i-th image of each half of the batch the same transform, so
feature matching compares a fake and its real under one view.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"color,translation"`` → its parts; raises ``ValueError`` on an unknown part."""
    parts = tuple(p.strip() for p in policy.split(",") if p.strip())
    bad = set(parts) - set(POLICIES)
    if bad:
        raise ValueError(f"unknown DiffAugment policy {', '.join(sorted(bad))}; choose from {', '.join(POLICIES)}")
    return parts


def diff_augment(x: torch.Tensor, policy: str, pairs: int = 1) -> torch.Tensor:
    """``x`` (N×C×H×W, [-1, 1]) transformed by ``policy``; N must be a multiple of ``pairs``."""
    parts = parse_policy(policy)
    if not parts:
        return x
    n = x.shape[0] // pairs

    def rand(*shape: int) -> torch.Tensor:  # one draw per image of a half, repeated over the halves
        return torch.rand(n, *shape, device=x.device, dtype=torch.float32).repeat(pairs, *([1] * len(shape)))

    if "color" in parts:
        x = x + (rand(1, 1, 1).to(x.dtype) - 0.5)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (rand(1, 1, 1).to(x.dtype) * 2) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * (rand(1, 1, 1).to(x.dtype) + 0.5) + mean
    h, w = x.shape[2], x.shape[3]
    if "translation" in parts:
        sy, sx = h // 8, w // 8
        dy = (rand() * (2 * sy + 1)).long() - sy
        dx = (rand() * (2 * sx + 1)).long() - sx
        padded = F.pad(x, [sx, sx, sy, sy])
        x = torch.stack([padded[i, :, sy - int(dy[i]):sy - int(dy[i]) + h, sx - int(dx[i]):sx - int(dx[i]) + w]
                         for i in range(x.shape[0])])
    if "cutout" in parts:
        ch, cw = h // 2, w // 2  # the square's centre is uniform over the image; it may stick out
        top = (rand() * (h + 1)).long().clamp(max=h) - ch // 2
        left = (rand() * (w + 1)).long().clamp(max=w) - cw // 2
        ys = torch.arange(h, device=x.device).view(1, h, 1)
        xs = torch.arange(w, device=x.device).view(1, 1, w)
        top, left = top.view(-1, 1, 1), left.view(-1, 1, 1)
        hole = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)
        x = x * (~hole).unsqueeze(1).to(x.dtype)
    return x
