"""Overlay grid of the parser's part masks on clean and degraded faces of a pack (docs/img/masks.jpg).

Rows: faces; columns: clean face | its mask overlaid | degraded copy (``heavy``) | the mask the parser
gives on that degraded copy. What the generator is conditioned on at training (clean) and at serving time
(degraded input), side by side.

    .venv/bin/python scripts/mask_overlay.py --pack data/pack --n 6 --out docs/img/masks.jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from restoration.degrade import degrade
from restoration.parsing import NUM_PART_CLASSES, PART_CLASSES, get_parser
from restoration.training.data import read_pack, read_rgb

#: one colour per PART_CLASSES entry (RGB); background transparent
PALETTE = np.array([
    [0, 0, 0], [255, 200, 150], [120, 60, 20], [0, 160, 255], [0, 60, 200], [255, 120, 0], [220, 0, 60],
    [255, 255, 0], [150, 0, 200], [0, 200, 120], [255, 0, 255], [0, 255, 255], [120, 120, 120], [40, 90, 40],
], np.uint8)
assert len(PALETTE) == NUM_PART_CLASSES


def overlay(face: np.ndarray, labels: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    col = PALETTE[labels].astype(np.float32)
    a = np.where(labels[..., None] > 0, alpha, 0.0)
    return np.clip(face * (1 - a) + col * a, 0, 255).astype(np.uint8)


def legend(width: int) -> np.ndarray:
    bar = np.full((28, width, 3), 255, np.uint8)
    x = 6
    for i, name in enumerate(PART_CLASSES[1:], 1):
        cv2.rectangle(bar, (x, 6), (x + 14, 20), PALETTE[i].tolist(), -1)
        cv2.putText(bar, name, (x + 18, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        x += 26 + 9 * len(name)
    return bar


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pack", type=Path, default=Path("data/pack"))
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--tile", type=int, default=192)
    ap.add_argument("--preset", default="heavy")
    ap.add_argument("--out", type=Path, default=Path("docs/img/masks.jpg"))
    args = ap.parse_args()
    entries = read_pack(args.pack, "val")
    step = max(1, len(entries) // args.n)
    faces = np.stack([read_rgb(e.face, 512) for e in entries[::step][: args.n]])
    rng = np.random.default_rng(0)
    bad = np.stack([degrade(f, args.preset, rng) for f in faces])
    parser = get_parser("landmarks")
    lab_c, lab_d = parser.parse(faces), parser.parse(bad)
    t = args.tile
    rows = []
    for f, b, lc, ld in zip(faces, bad, lab_c, lab_d, strict=True):
        tiles = [f, overlay(f, lc), b, overlay(b, ld)]
        rows.append(np.concatenate([cv2.resize(x, (t, t), interpolation=cv2.INTER_AREA) for x in tiles], 1))
    grid = np.concatenate([*rows, legend(4 * t)], 0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), grid[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {args.out} ({grid.shape[1]}x{grid.shape[0]})")


if __name__ == "__main__":
    main()
