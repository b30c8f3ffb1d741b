"""Paired training data: clean aligned faces from a pack (scripts/make_pack.py), degraded on the fly.

Why on the fly: with ~250 training faces a fixed set of degraded copies is memorised within minutes; a
fresh random degradation (and augmentation) for every sample means the model sees each face damaged in
many ways per epoch (``repeats``) and never the same pair twice.

Determinism (for exact resume and for DDP): sample number ``c`` of the run (global, over steps and ranks)
is fully decided by ``(seed, c)``: which face (a per-epoch permutation) and every random draw of its
augmentation and degradation. So a run resumed at step k sees the same batches as one that never stopped,
whatever the number of DataLoader workers.

Only numpy/OpenCV/torch here (no kornia/facexlib): this runs in DataLoader workers on the GPU box.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from restoration.degrade import Preset, degrade_with_ops
from restoration.generator import generator_mask, to_model
from restoration.parsing import NUM_PART_CLASSES

MASK_MODES = ("clean", "none", "corrupt", "degraded")


@dataclass(frozen=True)
class MaskPolicy:
    """Probabilities of each mask mode per sample (normalised).

    Stage 1 trains with the clean face's mask; the fine-tuning stage mixes in no mask (zeros: the generator's
    mask-free path), corrupted masks (erode/dilate, shift, class swaps) and masks the parser produced on
    degraded copies, so that the imperfect masks met at inference still restore well.
    """

    clean: float = 1.0
    none: float = 0.0
    corrupt: float = 0.0
    degraded: float = 0.0

    def sample(self, rng: np.random.Generator) -> str:
        p = np.array([self.clean, self.none, self.corrupt, self.degraded], np.float64)
        return MASK_MODES[int(rng.choice(4, p=p / p.sum()))]


@dataclass(frozen=True)
class Augment:
    """Augmentations for scarce data, applied to the clean face and its mask before degradation."""

    flip: float = 0.5
    rotate_deg: float = 4.0
    scale: tuple[float, float] = (0.9, 1.1)  # zoom in/out around the template (crops at several scales)
    shift: float = 0.03  # of the image side
    color: float = 0.1  # brightness/contrast/saturation jitter amplitude


@dataclass
class PackEntry:
    id: str
    person: str
    source: str
    split: str
    face: Path
    mask: Path | None
    degraded_masks: list[Path] = field(default_factory=list)


def read_pack(pack: Path | str, split: str | None = None) -> list[PackEntry]:
    """The pack's manifest, with mask files where they exist; ``split`` = train / val / None (all)."""
    pack = Path(pack)
    out = []
    with open(pack / "manifest.csv", newline="") as f:
        for r in csv.DictReader(f):
            if split and r["split"] != split:
                continue
            mask = pack / "masks" / f"{r['id']}.png"
            out.append(PackEntry(
                id=r["id"], person=r["person"], source=r["source"], split=r["split"], face=pack / r["file"],
                mask=mask if mask.is_file() else None,
                degraded_masks=sorted((pack / "masks_degraded").glob(f"{r['id']}_*.png")),
            ))
    if not out:
        raise ValueError(f"no {split or ''} faces in {pack}/manifest.csv")
    return out


def read_rgb(path: Path, size: int | None = None) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read {path}")
    if size and bgr.shape[0] != size:
        bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[..., ::-1])


def read_labels(path: Path, size: int) -> np.ndarray:
    lab = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise ValueError(f"cannot read {path}")
    return lab if lab.shape[0] == size else cv2.resize(lab, (size, size), interpolation=cv2.INTER_NEAREST)


# ------------------------------------------------------------------------------------ augmentation

def _affine(rng: np.random.Generator, size: int, aug: Augment) -> np.ndarray:
    ang = rng.uniform(-aug.rotate_deg, aug.rotate_deg)
    sc = math.exp(rng.uniform(math.log(aug.scale[0]), math.log(aug.scale[1])))
    m = cv2.getRotationMatrix2D((size / 2, size / 2), ang, sc)
    m[:, 2] += rng.uniform(-aug.shift, aug.shift, 2) * size
    return m


def _color(img: np.ndarray, rng: np.random.Generator, a: float) -> np.ndarray:
    """Brightness, contrast and saturation jitter (on the clean face, so the target moves with it)."""
    if a <= 0:
        return img
    x = img.astype(np.float32)
    gray = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = gray[..., None] + (x - gray[..., None]) * rng.uniform(1 - a, 1 + a)  # saturation
    x = (x - x.mean()) * rng.uniform(1 - a, 1 + a) + x.mean()  # contrast
    x = x * rng.uniform(1 - a, 1 + a)  # brightness
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def augment(
    face: np.ndarray, labels: np.ndarray | None, rng: np.random.Generator, aug: Augment
) -> tuple[np.ndarray, np.ndarray | None]:
    """Flip + small similarity jitter (image bilinear, labels nearest) + colour jitter."""
    if rng.random() < aug.flip:  # the part classes have no left/right, so labels flip as they are
        face = face[:, ::-1]
        labels = labels[:, ::-1] if labels is not None else None
    size = face.shape[0]
    m = _affine(rng, size, aug)
    face = cv2.warpAffine(np.ascontiguousarray(face), m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT101)
    if labels is not None:
        labels = cv2.warpAffine(np.ascontiguousarray(labels), m, (size, size), flags=cv2.INTER_NEAREST,
                                borderMode=cv2.BORDER_REFLECT101)
    return _color(face, rng, aug.color), labels


