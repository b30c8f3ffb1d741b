"""StyleGAN2-style residual discriminator (the adversarial half of the training only; never shipped).

Residual blocks with 2x average-pool down-sampling, a minibatch-stddev layer (so D can see a lack of
variety across the batch) and a small head. Every layer has StyleGAN's equalised learning rate: with
PyTorch's default init in the stem and head (version 1), the logits barely depended on the image (input
gradient ~1e-7 at init), Adam's lr 2e-3 steps were ~10 % of those small weights, and D sat at chance
(loss ln 4, R1 ~1e-8) through the first GAN chunk — an adversarial term that taught nothing.
Sized by ``DiscriminatorConfig`` so the checkpoint that travels between chunks stays small.
``forward(..., features=True)`` also returns every block's output, for the feature-matching loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from restoration.generator import EqualConv2d, EqualLinear, ResBlockDown  # as in the encoder


@dataclass(frozen=True)
class DiscriminatorConfig:
    size: int = 512
    ch_base: int = 16  # channels at full resolution, doubled per halving ...
    ch_max: int = 128  # ... up to this
    min_res: int = 4
    mbstd_group: int = 4

    def ch(self, res: int) -> int:
        return min(self.ch_max, self.ch_base * self.size // res)


def minibatch_stddev(x: torch.Tensor, group: int) -> torch.Tensor:
    """Append one channel: the std of features across groups of samples (StyleGAN2)."""
    n, c, h, w = x.shape
    g = min(group, n)
    while n % g:
        g -= 1
    y = x.float().reshape(g, n // g, c, h, w)
    y = (y.var(0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # n/g
    y = y.to(x.dtype).reshape(1, n // g, 1, 1, 1).expand(g, -1, 1, h, w).reshape(n, 1, h, w)
    return torch.cat([x, y], 1)


class Discriminator(nn.Module):
    """N×3×S×S in [-1, 1] -> N logits (real > 0)."""

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        cfg = config or DiscriminatorConfig()
        self.config = cfg
        self.stem = EqualConv2d(3, cfg.ch(cfg.size), 1)
        blocks, res = [], cfg.size
        while res > cfg.min_res:
            blocks.append(ResBlockDown(cfg.ch(res), cfg.ch(res // 2)))
            res //= 2
        self.blocks = nn.ModuleList(blocks)
        c = cfg.ch(cfg.min_res)
        self.head_conv = EqualConv2d(c + 1, c, 3, gain=math.sqrt(2))
        self.head_fc = EqualLinear(c * cfg.min_res**2, c)
        self.head_out = EqualLinear(c, 1)

    def forward(
        self, x: torch.Tensor, features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        h = F.leaky_relu(self.stem(x), 0.2)
        feats = []
        for block in self.blocks:
            h = block(h)
            feats.append(h)
        h = F.leaky_relu(self.head_conv(minibatch_stddev(h, self.config.mbstd_group)), 0.2)
        logits = self.head_out(F.leaky_relu(self.head_fc(h.flatten(1)), 0.2) * math.sqrt(2)).squeeze(1)
        return (logits, feats) if features else logits


__all__ = ["Discriminator", "DiscriminatorConfig", "minibatch_stddev"]
