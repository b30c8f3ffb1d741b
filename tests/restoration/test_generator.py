"""The generator: shapes, mask-free path, checkpoints, determinism, autocast."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from restoration.generator import (
    Generator,
    GeneratorConfig,
    load_generator,
    read_generator_metadata,
    save_generator,
)
from restoration.parsing import NUM_PART_CLASSES


def _net(size: int = 64, seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    g = Generator(GeneratorConfig.tiny(size=size))
    # make the zero-initialised style maps and noise non-trivial so the tests exercise them
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.startswith("style_maps") or "noise" in name:
                p.normal_(0, 0.05)
    return g.eval()


def _inputs(n: int = 2, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    labels = torch.randint(0, NUM_PART_CLASSES, (n, size, size), generator=g)
    mask = torch.nn.functional.one_hot(labels, NUM_PART_CLASSES).permute(0, 3, 1, 2).float()
    return x, mask


def test_forward_shapes_with_and_without_mask() -> None:
    g = _net()
    x, mask = _inputs()
    with torch.no_grad():
        y = g(x, mask)
        y0 = g(x, None)
        y_half = g(x, mask[:, :, ::2, ::2])  # a coarser mask is resized
    assert y.shape == y0.shape == y_half.shape == x.shape
    assert torch.isfinite(y).all() and not torch.allclose(y, y0)


def test_tiny_512_forward_backward() -> None:
    g = Generator(GeneratorConfig.tiny()).train()
    x, mask = _inputs(1, 512)
    y = g(x, mask)
    y.square().mean().backward()
    assert y.shape == (1, 3, 512, 512)
    assert all(p.grad is not None for n, p in g.named_parameters() if not n.startswith("style_maps"))


def test_fused_inference_matches_training_path() -> None:
    g = _net()
    x, mask = _inputs()
    with torch.no_grad():
        y_eval = g(x, mask, noise_mode="none")
        y_train = g.train()(x, mask, noise_mode="none")
    torch.testing.assert_close(y_eval, y_train, atol=1e-4, rtol=1e-4)


def test_fixed_noise_is_deterministic_and_random_is_not() -> None:
    g = _net()
    x, mask = _inputs()
    with torch.no_grad():
        assert torch.equal(g(x, mask), g(x, mask))
        assert not torch.equal(g(x, mask, noise_mode="random"), g(x, mask, noise_mode="random"))


@pytest.mark.parametrize("fp16", [False, True])
def test_save_load_round_trip(tmp_path: Path, fp16: bool) -> None:
    g = _net()
    if fp16:  # the reference is the fp16-rounded network
        with torch.no_grad():
            for p in g.parameters():
                p.copy_(p.half().float())
    path = tmp_path / "g.safetensors"
    save_generator(g, path, model_version="gen-test-1.2.3", fp16=fp16)
    g2, version = load_generator(path)
    assert version == "gen-test-1.2.3" and not g2.training
    assert g2.config == g.config
    assert read_generator_metadata(path)["model_version"] == "gen-test-1.2.3"
    x, mask = _inputs()
    with torch.no_grad():
        assert torch.equal(g(x, mask), g2(x, mask))


def test_bf16_autocast_and_channels_last_on_cpu() -> None:
    g = _net()
    x, mask = _inputs()
    with torch.no_grad():
        ref = g(x, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = g(x, mask)
        g_cl = g.to(memory_format=torch.channels_last)
        y_cl = g_cl(x.contiguous(memory_format=torch.channels_last),
                    mask.contiguous(memory_format=torch.channels_last))
    assert torch.isfinite(y.float()).all() and (y.float() - ref).abs().mean() < 0.05
    torch.testing.assert_close(y_cl, ref, atol=1e-4, rtol=1e-4)


def test_config_presets_and_validation() -> None:
    presets = ("tiny", "small", "base")
    sizes = {name: Generator(getattr(GeneratorConfig, name)()).num_parameters() for name in presets}
    assert sizes["tiny"] < 1e6 < sizes["small"] < 6e6 < sizes["base"] and 2 * sizes["base"] < 24e6
    assert GeneratorConfig.from_json(GeneratorConfig.small().to_json()) == GeneratorConfig.small()
    with pytest.raises(ValueError):
        GeneratorConfig(size=500)
    with pytest.raises(ValueError):
        _net()(torch.zeros(1, 3, 32, 32))