def corrupt_labels(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mask errors a parser makes on bad inputs: parts grown/shrunk, misplaced, mislabelled or missing."""
    lab = labels.copy()
    size = lab.shape[0]
    present = [c for c in np.unique(lab) if c != 0]
    for _ in range(int(rng.integers(1, 4))):
        op = int(rng.integers(4))
        if op == 0 and present:  # grow or shrink one part
            c = int(rng.choice(present))
            k = max(1, int(rng.integers(1, 4) * size / 128)) * 2 + 1
            part = (lab == c).astype(np.uint8)
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
            if rng.random() < 0.5:
                lab[cv2.dilate(part, kernel) > 0] = c
            else:
                lab[(part > 0) & (cv2.erode(part, kernel) == 0)] = 1 if c != 1 else 0
        elif op == 1:  # shift everything
            dx, dy = rng.uniform(-0.04, 0.04, 2) * size
            m = np.float32([[1, 0, dx], [0, 1, dy]])
            lab = cv2.warpAffine(lab, m, (size, size), flags=cv2.INTER_NEAREST,
                                 borderMode=cv2.BORDER_REPLICATE)
        elif op == 2 and len(present) >= 2:  # swap two classes
            a, b = (int(v) for v in rng.choice(present, 2, replace=False))
            lab = np.where(lab == a, b, np.where(lab == b, a, lab)).astype(np.uint8)
        elif present:  # one part missing (the parser saw skin)
            lab[lab == int(rng.choice(present))] = 1
    return lab


class PairDataset(Dataset):
    """Indexed by ``(face index, sample seed)`` pairs from :class:`StepSampler`; returns a dict of
    ``lq`` (degraded) and ``gt`` (clean), 3×S×S in [-1, 1], ``mask`` C×(S/2)×(S/2) one-hot or zeros,
    and ``mask_mode`` (index into MASK_MODES)."""

    def __init__(self, entries: list[PackEntry], size: int, preset: str | Preset = "mixed", seed: int = 0,
                 mask_policy: MaskPolicy | None = None, aug: Augment | None = None, use_masks: bool = True):
        self.entries, self.size, self.preset, self.seed = entries, size, preset, seed
        self.mask_policy = mask_policy or MaskPolicy()
        self.aug = aug if aug is not None else Augment()
        self.use_masks = use_masks and all(e.mask is not None for e in entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, sample = key
        rng = np.random.default_rng([self.seed, sample])
        e = self.entries[index]
        face = read_rgb(e.face, self.size)
        mode = self.mask_policy.sample(rng) if self.use_masks else "none"
        if mode == "degraded" and not e.degraded_masks:
            mode = "corrupt"
        labels = None
        if mode != "none":
            src = e.degraded_masks[int(rng.integers(len(e.degraded_masks)))] if mode == "degraded" else e.mask
            labels = read_labels(src, self.size)
        face, labels = augment(face, labels, rng, self.aug)
        lq, ops = degrade_with_ops(face, self.preset, rng)
        if ("gray", 1.0) in ops:  # as GFPGAN: a grey input restores to a grey face, colour is not invented
            face = np.repeat(cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
        if mode == "corrupt" and labels is not None:
            labels = corrupt_labels(labels, rng)
        half = self.size // 2
        mask = generator_mask(labels)[0] if labels is not None else torch.zeros(NUM_PART_CLASSES, half, half)
        return {"lq": to_model(lq)[0], "gt": to_model(face)[0], "mask": mask,
                "mask_mode": torch.tensor(MASK_MODES.index(mode))}


class StepSampler(Sampler[list[tuple[int, int]]]):
    """Infinite batches from ``start_step``: sample ``c`` = ((step·world + rank)·batch + j) picks face
    ``perm_epoch[c mod n]`` with ``epoch = c div n`` and carries ``c`` as its seed; resumable at any step."""

    def __init__(self, n: int, batch_size: int, seed: int = 0, start_step: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:
        self.n, self.batch, self.seed = n, batch_size, seed
        self.start, self.rank, self.world = start_step, rank, world_size
        self._perm: tuple[int, np.ndarray] = (-1, np.arange(n))

    def _face(self, c: int) -> int:
        epoch = c // self.n
        if self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, 7, epoch]).permutation(self.n))
        return int(self._perm[1][c % self.n])

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start
        while True:
            first = (step * self.world + self.rank) * self.batch
            yield [(self._face(c), c) for c in range(first, first + self.batch)]
            step += 1

    def __len__(self) -> int:  # infinite; DataLoader only needs it for len(), which we never call
        return 2**62


def worker_init(_: int) -> None:
    """One OpenCV thread per worker: the workers are the parallelism. Each worker leaves the trainer's
    process group: a Ctrl-C or a ``kill`` of the group would otherwise reach it too, and a loader worker
    dying under the trainer crashes it before it saves. The trainer still stops them (torch's shutdown,
    multiprocessing's terminate at exit), and they exit by themselves when the trainer dies."""
    cv2.setNumThreads(1)
    os.setpgrp()


__all__ = [
    "MASK_MODES", "MaskPolicy", "Augment", "PackEntry", "read_pack", "read_rgb", "read_labels", "augment",
    "corrupt_labels", "PairDataset", "StepSampler", "worker_init",
]
