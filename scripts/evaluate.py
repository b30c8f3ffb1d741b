"""Evaluate a generator against baselines on faces it never saw.

* Validation split of the pack, degraded with each preset (gfpgan, heavy, mixed) at fixed seeds:
  PSNR, SSIM, identity cosine to the ground truth, NIQE.
* ``$FACES_DIR/wild/cropped`` (real degraded aligned faces, no ground truth): NIQE.
* Methods: ``input`` (the degraded face as is, up-sampled back to 512 bicubic/bilinear by the degradation),
  ``classical`` (restoration.classical.ClassicalFaceRestorer: bilateral denoise + unsharp mask) and
  ``ours`` (a generator checkpoint: ``--model g_ema.safetensors``, or a training checkpoint folder).
* ``ours`` with each mask source of ``--masks``: ``clean`` (the parser on the clean face: the training
  condition), ``degraded`` (the parser on the degraded input: what the service sees), ``none`` (the
  mask-free path) and ``restored`` (two passes: the parser on ours' mask-free output, which is cleaner to
  parse than the input). Wild faces have no clean face: they get the other sources.

Writes ``<out>/eval.md`` (a markdown table) and ``<out>/grid_<preset>.png`` (input | classical | ours | GT).

    .venv/bin/python scripts/evaluate.py --model none --out out/eval
    .venv/bin/python scripts/evaluate.py --model out/run/g_ema.safetensors --out out/eval
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from restoration.degrade import degrade
from restoration.generator import from_model, generator_mask, to_model
from restoration.metrics import IdentityScorer, niqe, psnr, ssim
from restoration.paths import default_faces_dir, default_weights_dir
from restoration.training.data import read_labels, read_pack, read_rgb

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ("gfpgan", "heavy", "mixed")
MASK_SOURCES = ("clean", "degraded", "none", "restored")
SIZE = 512

Method = Callable[[np.ndarray, np.ndarray | None], np.ndarray]  # (N×S×S×3 uint8, labels or None) -> uint8


def classical_method() -> Method:
    from restoration.classical import ClassicalFaceRestorer

    c = ClassicalFaceRestorer()
    return lambda faces, _labels: np.stack([c.restore_uint8(f) for f in faces])


def model_method(path: Path, device: str, batch: int = 4) -> Method:
    """A generator from ``save_generator`` output or from a training checkpoint folder (its G-EMA)."""
    if path.is_dir():
        from restoration.training.checkpoint import generator_from_checkpoint

        g = generator_from_checkpoint(path).to(device).eval()
    else:
        from restoration.generator import load_generator

        g, _ = load_generator(path, device)

    @torch.no_grad()
    def run(faces: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        size = g.config.size
        outs = []
        for i in range(0, len(faces), batch):
            f = faces[i:i + batch]
            if size != f.shape[1]:
                f = np.stack([cv2.resize(x, (size, size), interpolation=cv2.INTER_AREA) for x in f])
            x = to_model(f).to(device)
            m = None
            if labels is not None:
                m = generator_mask(np.stack([cv2.resize(lab, (size, size), interpolation=cv2.INTER_NEAREST)
                                             for lab in labels[i:i + batch]])).to(device)
            y = from_model(g(x, m, noise_mode="fixed"))
            if size != faces.shape[1]:
                y = np.stack([cv2.resize(v, faces.shape[1:3][::-1], interpolation=cv2.INTER_CUBIC) for v in y])
            outs.append(y)
        return np.concatenate(outs)

    return run


def _row(name: str, vals: dict[str, list[float]]) -> str:
    cells = [f"{np.mean(vals[k]):.3f}" if vals.get(k) else "–" for k in ("psnr", "ssim", "id_cos", "niqe")]
    return f"| {name} | " + " | ".join(cells) + " |"


def main() -> None:
    faces_dir = default_faces_dir()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="none", help="g_ema.safetensors, a training checkpoint folder, or none")
    ap.add_argument("--pack", type=Path, default=ROOT / "data" / "pack")
    ap.add_argument("--wild", type=Path, default=faces_dir / "wild" / "cropped")
    ap.add_argument("--weights-dir", type=Path, default=default_weights_dir())
    ap.add_argument("--masks", default="clean,degraded,none",
                    help="comma-separated mask sources for ours: clean, degraded, none, restored")
    ap.add_argument("--limit", type=int, default=0, help="at most this many validation faces (0 = all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "eval")
    args = ap.parse_args()
    t0 = time.time()

    entries = read_pack(args.pack, "val")
    if args.limit:
        entries = entries[: args.limit]
    gt = np.stack([read_rgb(e.face, SIZE) for e in entries])
    modes = [m.strip() for m in args.masks.split(",") if m.strip()]
    if not modes or set(modes) - set(MASK_SOURCES):
        ap.error(f"--masks: a comma-separated list of {', '.join(MASK_SOURCES)}")
    clean = np.stack([read_labels(e.mask, SIZE) for e in entries]) if all(e.mask for e in entries) else None
    if "clean" in modes and clean is None:
        ap.error(f"--masks clean: {args.pack} has no masks/ (scripts/make_pack.py --masks landmarks)")
    parser = None
    if {"degraded", "restored"} & set(modes):
        from restoration.parsing import get_parser

        parser = get_parser("landmarks", weights_dir=args.weights_dir)
    methods: dict[str, Method] = {"input": lambda f, _l: f, "classical": classical_method()}
    ours = model_method(Path(args.model), args.device) if args.model != "none" else None
    runs: list[tuple[str, Method, str]] = [(name, fn, "none") for name, fn in methods.items()]
    free: list[tuple[np.ndarray, np.ndarray]] = []  # ours' mask-free output for the last faces asked

    def ours_free(faces: np.ndarray, _labels: np.ndarray | None = None) -> np.ndarray:
        """Ours without masks, run once per set of faces: both ``none`` and ``restored`` need it."""
        if not free or free[0][0] is not faces:
            free[:] = [(faces, ours(faces, None))]
        return free[0][1]

    if ours is not None:
        runs += [("ours" if len(modes) == 1 else f"ours, {m} masks", ours_free if m == "none" else ours, m)
                 for m in modes]

    def labels_for(mode: str, faces: np.ndarray) -> np.ndarray | None:
        """Masks for ``faces`` from one source; ``clean`` is the validation faces' own."""
        if mode == "clean":
            return clean
        if mode == "degraded" and parser is not None:
            return parser.parse(faces)
        if mode == "restored" and parser is not None and ours is not None:
            return parser.parse(ours_free(faces))
        return None
    scorer = IdentityScorer(args.weights_dir)
    args.out.mkdir(parents=True, exist_ok=True)

    lines = [f"Validation split: {len(entries)} faces of {len({e.person for e in entries})} people never "
             f"trained on; wild: {args.wild.name}. Model: `{args.model}`. Masks for ours: {', '.join(modes)}.",
             "",
             "| preset / method | PSNR ↑ | SSIM ↑ | identity cos ↑ | NIQE ↓ |", "|---|---|---|---|---|",
             _row("ground truth (reference)", {"niqe": [niqe(a, args.weights_dir) for a in gt]})]
    for preset in PRESETS:
        lq = np.stack([degrade(f, preset, np.random.default_rng([args.seed, i])) for i, f in enumerate(gt)])
        outs = {}
        parsed: dict[str, np.ndarray | None] = {}
        for name, fn, mode in runs:
            if mode not in parsed:
                parsed[mode] = labels_for(mode, lq)
            out = outs[name] = fn(lq, parsed[mode])
            vals = {"psnr": [psnr(a, b) for a, b in zip(out, gt, strict=True)],
                    "ssim": [ssim(a, b) for a, b in zip(out, gt, strict=True)],
                    "id_cos": list(scorer.cosine(out, gt)),
                    "niqe": [niqe(a, args.weights_dir) for a in out]}
            lines.append(_row(f"{preset} / {name}", vals))
        n = min(6, len(gt))
        cols = list(outs.values()) + [gt]
        grid = np.concatenate([np.concatenate([c[i] for c in cols], 1) for i in range(n)], 0)
        cv2.imwrite(str(args.out / f"grid_{preset}.png"), cv2.resize(grid[..., ::-1], None, fx=0.5, fy=0.5,
                                                                    interpolation=cv2.INTER_AREA))
    wild_files = sorted(p for p in args.wild.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if wild_files:
        wild = np.stack([read_rgb(p, SIZE) for p in wild_files])
        wild_labels = {m: labels_for(m, wild) for m in {mode for _, _, mode in runs if mode != "clean"}}
        for name, fn, mode in runs:
            if mode == "clean":  # no clean face to parse
                continue
            out = fn(wild, wild_labels[mode])
            lines.append(_row(f"wild ({len(wild)}) / {name}", {"niqe": [niqe(a, args.weights_dir) for a in out]}))
    lines += ["", f"Columns of grid_<preset>.png: {' | '.join(n for n, _, _ in runs)} | GT. "
              f"Took {time.time() - t0:.0f} s on {args.device}."]
    (args.out / "eval.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
