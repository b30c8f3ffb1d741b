"""One contract between training and serving: a face reaches the generator as the same tensors whether the
training data loader or the serving pipeline prepares it (restoration/generator.py to_model /
generator_mask / from_model)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from restoration.degrade import Preset
from restoration.generator import from_model, generator_mask, to_model
from restoration.parsing import NUM_PART_CLASSES
from restoration.pipeline import Restorer
from restoration.training.data import Augment, MaskPolicy, PairDataset, read_labels, read_pack, read_rgb

NO_AUGMENT = Augment(flip=0.0, rotate_deg=0.0, scale=(1.0, 1.0), shift=0.0, color=0.0)


class _Capture(torch.nn.Module):
    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        self.seen = (x.clone(), None if mask is None else mask.clone())
        return x


def test_a_face_reaches_the_generator_identically_in_training_and_serving(mini_pack: Path) -> None:
    entry = read_pack(mini_pack, "train")[0]
    face, labels = read_rgb(entry.face, 64), read_labels(entry.mask, 64)

    # training: the data loader, with nothing random (no degradation, no augmentation, the clean mask)
    ds = PairDataset([entry], 64, Preset("none", (), False), 0, MaskPolicy(clean=1.0), NO_AUGMENT)
    sample = ds[(0, 0)]
    # serving: the pipeline's generator call, on the same aligned face and parsed labels
    capture = _Capture()
    served = SimpleNamespace(generator=capture, device=torch.device("cpu"), uses_mask=True,
                             _autocast=lambda: torch.autocast("cpu", enabled=False), _sync=lambda: None)
    out = Restorer._generate(served, face[None], labels[None])
    x, mask = capture.seen

    assert torch.equal(sample["gt"][None], x) and torch.equal(sample["lq"][None], x)
    assert torch.equal(sample["mask"][None], mask)
    assert mask.shape == (1, NUM_PART_CLASSES, 32, 32) and torch.allclose(mask.sum(1), torch.ones(1, 32, 32))
    assert x.min() >= -1 and x.max() <= 1
    # and back: the served output of an identity generator is the input face, byte for byte
    assert np.array_equal(out[0], face) and np.array_equal(from_model(to_model(face))[0], face)
    assert torch.equal(generator_mask(labels), mask)
