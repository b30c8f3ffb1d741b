"""Paired data: deterministic samples whatever the worker count, resumable sampler, mask policy,
split by person."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

from restoration.parsing import NUM_PART_CLASSES
from restoration.training.config import load_config
from restoration.training.data import (
    MASK_MODES,
    MaskPolicy,
    PairDataset,
    StepSampler,
    corrupt_labels,
    read_pack,
)
from restoration.training.loop import Placement, train_loader

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


def test_the_run_loader_gives_the_same_batches_whatever_the_workers_and_the_resume(mini_pack: Path) -> None:
    """The loop's loader: the same batches with 0 or 2 (spawned) workers; started at step 1 as rank 1 of 2,
    the second half of step 1's batch (what a resumed chunk, or a second GPU, trains on)."""
    def batches(workers: int, start: int = 0, rank: int = 0, world: int = 1, n: int = 2
                ) -> list[dict[str, torch.Tensor]]:
        cfg = load_config(None, {"seed": 2, "data": {
            "pack": str(mini_pack), "size": 64, "batch_size": 4, "workers": workers,
            "mask_policy": {"clean": 1, "none": 1, "corrupt": 1, "degraded": 1}}})
        it = iter(train_loader(cfg, start, Placement(torch.device("cpu"), rank, world)))
        return [next(it) for _ in range(n)]

    a, b = batches(0), batches(2)
    for x, y in zip(a, b, strict=True):
        for k in x:
            assert torch.equal(x[k], y[k]), k
    (half,) = batches(0, start=1, rank=1, world=2, n=1)
    for k in half:
        assert torch.equal(half[k], a[1][k][2:]), k
