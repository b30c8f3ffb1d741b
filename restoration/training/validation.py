"""Periodic validation of a training run: a fixed batch of the pack's validation split, scored.

The batch is built once per run: the ``val`` split's first ``data.val_faces`` faces, each degraded with
``data.val_preset`` at a seed fixed by (run seed, face), with the mask ``data.val_mask`` names (the face's
clean one, the landmark parser's on the degraded face as the service serves it, or none), so that the
figures of every validation of a run, and of the chunks that resume it, are comparable. Scores: PSNR,
SSIM, identity cosine (MobileFaceNet, when its weights are present) and, for the final validation of a
chunk, NIQE. The loop logs them to the checkpoint's ``log.jsonl`` and writes ``samples.png`` from
:meth:`Validator.grid`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from restoration.generator import from_model, generator_mask, to_model
from restoration.training.config import RunConfig, preset_from_config
from restoration.training.data import read_labels, read_pack, read_rgb


def _parse_degraded(lq: np.ndarray, weights_dir: Path) -> np.ndarray:
    """Part labels of degraded faces (N×S×S×3) from the landmark parser, the service's, at its 512 px."""
    import cv2

    from restoration.alignment import FACE_SIZE
    from restoration.parsing import get_parser

    size = lq.shape[1]
    if size != FACE_SIZE:
        lq = np.stack([cv2.resize(f, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_CUBIC) for f in lq])
    labels = get_parser("landmarks", weights_dir=weights_dir).parse(lq)
    if size != FACE_SIZE:
        labels = np.stack([cv2.resize(lab, (size, size), interpolation=cv2.INTER_NEAREST) for lab in labels])
    return labels


class Validator:
    """A fixed validation batch (val split, fixed degradations) scored with PSNR / SSIM / identity."""

    def __init__(self, cfg: RunConfig, device: torch.device, weights_dir: Path) -> None:
        from restoration.degrade import degrade

        d = cfg.data
        self.weights_dir = weights_dir
        entries = read_pack(d.pack, "val")[: d.val_faces]
        size = d.size
        gts, lqs, masks = [], [], []
        for i, e in enumerate(entries):
            gt = read_rgb(e.face, size)
            gts.append(gt)
            rng = np.random.default_rng([cfg.seed, 10_000 + i])
            lqs.append(degrade(gt, preset_from_config(d.val_preset), rng))
            masks.append(read_labels(e.mask, size) if (d.val_mask == "clean" and e.mask) else None)
        if d.val_mask == "degraded" and lqs:
            masks = list(_parse_degraded(np.stack(lqs), weights_dir))
        self.gt = np.stack(gts)
        self.lq = to_model(np.stack(lqs)).to(device)
        from restoration.parsing import NUM_PART_CLASSES

        half = size // 2
        self.mask = torch.stack([generator_mask(m)[0] if m is not None else
                                 torch.zeros(NUM_PART_CLASSES, half, half) for m in masks]).to(device)
        self.identity = None
        try:
            from restoration.metrics import IdentityScorer

            self.identity = IdentityScorer(weights_dir, str(device))
        except Exception as e:  # no weights: PSNR/SSIM only
            print(f"validation without identity cosine: {e}")
        self.baseline = self.score(from_model(self.lq))

    def score(self, out: np.ndarray, with_niqe: bool = False) -> dict[str, float]:
        """Mean PSNR / SSIM (and identity cosine, NIQE) of ``out`` (N×S×S×3 uint8) against the clean faces."""
        from restoration.metrics import niqe, psnr, ssim

        r = {"psnr": float(np.mean([psnr(a, b) for a, b in zip(out, self.gt, strict=True)])),
             "ssim": float(np.mean([ssim(a, b) for a, b in zip(out, self.gt, strict=True)]))}
        if self.identity is not None:
            r["id_cos"] = float(np.mean(self.identity.cosine(out, self.gt)))
        if with_niqe:  # ~0.3 s a face: the final validation of a chunk only
            try:
                r["niqe"] = float(np.nanmean([niqe(o, self.weights_dir) for o in out]))
            except Exception as e:  # no NIQE parameters: the other figures still count
                print(f"validation without NIQE: {e}")
        return r

    @torch.no_grad()
    def run(self, g: torch.nn.Module, batch: int = 8, with_niqe: bool = False
            ) -> tuple[dict[str, float], np.ndarray]:
        """Restore the batch with ``g`` (fixed noise) and score it; returns (scores, outputs)."""
        outs = [from_model(g(self.lq[i:i + batch], self.mask[i:i + batch], noise_mode="fixed").float())
                for i in range(0, len(self.lq), batch)]
        out = np.concatenate(outs)
        return self.score(out, with_niqe), out

    def grid(self, out: np.ndarray, n: int = 8) -> np.ndarray:
        """Rows of (input | output | ground truth)."""
        lq = from_model(self.lq[:n])
        return np.concatenate([np.concatenate([a, b, c], 1) for a, b, c in zip(lq, out[:n], self.gt[:n],
                                                                                 strict=False)], 0)


__all__ = ["Validator"]
