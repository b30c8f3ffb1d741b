"""Contact sheet of the synthetic degradations: one row per kind, columns from weakest to strongest.

For eyeballing that each degradation looks like what its name and range promise:
    .venv/bin/python scripts/contact_sheet.py --out out/contact_sheet.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from restoration.degrade import DEGRADATIONS, PRESETS, apply, degrade, strength_at
from restoration.paths import default_faces_dir

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FACE = "hq/ffhq_gpen/00000.png"


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = tile.copy()
    cv2.rectangle(tile, (0, 0), (tile.shape[1], 14), (0, 0, 0), -1)
    cv2.putText(tile, text, (2, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def contact_sheet(face: np.ndarray, columns: int = 6, seed: int = 0) -> np.ndarray:
    """Rows: each kind at ``columns`` strengths, then each preset at ``columns`` seeds; RGB uint8."""
    rows = []
    for kind in DEGRADATIONS:
        tiles = [_label(face, kind)]
        for t in np.linspace(0, 1, columns):
            s = strength_at(kind, float(t))
            tiles.append(_label(apply(kind, face, s, np.random.default_rng(seed)), f"{s:.3g}"))
        rows.append(np.concatenate(tiles, axis=1))
    for name in PRESETS:
        tiles = [_label(face, f"preset {name}")]
        tiles += [_label(degrade(face, name, np.random.default_rng(seed + i)), f"seed {seed + i}")
                  for i in range(columns)]
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def main() -> None:
    faces_dir = default_faces_dir()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--face", type=Path, default=faces_dir / DEFAULT_FACE, help="a clean aligned face")
    ap.add_argument("--size", type=int, default=160, help="tile side in pixels")
    ap.add_argument("--columns", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "contact_sheet.png")
    args = ap.parse_args()
    bgr = cv2.imread(str(args.face), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"cannot read {args.face}")
    face = cv2.resize(bgr, (args.size, args.size), interpolation=cv2.INTER_AREA)[..., ::-1].copy()
    sheet = contact_sheet(face, args.columns, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), sheet[..., ::-1])
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
