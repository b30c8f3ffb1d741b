"""DiffAugment on the discriminator's inputs: one view per fake/real pair, gradients flow, typos refused."""

from __future__ import annotations

import pytest
import torch

from restoration.training.config import load_config
from restoration.training.diffaugment import diff_augment

POLICY = "color,translation,cutout"


def test_pairs_share_a_view_and_views_differ() -> None:
    torch.manual_seed(0)
    fake, real = torch.rand(4, 3, 32, 32) * 2 - 1, torch.rand(4, 3, 32, 32) * 2 - 1
    out = diff_augment(torch.cat([fake, fake]), POLICY, pairs=2)
    assert torch.equal(out[:4], out[4:]), "the i-th fake and the i-th real get the same transform"
    a, b = diff_augment(real, POLICY), diff_augment(real, POLICY)
    assert not torch.equal(a, b) and not torch.equal(a, real)
    assert (out == 0).flatten(1).float().mean(1).min() > 0.1, "cutout (and zero-filled translation) blank pixels"


def test_gradients_reach_the_generator_output() -> None:
    x = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    diff_augment(x, POLICY).square().sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_off_is_the_identity_and_a_typo_stops_the_run() -> None:
    x = torch.rand(2, 3, 8, 8)
    assert diff_augment(x, "") is x
    cfg = load_config("restoration/training/configs/cpu512_people.yaml")
    assert cfg.loss.diffaug == POLICY
    with pytest.raises(ValueError, match="colr"):
        load_config(None, {"loss": {"diffaug": "colr,cutout"}})
