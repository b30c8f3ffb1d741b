"""Paired data: deterministic samples whatever the worker count, resumable sampler, mask policy,
split by person."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from restoration.parsing import NUM_PART_CLASSES
from restoration.training.data import (
    MASK_MODES,
    MaskPolicy,
    PairDataset,
    StepSampler,
    corrupt_labels,
    read_pack,
    worker_init,
)

ROOT = Path(__file__).resolve().parents[2]


def _make_pack_module():
    spec = importlib.util.spec_from_file_location("make_pack", ROOT / "scripts" / "make_pack.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_split_is_by_person_and_stable() -> None:
    mp = _make_pack_module()
    assert mp.person_id("london_neutral", "012_03") == mp.person_id("london_smiling", "012_08")
    people = [f"london_{i:03d}" for i in range(400)]
    val = [p for p in people if mp.split_of(p) == "val"]
    assert 0.10 < len(val) / len(people) < 0.20
    assert val == [p for p in people if mp.split_of(p) == "val"]  # deterministic


def test_sample_shapes_and_mask_modes(mini_pack: Path) -> None:
    entries = read_pack(mini_pack, "train")
    assert len(entries) == 8 and all(e.split == "train" for e in entries)
    for mode in MASK_MODES:
        ds = PairDataset(entries, 64, mask_policy=MaskPolicy(**{m: float(m == mode) for m in MASK_MODES}))
        s = ds[(0, 3)]
        assert s["lq"].shape == s["gt"].shape == (3, 64, 64)
        assert float(s["lq"].min()) >= -1 and float(s["gt"].max()) <= 1
        assert s["mask"].shape == (NUM_PART_CLASSES, 32, 32)
        assert MASK_MODES[int(s["mask_mode"])] == mode
        if mode == "none":
            assert float(s["mask"].abs().sum()) == 0
        else:
            assert torch.allclose(s["mask"].sum(0), torch.ones(32, 32), atol=1e-5)


def test_corrupt_labels_changes_mask() -> None:
    from restoration.parsing import template_prior

    lab = template_prior(128)
    changed = [not np.array_equal(corrupt_labels(lab, np.random.default_rng(s)), lab) for s in range(10)]
    assert sum(changed) >= 8


def test_sampler_resumes_and_splits_ranks() -> None:
    full = iter(StepSampler(10, 4, seed=1))
    batches = [next(full) for _ in range(6)]
    resumed = iter(StepSampler(10, 4, seed=1, start_step=3))
    assert [next(resumed) for _ in range(3)] == batches[3:]
    # every face once per epoch
    faces = [f for b in batches for f, _ in b][:10]
    assert sorted(faces) == list(range(10))
    r0, r1 = iter(StepSampler(10, 2, 1, 0, 0, 2)), iter(StepSampler(10, 2, 1, 0, 1, 2))
    assert next(r0) + next(r1) == batches[0]  # two ranks of batch 2 == one process of batch 4


def test_same_batches_with_and_without_workers(mini_pack: Path) -> None:
    ds = PairDataset(read_pack(mini_pack, "train"), 64, mask_policy=MaskPolicy(1, 1, 1, 1))

    def first(workers: int) -> list[dict[str, torch.Tensor]]:
        # spawn, as loop.py does: forked workers hang when earlier tests in this process started
        # OpenCV / onnxruntime thread pools
        dl = DataLoader(ds, batch_sampler=StepSampler(len(ds), 4, seed=2), num_workers=workers,
                        worker_init_fn=worker_init, multiprocessing_context="spawn" if workers else None)
        it = iter(dl)
        return [next(it) for _ in range(2)]

    a, b = first(0), first(2)
    for x, y in zip(a, b, strict=True):
        for k in x:
            assert torch.equal(x[k], y[k]), k
