"""Measure the anchors of ``fidelity=auto`` (restoration/fidelity.py) on the pack's training split.

The rule blends from FLOOR at a mildly degraded input to 1 at a heavily degraded one, reading the
degradation from the input's NIQE. The anchors are the median input NIQE of training faces degraded with
the mild ``gfpgan`` preset and with ``heavy``, at fixed seeds: training faces only, no identity network,
so nothing the evaluation judges (validation people, the dlib judge) chooses the rule. Prints the two
constants to write into restoration/fidelity.py, with their spread.

    .venv/bin/python scripts/calibrate_fidelity.py [--pack data/pack] [--limit 96]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from restoration.degrade import degrade
from restoration.fidelity import input_niqe
from restoration.training.data import read_pack, read_rgb

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pack", type=Path, default=ROOT / "data" / "pack")
    ap.add_argument("--limit", type=int, default=96, help="training faces to measure (every k-th, spread)")
    ap.add_argument("--seed", type=int, default=1, help="degradation seed (evaluate.py uses 0)")
    args = ap.parse_args()
    entries = read_pack(args.pack, "train")
    step = max(1, len(entries) // args.limit)
    entries = entries[::step][: args.limit]
    faces = [read_rgb(e.face, 512) for e in entries]
    for preset, name in (("gfpgan", "MILD_NIQE"), ("heavy", "HEAVY_NIQE")):
        v = np.array([input_niqe(degrade(f, preset, np.random.default_rng([args.seed, i])))
                      for i, f in enumerate(faces)])
        q1, med, q3 = np.percentile(v, [25, 50, 75])
        print(f"{name} = {med:.1f}  # {preset}: median of {len(v)} training faces (quartiles {q1:.1f}–{q3:.1f})")


if __name__ == "__main__":
    main()
